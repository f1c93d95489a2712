package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/ratelimit"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// Webhooks sends the deliveries of one endpoint at a time for its dispatcher workflow
// (workflows.WebhookDispatcher), records every attempt and decides what comes next.
type Webhooks struct {
	Store    *store.Store
	Sender   *webhooks.Sender
	Secrets  *webhooks.SecretBox
	Limiter  ratelimit.Limiter
	Events   *events.Bus
	Metrics  *webhooks.Metrics
	Settings webhooks.Settings
	// Jitter spreads retry delays (nil: random).
	Jitter func() float64
}

// Batch bounds: a batch sends at most WebhookBatchSize deliveries, WebhookConcurrency at a time
// (one at a time to an ordered endpoint), and starts no request after WebhookBatchBudget.
const (
	WebhookBatchSize   = 100
	WebhookConcurrency = 16
	WebhookBatchBudget = 10 * time.Second
)

// WebhookBatchInput names the endpoint and the dispatcher's circuit state.
type WebhookBatchInput struct {
	EndpointID string `json:"endpoint_id"`
	// Limit caps the deliveries sent (1 for a probe through an open circuit; 0: WebhookBatchSize).
	Limit int `json:"limit,omitempty"`
	// FailedInARow counts failed requests since the last success, before this batch.
	FailedInARow int `json:"failed_in_a_row,omitempty"`
}

// WebhookBatchResult tells the dispatcher what happened and what comes next.
type WebhookBatchResult struct {
	// Stopped is "disabled" or "deleted" when the endpoint takes no more deliveries.
	Stopped   string `json:"stopped,omitempty"`
	Sent      int    `json:"sent"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	// FailedInARow counts failed requests since the last success, after this batch.
	FailedInARow int `json:"failed_in_a_row"`
	// OpenCircuit: the circuit breaker's threshold is reached; hold the endpoint for
	// CircuitCooldown (doubling with each trip in a row).
	OpenCircuit     bool          `json:"open_circuit,omitempty"`
	CircuitCooldown time.Duration `json:"circuit_cooldown"`
	// More: the batch stopped with due deliveries left; run another at once.
	More bool `json:"more,omitempty"`
	// NextDueAt is when the next pending delivery may be sent (zero: nothing pending).
	NextDueAt time.Time `json:"next_due_at,omitzero"`
	// PauseUntil holds the endpoint (a receiver's Retry-After, the endpoint's rate limit).
	PauseUntil time.Time `json:"pause_until,omitzero"`
	// Disable asks the dispatcher to disable the endpoint for this reason; DisableKind labels
	// the metric (gone, failing, failures).
	Disable     string `json:"disable,omitempty"`
	DisableKind string `json:"disable_kind,omitempty"`
}

// sendJob is one delivery of a batch with what it is sent as.
type sendJob struct {
	d    store.WebhookDelivery
	body []byte
	res  webhooks.Response
	at   time.Time
	sent bool
	// next is when it is retried (nil once it succeeded or failed for good).
	next *time.Time
}

// DeliverWebhookBatch sends the endpoint's due deliveries (a local activity: the fast path has
// no activity task round trip), records each attempt in the attempt log and moves each delivery
// on: succeeded, retrying at its next scheduled time, or failed for good.
func (a *Webhooks) DeliverWebhookBatch(ctx context.Context, in WebhookBatchInput) (WebhookBatchResult, error) {
	out := WebhookBatchResult{CircuitCooldown: a.Settings.CircuitCooldown, FailedInARow: in.FailedInARow}
	e, err := a.Store.GetWebhookEndpointAny(ctx, in.EndpointID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		out.Stopped = "deleted"
		return out, nil
	case err != nil:
		return out, fmt.Errorf("webhook batch %s: %w", in.EndpointID, err)
	case e.DeletedAt != nil || !e.Enabled:
		// Deliveries may have been queued after it was disabled (a race with recover): end them.
		if _, err := a.Store.FailPendingWebhookDeliveries(ctx, e.ID, "the endpoint is disabled", now()); err != nil {
			return out, fmt.Errorf("webhook batch %s: %w", in.EndpointID, err)
		}
		out.Stopped = "disabled"
		if e.DeletedAt != nil {
			out.Stopped = "deleted"
		}
		return out, nil
	}
	keys, err := a.signingKeys(e)
	if err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	limit := WebhookBatchSize
	if in.Limit > 0 {
		limit = in.Limit
	}
	queued, err := a.Store.QueuedWebhookDeliveries(ctx, e.ID, e.Ordered, limit+1)
	if err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	jobs, err := dueJobs(queued, e.Ordered, limit, now())
	if err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	headers, err := a.headers(e)
	if err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	req := func(j *sendJob) webhooks.Request {
		return webhooks.Request{URL: e.URL, MessageID: j.d.MessageID, Timestamp: j.at, Body: j.body, Keys: keys,
			Headers: headers, Timeout: webhooks.EffectiveTimeout(e, a.Settings)}
	}
	var stop stopReason
	if e.Ordered {
		stop = a.sendInOrder(ctx, e, jobs, req)
	} else {
		stop = a.sendConcurrently(ctx, e, jobs, req, in.FailedInARow)
	}
	if err := a.record(ctx, e, jobs, &out); err != nil {
		return out, err
	}
	out.PauseUntil = stop.pauseUntil
	moreDue := len(jobs) == limit && len(queued) > limit && !after(queued[limit].NextAttemptAt, now())
	out.More = in.Limit == 0 && out.Disable == "" && !out.OpenCircuit && stop.pauseUntil.IsZero() &&
		(stop.budget || (moreDue && !stop.blocked))
	out.NextDueAt = nextDue(queued, jobs, e.Ordered)
	return out, nil
}

// dueJobs picks the deliveries to send now from the queue (limit+1 rows): the due ones, or for an
// ordered endpoint the due prefix (one not due yet blocks those behind it).
func dueJobs(queued []store.QueuedWebhookDelivery, ordered bool, limit int, at time.Time) ([]*sendJob, error) {
	jobs := make([]*sendJob, 0, min(len(queued), limit))
	bodies := map[string][]byte{}
	for _, q := range queued[:min(len(queued), limit)] {
		if after(q.NextAttemptAt, at) {
			if ordered {
				break
			}
			continue
		}
		body, ok := bodies[q.MessageID]
		if !ok {
			var err error
			if body, err = webhooks.Body(q.EventType, q.MessageCreatedAt, q.Payload); err != nil {
				return nil, fmt.Errorf("delivery %s: %w", q.ID, err)
			}
			bodies[q.MessageID] = body
		}
		jobs = append(jobs, &sendJob{d: q.WebhookDelivery, body: body})
	}
	return jobs, nil
}

// nextDue is when the endpoint's next pending delivery may be sent after the batch (zero:
// nothing pending): the earliest of the retries just scheduled and the queued rows not sent, or
// for an ordered endpoint the time of the new head of its queue. Rows past the ones read are
// due no earlier, and deliveries queued meanwhile come with a wake-up.
func nextDue(queued []store.QueuedWebhookDelivery, jobs []*sendJob, ordered bool) time.Time {
	sent := map[string]*sendJob{}
	for _, j := range jobs {
		if j.sent {
			sent[j.d.ID] = j
		}
	}
	var best time.Time
	for _, q := range queued {
		at := q.NextAttemptAt
		if j, ok := sent[q.ID]; ok {
			if at = j.next; at == nil {
				continue // finished
			}
		}
		t := time.Unix(1, 0).UTC() // pending without a time: due at once
		if at != nil {
			t = *at
		}
		if ordered {
			return t
		}
		if best.IsZero() || t.Before(best) {
			best = t
		}
	}
	return best
}

func after(t *time.Time, ref time.Time) bool { return t != nil && t.After(ref) }

// stopReason says why a batch stopped before its end.
type stopReason struct {
	pauseUntil time.Time // the rate limit or a receiver's Retry-After
	blocked    bool      // an ordered endpoint's head must wait for its retry
	budget     bool      // the time budget ran out
}

// sendInOrder sends one at a time; a retryable failure blocks the rest (FIFO: a message waits
// for the previous one's success or final failure).
func (a *Webhooks) sendInOrder(ctx context.Context, e store.WebhookEndpoint, jobs []*sendJob, req func(*sendJob) webhooks.Request) stopReason {
	start := time.Now()
	for _, j := range jobs {
		if time.Since(start) > WebhookBatchBudget {
			return stopReason{budget: true}
		}
		if wait := a.allow(ctx, e); wait > 0 {
			return stopReason{pauseUntil: now().Add(wait)}
		}
		j.at = now()
		j.res, j.sent = a.Sender.Send(ctx, req(j)), true
		v := webhooks.Judge(j.res)
		switch {
		case v.Gone:
			return stopReason{}
		case v.Pause > 0:
			return stopReason{pauseUntil: now().Add(v.Pause), blocked: true}
		case v.Retryable && !a.final(e, j):
			return stopReason{blocked: true}
		}
	}
	return stopReason{}
}

// sendConcurrently sends up to WebhookConcurrency at a time; it starts no more once the rate
// limit or a receiver says to wait, the endpoint is gone, or the failures in a row (counting
// failedInARow from before) reach the circuit breaker's threshold: a dead or hanging endpoint
// costs a few requests, not a batch.
func (a *Webhooks) sendConcurrently(ctx context.Context, e store.WebhookEndpoint, jobs []*sendJob,
	req func(*sendJob) webhooks.Request, failedInARow int) stopReason {
	start := time.Now()
	var (
		mu                  sync.Mutex
		stop                stopReason
		gone                bool
		failures, successes int
		wg                  sync.WaitGroup
	)
	threshold := a.Settings.CircuitThreshold
	slots := make(chan struct{}, WebhookConcurrency)
	for _, j := range jobs {
		slots <- struct{}{}
		mu.Lock()
		tripped := threshold > 0 && successes == 0 && failures > 0 && failedInARow+failures >= threshold
		halt := gone || tripped || !stop.pauseUntil.IsZero()
		mu.Unlock()
		if halt {
			<-slots
			break
		}
		if time.Since(start) > WebhookBatchBudget {
			<-slots
			mu.Lock()
			stop.budget = true
			mu.Unlock()
			break
		}
		if wait := a.allow(ctx, e); wait > 0 {
			<-slots
			mu.Lock()
			stop.pauseUntil = now().Add(wait)
			mu.Unlock()
			break
		}
		wg.Add(1)
		j.at, j.sent = now(), true
		go func() {
			defer func() { <-slots; wg.Done() }()
			j.res = a.Sender.Send(ctx, req(j))
			v := webhooks.Judge(j.res)
			mu.Lock()
			defer mu.Unlock()
			if v.Gone {
				gone = true
			}
			if v.Success {
				successes++
			} else {
				failures++
			}
			if v.Pause > 0 {
				if until := now().Add(v.Pause); until.After(stop.pauseUntil) {
					stop.pauseUntil = until
				}
			}
		}()
	}
	wg.Wait()
	return stop
}

// allow applies the endpoint's rate limit; it returns how long to wait (0: send now). When the
// limiter itself fails the request goes out: the limit protects the receiver, not us.
func (a *Webhooks) allow(ctx context.Context, e store.WebhookEndpoint) time.Duration {
	if e.RateLimitPerSecond <= 0 || a.Limiter == nil {
		return 0
	}
	res, err := a.Limiter.Allow(ctx, "webhook-endpoint:"+e.ID, ratelimit.PerSecond(e.RateLimitPerSecond, e.RateLimitPerSecond))
	if err != nil || res.Allowed {
		return 0
	}
	return max(res.RetryAfter, time.Millisecond)
}

// final reports whether the delivery has no attempt left after the one just made.
func (a *Webhooks) final(e store.WebhookEndpoint, j *sendJob) bool {
	schedule := webhooks.EffectiveSchedule(e, a.Settings)
	_, ok := webhooks.RetryDelay(schedule, webhooks.MaxAttempts(e.MaxAttempts, schedule), j.d.Attempts+1-j.d.ScheduleBase, 0.5)
	return !ok
}

// signingKeys are the endpoint's current key and, during a rotation's grace period, the old one.
func (a *Webhooks) signingKeys(e store.WebhookEndpoint) ([][]byte, error) {
	secret, err := a.Secrets.Open(e.Secret, e.ID)
	if err != nil {
		return nil, err
	}
	key, err := webhooks.SigningKey(secret)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{key}
	if e.PreviousSecret != "" && e.PreviousSecretExpiresAt != nil && e.PreviousSecretExpiresAt.After(now()) {
		if old, err := a.Secrets.Open(e.PreviousSecret, e.ID); err == nil {
			if oldKey, err := webhooks.SigningKey(old); err == nil {
				keys = append(keys, oldKey)
			}
		}
	}
	return keys, nil
}

// headers are the endpoint's custom headers, decrypted.
func (a *Webhooks) headers(e store.WebhookEndpoint) (map[string]string, error) {
	var sealed map[string]string
	if err := json.Unmarshal(e.Headers, &sealed); err != nil {
		return nil, fmt.Errorf("custom headers: %w", err)
	}
	return a.Secrets.OpenHeaders(e.ID, sealed)
}

// record writes the attempts of the jobs that were sent, updates the endpoint's health, counts
// metrics and decides whether the endpoint must be disabled.
func (a *Webhooks) record(ctx context.Context, e store.WebhookEndpoint, jobs []*sendJob, out *WebhookBatchResult) error {
	schedule := webhooks.EffectiveSchedule(e, a.Settings)
	maxAttempts := webhooks.MaxAttempts(e.MaxAttempts, schedule)
	jitter := a.Jitter
	if jitter == nil {
		jitter = webhooks.RandomJitter
	}
	var (
		results []store.WebhookAttemptResult
		health  store.WebhookHealthChange
		gone    bool
		at      = now()
	)
	for _, j := range jobs {
		if !j.sent {
			continue
		}
		v := webhooks.Judge(j.res)
		attempt := j.d.Attempts + 1
		r := store.WebhookAttemptResult{PrevAttempts: j.d.Attempts, Attempt: store.WebhookAttempt{
			ID: store.NewID(), DeliveryID: j.d.ID, EndpointID: e.ID, Attempt: attempt, URL: e.URL,
			StartedAt: j.at, DurationMS: float64(j.res.Duration.Microseconds()) / 1000, StatusCode: j.res.StatusCode,
			ResponseHeaders: store.MustJSON(orEmpty(j.res.Header)), ResponseBody: j.res.Body, Error: j.res.Err,
		}}
		switch {
		case v.Success:
			r.Status, r.Attempt.Outcome = store.DeliverySucceeded, store.AttemptSucceeded
			out.Succeeded++
			health.Healthy = true
		default:
			out.Failed++
			r.Status, r.Attempt.Outcome = store.DeliveryFailed, store.AttemptFailed
			if v.Gone {
				gone = true
			} else if v.Retryable {
				if delay, ok := webhooks.RetryDelay(schedule, maxAttempts, attempt-j.d.ScheduleBase, jitter()); ok {
					if v.Pause > 0 {
						delay = v.Pause // the receiver said when to come back
					}
					next := j.at.Add(delay).UTC()
					r.Status, r.Attempt.Outcome, r.NextAttemptAt = store.DeliveryPending, store.AttemptRetrying, &next
					j.next = &next
				}
			}
			if r.Attempt.Error == "" {
				r.Attempt.Error = fmt.Sprintf("HTTP %d", j.res.StatusCode)
			}
			if r.Status == store.DeliveryFailed {
				health.FinalFailures++
			}
		}
		results = append(results, r)
	}
	out.Sent = len(results)
	if len(results) == 0 {
		return nil
	}
	if !health.Healthy {
		health.FailedAt = &at
	}
	applied, err := a.Store.RecordWebhookAttempts(ctx, e, results, health, at)
	if err != nil {
		return fmt.Errorf("webhook batch %s: record: %w", e.ID, err)
	}
	a.observe(results, applied)
	if gone {
		out.Disable, out.DisableKind = "the endpoint answered 410 Gone", "gone"
	}
	if out.Succeeded > 0 {
		out.FailedInARow = 0
		return nil
	}
	out.FailedInARow += out.Failed
	if t := a.Settings.CircuitThreshold; t > 0 && out.FailedInARow >= t {
		out.OpenCircuit = true
		a.Metrics.CircuitOpened.WithLabelValues(e.ID).Inc()
	}
	if gone {
		return nil
	}
	ep, err := a.Store.GetWebhookEndpointAny(ctx, e.ID)
	if err != nil {
		return fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	threshold := ep.DisableAfterFailures
	if threshold == 0 {
		threshold = a.Settings.DisableAfterFailures
	}
	switch {
	case ep.FailingSince != nil && at.Sub(*ep.FailingSince) >= a.Settings.DisableAfter:
		out.Disable, out.DisableKind = fmt.Sprintf("every request failed since %s", ep.FailingSince.Format(time.RFC3339)), "failing"
	case threshold > 0 && ep.ConsecutiveFailures >= threshold:
		out.Disable, out.DisableKind = fmt.Sprintf("%d deliveries in a row failed", ep.ConsecutiveFailures), "failures"
	}
	return nil
}

// observe counts the attempts that were written.
func (a *Webhooks) observe(results []store.WebhookAttemptResult, applied []string) {
	written := make(map[string]bool, len(applied))
	for _, id := range applied {
		written[id] = true
	}
	for _, r := range results {
		if !written[r.Attempt.DeliveryID] {
			continue
		}
		ep := r.Attempt.EndpointID
		a.Metrics.Attempts.WithLabelValues(ep, r.Attempt.Outcome).Inc()
		a.Metrics.AttemptSeconds.WithLabelValues(ep).Observe(r.Attempt.DurationMS / 1000)
		if r.Status != store.DeliveryPending {
			a.Metrics.Deliveries.WithLabelValues(ep, r.Status).Inc()
		}
	}
}

// WebhookDisableInput disables an endpoint; EventID (chosen by the workflow) makes the
// webhook.endpoint.disabled event idempotent.
type WebhookDisableInput struct {
	EndpointID string `json:"endpoint_id"`
	Reason     string `json:"reason"`
	Kind       string `json:"kind"`
	EventID    string `json:"event_id"`
}

// DisableWebhookEndpoint disables the endpoint (its pending deliveries fail; recover them after
// re-enabling it) and emits webhook.endpoint.disabled.
func (a *Webhooks) DisableWebhookEndpoint(ctx context.Context, in WebhookDisableInput) error {
	at := now()
	changed, err := a.Store.DisableWebhookEndpoint(ctx, in.EndpointID, in.Reason, at)
	if err != nil {
		return fmt.Errorf("disable endpoint %s: %w", in.EndpointID, err)
	}
	e, err := a.Store.GetWebhookEndpointAny(ctx, in.EndpointID)
	if err != nil {
		return fmt.Errorf("disable endpoint %s: %w", in.EndpointID, err)
	}
	if !changed && e.DisabledReason != in.Reason {
		return nil // disabled or deleted by someone else meanwhile
	}
	if changed {
		a.Metrics.Disabled.WithLabelValues(in.Kind).Inc()
	}
	data := map[string]any{
		"endpoint_id": e.ID, "name": e.Name, "url": e.URL, "reason": in.Reason, "kind": in.Kind,
		"disabled_at": e.DisabledAt, "failing_since": e.FailingSince, "consecutive_failures": e.ConsecutiveFailures,
	}
	if _, _, err := a.Events.Publish(ctx, store.Event{ID: in.EventID, Type: "webhook.endpoint.disabled",
		Source: "webhooks", Subject: e.ID, Data: store.MustJSON(data)}); err != nil {
		return fmt.Errorf("disable endpoint %s: %w", in.EndpointID, err)
	}
	return nil
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func orEmpty(h map[string]string) map[string]string {
	if h == nil {
		return map[string]string{}
	}
	return h
}
