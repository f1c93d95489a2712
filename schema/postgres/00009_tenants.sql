-- +goose Up
-- Tenants (issue 13): every tenant-owned table gets tenant_id; rows written before tenants existed
-- belong to 'default'. This migration touches every domain's tables by nature (the one
-- exception to 'a migration keeps to its own domain'): it only adds a column and indexes, so
-- domains' later migrations apply in any order around it.
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT        NOT NULL,
    limits     JSONB       NOT NULL DEFAULT '{}',
    enabled    BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
INSERT INTO tenants (id, name, limits, enabled, created_at, updated_at)
    VALUES ('default', 'Default', '{}', TRUE, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);

ALTER TABLE workflows ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX workflows_tenant_idx ON workflows (tenant_id, id DESC);
ALTER TABLE events ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX events_tenant_idx ON events (tenant_id, id DESC);
ALTER TABLE workflow_versions ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE workflow_executions ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX workflow_executions_tenant_idx ON workflow_executions (tenant_id, id DESC);
ALTER TABLE workflow_execution_steps ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE notification_templates ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX notification_templates_tenant_idx ON notification_templates (tenant_id, id DESC);
ALTER TABLE notification_template_versions ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE notifications ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX notifications_tenant_idx ON notifications (tenant_id, id DESC);
ALTER TABLE notification_deliveries ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE notification_attempts ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE notification_throttle_slots ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE webhook_endpoints ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, id DESC);
ALTER TABLE webhook_messages ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX webhook_messages_tenant_idx ON webhook_messages (tenant_id, id DESC);
ALTER TABLE webhook_deliveries ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX webhook_deliveries_tenant_idx ON webhook_deliveries (tenant_id, id DESC);
ALTER TABLE webhook_attempts ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE webhook_sources ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX webhook_sources_tenant_idx ON webhook_sources (tenant_id, id DESC);
ALTER TABLE webhook_inbound_seen ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE automation_rules ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX automation_rules_tenant_idx ON automation_rules (tenant_id, id DESC);
ALTER TABLE automation_rule_versions ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE automation_event_evaluations ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE automation_executions ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX automation_executions_tenant_idx ON automation_executions (tenant_id, id DESC);
ALTER TABLE automation_action_outcomes ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';

-- The installed seed templates are every tenant's to read and render (the default tenant owns
-- and alone changes them).
ALTER TABLE notification_templates ADD COLUMN shared BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE notification_templates SET shared = TRUE WHERE id IN ('welcome_email', 'verification_sms');

-- Idempotency keys are the caller's: one per tenant.
DROP INDEX webhook_messages_idempotency_idx;
CREATE UNIQUE INDEX webhook_messages_idempotency_idx ON webhook_messages (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX notifications_idempotency_idx;
CREATE INDEX notifications_idempotency_idx ON notifications (tenant_id, idempotency_key) WHERE idempotency_key <> '';

-- Tenant API keys: only the SHA-256 of a key is kept; prefix identifies it in lists and logs.
-- Each request looks its key up here, so a revocation holds at once in every API process.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT        NOT NULL,
    name         TEXT        NOT NULL DEFAULT '',
    prefix       TEXT        NOT NULL,
    hash         TEXT        NOT NULL,
    scopes       JSONB       NOT NULL DEFAULT '[]',
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX api_keys_hash_idx ON api_keys (hash);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, id DESC);

-- Audit log: every change and every credential change, with who made it.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    principal   TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    resource    TEXT        NOT NULL,
    resource_id TEXT        NOT NULL DEFAULT '',
    status      INTEGER     NOT NULL DEFAULT 0,
    request_id  TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id DESC);

-- +goose Down
ALTER TABLE notification_templates DROP COLUMN shared;
DROP INDEX notifications_idempotency_idx;
CREATE INDEX notifications_idempotency_idx ON notifications (idempotency_key) WHERE idempotency_key <> '';
DROP INDEX webhook_messages_idempotency_idx;
CREATE UNIQUE INDEX webhook_messages_idempotency_idx ON webhook_messages (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE automation_action_outcomes DROP COLUMN tenant_id;
DROP INDEX automation_executions_tenant_idx;
ALTER TABLE automation_executions DROP COLUMN tenant_id;
ALTER TABLE automation_event_evaluations DROP COLUMN tenant_id;
ALTER TABLE automation_rule_versions DROP COLUMN tenant_id;
DROP INDEX automation_rules_tenant_idx;
ALTER TABLE automation_rules DROP COLUMN tenant_id;
ALTER TABLE webhook_inbound_seen DROP COLUMN tenant_id;
DROP INDEX webhook_sources_tenant_idx;
ALTER TABLE webhook_sources DROP COLUMN tenant_id;
ALTER TABLE webhook_attempts DROP COLUMN tenant_id;
DROP INDEX webhook_deliveries_tenant_idx;
ALTER TABLE webhook_deliveries DROP COLUMN tenant_id;
DROP INDEX webhook_messages_tenant_idx;
ALTER TABLE webhook_messages DROP COLUMN tenant_id;
DROP INDEX webhook_endpoints_tenant_idx;
ALTER TABLE webhook_endpoints DROP COLUMN tenant_id;
ALTER TABLE notification_throttle_slots DROP COLUMN tenant_id;
ALTER TABLE notification_attempts DROP COLUMN tenant_id;
ALTER TABLE notification_deliveries DROP COLUMN tenant_id;
DROP INDEX notifications_tenant_idx;
ALTER TABLE notifications DROP COLUMN tenant_id;
ALTER TABLE notification_template_versions DROP COLUMN tenant_id;
DROP INDEX notification_templates_tenant_idx;
ALTER TABLE notification_templates DROP COLUMN tenant_id;
ALTER TABLE workflow_execution_steps DROP COLUMN tenant_id;
DROP INDEX workflow_executions_tenant_idx;
ALTER TABLE workflow_executions DROP COLUMN tenant_id;
ALTER TABLE workflow_versions DROP COLUMN tenant_id;
DROP INDEX events_tenant_idx;
ALTER TABLE events DROP COLUMN tenant_id;
DROP INDEX workflows_tenant_idx;
ALTER TABLE workflows DROP COLUMN tenant_id;
DROP TABLE audit_log;
DROP TABLE api_keys;
DROP TABLE tenants;
