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
// (workflows.WebhookDispatcher): sender sessions (RunWebhookSender) and, for dispatchers started
// before those, single batches (DeliverWebhookBatch). It records every attempt and decides what
// comes next.
type Webhooks struct {
	Store    *store.Store
	Sender   *webhooks.Sender
	Secrets  *webhooks.SecretBox
	Limiter  ratelimit.Limiter
	Events   *events.Bus
	Metrics  *webhooks.Metrics
	Settings webhooks.Settings
	// Senders holds the endpoints of this process's sender sessions.
	Senders *webhooks.Senders
	// StopGrace is how long a session that hands its endpoint over (the worker stops) waits
	// for the requests in flight before it abandons them (0: DefaultStopGrace).
	StopGrace time.Duration
	// Timings tune the sender sessions (zero fields: the defaults).
	Timings SenderTimings
	// Jitter spreads retry delays (nil: random).
	Jitter func() float64
	// Transformer runs endpoints' transforms (nil: webhooks.NewTransformer(nil)).
	Transformer *webhooks.Transformer
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
	// traceParent is the message's trace context; created when the message was.
	traceParent string
	created     time.Time
	res         webhooks.Response
	at          time.Time
	sent        bool
	// attemptID is the attempt's row, written as started before the request goes out.
	attemptID string
	// aborted: the worker stopped and the request was given up before its response came.
	aborted bool
	// next is when it is retried (nil once it succeeded or failed for good).
	next *time.Time
	// headers are added by the endpoint's transform; failure is why the transform failed (the
	// attempt fails without a request; final when retrying cannot help).
	headers map[string]string
	failure string
	final   bool
}

// batchOptions say how deliverBatch sends.
type batchOptions struct {
	// limit caps the deliveries sent (1 for a probe through an open circuit).
	limit int
	// failedInARow counts failed requests since the last success, before this batch.
	failedInARow int
	// circuit keeps the circuit breaker's state on the endpoint's row (sender sessions).
	circuit bool
	// halt, when set, stops the batch from starting more requests once it returns true (the
	// worker stops, the session lost its endpoint).
	halt func() bool
	// stopping, when set, is closed when the worker stops: requests in flight then get grace
	// to finish before they are abandoned.
	stopping <-chan struct{}
	grace    time.Duration
}

// DeliverWebhookBatch sends the endpoint's due deliveries (a local activity: the fast path has
// no activity task round trip), records each attempt in the attempt log and moves each delivery
// on: succeeded, retrying at its next scheduled time, or failed for good. Dispatchers started
// before sender sessions run it; they keep the circuit breaker's state themselves.
func (a *Webhooks) DeliverWebhookBatch(ctx context.Context, in WebhookBatchInput) (WebhookBatchResult, error) {
	out := WebhookBatchResult{CircuitCooldown: a.Settings.CircuitCooldown, FailedInARow: in.FailedInARow}
	e, stopped, err := a.liveEndpoint(ctx, in.EndpointID)
	if err != nil || stopped != "" {
		out.Stopped = stopped
		return out, err
	}
	// Only one such batch runs for an endpoint at a time: what an earlier one left started was
	// cut short.
	if _, err := a.Store.RecoverStartedWebhookAttempts(ctx, e.ID, now()); err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	limit := WebhookBatchSize
	if in.Limit > 0 {
		limit = in.Limit
	}
	res, err := a.deliverBatch(ctx, e, batchOptions{limit: limit, failedInARow: in.FailedInARow})
	res.CircuitCooldown = a.Settings.CircuitCooldown
	if in.Limit > 0 {
		res.More = false
	}
	return res, err
}

// liveEndpoint reads the endpoint; for one deleted or disabled it fails what is still pending
// (deliveries queued after it was disabled, in a race with recover) and says which it is.
func (a *Webhooks) liveEndpoint(ctx context.Context, id string) (store.WebhookEndpoint, string, error) {
	e, err := a.Store.GetWebhookEndpointAny(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return e, "deleted", nil
	case err != nil:
		return e, "", fmt.Errorf("webhook endpoint %s: %w", id, err)
	case e.DeletedAt != nil || !e.Enabled:
		if _, err := a.Store.FailPendingWebhookDeliveries(ctx, e.ID, "the endpoint is disabled", now()); err != nil {
			return e, "", fmt.Errorf("webhook endpoint %s: %w", id, err)
		}
		if e.DeletedAt != nil {
			return e, "deleted", nil
		}
		return e, "disabled", nil
	}
	return e, "", nil
}

// deliverBatch sends up to o.limit due deliveries of a live endpoint and records them.
func (a *Webhooks) deliverBatch(ctx context.Context, e store.WebhookEndpoint, o batchOptions) (WebhookBatchResult, error) {
	out := WebhookBatchResult{FailedInARow: o.failedInARow}
	keys, err := a.signingKeys(e)
	if err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	queued, err := a.Store.QueuedWebhookDeliveries(ctx, e.ID, e.Ordered, o.limit+1)
	if err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	jobs, err := dueJobs(queued, e.Ordered, o.limit, now())
	if err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	headers, err := a.headers(e)
	if err != nil {
		return out, fmt.Errorf("webhook batch %s: %w", e.ID, err)
	}
	if e.Transform != "" {
		a.transform(ctx, e, jobs, queued)
	}
	target := e.URL
	if typ := webhooks.EndpointType(e); typ != webhooks.TypeHTTP {
		if target, err = a.Secrets.BrokerURL(e); err != nil {
			return out, fmt.Errorf("webhook batch %s: broker URL: %w", e.ID, err)
		}
	}
	req := func(j *sendJob) webhooks.Request {
		h := headers
		if len(j.headers) > 0 {
			h = make(map[string]string, len(headers)+len(j.headers))
			for k, v := range headers {
				h[k] = v
			}
			for k, v := range j.headers {
				h[k] = v
			}
		}
		return webhooks.Request{URL: target, MessageID: j.d.MessageID, Timestamp: j.at, Body: j.body, Keys: keys,
			Headers: h, Timeout: webhooks.EffectiveTimeout(e, a.Settings),
			TraceParent: j.traceParent, OmitTraceparent: e.OmitTraceparent, EndpointID: e.ID,
			Type: webhooks.EndpointType(e), Subject: e.Subject, Exchange: e.Exchange, RoutingKey: e.RoutingKey}
	}
	if o.halt == nil {
		o.halt = func() bool { return false }
	}
	// Requests in flight outlive a cancelled activity (a lost heartbeat) and a stopping worker
	// by the grace period, so that what they did is known and recorded.
	sendCtx, cancel := graceful(ctx, o.stopping, o.grace)
	defer cancel()
	var stop stopReason
	if e.Ordered {
		stop, err = a.sendInOrder(sendCtx, e, jobs, req, o)
	} else {
		stop, err = a.sendConcurrently(sendCtx, e, jobs, req, o)
	}
	// Record even when the activity was cancelled meanwhile: the requests were made.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	if rerr := a.record(rctx, e, jobs, o, stop, &out); rerr != nil {
		return out, rerr
	}
	if err != nil {
		return out, err
	}
	out.PauseUntil = stop.pauseUntil
	moreDue := len(jobs) == o.limit && len(queued) > o.limit && !after(queued[o.limit].NextAttemptAt, now())
	out.More = out.Disable == "" && !out.OpenCircuit && stop.pauseUntil.IsZero() && !stop.halted &&
		(stop.budget || (moreDue && !stop.blocked))
	out.NextDueAt = nextDue(queued, jobs, e.Ordered)
	return out, nil
}

// graceful returns a context for requests that ends grace after ctx ends or stopping closes
// (at once with no grace).
func graceful(ctx context.Context, stopping <-chan struct{}, grace time.Duration) (context.Context, context.CancelFunc) {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-out.Done():
			return
		case <-ctx.Done():
		case <-stopping:
		}
		select {
		case <-out.Done():
		case <-time.After(grace):
			cancel()
		}
	}()
	return out, cancel
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
		jobs = append(jobs, &sendJob{d: q.WebhookDelivery, body: body, traceParent: q.MessageTraceParent, created: q.MessageCreatedAt})
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
	retryAfter time.Time // a receiver's Retry-After (kept on the endpoint by sender sessions)
	blocked    bool      // an ordered endpoint's head must wait for its retry
	budget     bool      // the time budget ran out
	halted     bool      // the worker stops or the session lost its endpoint
}

// start writes the jobs' attempts as started, just before their requests go out.
func (a *Webhooks) start(ctx context.Context, e store.WebhookEndpoint, jobs []*sendJob) error {
	rows := make([]store.WebhookAttempt, len(jobs))
	at := now()
	for i, j := range jobs {
		j.attemptID, j.at = store.NewID(), at
		rows[i] = store.WebhookAttempt{ID: j.attemptID, DeliveryID: j.d.ID, EndpointID: e.ID, Attempt: j.d.Attempts + 1,
			URL: e.URL, StartedAt: at}
	}
	if err := a.Store.StartWebhookAttempts(context.WithoutCancel(ctx), rows); err != nil {
		return fmt.Errorf("webhook batch %s: start attempts: %w", e.ID, err)
	}
	return nil
}

// sent marks a job's request done; one given up because the worker stopped is aborted.
func sent(ctx context.Context, j *sendJob, res webhooks.Response) {
	j.res, j.sent = res, true
	j.aborted = res.StatusCode == 0 && ctx.Err() != nil
}

// sendInOrder sends one at a time; a retryable failure blocks the rest (FIFO: a message waits
// for the previous one's success or final failure).
func (a *Webhooks) sendInOrder(ctx context.Context, e store.WebhookEndpoint, jobs []*sendJob,
	req func(*sendJob) webhooks.Request, o batchOptions) (stopReason, error) {
	start := time.Now()
	for _, j := range jobs {
		if o.halt() || ctx.Err() != nil {
			return stopReason{halted: true}, nil
		}
		if time.Since(start) > WebhookBatchBudget {
			return stopReason{budget: true}, nil
		}
		if wait := a.allow(ctx, e); wait > 0 {
			return stopReason{pauseUntil: now().Add(wait)}, nil
		}
		if err := a.start(ctx, e, []*sendJob{j}); err != nil {
			return stopReason{}, err
		}
		sent(ctx, j, a.send(ctx, j, req(j)))
		if j.aborted {
			return stopReason{halted: true}, nil
		}
		v := webhooks.Judge(j.res)
		switch {
		case v.Gone:
			return stopReason{}, nil
		case v.Pause > 0:
			until := now().Add(v.Pause)
			return stopReason{pauseUntil: until, retryAfter: until, blocked: true}, nil
		case v.Retryable && !a.final(e, j):
			return stopReason{blocked: true}, nil
		}
	}
	return stopReason{}, nil
}

// sendConcurrently sends up to WebhookConcurrency at a time; it starts no more once the rate
// limit or a receiver says to wait, the endpoint is gone, or the failures in a row (counting
// o.failedInARow from before) reach the circuit breaker's threshold: a dead or hanging endpoint
// costs a few requests, not a batch. The attempts of the requests that can go out together are
// written as started in one statement.
func (a *Webhooks) sendConcurrently(ctx context.Context, e store.WebhookEndpoint, jobs []*sendJob,
	req func(*sendJob) webhooks.Request, o batchOptions) (stopReason, error) {
	start := time.Now()
	var (
		mu                  sync.Mutex
		stop                stopReason
		gone                bool
		failures, successes int
		wg                  sync.WaitGroup
		err                 error
	)
	threshold := a.Settings.CircuitThreshold
	slots := make(chan struct{}, WebhookConcurrency)
	// admit says whether one more request may start, and records why not.
	admit := func() bool {
		mu.Lock()
		tripped := threshold > 0 && successes == 0 && failures > 0 && o.failedInARow+failures >= threshold
		halt := gone || tripped || !stop.pauseUntil.IsZero()
		mu.Unlock()
		if halt {
			return false
		}
		if o.halt() || ctx.Err() != nil {
			mu.Lock()
			stop.halted = true
			mu.Unlock()
			return false
		}
		if time.Since(start) > WebhookBatchBudget {
			mu.Lock()
			stop.budget = true
			mu.Unlock()
			return false
		}
		if wait := a.allow(ctx, e); wait > 0 {
			mu.Lock()
			stop.pauseUntil = now().Add(wait)
			mu.Unlock()
			return false
		}
		return true
	}
	send := func(j *sendJob) {
		defer func() { <-slots; wg.Done() }()
		sent(ctx, j, a.send(ctx, j, req(j)))
		mu.Lock()
		defer mu.Unlock()
		if j.aborted {
			stop.halted = true
			return
		}
		v := webhooks.Judge(j.res)
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
				stop.pauseUntil, stop.retryAfter = until, until
			}
		}
	}
	next := 0
waves:
	for next < len(jobs) {
		slots <- struct{}{} // wait for a free slot
		var wave []*sendJob
		for {
			if !admit() {
				<-slots
				break
			}
			wave = append(wave, jobs[next])
			next++
			if next == len(jobs) {
				break
			}
			select {
			case slots <- struct{}{}: // another slot is free: the next job joins this wave
				continue
			default:
			}
			break
		}
		if len(wave) > 0 {
			if err = a.start(ctx, e, wave); err != nil {
				for range wave {
					<-slots
				}
				break waves
			}
			for _, j := range wave {
				wg.Add(1)
				go send(j)
			}
		}
		if next < len(jobs) && len(wave) == 0 {
			break
		}
		mu.Lock()
		done := stop.halted || stop.budget || !stop.pauseUntil.IsZero()
		mu.Unlock()
		if done {
			break
		}
	}
	wg.Wait()
	return stop, err
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

// record writes the attempts of the jobs that were sent, updates the endpoint's health (and,
// with o.circuit, its circuit breaker), counts metrics and decides whether the endpoint must be
// disabled.
func (a *Webhooks) record(ctx context.Context, e store.WebhookEndpoint, jobs []*sendJob, o batchOptions, stop stopReason, out *WebhookBatchResult) error {
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
			ID: j.attemptID, DeliveryID: j.d.ID, EndpointID: e.ID, Attempt: attempt, URL: e.URL,
			StartedAt: j.at, DurationMS: float64(j.res.Duration.Microseconds()) / 1000, StatusCode: j.res.StatusCode,
			ResponseHeaders: store.MustJSON(orEmpty(j.res.Header)), ResponseBody: j.res.Body, Error: j.res.Err,
		}}
		switch {
		case j.aborted:
			// Not the receiver's doing: the next session sends it again at once.
			r.Status, r.Attempt.Outcome, r.NextAttemptAt = store.DeliveryPending, store.AttemptUnknown, &at
			r.Attempt.Error = "outcome unknown: the worker stopped before the response came (" + j.res.Err + ")"
			j.next = &at
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
	if !health.Healthy && out.Failed > 0 {
		health.FailedAt = &at
	}
	if out.Succeeded > 0 {
		out.FailedInARow = 0
	} else {
		out.FailedInARow += out.Failed
	}
	if t := a.Settings.CircuitThreshold; t > 0 && out.Succeeded == 0 && out.Failed > 0 && out.FailedInARow >= t {
		out.OpenCircuit = true
	}
	if o.circuit {
		c := store.CircuitOf(e)
		switch {
		case out.Succeeded > 0:
			c = store.WebhookCircuit{}
		case out.Failed > 0:
			c.FailedRequests = out.FailedInARow
			if out.OpenCircuit {
				c.Trips++
				until := at.Add(webhooks.CircuitCooldown(a.Settings.CircuitCooldown, c.Trips))
				c.OpenUntil = &until
			}
		}
		health.Circuit = &c
		if !stop.retryAfter.IsZero() {
			health.PausedUntil = &stop.retryAfter
		}
	}
	applied, err := a.Store.RecordWebhookAttempts(ctx, e, results, health, at)
	if err != nil {
		return fmt.Errorf("webhook batch %s: record: %w", e.ID, err)
	}
	a.observe(results, applied)
	a.observeEndToEnd(jobs, results, applied)
	if gone {
		out.Disable, out.DisableKind = "the endpoint answered 410 Gone", "gone"
	}
	if out.OpenCircuit {
		a.Metrics.CircuitOpened.WithLabelValues(e.ID).Inc()
	}
	if out.Succeeded > 0 || gone || out.Failed == 0 {
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
