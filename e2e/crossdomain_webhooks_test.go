package e2e

import (
	"encoding/json"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestWebhooksFromOtherDomains: the workflow engine's webhook step, a rule's webhook action and
// the domain events of a workflow execution all reach a real, signature-checking receiver
// through the webhook module.
func TestWebhooksFromOtherDomains(t *testing.T) {
	s := startEmbedded(t, testConfig(t, t.TempDir(), webhookEnv(nil)))
	c := s.client(t)
	orders := newReceiver(t, nil)
	lifecycle := newReceiver(t, nil)
	ordersEP := createEndpoint(t, c, map[string]any{"name": "orders", "url": orders.URL(), "events": []string{"order.shipped", "order.confirmed"}})
	lifecycleEP := createEndpoint(t, c, map[string]any{"name": "lifecycle", "url": lifecycle.URL(), "events": []string{"workflow.completed"}})
	verify := func(t *testing.T, c *call, secretOf string, r receipt) webhookBody {
		t.Helper()
		wh, err := standardwebhooks.NewWebhook(endpointSecret(t, c, secretOf))
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(r.Body, r.Header); err != nil {
			t.Fatalf("official library refuses the signature: %v", err)
		}
		return r.decode(t)
	}

	var exec executionDetail // the run whose step delivered order.shipped
	stepped := t.Run("a workflow step delivers a signed webhook rendered from its input", func(t *testing.T) {
		c := s.client(t)
		// A workflow step delivers order.shipped, its payload rendered from the input.
		wfID := createWorkflow(t, c, `{"name": "ship", "trigger_type": "manual", "steps": [
		{"id": "announce", "type": "webhook", "config": {"event_type": "order.shipped",
			"payload": {"order_id": "{{ input.order_id }}", "items": "{{ input.items }}"}}}]}`)
		exec = waitFinished(t, c, execute(t, c, wfID, map[string]any{"input_data": map[string]any{"order_id": "o-7", "items": 3}}), 30*time.Second)
		if exec.Status != "completed" {
			t.Fatalf("execution %s: %s %s", exec.ID, exec.Status, exec.Error)
		}
		out, _ := json.Marshal(exec.step(t, "announce").Output)
		var stepOut struct {
			DeliveryIDs []string `json:"delivery_ids"`
		}
		_ = json.Unmarshal(out, &stepOut)
		if len(stepOut.DeliveryIDs) != 1 {
			t.Errorf("step output %s, want one delivery (the orders endpoint)", out)
		}
		eventually(t, 20*time.Second, "the step's webhook", func() bool { return orders.count() >= 1 })
		b := verify(t, c, ordersEP, orders.receipts()[0])
		var shipped map[string]any
		_ = json.Unmarshal(b.Data, &shipped)
		if b.Type != "order.shipped" || shipped["order_id"] != "o-7" || shipped["items"] != float64(3) {
			t.Errorf("step webhook: type %s data %s", b.Type, b.Data)
		}
	})
	t.Run("the execution's workflow.completed fans out to its subscriber", func(t *testing.T) {
		if exec.ID == "" {
			t.Skip("needs the workflow run")
		}
		c := s.client(t)
		// The execution's workflow.completed event fans out to the endpoint subscribed to it.
		eventually(t, 20*time.Second, "workflow.completed at the lifecycle endpoint", func() bool { return lifecycle.count() >= 1 })
		b := verify(t, c, lifecycleEP, lifecycle.receipts()[0])
		var completed map[string]any
		_ = json.Unmarshal(b.Data, &completed)
		if b.Type != "workflow.completed" || completed["execution_id"] != exec.ID {
			t.Errorf("lifecycle webhook: type %s data %s", b.Type, b.Data)
		}
	})
	t.Run("a rule's webhook action delivers for matching events only", func(t *testing.T) {
		if !stepped {
			t.Skip("counts the step's message at the orders endpoint first")
		}
		c := s.client(t)
		// A rule answers order.placed with a webhook action whose payload is templated from the event.
		createRule(t, c, map[string]any{
			"name": "confirm big orders", "trigger": map[string]any{"type": "event", "event_type": "order.placed"},
			"conditions": []any{map[string]any{"type": "field_check", "field": "order.total", "operator": "gte", "value": 100}},
			"actions": []any{map[string]any{"type": "webhook", "event_type": "order.confirmed",
				"payload": map[string]any{"id": "{{ order.id }}", "total": "{{ order.total }}"}}},
		})
		postEvent(t, c, map[string]any{"type": "order.placed", "data": map[string]any{"order": map[string]any{"id": "o-8", "total": 150}}})
		postEvent(t, c, map[string]any{"type": "order.placed", "data": map[string]any{"order": map[string]any{"id": "o-9", "total": 20}}})
		eventually(t, 30*time.Second, "the rule's webhook", func() bool { return orders.count() >= 2 })
		time.Sleep(time.Second) // the small order must not follow
		got := orders.receipts()
		if len(got) != 2 {
			t.Fatalf("orders endpoint got %d messages, want 2 (the step's and one rule action)", len(got))
		}
		b := verify(t, c, ordersEP, got[1])
		if b.Type != "order.confirmed" || string(b.Data) != `{"id":"o-8","total":150}` {
			t.Errorf("rule webhook: type %s data %s", b.Type, b.Data)
		}
	})
}
