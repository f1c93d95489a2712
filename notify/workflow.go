package notify

import (
	"time"

	"github.com/google/uuid"

	"github.com/pyairtable/automation-domain/store"
)

// NotificationWorkflow is the registered name of the workflow that sends one notification
// (workflows.SendNotification, registered under this name by workflows.RegisterNotifications).
// Changing it would orphan every notification in flight.
const NotificationWorkflow = "SendNotification"

// The SendNotification workflow's wire types follow: its input and result, the notification
// spec it carries and the events it emits. They travel through Temporal histories; never change
// their JSON.

// Task queues of the delivery activities, one per channel: the worker polling each sets
// Temporal's task-queue activity rate limit to the provider's send rate (SMTP_RATE_PER_SECOND,
// TWILIO_RATE_PER_SECOND), so a burst waits in the queue instead of being refused.
const (
	EmailTaskQueue = "automation-email"
	SMSTaskQueue   = "automation-sms"
)

// WorkflowInput starts SendNotification.
type WorkflowInput struct {
	Spec Spec `json:"spec"`
	// Retry shapes the retries of a delivery's transient failures.
	Retry RetrySettings `json:"retry"`
	// SendTimeout bounds one attempt of one delivery.
	SendTimeout time.Duration `json:"send_timeout"`
}

// RetrySettings is the exponential backoff of delivery retries.
type RetrySettings struct {
	InitialInterval time.Duration `json:"initial_interval"`
	MaximumInterval time.Duration `json:"maximum_interval"`
	MaximumAttempts int           `json:"maximum_attempts"`
}

// WorkflowResult summarizes a finished notification.
type WorkflowResult struct {
	Status     string            `json:"status"`
	Sent       int               `json:"sent"`
	Failed     int               `json:"failed"`
	Skipped    int               `json:"skipped,omitempty"`
	Digested   int               `json:"digested,omitempty"`
	Deliveries []DeliveryOutcome `json:"deliveries"`
}

// DeliveryOutcome is how one recipient's delivery ended.
type DeliveryOutcome struct {
	DeliveryID        string `json:"delivery_id"`
	Recipient         string `json:"recipient"`
	Status            string `json:"status"` // sent, failed, skipped or digested
	Attempt           int    `json:"attempt,omitempty"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	Error             string `json:"error,omitempty"`
}

// Event types this workflow and the provider callbacks emit.
const (
	EventSent      = "notification.sent"
	EventDelivered = "notification.delivered"
	EventFailed    = "notification.failed"
	// EventSkipped: a delivery not sent on purpose (suppressed address, opted-out subscriber).
	EventSkipped = "notification.skipped"
)

// Spec is a notification as the API accepted it: the rendered content and one
// entry per recipient. It travels in the workflow's input so that the workflow can store it
// itself if the API stopped between starting the workflow and writing the row.
type Spec struct {
	ID              string         `json:"id"`
	Channel         string         `json:"channel"`
	Subject         string         `json:"subject,omitempty"`
	Body            string         `json:"body,omitempty"`
	HTMLBody        string         `json:"html_body,omitempty"`
	Cc              []string       `json:"cc,omitempty"`
	Bcc             []string       `json:"bcc,omitempty"`
	ReplyTo         string         `json:"reply_to,omitempty"`
	TemplateID      string         `json:"template_id,omitempty"`
	TemplateVersion int            `json:"template_version,omitempty"`
	Category        string         `json:"category,omitempty"`
	Priority        string         `json:"priority,omitempty"`
	SendAt          *time.Time     `json:"send_at,omitempty"`
	Metadata        map[string]any `json:"metadata,omitempty"`
	IdempotencyKey  string         `json:"idempotency_key,omitempty"`
	RequestHash     string         `json:"request_hash,omitempty"`
	WorkflowID      string         `json:"workflow_id"`
	CausationID     string         `json:"causation_id,omitempty"`
	CorrelationID   string         `json:"correlation_id,omitempty"`
	Depth           int            `json:"depth,omitempty"`
	CreatedAt       time.Time      `json:"created_at"`
	Deliveries      []DeliverySpec `json:"deliveries"`
	// Channels lists the channels to try in order (channel fallback); the first is Channel.
	// Empty or one channel means no fallback.
	Channels []string `json:"channels,omitempty"`
}

// DeliverySpec is one recipient of a notification.
type DeliverySpec struct {
	ID        string `json:"id"`
	Recipient string `json:"recipient"`
	// RecipientKey is the normalized recipient the throttle and filters use.
	RecipientKey string `json:"recipient_key"`
	// SubscriberID is the subscriber addressed ("" for a raw address).
	SubscriberID string `json:"subscriber_id,omitempty"`
	// QuietHours are the subscriber's when the notification was asked for (nil for none): a
	// non-critical delivery due inside them waits until they end.
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// Digest, when set, holds the delivery for the subscriber's digest of the notification's
	// category instead of sending it on its own.
	Digest *DigestRule `json:"digest,omitempty"`
}

// Row is the notification as stored, every delivery queued.
func (s Spec) Row() *store.Notification {
	n := &store.Notification{
		ID: s.ID, Channel: s.Channel, Status: store.StatusQueued, Subject: s.Subject, Body: s.Body,
		HTMLBody: s.HTMLBody, Cc: store.MustJSON(nonNil(s.Cc)), Bcc: store.MustJSON(nonNil(s.Bcc)),
		ReplyTo: s.ReplyTo, TemplateID: s.TemplateID, TemplateVersion: s.TemplateVersion, Category: s.Category,
		Priority: s.Priority, SendAt: s.SendAt, Metadata: store.MustJSON(nonNilMap(s.Metadata)),
		IdempotencyKey: s.IdempotencyKey, RequestHash: s.RequestHash, WorkflowID: s.WorkflowID,
		CausationID: s.CausationID, CorrelationID: s.CorrelationID, Depth: s.Depth,
		CreatedAt: s.CreatedAt, UpdatedAt: s.CreatedAt,
	}
	for i, d := range s.Deliveries {
		n.Deliveries = append(n.Deliveries, store.NotificationDelivery{
			ID: d.ID, NotificationID: s.ID, Position: i, Recipient: d.Recipient, RecipientKey: d.RecipientKey,
			SubscriberID: d.SubscriberID, Status: store.StatusQueued, UpdatedAt: s.CreatedAt,
		})
	}
	return n
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// notificationEvents is the UUID namespace of notification event ids.
var notificationEvents = uuid.MustParse("6f1d3c52-8f0e-4a57-9b8a-2f8f6c0e7a11")

// EventID is the id of the event of type typ about one delivery: the same for every
// retry and replay, so the event is stored once.
func EventID(typ, deliveryID string) string {
	return uuid.NewSHA1(notificationEvents, []byte(typ+"/"+deliveryID)).String()
}

// EventData is the data of notification.sent, .delivered and .failed events.
type EventData struct {
	NotificationID    string         `json:"notification_id"`
	DeliveryID        string         `json:"delivery_id"`
	Channel           string         `json:"channel"`
	Recipient         string         `json:"recipient"`
	Status            string         `json:"status"`
	TemplateID        string         `json:"template_id,omitempty"`
	Metadata          map[string]any `json:"metadata,omitempty"`
	Attempt           int            `json:"attempt,omitempty"`
	Provider          string         `json:"provider,omitempty"`
	ProviderMessageID string         `json:"provider_message_id,omitempty"`
	ProviderStatus    string         `json:"provider_status,omitempty"`
	Error             string         `json:"error,omitempty"`
	ErrorCode         string         `json:"error_code,omitempty"`
}

// DeliveryEvent builds the event of type typ (notification.sent, .delivered, .failed) about
// delivery d of spec; data's identifying fields are filled from spec and d. It continues the
// causation chain the notification was started in, if any. OccurredAt is left for the caller.
// Workflows call it: the JSON encoding of a struct (and of a map, whose keys it sorts) is
// deterministic.
func DeliveryEvent(typ string, spec Spec, d DeliverySpec, data EventData) store.Event {
	data.NotificationID, data.DeliveryID, data.Channel, data.Recipient = spec.ID, d.ID, spec.Channel, d.Recipient
	data.TemplateID, data.Metadata = spec.TemplateID, spec.Metadata
	payload := store.MustJSON(data) //workflowcheck:ignore
	return store.Event{
		ID: EventID(typ, d.ID), Type: typ, Source: "notifications", Subject: spec.ID,
		Data: payload, CausationID: spec.CausationID, CorrelationID: spec.CorrelationID, Depth: spec.Depth,
	}
}

// PriorityKey maps a notification priority (low, normal, high) onto Temporal's task priority
// key: 1 runs first, 0 leaves Temporal's default (3). The workflow and its delivery activities
// are prioritised with it. Notifications have three levels and their highest takes 1, so "high"
// is 1 here while a workflow definition's "high" is 2 (definition.PriorityKey, whose scale has
// "critical" above it); both scales are in use by stored notifications and definitions and stay.
func PriorityKey(p string) int {
	switch p {
	case "high", PriorityCritical:
		return 1
	case "low":
		return 5
	}
	return 0
}
