-- +goose Up
-- See ../postgres/00013_webhook_trace_context.sql for what the columns are for.
ALTER TABLE webhook_messages ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN omit_traceparent BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN omit_traceparent;
ALTER TABLE webhook_messages DROP COLUMN trace_parent;
