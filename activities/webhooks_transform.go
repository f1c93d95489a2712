package activities

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// transform runs the endpoint's transform over each job's message: the job's body becomes the
// transform's, its headers and event type are added. A transform that fails marks its job
// failed (final when the transform itself is at fault): that delivery fails with the message,
// the batch and the endpoint's other deliveries go on.
func (a *Webhooks) transform(ctx context.Context, e store.WebhookEndpoint, jobs []*sendJob, queued []store.QueuedWebhookDelivery) {
	t := a.Transformer
	if t == nil {
		t = webhooks.NewTransformer(nil)
	}
	byID := make(map[string]store.QueuedWebhookDelivery, len(queued))
	for _, q := range queued {
		byID[q.ID] = q
	}
	for _, j := range jobs {
		q := byID[j.d.ID]
		view, err := webhooks.EventView(q.MessageID, q.EventType, q.MessageCreatedAt, json.RawMessage(q.Payload))
		if err != nil {
			j.failure, j.final = "transform: "+err.Error(), true
			continue
		}
		res, err := t.Transform(ctx, e.Transform, view)
		var te *webhooks.TransformError
		switch {
		case errors.As(err, &te):
			j.failure, j.final = te.Error(), true
		case err != nil:
			j.failure = err.Error()
		default:
			j.body, j.headers = res.Body, res.Headers
			if res.EventType != "" {
				j.headers[webhooks.HeaderEventType] = res.EventType
			}
		}
	}
}

// send makes a job's request, or fails it without one when its transform failed.
func (a *Webhooks) send(ctx context.Context, j *sendJob, r webhooks.Request) webhooks.Response {
	if j.failure != "" {
		return webhooks.Response{Err: j.failure, Final: j.final}
	}
	return a.Sender.Send(ctx, r)
}
