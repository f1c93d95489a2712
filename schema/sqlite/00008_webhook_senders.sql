-- +goose Up
-- See ../postgres/00007_webhook_senders.sql for what the columns are for.
ALTER TABLE webhook_endpoints ADD COLUMN sender_id TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN sender_lease_until DATETIME;
ALTER TABLE webhook_endpoints ADD COLUMN failed_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN circuit_trips INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN circuit_open_until DATETIME;
ALTER TABLE webhook_endpoints ADD COLUMN paused_until DATETIME;

CREATE INDEX webhook_attempts_started_idx ON webhook_attempts (endpoint_id) WHERE outcome = 'started';

-- +goose Down
DROP INDEX webhook_attempts_started_idx;
ALTER TABLE webhook_endpoints DROP COLUMN paused_until;
ALTER TABLE webhook_endpoints DROP COLUMN circuit_open_until;
ALTER TABLE webhook_endpoints DROP COLUMN circuit_trips;
ALTER TABLE webhook_endpoints DROP COLUMN failed_requests;
ALTER TABLE webhook_endpoints DROP COLUMN sender_lease_until;
ALTER TABLE webhook_endpoints DROP COLUMN sender_id;
