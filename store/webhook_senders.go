package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"

	"github.com/jackc/pgx/v5"
)

// WebhookWakeChannel is the Postgres NOTIFY channel that tells the worker processes which
// endpoints have deliveries to send (the payload is a comma-separated list of endpoint ids).
const WebhookWakeChannel = "webhook_wake"

// AcquireWebhookSender makes owner the sender of an endpoint until `until`, unless another owner
// holds it past now. It reports whether owner holds it.
func (s *Store) AcquireWebhookSender(ctx context.Context, endpointID, owner string, until, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&WebhookEndpoint{}).
		Where("id = ? AND (sender_id = '' OR sender_id = ? OR sender_lease_until IS NULL OR sender_lease_until < ?)",
			endpointID, owner, now.UTC()).
		Updates(map[string]any{"sender_id": owner, "sender_lease_until": until.UTC()})
	return res.RowsAffected == 1, classify(res.Error)
}

// RenewWebhookSenders extends owner's hold on these endpoints to `until` and returns the ones it
// still holds (an endpoint missing from the answer was taken over after its hold lapsed).
func (s *Store) RenewWebhookSenders(ctx context.Context, owner string, endpointIDs []string, until time.Time) ([]string, error) {
	if len(endpointIDs) == 0 {
		return nil, nil
	}
	var held []string
	// A sender's hold is renewed for every tenant's endpoints at once: owner is the process.
	err := s.db.WithContext(tenant.System(ctx)).Raw("UPDATE webhook_endpoints SET sender_lease_until = ? WHERE sender_id = ? AND id IN ? RETURNING id",
		until.UTC(), owner, endpointIDs).Scan(&held).Error
	return held, classify(err)
}

// ReleaseWebhookSender lets go of owner's hold on an endpoint.
func (s *Store) ReleaseWebhookSender(ctx context.Context, endpointID, owner string) error {
	return classify(s.db.WithContext(ctx).Model(&WebhookEndpoint{}).Where("id = ? AND sender_id = ?", endpointID, owner).
		Updates(map[string]any{"sender_id": "", "sender_lease_until": nil}).Error)
}

// WebhookEndpointsWithoutSender returns the endpoints among ids that no sender holds at now:
// their dispatchers must be woken through Temporal.
func (s *Store) WebhookEndpointsWithoutSender(ctx context.Context, ids []string, now time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []string
	err := s.db.WithContext(ctx).Model(&WebhookEndpoint{}).
		Where("id IN ? AND (sender_id = '' OR sender_lease_until IS NULL OR sender_lease_until < ?)", ids, now.UTC()).
		Pluck("id", &out).Error
	return out, classify(err)
}

// NotifyWebhookEndpoints tells every process listening on WebhookWakeChannel (Postgres only; a
// no-op on SQLite, where API and worker share the process) that these endpoints have work.
func (s *Store) NotifyWebhookEndpoints(ctx context.Context, ids []string) error {
	if s.dialect != Postgres || len(ids) == 0 {
		return nil
	}
	// A payload must stay under 8000 bytes: about 200 ids of 36 characters.
	const perNotification = 200
	for start := 0; start < len(ids); start += perNotification {
		payload := strings.Join(ids[start:min(start+perNotification, len(ids))], ",")
		if err := s.db.WithContext(ctx).Exec("SELECT pg_notify(?, ?)", WebhookWakeChannel, payload).Error; err != nil {
			return classify(err)
		}
	}
	return nil
}

// ErrListenUnsupported is Listen's answer on SQLite.
var ErrListenUnsupported = errors.New("listen: only Postgres has LISTEN/NOTIFY")

// Listen receives the notifications of a Postgres channel on a connection of its own and calls
// fn with each payload until ctx ends or the connection fails (the caller reconnects).
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	if s.dialect != Postgres {
		return ErrListenUnsupported
	}
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return classify(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return classify(err)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return classify(err)
		}
		fn(n.Payload)
	}
}

// StartWebhookAttempts records attempts whose requests are about to go out (outcome
// AttemptStarted), so that a sender that dies leaves them in the log. RecordWebhookAttempts
// replaces them with the outcome.
func (s *Store) StartWebhookAttempts(ctx context.Context, attempts []WebhookAttempt) error {
	return s.insertRows(ctx, "webhook_attempts", attemptColumns, len(attempts), func(i int) []any {
		a := &attempts[i]
		return []any{a.ID, a.DeliveryID, a.EndpointID, a.Attempt, a.URL, a.StartedAt, a.DurationMS,
			a.StatusCode, JSON("{}"), "", "", AttemptStarted, a.TenantID}
	})
}

// UnknownOutcome is the error of an attempt whose sender stopped before the response came.
const UnknownOutcome = "outcome unknown: the worker stopped before the response was recorded (the receiver may have got it)"

// RecoverStartedWebhookAttempts turns the endpoint's attempts left started by a sender that
// stopped (it holds the endpoint no more) into unknown outcomes, and counts them in their
// deliveries, which stay pending and are sent again. Call it when taking the endpoint over.
func (s *Store) RecoverStartedWebhookAttempts(ctx context.Context, endpointID string, at time.Time) (int, error) {
	n := 0
	err := s.Tx(ctx, func(tx *Store) error {
		type started struct {
			DeliveryID string
			Attempt    int
		}
		var rows []started
		cond, targs := tenantFilter(ctx, "tenant_id")
		if err := tx.db.Raw("SELECT delivery_id, MAX(attempt) AS attempt FROM webhook_attempts WHERE endpoint_id = ? AND outcome = ?"+cond+" GROUP BY delivery_id",
			append([]any{endpointID, AttemptStarted}, targs...)...).Scan(&rows).Error; err != nil {
			return classify(err)
		}
		if len(rows) == 0 {
			return nil
		}
		n = len(rows)
		if err := tx.db.Model(&WebhookAttempt{}).Where("endpoint_id = ? AND outcome = ?", endpointID, AttemptStarted).
			Updates(map[string]any{"outcome": AttemptUnknown, "error": UnknownOutcome}).Error; err != nil {
			return classify(err)
		}
		for _, r := range rows {
			if err := tx.db.Exec("UPDATE webhook_deliveries SET attempts = CASE WHEN attempts < ? THEN ? ELSE attempts END, last_error = ?, updated_at = ? WHERE id = ? AND status = ?"+cond,
				append([]any{r.Attempt, r.Attempt, UnknownOutcome, at.UTC(), r.DeliveryID, DeliveryPending}, targs...)...).Error; err != nil {
				return classify(err)
			}
		}
		return nil
	})
	return n, err
}

// NextWebhookDue is when the endpoint's next pending delivery may be sent: the earliest due
// time, or for an ordered endpoint the head of its queue. ok is false when nothing is pending.
func (s *Store) NextWebhookDue(ctx context.Context, endpointID string, ordered bool, now time.Time) (due time.Time, ok bool, err error) {
	order := "next_attempt_at, id"
	if ordered {
		order = "id"
	}
	var rows []WebhookDelivery
	if err := s.db.WithContext(ctx).Select("id", "next_attempt_at").
		Where("endpoint_id = ? AND status = ?", endpointID, DeliveryPending).Order(order).Limit(1).Find(&rows).Error; err != nil {
		return time.Time{}, false, classify(err)
	}
	if len(rows) == 0 {
		return time.Time{}, false, nil
	}
	if rows[0].NextAttemptAt == nil {
		return now, true, nil
	}
	return *rows[0].NextAttemptAt, true, nil
}
