package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/webhooks"
)

// SenderTimings tune sender sessions; zero fields take the defaults.
type SenderTimings struct {
	// Idle: with nothing pending, a session waits this long for new deliveries before it ends
	// (default 30 s).
	Idle time.Duration
	// Linger: a session waits itself for a retry or a hold that ends within this; a later one is
	// left to the dispatcher's durable timer (default 30 s).
	Linger time.Duration
	// MaxSession: a session hands its endpoint on after this long, so that sessions spread over
	// workers that joined since (default 5 min).
	MaxSession time.Duration
	// Poll: a session looks for due deliveries at least this often, wake-ups or not (default 5 s).
	Poll time.Duration
	// Heartbeat: how often a session heartbeats (default 1 s; the dispatcher's heartbeat timeout
	// is SenderHeartbeatTimeout).
	Heartbeat time.Duration
}

func (t SenderTimings) withDefaults() SenderTimings {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&t.Idle, 30*time.Second)
	set(&t.Linger, 30*time.Second)
	set(&t.MaxSession, 5*time.Minute)
	set(&t.Poll, 5*time.Second)
	set(&t.Heartbeat, time.Second)
	return t
}

// SenderHeartbeatTimeout is the heartbeat timeout of sender sessions: a worker that dies loses
// its sessions to other workers after at most this long (its leases lapse as fast).
const SenderHeartbeatTimeout = webhooks.SenderLeaseTTL

// DefaultStopGrace is how long a stopping worker's sessions wait for their requests in flight.
const DefaultStopGrace = 5 * time.Second

// WebhookSenderInput names the endpoint a session serves.
type WebhookSenderInput struct {
	EndpointID string `json:"endpoint_id"`
}

// WebhookSenderResult says why a session ended and what its dispatcher does next.
type WebhookSenderResult struct {
	// Stopped is "disabled" or "deleted" when the endpoint takes no more deliveries.
	Stopped string `json:"stopped,omitempty"`
	// Disable asks the dispatcher to disable the endpoint for this reason; DisableKind labels
	// the metric (gone, failing, failures).
	Disable     string `json:"disable,omitempty"`
	DisableKind string `json:"disable_kind,omitempty"`
	// NextDueAt is when the next session should start (zero: nothing is pending).
	NextDueAt time.Time `json:"next_due_at,omitzero"`
	// Sent counts the requests the session made.
	Sent int `json:"sent"`
}

// Errors a session ends with so that Temporal runs it again (retryable; the retry policy's
// short first interval makes the hand-over quick).
var (
	errSenderHandoff   = temporal.NewApplicationError("the worker is stopping: another worker takes the endpoint over", "SenderHandoff")
	errSenderLeaseLost = temporal.NewApplicationError("another worker took the endpoint over", "SenderLeaseLost")
)

// RunWebhookSender is a sender session: it holds the endpoint (webhooks.Senders) and sends its
// due deliveries batch after batch, waiting between them for wake-ups (new deliveries) and for
// retries and holds (an open circuit, a receiver's Retry-After) that end soon. It heartbeats
// every second, so a worker that dies loses the endpoint within SenderHeartbeatTimeout; when
// its worker stops it starts no more requests, gives those in flight the stop grace, records
// them and returns an error so that Temporal runs the session again on another worker at once.
// It ends by itself when nothing is pending for a while, when what is pending is due later than
// it lingers (the dispatcher waits on a durable timer), after MaxSession, and when the endpoint
// is disabled, deleted or must be disabled.
func (a *Webhooks) RunWebhookSender(ctx context.Context, in WebhookSenderInput) (WebhookSenderResult, error) {
	stopping := activity.GetWorkerStopChannel(ctx)
	select {
	case <-stopping:
		return WebhookSenderResult{}, errSenderHandoff
	default:
	}
	if _, stopped, err := a.liveEndpoint(ctx, in.EndpointID); err != nil || stopped != "" {
		return WebhookSenderResult{Stopped: stopped}, err
	}
	lease, err := a.Senders.Acquire(ctx, in.EndpointID)
	if err != nil {
		return WebhookSenderResult{}, err
	}
	defer lease.Release()
	s := &senderSession{a: a, id: in.EndpointID, lease: lease, stopping: stopping, t: a.Timings.withDefaults()}
	hctx, stopHeartbeats := context.WithCancel(ctx)
	defer stopHeartbeats()
	go s.heartbeat(hctx)
	if _, err := a.Store.RecoverStartedWebhookAttempts(ctx, in.EndpointID, now()); err != nil {
		return WebhookSenderResult{}, err
	}
	return s.run(ctx)
}

type senderSession struct {
	a        *Webhooks
	id       string
	lease    *webhooks.Lease
	stopping <-chan struct{}
	t        SenderTimings
}

func (s *senderSession) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.t.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			activity.RecordHeartbeat(ctx)
		}
	}
}

func (s *senderSession) run(ctx context.Context) (WebhookSenderResult, error) {
	var out WebhookSenderResult
	begun, lastWork := time.Now(), time.Now()
	var ratePause time.Time
	grace := s.a.StopGrace
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	for {
		if err := s.check(ctx); err != nil {
			return out, err
		}
		e, stopped, err := s.a.liveEndpoint(ctx, s.id)
		if err != nil {
			return out, err
		}
		if stopped != "" {
			out.Stopped = stopped
			return out, nil
		}
		at := now()
		if hold := latest(timeOf(e.CircuitOpenUntil), timeOf(e.PausedUntil), ratePause); hold.After(at) {
			if hold.Sub(at) > s.t.Linger {
				return s.end(ctx, out)
			}
			s.wait(ctx, hold)
			continue
		}
		limit := WebhookBatchSize
		if e.CircuitTrips > 0 {
			limit = 1 // half-open: one probe decides
		}
		res, err := s.a.deliverBatch(ctx, e, batchOptions{limit: limit, failedInARow: e.FailedRequests, circuit: true,
			halt: s.halted, stopping: s.stopping, grace: grace})
		out.Sent += res.Sent
		if err != nil {
			return out, err
		}
		if res.Disable != "" {
			out.Disable, out.DisableKind = res.Disable, res.DisableKind
			return out, nil
		}
		if res.Sent > 0 {
			lastWork = time.Now()
		}
		ratePause = res.PauseUntil
		if res.More || (limit == 1 && res.Succeeded > 0) {
			continue // more is due, or the probe closed the circuit
		}
		if time.Since(begun) > s.t.MaxSession {
			return s.end(ctx, out)
		}
		at = now()
		switch next := res.NextDueAt; {
		case next.IsZero():
			idle := time.Since(lastWork)
			if idle >= s.t.Idle {
				return s.end(ctx, out)
			}
			s.wait(ctx, at.Add(min(s.t.Poll, s.t.Idle-idle)))
		case next.Sub(at) > s.t.Linger:
			return s.end(ctx, out)
		default:
			s.wait(ctx, minTime(next, at.Add(s.t.Poll)))
		}
	}
}

// check says whether the session must end now.
func (s *senderSession) check(ctx context.Context) error {
	select {
	case <-s.stopping:
		return errSenderHandoff
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.lease.Held() {
		return errSenderLeaseLost
	}
	return nil
}

// halted tells a batch to start no more requests.
func (s *senderSession) halted() bool {
	select {
	case <-s.stopping:
		return true
	default:
	}
	return !s.lease.Held()
}

// wait blocks until `until`, a wake-up, or a reason to end.
func (s *senderSession) wait(ctx context.Context, until time.Time) {
	t := time.NewTimer(max(time.Until(until), time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-s.stopping:
	case <-s.lease.Lost():
	case <-s.lease.Wakes():
	case <-t.C:
	}
}

// end lets go of the endpoint and then says when the next session is due. Looking after letting
// go closes the race with a message stored meanwhile: its API either saw the lease (and the
// delivery is found here) or did not (and signalled the dispatcher).
func (s *senderSession) end(ctx context.Context, out WebhookSenderResult) (WebhookSenderResult, error) {
	s.lease.Release()
	e, err := s.a.Store.GetWebhookEndpointAny(ctx, s.id)
	if err != nil {
		return out, err
	}
	due, ok, err := s.a.Store.NextWebhookDue(ctx, s.id, e.Ordered, now())
	if err != nil || !ok {
		return out, err
	}
	out.NextDueAt = latest(due, timeOf(e.CircuitOpenUntil), timeOf(e.PausedUntil))
	return out, nil
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
