package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/pyairtable/automation-domain/internal/tenant"
)

// WebhookEndpoint is a registered receiver of outbound webhooks (schema 00004). Secret and
// PreviousSecret are encrypted by package webhooks before they reach this struct.
type WebhookEndpoint struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID    string `gorm:"column:tenant_id" json:"-"`
	ID          string
	Name        string
	Description string
	URL         string
	// EventTypes are the filters ("workflow.completed", "workflow.*", "*"), a JSON array.
	EventTypes JSON
	// Headers are sent with every request, a JSON object of strings.
	Headers        JSON
	Enabled        bool
	DisabledReason string
	DisabledAt     *time.Time
	// RateLimitPerSecond caps requests to the endpoint (0: none).
	RateLimitPerSecond int
	// Ordered endpoints get their messages one at a time, in order.
	Ordered bool
	// MaxAttempts bounds the requests per delivery (0: one more than the retry schedule has steps).
	MaxAttempts int
	// RetryScheduleMS are the delays before each retry, a JSON array of milliseconds ([]: default).
	RetryScheduleMS JSON `gorm:"column:retry_schedule_ms"`
	TimeoutMS       int  `gorm:"column:timeout_ms"`
	// DisableAfterFailures disables the endpoint after that many deliveries in a row failed for
	// good (0: the service default).
	DisableAfterFailures    int
	Secret                  string
	PreviousSecret          string
	PreviousSecretExpiresAt *time.Time
	// FailingSince is the first failed attempt since the last success (nil while healthy).
	FailingSince *time.Time
	// ConsecutiveFailures counts deliveries that failed for good since the last success.
	ConsecutiveFailures int
	// SenderID is the process whose sender session holds the endpoint until SenderLeaseUntil
	// ("" when none does): see AcquireWebhookSender.
	SenderID         string
	SenderLeaseUntil *time.Time
	// The circuit breaker: FailedRequests counts requests failed in a row, CircuitTrips the times
	// the circuit opened in a row; nothing is sent before CircuitOpenUntil, nor before
	// PausedUntil (a receiver's Retry-After).
	FailedRequests   int
	CircuitTrips     int
	CircuitOpenUntil *time.Time
	PausedUntil      *time.Time
	// Filter is an expr-lang condition over the event ("": every event passes); Transform a jq
	// program producing what is sent ("": the standard body). Schema 00012.
	Filter    string
	Transform string
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt *time.Time
	// OmitTraceparent stops the W3C traceparent header from being sent to the endpoint.
	OmitTraceparent bool `gorm:"column:omit_traceparent"`
	// Type is "http" (a POST to URL), "nats" or "amqp" (schema 00015). For a broker endpoint
	// BrokerURL is the broker's URL with its credentials, encrypted by package webhooks, and URL
	// the same with its password redacted; the message goes to Subject (nats) or to Exchange with
	// RoutingKey (amqp).
	Type       string `gorm:"column:type;default:http"`
	BrokerURL  string `gorm:"column:broker_url"`
	Subject    string `gorm:"column:subject"`
	Exchange   string `gorm:"column:exchange"`
	RoutingKey string `gorm:"column:routing_key"`
}

// TableName implements gorm's tabler.
func (WebhookEndpoint) TableName() string { return "webhook_endpoints" }

// WebhookMessage is one thing to send: a POST to /webhooks/deliver or a domain event.
type WebhookMessage struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID  string `gorm:"column:tenant_id" json:"-"`
	ID        string
	EventType string
	// Payload is the exact JSON the sender gave (a TEXT column: the bytes signed are the bytes kept).
	Payload        JSON
	IdempotencyKey *string
	// Source says where it came from: "api", "event" or a caller's name.
	Source    string
	CreatedAt time.Time
	// TraceParent is the W3C trace context of the request that created the message ("" when
	// untraced): its sends continue that trace.
	TraceParent string `gorm:"column:trace_parent"`
}

// TableName implements gorm's tabler.
func (WebhookMessage) TableName() string { return "webhook_messages" }

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is a message on its way to one endpoint.
type WebhookDelivery struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID   string `gorm:"column:tenant_id" json:"-"`
	ID         string
	MessageID  string
	EndpointID string
	EventType  string
	Status     string
	// Attempts counts every request made; ScheduleBase is Attempts at the last manual retry or
	// recovery (the retry schedule restarts from there).
	Attempts       int
	ScheduleBase   int
	NextAttemptAt  *time.Time
	LastStatusCode int
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	CompletedAt    *time.Time
}

// TableName implements gorm's tabler.
func (WebhookDelivery) TableName() string { return "webhook_deliveries" }

// Attempt outcomes. An attempt is written as started before its request goes out; one whose
// sender died before recording the response becomes unknown (the receiver may have got it).
const (
	AttemptStarted   = "started"
	AttemptSucceeded = "succeeded"
	AttemptRetrying  = "retrying"
	AttemptFailed    = "failed"
	AttemptUnknown   = "unknown"
)

// WebhookAttempt is one HTTP request of a delivery.
type WebhookAttempt struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID        string `gorm:"column:tenant_id" json:"-"`
	ID              string
	DeliveryID      string
	EndpointID      string
	Attempt         int
	URL             string
	StartedAt       time.Time
	DurationMS      float64 `gorm:"column:duration_ms"`
	StatusCode      int
	ResponseHeaders JSON
	ResponseBody    string
	Error           string
	Outcome         string
}

// TableName implements gorm's tabler.
func (WebhookAttempt) TableName() string { return "webhook_attempts" }

// WebhookSource is a sender of inbound webhooks and how to verify it.
type WebhookSource struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID         string `gorm:"column:tenant_id" json:"-"`
	ID               string
	Name             string
	Description      string
	Scheme           string
	Secret           string
	SignatureHeader  string
	IDHeader         string `gorm:"column:id_header"`
	EventTypeHeader  string
	EventTypePath    string
	DefaultEventType string
	ToleranceSeconds int
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// TableName implements gorm's tabler.
func (WebhookSource) TableName() string { return "webhook_sources" }

// WebhookInboundSeen records a replay key of an accepted inbound webhook: the sender's webhook
// id, or (hmac_sha256 sources, whose id header is not signed) "sha256=" + the hex signature of
// the body. A request carrying a key already recorded is a replay.
type WebhookInboundSeen struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID string `gorm:"column:tenant_id" json:"-"`
	SourceID string
	// WebhookID is the replay key.
	WebhookID string
	EventID   string
	SeenAt    time.Time
}

// TableName implements gorm's tabler.
func (WebhookInboundSeen) TableName() string { return "webhook_inbound_seen" }

// --- endpoints ---

// CreateWebhookEndpoint inserts e.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e *WebhookEndpoint) error {
	return classify(s.db.WithContext(ctx).Create(e).Error)
}

// WebhookEndpointTenant is the tenant of an endpoint, whichever tenant ctx acts for (waking an
// endpoint's dispatcher for its tenant).
func (s *Store) WebhookEndpointTenant(ctx context.Context, id string) (string, error) {
	var e WebhookEndpoint
	err := s.db.WithContext(tenant.System(ctx)).Select("tenant_id").Where("id = ?", id).Take(&e).Error
	return e.TenantID, classify(err)
}

// GetWebhookEndpoint returns a live (not deleted) endpoint.
func (s *Store) GetWebhookEndpoint(ctx context.Context, id string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := s.db.WithContext(ctx).Where("id = ? AND deleted_at IS NULL", id).Take(&e).Error
	return e, classify(err)
}

// GetWebhookEndpointAny returns an endpoint even when it was deleted.
func (s *Store) GetWebhookEndpointAny(ctx context.Context, id string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&e).Error
	return e, classify(err)
}

// WebhookEndpointFilter narrows ListWebhookEndpoints; zero fields do not filter.
type WebhookEndpointFilter struct {
	Enabled *bool
}

// ListWebhookEndpoints returns live endpoints, newest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, f WebhookEndpointFilter, p Page) ([]WebhookEndpoint, string, error) {
	q := s.db.WithContext(ctx).Model(&WebhookEndpoint{}).Where("deleted_at IS NULL")
	if f.Enabled != nil {
		q = q.Where("enabled = ?", *f.Enabled)
	}
	return List(q, p, func(e WebhookEndpoint) string { return e.ID })
}

// EnabledWebhookEndpoints returns every live, enabled endpoint (the fan-out candidates).
func (s *Store) EnabledWebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, error) {
	var out []WebhookEndpoint
	// TRUE is written out, not bound: a bound value in a query over a table with a partial
	// index makes SQLite compile the statement again on its first step, with the value.
	err := s.db.WithContext(ctx).Where("deleted_at IS NULL AND enabled = TRUE").Order("id").Find(&out).Error
	return out, classify(err)
}

// UpdateWebhookEndpoint writes the given columns of a live endpoint.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, id string, columns map[string]any) error {
	res := s.db.WithContext(ctx).Model(&WebhookEndpoint{}).Where("id = ? AND deleted_at IS NULL", id).Updates(columns)
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteWebhookEndpoint marks an endpoint deleted and fails its pending deliveries.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, id string, at time.Time) error {
	return s.Tx(ctx, func(tx *Store) error {
		res := tx.db.Model(&WebhookEndpoint{}).Where("id = ? AND deleted_at IS NULL", id).
			Updates(map[string]any{"deleted_at": at, "enabled": false, "updated_at": at})
		if res.Error != nil {
			return classify(res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		_, err := tx.FailPendingWebhookDeliveries(ctx, id, "the endpoint was deleted", at)
		return err
	})
}

// DisableWebhookEndpoint disables an enabled endpoint and fails its pending deliveries. changed
// is false when it was disabled or deleted already.
func (s *Store) DisableWebhookEndpoint(ctx context.Context, id, reason string, at time.Time) (changed bool, err error) {
	err = s.Tx(ctx, func(tx *Store) error {
		res := tx.db.Model(&WebhookEndpoint{}).Where("id = ? AND deleted_at IS NULL AND enabled = ?", id, true).
			Updates(map[string]any{"enabled": false, "disabled_reason": reason, "disabled_at": at, "updated_at": at})
		if res.Error != nil {
			return classify(res.Error)
		}
		changed = res.RowsAffected == 1
		_, err := tx.FailPendingWebhookDeliveries(ctx, id, "the endpoint is disabled: "+reason, at)
		return err
	})
	return changed, err
}

// FailPendingWebhookDeliveries ends every pending delivery of an endpoint as failed.
func (s *Store) FailPendingWebhookDeliveries(ctx context.Context, endpointID, reason string, at time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Model(&WebhookDelivery{}).
		Where("endpoint_id = ? AND status = ?", endpointID, DeliveryPending).
		Updates(map[string]any{
			"status": DeliveryFailed, "last_error": reason, "next_attempt_at": nil,
			"completed_at": at, "updated_at": at,
		})
	return res.RowsAffected, classify(res.Error)
}

// --- messages and deliveries ---

// CreateWebhookMessage stores a message and its deliveries in one transaction. When the
// message's idempotency key or id is taken, nothing is written and created is false. It is on
// the hot path of every fan-out, so the rows go in as one multi-row INSERT each.
func (s *Store) CreateWebhookMessage(ctx context.Context, m *WebhookMessage, deliveries []WebhookDelivery) (created bool, err error) {
	done, err := s.CreateWebhookMessages(ctx, []NewWebhookMessage{{Message: m, Deliveries: deliveries}})
	if err != nil {
		return false, err
	}
	return done[0], nil
}

// NewWebhookMessage is a message to store with its deliveries.
type NewWebhookMessage struct {
	Message    *WebhookMessage
	Deliveries []WebhookDelivery
}

// CreateWebhookMessages stores several messages with their deliveries in one transaction (a
// group commit of concurrent requests) and reports, for each, whether it was created (false:
// its id or idempotency key was taken, and nothing of it was written).
func (s *Store) CreateWebhookMessages(ctx context.Context, batch []NewWebhookMessage) (created []bool, err error) {
	created = make([]bool, len(batch))
	err = s.Tx(ctx, func(tx *Store) error {
		var rows []*WebhookDelivery
		for i, nm := range batch {
			m := nm.Message
			tid, err := rowTenant(ctx, m.TenantID)
			if err != nil {
				return err
			}
			m.TenantID = tid
			res := tx.db.Exec(`INSERT INTO webhook_messages (id, event_type, payload, idempotency_key, source, created_at, tenant_id, trace_parent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				m.ID, m.EventType, m.Payload, m.IdempotencyKey, m.Source, m.CreatedAt, tid, m.TraceParent)
			if res.Error != nil {
				return classify(res.Error)
			}
			if res.RowsAffected == 0 {
				continue
			}
			created[i] = true
			for j := range nm.Deliveries {
				d := &nm.Deliveries[j]
				if d.TenantID == "" {
					d.TenantID = tid
				}
				rows = append(rows, d)
			}
		}
		return tx.insertRows(ctx, "webhook_deliveries", deliveryColumns, len(rows), func(i int) []any {
			d := rows[i]
			return []any{d.ID, d.MessageID, d.EndpointID, d.EventType, d.Status, d.Attempts, d.ScheduleBase,
				d.NextAttemptAt, d.LastStatusCode, d.LastError, d.CreatedAt, d.UpdatedAt, d.CompletedAt, d.TenantID}
		})
	})
	if err != nil {
		return nil, err
	}
	return created, nil
}

var (
	deliveryColumns = []string{"id", "message_id", "endpoint_id", "event_type", "status", "attempts", "schedule_base",
		"next_attempt_at", "last_status_code", "last_error", "created_at", "updated_at", "completed_at", "tenant_id"}
	attemptColumns = []string{"id", "delivery_id", "endpoint_id", "attempt", "url", "started_at", "duration_ms",
		"status_code", "response_headers", "response_body", "error", "outcome", "tenant_id"}
)

// insertRows inserts n rows with one statement per 100 rows. The last column is tenant_id: each
// row's value there is checked (rowTenant).
func (s *Store) insertRows(ctx context.Context, table string, columns []string, n int, row func(i int) []any) error {
	const chunk = 100
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		var b strings.Builder
		b.WriteString("INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES ")
		args := make([]any, 0, (end-start)*len(columns))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteString(", ")
			}
			b.WriteString(one)
			vals := row(i)
			tid, err := rowTenant(ctx, vals[len(vals)-1].(string))
			if err != nil {
				return err
			}
			vals[len(vals)-1] = tid
			args = append(args, vals...)
		}
		if err := s.db.WithContext(ctx).Exec(b.String(), args...).Error; err != nil {
			return classify(err)
		}
	}
	return nil
}

// GetWebhookMessage returns one message.
func (s *Store) GetWebhookMessage(ctx context.Context, id string) (WebhookMessage, error) {
	var m WebhookMessage
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&m).Error
	return m, classify(err)
}

// WebhookMessageByKey returns the message created with an idempotency key.
func (s *Store) WebhookMessageByKey(ctx context.Context, key string) (WebhookMessage, error) {
	var m WebhookMessage
	err := s.db.WithContext(ctx).Where("idempotency_key = ?", key).Take(&m).Error
	return m, classify(err)
}

// WebhookMessagesByID returns the messages with these ids, keyed by id.
func (s *Store) WebhookMessagesByID(ctx context.Context, ids []string) (map[string]WebhookMessage, error) {
	var rows []WebhookMessage
	if err := s.db.WithContext(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, classify(err)
	}
	out := make(map[string]WebhookMessage, len(rows))
	for _, m := range rows {
		out[m.ID] = m
	}
	return out, nil
}

// MessageWebhookDeliveries returns every delivery of a message.
func (s *Store) MessageWebhookDeliveries(ctx context.Context, messageID string) ([]WebhookDelivery, error) {
	var out []WebhookDelivery
	err := s.db.WithContext(ctx).Where("message_id = ?", messageID).Order("id").Find(&out).Error
	return out, classify(err)
}

// GetWebhookDelivery returns one delivery.
func (s *Store) GetWebhookDelivery(ctx context.Context, id string) (WebhookDelivery, error) {
	var d WebhookDelivery
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	return d, classify(err)
}

// WebhookDeliveryFilter narrows ListWebhookDeliveries; zero fields do not filter. Since and
// Until bound the creation time.
type WebhookDeliveryFilter struct {
	EndpointID string
	MessageID  string
	EventType  string
	Status     string
	Since      time.Time
	Until      time.Time
}

// ListWebhookDeliveries returns deliveries, newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, f WebhookDeliveryFilter, p Page) ([]WebhookDelivery, string, error) {
	q := s.db.WithContext(ctx).Model(&WebhookDelivery{})
	if f.EndpointID != "" {
		q = q.Where("endpoint_id = ?", f.EndpointID)
	}
	if f.MessageID != "" {
		q = q.Where("message_id = ?", f.MessageID)
	}
	if f.EventType != "" {
		q = q.Where("event_type = ?", f.EventType)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if !f.Since.IsZero() {
		q = q.Where("created_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("created_at < ?", f.Until.UTC())
	}
	return List(q, p, func(d WebhookDelivery) string { return d.ID })
}

// WebhookDeliveryAttempts returns the attempts of a delivery in order.
func (s *Store) WebhookDeliveryAttempts(ctx context.Context, deliveryID string) ([]WebhookAttempt, error) {
	var out []WebhookAttempt
	err := s.db.WithContext(ctx).Where("delivery_id = ?", deliveryID).Order("attempt, started_at").Find(&out).Error
	return out, classify(err)
}

// QueuedWebhookDelivery is a pending delivery with what its request is built from.
type QueuedWebhookDelivery struct {
	WebhookDelivery
	Payload          JSON
	MessageCreatedAt time.Time
	// MessageTraceParent is the message's TraceParent.
	MessageTraceParent string `gorm:"column:message_trace_parent"`
}

// QueuedWebhookDeliveries returns up to limit pending deliveries of an endpoint in the order
// they are sent, with their messages: by due time for an ordered=false endpoint (due ones
// first), by id (FIFO) for an ordered one. Callers ask for one more than they will send: the
// row after the due ones tells whether more are due and when the next one is.
func (s *Store) QueuedWebhookDeliveries(ctx context.Context, endpointID string, ordered bool, limit int) ([]QueuedWebhookDelivery, error) {
	var rows []QueuedWebhookDelivery
	order := "d.next_attempt_at, d.id"
	if ordered {
		order = "d.id"
	}
	err := s.db.WithContext(ctx).Table("webhook_deliveries AS d").
		Select("d.*, m.payload AS payload, m.created_at AS message_created_at, m.trace_parent AS message_trace_parent").
		Joins("JOIN webhook_messages AS m ON m.tenant_id = d.tenant_id AND m.id = d.message_id").
		Where("d.endpoint_id = ? AND d.status = ?", endpointID, DeliveryPending).
		Order(order).Limit(limit).Find(&rows).Error
	return rows, classify(err)
}

// WebhookAttemptResult is one attempt to write with the delivery state it leads to.
type WebhookAttemptResult struct {
	Attempt WebhookAttempt
	// PrevAttempts is the delivery's attempt count the sender started from: the write is skipped
	// when another sender has moved the delivery on meanwhile.
	PrevAttempts  int
	Status        string
	NextAttemptAt *time.Time
}

// WebhookHealthChange updates an endpoint's failure tracking after a batch.
type WebhookHealthChange struct {
	// Healthy resets the tracking (a request succeeded).
	Healthy bool
	// FailedAt starts FailingSince when it is not set (a request failed).
	FailedAt *time.Time
	// FinalFailures is added to ConsecutiveFailures.
	FinalFailures int
	// Circuit, when set, is the circuit breaker's new state (the batch's sender keeps it here).
	Circuit *WebhookCircuit
	// PausedUntil, when later than the stored one, holds the endpoint (a receiver's Retry-After).
	PausedUntil *time.Time
}

// WebhookCircuit is an endpoint's circuit breaker state (see WebhookEndpoint).
type WebhookCircuit struct {
	FailedRequests int
	Trips          int
	OpenUntil      *time.Time
}

// CircuitOf returns the endpoint's circuit breaker state.
func CircuitOf(e WebhookEndpoint) WebhookCircuit {
	return WebhookCircuit{FailedRequests: e.FailedRequests, Trips: e.CircuitTrips, OpenUntil: e.CircuitOpenUntil}
}

func (c WebhookCircuit) equal(o WebhookCircuit) bool {
	return c.FailedRequests == o.FailedRequests && c.Trips == o.Trips &&
		(c.OpenUntil == nil) == (o.OpenUntil == nil) && (c.OpenUntil == nil || c.OpenUntil.Equal(*o.OpenUntil))
}

// RecordWebhookAttempts writes a batch of attempts (replacing the started rows of the same
// ids), moves their deliveries on and updates the endpoint's health, in one transaction and a
// few statements whatever the batch size. It returns the ids of the deliveries it moved on
// (those no other sender had moved meanwhile; the attempts of the others are logged all the
// same). ep is the endpoint as the batch began: what does not change is not written.
func (s *Store) RecordWebhookAttempts(ctx context.Context, ep WebhookEndpoint, results []WebhookAttemptResult,
	health WebhookHealthChange, at time.Time) (applied []string, err error) {
	ids := make([]string, len(results))
	attemptIDs := make([]string, len(results))
	for i, r := range results {
		ids[i], attemptIDs[i] = r.Attempt.DeliveryID, r.Attempt.ID
	}
	err = s.Tx(ctx, func(tx *Store) error {
		applied = applied[:0]
		lock := ""
		if tx.dialect == Postgres {
			lock = " FOR UPDATE"
		}
		attemptsNow := make(map[string]int, len(ids))
		if len(ids) > 0 {
			cond, targs := tenantFilter(ctx, "tenant_id")
			rows, err := tx.db.Raw("SELECT id, attempts FROM webhook_deliveries WHERE id IN ? AND status = ?"+cond+lock,
				append([]any{ids, DeliveryPending}, targs...)...).Rows()
			if err != nil {
				return classify(err)
			}
			for rows.Next() {
				var id string
				var n int
				if err := rows.Scan(&id, &n); err != nil {
					rows.Close()
					return classify(err)
				}
				attemptsNow[id] = n
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return classify(err)
			}
		}
		// Deliveries moving to the same state are updated by one statement.
		type change struct {
			status, lastError string
			attempts, code    int
			next              time.Time
		}
		groups := map[change][]string{}
		var order []change
		for _, r := range results {
			if n, ok := attemptsNow[r.Attempt.DeliveryID]; !ok || n != r.PrevAttempts {
				continue
			}
			c := change{status: r.Status, lastError: r.Attempt.Error, attempts: r.Attempt.Attempt, code: r.Attempt.StatusCode}
			if r.NextAttemptAt != nil {
				c.next = *r.NextAttemptAt
			}
			if groups[c] == nil {
				order = append(order, c)
			}
			groups[c] = append(groups[c], r.Attempt.DeliveryID)
			applied = append(applied, r.Attempt.DeliveryID)
		}
		for _, c := range order {
			cols := map[string]any{"status": c.status, "attempts": c.attempts, "last_status_code": c.code,
				"last_error": c.lastError, "updated_at": at, "next_attempt_at": nil}
			if !c.next.IsZero() {
				cols["next_attempt_at"] = c.next
			}
			if c.status != DeliveryPending {
				cols["completed_at"] = at
			}
			if err := tx.db.Model(&WebhookDelivery{}).Where("id IN ?", groups[c]).Updates(cols).Error; err != nil {
				return classify(err)
			}
		}
		if len(attemptIDs) > 0 {
			if err := tx.db.Where("id IN ?", attemptIDs).Delete(&WebhookAttempt{}).Error; err != nil {
				return classify(err)
			}
		}
		if err := tx.insertRows(ctx, "webhook_attempts", attemptColumns, len(results), func(i int) []any {
			a := &results[i].Attempt
			if a.TenantID == "" {
				a.TenantID = ep.TenantID
			}
			return []any{a.ID, a.DeliveryID, a.EndpointID, a.Attempt, a.URL, a.StartedAt, a.DurationMS,
				a.StatusCode, a.ResponseHeaders, a.ResponseBody, a.Error, a.Outcome, a.TenantID}
		}); err != nil {
			return err
		}
		cols := map[string]any{}
		switch {
		case health.Healthy && (ep.FailingSince != nil || ep.ConsecutiveFailures != 0):
			cols["failing_since"], cols["consecutive_failures"] = nil, 0
		case !health.Healthy && health.FailedAt != nil:
			cols["failing_since"] = gorm.Expr("COALESCE(failing_since, ?)", *health.FailedAt)
			cols["consecutive_failures"] = gorm.Expr("consecutive_failures + ?", health.FinalFailures)
		}
		if c := health.Circuit; c != nil && !c.equal(CircuitOf(ep)) {
			cols["failed_requests"], cols["circuit_trips"], cols["circuit_open_until"] = c.FailedRequests, c.Trips, c.OpenUntil
		}
		if p := health.PausedUntil; p != nil && (ep.PausedUntil == nil || p.After(*ep.PausedUntil)) {
			cols["paused_until"] = *p
		}
		if len(cols) == 0 {
			return nil
		}
		return classify(tx.db.Model(&WebhookEndpoint{}).Where("id = ?", ep.ID).Updates(cols).Error)
	})
	return applied, err
}

// RequeueWebhookDelivery makes a finished delivery pending again, due at now, with a fresh
// retry schedule. It returns ErrConflict when the delivery is pending already.
func (s *Store) RequeueWebhookDelivery(ctx context.Context, id string, now time.Time) error {
	res := s.db.WithContext(ctx).Model(&WebhookDelivery{}).Where("id = ? AND status <> ?", id, DeliveryPending).
		Updates(map[string]any{
			"status": DeliveryPending, "next_attempt_at": now, "schedule_base": gorm.Expr("attempts"),
			"completed_at": nil, "updated_at": now,
		})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		if _, err := s.GetWebhookDelivery(ctx, id); err != nil {
			return err
		}
		return ErrConflict
	}
	return nil
}

// RecoverWebhookDeliveries makes every failed delivery of an endpoint created in [since, until)
// pending again (until zero: no upper bound) and returns how many.
func (s *Store) RecoverWebhookDeliveries(ctx context.Context, endpointID string, since, until, now time.Time) (int64, error) {
	q := s.db.WithContext(ctx).Model(&WebhookDelivery{}).
		Where("endpoint_id = ? AND status = ? AND created_at >= ?", endpointID, DeliveryFailed, since.UTC())
	if !until.IsZero() {
		q = q.Where("created_at < ?", until.UTC())
	}
	res := q.Updates(map[string]any{
		"status": DeliveryPending, "next_attempt_at": now, "schedule_base": gorm.Expr("attempts"),
		"completed_at": nil, "updated_at": now,
	})
	return res.RowsAffected, classify(res.Error)
}

// OverdueWebhookEndpoints returns the endpoints with a pending delivery due before dueBefore
// that no sender holds at now and that are not held back (circuit open, Retry-After): their
// dispatchers should have sent it by now (a lost wake-up, a dispatcher that ended).
func (s *Store) OverdueWebhookEndpoints(ctx context.Context, dueBefore, now time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&WebhookDelivery{}).
		Where("status = ? AND next_attempt_at < ?", DeliveryPending, dueBefore.UTC()).
		Where(`endpoint_id IN (SELECT id FROM webhook_endpoints WHERE (sender_id = '' OR sender_lease_until IS NULL OR sender_lease_until < ?)
			AND (circuit_open_until IS NULL OR circuit_open_until < ?) AND (paused_until IS NULL OR paused_until < ?))`,
			now.UTC(), now.UTC(), now.UTC()).
		Distinct("endpoint_id").Limit(limit).Pluck("endpoint_id", &ids).Error
	return ids, classify(err)
}

// PendingWebhookEndpoints returns the endpoints with a pending delivery of a message.
func (s *Store) PendingWebhookEndpoints(ctx context.Context, messageID string) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&WebhookDelivery{}).
		Where("message_id = ? AND status = ?", messageID, DeliveryPending).
		Order("endpoint_id").Pluck("endpoint_id", &ids).Error
	return ids, classify(err)
}

// --- inbound sources ---

// CreateWebhookSource inserts src (ErrConflict when the name is taken).
func (s *Store) CreateWebhookSource(ctx context.Context, src *WebhookSource) error {
	return classify(s.db.WithContext(ctx).Create(src).Error)
}

// GetWebhookSource returns a source of the context's tenant by id or by name (names are unique
// per tenant, ids everywhere).
func (s *Store) GetWebhookSource(ctx context.Context, idOrName string) (WebhookSource, error) {
	var src WebhookSource
	err := s.db.WithContext(ctx).Where("id = ? OR name = ?", idOrName, idOrName).Order("id").Take(&src).Error
	return src, classify(err)
}

// InboundWebhookSource finds the source an inbound URL names, whatever its tenant: by id, else by
// name, the default tenant's first, then the one that has had the name longest (before names
// were per tenant they were unique: a URL handed out then keeps reaching the same source, and
// a tenant naming a source like another's does not take that one's URL).
func (s *Store) InboundWebhookSource(ctx context.Context, idOrName string) (WebhookSource, error) {
	db := s.db.WithContext(tenant.System(ctx))
	var src WebhookSource
	err := db.Where("id = ?", idOrName).Take(&src).Error
	if err == nil || !errors.Is(err, gorm.ErrRecordNotFound) {
		return src, classify(err)
	}
	err = db.Where("name = ?", idOrName).
		Order("CASE WHEN tenant_id = '" + tenant.Default + "' THEN 0 ELSE 1 END, created_at, id").
		Take(&src).Error
	return src, classify(err)
}

// ListWebhookSources returns sources, newest first.
func (s *Store) ListWebhookSources(ctx context.Context, p Page) ([]WebhookSource, string, error) {
	return List(s.db.WithContext(ctx).Model(&WebhookSource{}), p, func(src WebhookSource) string { return src.ID })
}

// DeleteWebhookSource removes a source and what it has seen.
func (s *Store) DeleteWebhookSource(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.db.Where("source_id = ?", id).Delete(&WebhookInboundSeen{}).Error; err != nil {
			return classify(err)
		}
		res := tx.db.Where("id = ?", id).Delete(&WebhookSource{})
		if res.Error != nil {
			return classify(res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// MarkWebhookSeen records the replay keys of one inbound webhook, all or none: it returns
// ErrConflict (recording nothing) when any of them was seen.
func (s *Store) MarkWebhookSeen(ctx context.Context, keys ...WebhookInboundSeen) error {
	return s.Tx(ctx, func(tx *Store) error {
		for _, k := range keys {
			res := tx.db.Clauses(clause.OnConflict{DoNothing: true}).Create(&k)
			if res.Error != nil {
				return classify(res.Error)
			}
			if res.RowsAffected == 0 {
				return ErrConflict
			}
		}
		return nil
	})
}

// ForgetWebhookSeen removes replay keys (their event could not be recorded after all).
func (s *Store) ForgetWebhookSeen(ctx context.Context, sourceID string, keys ...string) error {
	return classify(s.db.WithContext(ctx).Where("source_id = ? AND webhook_id IN ?", sourceID, keys).
		Delete(&WebhookInboundSeen{}).Error)
}

// PruneWebhookSeen forgets ids seen before cutoff and returns how many.
func (s *Store) PruneWebhookSeen(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("seen_at < ?", cutoff.UTC()).Delete(&WebhookInboundSeen{})
	return res.RowsAffected, classify(res.Error)
}

// WebhookSeen returns the records of those of keys that were seen from the source.
func (s *Store) WebhookSeen(ctx context.Context, sourceID string, keys ...string) ([]WebhookInboundSeen, error) {
	var seen []WebhookInboundSeen
	err := s.db.WithContext(ctx).Where("source_id = ? AND webhook_id IN ?", sourceID, keys).
		Order("seen_at").Find(&seen).Error
	return seen, classify(err)
}
