package webhooks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
)

// Names shared with the dispatcher workflow (package workflows registers WebhookDispatcher
// under DispatcherWorkflow; a test checks they agree).
const (
	DispatcherWorkflow = "WebhookDispatcher"
	WakeSignal         = "wake"
)

// DispatcherWorkflowID is the id of an endpoint's dispatcher: one per endpoint.
func DispatcherWorkflowID(endpointID string) string { return "webhook-endpoint-" + endpointID }

// DispatcherInput starts (or continues as new) an endpoint's dispatcher; the fields besides
// EndpointID carry its state across continue-as-new.
type DispatcherInput struct {
	EndpointID string `json:"endpoint_id"`
	// FailedInARow counts failed requests since the last success (the circuit breaker's count).
	FailedInARow int `json:"failed_in_a_row,omitempty"`
	// CircuitOpenUntil holds every delivery until then; CircuitTrips counts trips in a row.
	CircuitOpenUntil time.Time `json:"circuit_open_until,omitzero"`
	CircuitTrips     int       `json:"circuit_trips,omitempty"`
	// PausedUntil holds every delivery until then (a receiver's Retry-After, the rate limit).
	PausedUntil time.Time `json:"paused_until,omitzero"`
}

// Wake is the signal that tells a dispatcher to look for due deliveries.
type Wake struct {
	// Reset closes the circuit and lifts any pause (the endpoint was re-enabled or changed).
	Reset bool `json:"reset,omitempty"`
}

// signalDispatcher wakes an endpoint's dispatcher, starting it if it is not running.
func (s *Service) signalDispatcher(ctx context.Context, endpointID string, w Wake) error {
	_, err := s.temporal.SignalWithStartWorkflow(ctx, DispatcherWorkflowID(endpointID), WakeSignal, w,
		client.StartWorkflowOptions{ID: DispatcherWorkflowID(endpointID), TaskQueue: s.taskQueue},
		DispatcherWorkflow, DispatcherInput{EndpointID: endpointID})
	if err != nil {
		return fmt.Errorf("wake dispatcher of endpoint %s: %w", endpointID, err)
	}
	return nil
}

// waker coalesces wake-ups (group commit): Wake returns once a signal sent after the call began
// has been accepted by Temporal, and every caller that arrives while a signal to the same
// endpoint is in flight shares the next one. Under load that is one signal per endpoint per
// round trip instead of one per message.
type waker struct {
	signal func(ctx context.Context, endpointID string, w Wake) error
	log    *slog.Logger
	mu     sync.Mutex
	lines  map[string]*wakeLine
	// lastWarned (unix nanoseconds) keeps failed background wake-ups from flooding the log
	// while Temporal is down.
	lastWarned atomic.Int64
}

type wakeLine struct {
	next *wakeRound // joined by callers, not sent yet
}

type wakeRound struct {
	done chan struct{}
	err  error
}

func newWaker(signal func(context.Context, string, Wake) error, log *slog.Logger) *waker {
	return &waker{signal: signal, log: log, lines: map[string]*wakeLine{}}
}

// signalTimeout bounds one signal; callers wait at most until their own context ends.
const signalTimeout = 15 * time.Second

// wakeLater wakes the endpoints in the background (nobody waits for Temporal); failures are
// logged, and the sweeper wakes what they missed.
func (w *waker) wakeLater(endpointIDs []string) {
	for _, id := range endpointIDs {
		go func() { w.warn(id, w.Wake(context.Background(), id)) }()
	}
}

// signalLater sends one signal in the background.
func (w *waker) signalLater(endpointID string, wake Wake) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
		defer cancel()
		w.warn(endpointID, w.signal(ctx, endpointID, wake))
	}()
}

// warn logs a failed background wake-up, at most once every ten seconds.
func (w *waker) warn(endpointID string, err error) {
	if err == nil {
		return
	}
	now := time.Now().UnixNano()
	last := w.lastWarned.Load()
	if now-last < int64(10*time.Second) || !w.lastWarned.CompareAndSwap(last, now) {
		return
	}
	w.log.Warn("webhook dispatcher not woken; the sweeper will wake it", "endpoint_id", endpointID, "error", err)
}

// Wake makes sure the endpoint's dispatcher is signalled after this call began.
func (w *waker) Wake(ctx context.Context, endpointID string) error {
	w.mu.Lock()
	line := w.lines[endpointID]
	if line == nil {
		line = &wakeLine{}
		w.lines[endpointID] = line
		line.next = &wakeRound{done: make(chan struct{})}
		r := line.next
		w.mu.Unlock()
		go w.run(endpointID, line)
		return w.wait(ctx, r)
	}
	if line.next == nil {
		line.next = &wakeRound{done: make(chan struct{})}
	}
	r := line.next
	w.mu.Unlock()
	return w.wait(ctx, r)
}

func (w *waker) wait(ctx context.Context, r *wakeRound) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run sends rounds for one endpoint until nobody is waiting.
func (w *waker) run(endpointID string, line *wakeLine) {
	for {
		w.mu.Lock()
		r := line.next
		if r == nil {
			delete(w.lines, endpointID)
			w.mu.Unlock()
			return
		}
		line.next = nil
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
		r.err = w.signal(ctx, endpointID, Wake{})
		cancel()
		close(r.done)
	}
}

// wakeWait bounds how long wakeAll waits for its wake-ups: the signals go on in the background
// and the sweeper wakes whatever they missed.
const wakeWait = 3 * time.Second

// wakeAll wakes several endpoints at once and returns the first error.
func (w *waker) wakeAll(ctx context.Context, endpointIDs []string) error {
	ctx, cancel := context.WithTimeout(ctx, wakeWait)
	defer cancel()
	if len(endpointIDs) == 0 {
		return nil
	}
	if len(endpointIDs) == 1 {
		return w.Wake(ctx, endpointIDs[0])
	}
	errs := make([]error, len(endpointIDs))
	var wg sync.WaitGroup
	for i, id := range endpointIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Wake(ctx, id)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
