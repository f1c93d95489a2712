package webhooks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/internal/groupcommit"
	"github.com/pyairtable/automation-domain/internal/tenant"
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

// signalDispatcher wakes an endpoint's dispatcher, starting it if it is not running. The
// dispatcher runs for the endpoint's tenant (its workflow id and activities carry it), whoever
// wakes it: a request, a sender session or the sweeper.
func (s *Service) signalDispatcher(ctx context.Context, endpointID string, w Wake) error {
	owner, err := s.store.WebhookEndpointTenant(ctx, endpointID)
	if err != nil {
		return fmt.Errorf("wake dispatcher of endpoint %s: %w", endpointID, err)
	}
	ctx = tenant.With(ctx, owner)
	_, err = s.temporal.SignalWithStartWorkflow(ctx, DispatcherWorkflowID(endpointID), WakeSignal, w,
		client.StartWorkflowOptions{ID: DispatcherWorkflowID(endpointID), TaskQueue: s.taskQueue},
		DispatcherWorkflow, DispatcherInput{EndpointID: endpointID})
	if err != nil {
		return fmt.Errorf("wake dispatcher of endpoint %s: %w", endpointID, err)
	}
	return nil
}

// waker coalesces wake-ups (group commit, the service's one groupcommit.Signaller): Wake
// returns once a signal sent after the call began has been accepted by Temporal, and every
// caller that arrives while a signal to the same endpoint is in flight shares the next one.
// Under load that is one signal per endpoint per round trip instead of one per message.
type waker struct {
	signaller groupcommit.Signaller[string, Wake]
	log       *slog.Logger
	// lastWarned (unix nanoseconds) keeps failed background wake-ups from flooding the log
	// while Temporal is down.
	lastWarned atomic.Int64
}

// newWaker wakes dispatchers with signal, each signal bounded by timeout (0:
// groupcommit.DefaultTimeout).
func newWaker(signal func(context.Context, string, Wake) error, timeout time.Duration, log *slog.Logger) *waker {
	w := &waker{log: log}
	w.signaller.Timeout = timeout
	// One signal stands for every wake-up of a round (a reset among them makes it a reset).
	w.signaller.Send = func(ctx context.Context, endpointID string, wakes []Wake) error {
		var merged Wake
		for _, x := range wakes {
			merged.Reset = merged.Reset || x.Reset
		}
		return signal(ctx, endpointID, merged)
	}
	return w
}

// wakeLater wakes the endpoints in the background (nobody waits for Temporal); failures are
// logged, and the sweeper wakes what they missed.
func (w *waker) wakeLater(endpointIDs []string) {
	for _, id := range endpointIDs {
		go func() { w.warn(id, w.Wake(context.Background(), id)) }()
	}
}

// signalLater sends one signal (a reset) in the background, outside the group commits.
func (w *waker) signalLater(endpointID string, wake Wake) {
	go func() { w.warn(endpointID, w.signaller.SendNow(endpointID, wake)) }()
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
	return w.signaller.Submit(ctx, endpointID, Wake{})
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
