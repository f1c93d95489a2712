package webhooks

import (
	"context"

	"github.com/pyairtable/automation-domain/internal/groupcommit"
	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// maxAcceptBatch bounds the messages of one group commit.
const maxAcceptBatch = 64

// acceptor stores the messages of concurrent requests in group commits (the service's
// groupcommit.Signaller, one line per tenant): a request that arrives while a transaction is
// being written joins the next one, so a burst costs a few transactions, not one per message.
// Each caller returns once the transaction holding its message has committed.
type acceptor struct {
	st   *store.Store
	line groupcommit.Signaller[string, acceptItem]
}

type acceptItem struct {
	m          *store.WebhookMessage
	deliveries []store.WebhookDelivery
	created    *bool
}

func newAcceptor(st *store.Store) *acceptor {
	a := &acceptor{st: st}
	a.line.MaxBatch = maxAcceptBatch
	a.line.Send = func(ctx context.Context, tenantID string, items []acceptItem) error {
		batch := make([]store.NewWebhookMessage, len(items))
		for i, it := range items {
			batch[i] = store.NewWebhookMessage{Message: it.m, Deliveries: it.deliveries}
		}
		created, err := a.st.CreateWebhookMessages(tenant.With(ctx, tenantID), batch)
		if err != nil {
			return err
		}
		for i, it := range items {
			*it.created = created[i]
		}
		return nil
	}
	return a
}

// create stores m with its deliveries and reports whether it was created (false: its id or
// idempotency key was taken). When the group's transaction fails, the message is stored alone,
// so that one bad message fails its own request only.
func (a *acceptor) create(ctx context.Context, m *store.WebhookMessage, deliveries []store.WebhookDelivery) (bool, error) {
	id, system := tenant.From(ctx)
	if system {
		return a.st.CreateWebhookMessage(ctx, m, deliveries)
	}
	created := new(bool)
	if err := a.line.Submit(ctx, id, acceptItem{m: m, deliveries: deliveries, created: created}); err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		return a.st.CreateWebhookMessage(ctx, m, deliveries)
	}
	return *created, nil
}
