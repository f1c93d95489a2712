package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/smtptest"
)

// ruleExecution is the API's execution view, as far as the tests read it.
type ruleExecution struct {
	ID          string `json:"id"`
	EventID     string `json:"event_id"`
	RuleID      string `json:"rule_id"`
	RuleVersion int    `json:"rule_version"`
	Status      string `json:"status"`
	Matched     bool   `json:"matched"`
	Reason      string `json:"reason"`
	Conditions  []struct {
		Path    string `json:"path"`
		Actual  any    `json:"actual"`
		Matched bool   `json:"matched"`
	} `json:"conditions"`
	Actions []struct {
		Index          int             `json:"index"`
		Type           string          `json:"type"`
		Status         string          `json:"status"`
		Attempts       int             `json:"attempts"`
		Error          string          `json:"error"`
		IdempotencyKey string          `json:"idempotency_key"`
		Result         json.RawMessage `json:"result"`
		StartedAt      *time.Time      `json:"started_at"`
		Rendered       *struct {
			To        []string       `json:"to"`
			EventType string         `json:"event_type"`
			Payload   map[string]any `json:"payload"`
		} `json:"rendered"`
	} `json:"actions"`
}

// createRule posts a rule and returns its id, failing the test unless it is created.
func createRule(t *testing.T, c *call, body any) string {
	t.Helper()
	r := c.post("/api/v1/automation/rules", body)
	if r.Status != 201 {
		t.Fatalf("create rule: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["id"].(string)
}

// postEvent posts an event and returns its id.
func postEvent(t *testing.T, c *call, body any) string {
	t.Helper()
	r := c.post("/api/v1/events", body)
	if r.Status != 202 {
		t.Fatalf("post event: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["id"].(string)
}

// ruleExecutions lists a rule's executions (newest first, up to 200).
func ruleExecutions(t *testing.T, c *call, ruleID string) []ruleExecution {
	t.Helper()
	var page struct {
		Items []ruleExecution `json:"items"`
	}
	c.get("/api/v1/automation/rules/"+ruleID+"/executions?limit=200").Decode(t, &page)
	return page.Items
}

// executionFor waits until rule ruleID has a finished execution for event eventID.
func executionFor(t *testing.T, c *call, ruleID, eventID string) ruleExecution {
	t.Helper()
	var found ruleExecution
	eventually(t, 30*time.Second, "rule "+ruleID+" to decide event "+eventID, func() bool {
		var page struct {
			Items []ruleExecution `json:"items"`
		}
		c.get("/api/v1/automation/rules/"+ruleID+"/executions?event_id="+eventID).Decode(t, &page)
		if len(page.Items) == 1 && page.Items[0].Status != "running" {
			found = page.Items[0]
			return true
		}
		return false
	})
	return found
}

// eventEvaluation waits until the event was taken by the rules engine and returns its detail.
func eventEvaluation(t *testing.T, c *call, eventID string) map[string]any {
	t.Helper()
	var detail map[string]any
	eventually(t, 30*time.Second, "event "+eventID+" to be evaluated", func() bool {
		detail = c.get("/api/v1/events/" + eventID).JSON(t)
		return detail["evaluation"] != nil
	})
	return detail
}

// actionResult decodes what an action's module answered (notification_id, execution_id, …).
func actionResult(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("action result %s: %v", raw, err)
	}
	return m
}

// chainEvent is an event of a causation chain as GET /api/v1/events lists it.
type chainEvent struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	Subject       string         `json:"subject"`
	Data          map[string]any `json:"data"`
	CausationID   string         `json:"causation_id"`
	CorrelationID string         `json:"correlation_id"`
	Depth         int            `json:"depth"`
	Evaluation    map[string]any `json:"evaluation"`
}

// eventChain lists the events of the causation chain that began with correlationID, newest
// first.
func eventChain(t *testing.T, c *call, correlationID string) []chainEvent {
	t.Helper()
	var page struct {
		Items []chainEvent `json:"items"`
	}
	c.get("/api/v1/events?limit=200&correlation_id="+correlationID).Decode(t, &page)
	return page.Items
}

// causedBy waits for the event of type typ and subject caused by event causeID (in the chain of
// correlationID) and returns it.
func causedBy(t *testing.T, c *call, correlationID, causeID, typ, subject string) chainEvent {
	t.Helper()
	var found chainEvent
	eventually(t, 30*time.Second, typ+" caused by "+causeID, func() bool {
		for _, e := range eventChain(t, c, correlationID) {
			if e.Type == typ && e.Subject == subject && e.CausationID == causeID {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// messagesTo returns the messages the SMTP server accepted for addr.
func messagesTo(mail *smtptest.Server, addr string) []smtptest.Message {
	var out []smtptest.Message
	for _, m := range mail.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				out = append(out, m)
			}
		}
	}
	return out
}
