package activities_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// Concurrent requests share group commits: every message is stored with its deliveries, a
// repeated idempotency key within one group yields the first message, and each caller gets its
// own answer.
func TestConcurrentDeliversShareGroupCommits(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	a := f.endpoint(webhooks.EndpointInput{URL: "http://127.0.0.1:1/a", Events: []string{"order.*"}})
	b := f.endpoint(webhooks.EndpointInput{URL: "http://127.0.0.1:1/b", Events: []string{"order.*"}})
	const n = 40
	msgs := make([]webhooks.Message, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := webhooks.DeliverRequest{EventType: "order.created", Payload: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i))}
			if i%10 == 0 {
				req.IdempotencyKey = "same-key" // four requests, one message
			}
			msgs[i], errs[i] = f.svc.Deliver(context.Background(), req)
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	var keyed []string
	for i, m := range msgs {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if len(m.Deliveries) != 2 {
			t.Errorf("request %d: %d deliveries", i, len(m.Deliveries))
		}
		if i%10 == 0 {
			keyed = append(keyed, m.ID)
			continue
		}
		if ids[m.ID] {
			t.Errorf("message %s answered twice", m.ID)
		}
		ids[m.ID] = true
	}
	for _, id := range keyed[1:] {
		if id != keyed[0] {
			t.Errorf("one idempotency key, messages %v", keyed)
		}
	}
	for id := range ids {
		got, err := f.svc.GetMessage(context.Background(), id)
		if err != nil || len(got.Deliveries) != 2 {
			t.Errorf("message %s: %v %+v", id, err, got)
		}
	}
	for _, e := range []webhooks.Endpoint{a, b} {
		pending, _, err := f.svc.ListDeliveries(context.Background(), store.WebhookDeliveryFilter{EndpointID: e.ID}, store.Page{Limit: 200})
		if err != nil || len(pending) != n-3 {
			t.Errorf("endpoint %s: %d deliveries, want %d (%v)", e.ID, len(pending), n-3, err)
		}
	}
}
