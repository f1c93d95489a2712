-- +goose Up
-- A webhook message keeps the W3C trace context of the request that created it: its sends,
-- made later by a sender session, continue that trace. omit_traceparent stops an endpoint
-- from receiving the traceparent header (it is sent by default).
ALTER TABLE webhook_messages ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN omit_traceparent BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN omit_traceparent;
ALTER TABLE webhook_messages DROP COLUMN trace_parent;
