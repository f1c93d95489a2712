package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/store"
)

// notificationReply is the JSON of a notification.
type notificationReply struct {
	ID              string          `json:"id"`
	Channel         string          `json:"channel"`
	Status          string          `json:"status"`
	Subject         string          `json:"subject"`
	Body            string          `json:"body"`
	HTMLBody        string          `json:"html_body"`
	TemplateID      string          `json:"template_id"`
	TemplateVersion int             `json:"template_version"`
	WorkflowID      string          `json:"workflow_id"`
	Deliveries      []deliveryReply `json:"deliveries"`
}

type deliveryReply struct {
	ID                   string     `json:"id"`
	Recipient            string     `json:"recipient"`
	SubscriberID         string     `json:"subscriber_id"`
	Channel              string     `json:"channel"`
	FallbackOf           string     `json:"fallback_of"`
	FallbackID           string     `json:"fallback_id"`
	Status               string     `json:"status"`
	AttemptCount         int        `json:"attempt_count"`
	ProviderMessageID    string     `json:"provider_message_id"`
	Error                string     `json:"error"`
	ErrorCode            string     `json:"error_code"`
	ScheduledAt          *time.Time `json:"scheduled_at"`
	HeldUntil            *time.Time `json:"held_until"`
	HeldReason           string     `json:"held_reason"`
	DigestID             string     `json:"digest_id"`
	DigestNotificationID string     `json:"digest_notification_id"`
	SentAt               *time.Time `json:"sent_at"`
	Attempts             []struct {
		Attempt           int    `json:"attempt"`
		Status            string `json:"status"`
		Error             string `json:"error"`
		ErrorCode         string `json:"error_code"`
		Retryable         bool   `json:"retryable"`
		ProviderMessageID string `json:"provider_message_id"`
	} `json:"attempts"`
}

// getNotification reads GET /api/v1/notifications/{id}.
func (c *call) notification(id string) notificationReply {
	c.t.Helper()
	var n notificationReply
	r := c.get("/api/v1/notifications/" + id)
	if r.Status != 200 {
		c.t.Fatalf("GET notification %s: %d %s", id, r.Status, r.Body)
	}
	r.Decode(c.t, &n)
	return n
}

// waitNotification polls a notification until its status is one of want.
func (c *call) waitNotification(id string, timeout time.Duration, want ...string) notificationReply {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := c.notification(id)
		for _, w := range want {
			if n.Status == w {
				return n
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("notification %s is %s after %v, want %v: %+v", id, n.Status, timeout, want, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedEvents returns the events of a type in the stack's database.
func storedEvents(t testing.TB, cfg *config.Config, typ string) []store.Event {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{URL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []store.Event
	if err := st.DB().Where("type = ?", typ).Order("received_at").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

// createTenants creates tenants (id and name ids[i]) with the internal key.
func (s *stack) createTenants(t *testing.T, ids ...string) {
	t.Helper()
	admin := s.client(t)
	for _, id := range ids {
		if r := admin.post("/api/v1/tenants", map[string]any{"id": id, "name": id}); r.Status != 201 {
			t.Fatalf("create tenant %s: %d %s", id, r.Status, r.Body)
		}
	}
}

// as is a client of the stack acting for tenantID: the internal key with X-Tenant-ID.
func (s *stack) as(t *testing.T, tenantID string) *call {
	c := s.client(t)
	c.header.Set("X-Tenant-ID", tenantID)
	return c
}
