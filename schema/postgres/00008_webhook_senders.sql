-- +goose Up
-- Webhook senders. An endpoint's deliveries are sent by one sender session at a time, run as a
-- heartbeating activity by a worker process: sender_id names the process holding the endpoint
-- and sender_lease_until is when its hold lapses unless renewed (a process that dies lets go
-- within seconds; the API wakes the endpoint's dispatcher only when no sender holds it). The
-- circuit breaker's state lives here so that it survives sessions and workers: failed_requests
-- counts requests failed in a row, circuit_trips the times the circuit opened in a row, and
-- nothing is sent before circuit_open_until or a receiver's Retry-After (paused_until).
ALTER TABLE webhook_endpoints ADD COLUMN sender_id TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN sender_lease_until TIMESTAMPTZ;
ALTER TABLE webhook_endpoints ADD COLUMN failed_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN circuit_trips INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN circuit_open_until TIMESTAMPTZ;
ALTER TABLE webhook_endpoints ADD COLUMN paused_until TIMESTAMPTZ;

-- An attempt is written with outcome 'started' before its request goes out; one a sender could
-- not finish (its worker died) becomes 'unknown' when the next sender takes the endpoint.
CREATE INDEX webhook_attempts_started_idx ON webhook_attempts (endpoint_id) WHERE outcome = 'started';

-- +goose Down
DROP INDEX webhook_attempts_started_idx;
ALTER TABLE webhook_endpoints DROP COLUMN paused_until;
ALTER TABLE webhook_endpoints DROP COLUMN circuit_open_until;
ALTER TABLE webhook_endpoints DROP COLUMN circuit_trips;
ALTER TABLE webhook_endpoints DROP COLUMN failed_requests;
ALTER TABLE webhook_endpoints DROP COLUMN sender_lease_until;
ALTER TABLE webhook_endpoints DROP COLUMN sender_id;
