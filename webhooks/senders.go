package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

// SenderTaskQueue is the task queue of the sender sessions (the dispatcher workflows schedule
// them there; every worker process polls it with room for many sessions, most of them waiting).
const SenderTaskQueue = "automation-webhooks"

// Sender leases: a session holds its endpoint in the database for SenderLeaseTTL and renews it
// every SenderLeaseRenewal, so that at most one session sends an endpoint's deliveries at a time
// (the order of an ordered endpoint holds even when a worker is cut off from Temporal) and one
// whose worker died lets go within SenderLeaseTTL. Lease times are the processes' own clocks:
// they must agree within senderLeaseMargin (NTP does).
const (
	SenderLeaseTTL     = 5 * time.Second
	SenderLeaseRenewal = time.Second
	// senderLeaseMargin is how long before its end a lease stops counting as held: a session
	// stops sending before another process may take the endpoint over.
	senderLeaseMargin = time.Second
	// senderAcquireWait bounds how long Acquire waits for another holder to let go.
	senderAcquireWait = 2 * SenderLeaseTTL
)

// ErrSenderBusy is Acquire's answer when another session keeps holding the endpoint.
var ErrSenderBusy = errors.New("another sender holds the endpoint")

// Senders keeps the leases of the sender sessions running in this process and routes wake-ups
// (new deliveries) to them. One Senders serves every session of a process; Run renews the
// leases with one statement per renewal whatever their number.
type Senders struct {
	store *store.Store
	owner string
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex
	held map[string]*Lease
}

// NewSenders returns the lease keeper of the process identified by owner (unique per process
// run).
func NewSenders(st *store.Store, owner string, log *slog.Logger) *Senders {
	return &Senders{store: st, owner: owner, log: log, now: time.Now, held: map[string]*Lease{}}
}

// Lease is a session's hold on an endpoint.
type Lease struct {
	s          *Senders
	endpointID string
	wake       chan struct{}
	lost       chan struct{}
	lostOnce   sync.Once

	mu         sync.Mutex
	validUntil time.Time
	released   bool
}

// Acquire takes the endpoint for a session of this process. It waits (up to twice the lease
// time) for another holder's lease to lapse or be released, and for an earlier session of this
// process to end.
func (s *Senders) Acquire(ctx context.Context, endpointID string) (*Lease, error) {
	deadline := s.now().Add(senderAcquireWait)
	for {
		s.mu.Lock()
		_, busy := s.held[endpointID]
		s.mu.Unlock()
		if !busy {
			start := s.now()
			ok, err := s.store.AcquireWebhookSender(ctx, endpointID, s.owner, start.Add(SenderLeaseTTL), start)
			if err != nil {
				return nil, fmt.Errorf("take endpoint %s: %w", endpointID, err)
			}
			if ok {
				l := &Lease{s: s, endpointID: endpointID, wake: make(chan struct{}, 1), lost: make(chan struct{}),
					validUntil: start.Add(SenderLeaseTTL - senderLeaseMargin)}
				s.mu.Lock()
				if _, busy = s.held[endpointID]; !busy {
					s.held[endpointID] = l
				}
				s.mu.Unlock()
				if !busy {
					return l, nil
				}
			}
		}
		if s.now().After(deadline) {
			return nil, fmt.Errorf("endpoint %s: %w", endpointID, ErrSenderBusy)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Wake tells the sessions of this process that hold these endpoints that deliveries came.
func (s *Senders) Wake(endpointIDs ...string) { s.WakeHeld(endpointIDs) }

// WakeHeld wakes the sessions of this process that hold these endpoints and returns the
// endpoints it holds none of (another process's session, or none, may hold them).
func (s *Senders) WakeHeld(endpointIDs []string) (elsewhere []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range endpointIDs {
		l := s.held[id]
		if l == nil {
			elsewhere = append(elsewhere, id)
			continue
		}
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return elsewhere
}

// WakePayload wakes the endpoints named in a WebhookWakeChannel notification.
func (s *Senders) WakePayload(payload string) {
	if payload != "" {
		s.Wake(strings.Split(payload, ",")...)
	}
}

// Run renews the leases of this process every SenderLeaseRenewal until ctx ends. A lease that
// could not be renewed stops counting as held before another process may take it.
func (s *Senders) Run(ctx context.Context) {
	t := time.NewTicker(SenderLeaseRenewal)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.renew(ctx)
	}
}

func (s *Senders) renew(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.held))
	for id := range s.held {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	start := s.now()
	rctx, cancel := context.WithTimeout(ctx, SenderLeaseRenewal)
	held, err := s.store.RenewWebhookSenders(rctx, s.owner, ids, start.Add(SenderLeaseTTL))
	cancel()
	if err != nil {
		// The leases run out on their own; their sessions stop sending when they do.
		s.log.Warn("renew webhook sender leases", "endpoints", len(ids), "error", err)
		return
	}
	renewed := make(map[string]bool, len(held))
	for _, id := range held {
		renewed[id] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		l := s.held[id]
		if l == nil {
			continue
		}
		if renewed[id] {
			l.mu.Lock()
			l.validUntil = start.Add(SenderLeaseTTL - senderLeaseMargin)
			l.mu.Unlock()
		} else {
			l.lostOnce.Do(func() { close(l.lost) })
		}
	}
}

// Held reports whether the session may still send: its lease is renewed and has not been
// taken over.
func (l *Lease) Held() bool {
	select {
	case <-l.lost:
		return false
	default:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.released && l.s.now().Before(l.validUntil)
}

// Wakes is signalled when deliveries come for the endpoint.
func (l *Lease) Wakes() <-chan struct{} { return l.wake }

// Lost is closed when another process took the endpoint over.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Release lets go of the endpoint (at once, for the next session wherever it runs).
func (l *Lease) Release() {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	l.released = true
	l.mu.Unlock()
	l.s.mu.Lock()
	if l.s.held[l.endpointID] == l {
		delete(l.s.held, l.endpointID)
	}
	l.s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.s.store.ReleaseWebhookSender(ctx, l.endpointID, l.s.owner); err != nil {
		l.s.log.Warn("release webhook sender lease; it lapses by itself", "endpoint_id", l.endpointID, "error", err)
	}
}

// RunListener hands the wake-ups other processes send over Postgres (WebhookWakeChannel) to
// the sessions of this process until ctx ends, reconnecting when the connection drops. It
// returns at once on SQLite, where the API and the sessions share the process.
func (s *Senders) RunListener(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		began := time.Now()
		err := s.store.Listen(ctx, store.WebhookWakeChannel, s.WakePayload)
		if errors.Is(err, store.ErrListenUnsupported) || ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			backoff = time.Second // it was up for a while: this is a new outage
		}
		s.log.Warn("webhook wake-up listener disconnected; sessions poll until it is back", "error", err, "retry_in", backoff)
		// Wake every session: deliveries may have come while the connection was down.
		s.mu.Lock()
		ids := make([]string, 0, len(s.held))
		for id := range s.held {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		s.Wake(ids...)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
