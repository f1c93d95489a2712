-- +goose NO TRANSACTION
-- +goose Up
-- See ../postgres/00010_tenant_keys.sql for why. SQLite cannot change a table's primary key or an
-- inline UNIQUE in place: each table is rebuilt (create the new one, copy, drop, rename, recreate
-- its indexes). Foreign keys are off while the tables are swapped (a DROP would otherwise cascade
-- into the rows that reference them), which SQLite allows only outside a transaction: this file
-- runs without goose's and opens its own, on the one connection goose migrates with.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE events_new (
    tenant_id      TEXT     NOT NULL DEFAULT 'default',
    id             TEXT     NOT NULL,
    type           TEXT     NOT NULL,
    source         TEXT     NOT NULL DEFAULT '',
    subject        TEXT     NOT NULL DEFAULT '',
    data           TEXT     NOT NULL DEFAULT '{}',
    occurred_at    DATETIME NOT NULL,
    received_at    DATETIME NOT NULL,
    causation_id   TEXT     NOT NULL DEFAULT '',
    correlation_id TEXT     NOT NULL DEFAULT '',
    depth          INTEGER  NOT NULL DEFAULT 0,
    dispatched_at  DATETIME,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO events_new (tenant_id, id, type, source, subject, data, occurred_at, received_at, causation_id,
        correlation_id, depth, dispatched_at)
    SELECT tenant_id, id, type, source, subject, data, occurred_at, received_at, causation_id,
        correlation_id, depth, dispatched_at FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_type_idx ON events (type, received_at DESC);
CREATE INDEX events_undispatched_idx ON events (received_at) WHERE dispatched_at IS NULL;
CREATE INDEX events_received_idx ON events (received_at);
CREATE INDEX events_tenant_idx ON events (tenant_id, id DESC);

CREATE TABLE automation_event_evaluations_new (
    tenant_id     TEXT     NOT NULL DEFAULT 'default',
    event_id      TEXT     NOT NULL,
    event_type    TEXT     NOT NULL,
    status        TEXT     NOT NULL,
    reason        TEXT     NOT NULL DEFAULT '',
    rules_matched INTEGER  NOT NULL DEFAULT 0,
    evaluated_at  DATETIME NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
INSERT INTO automation_event_evaluations_new (tenant_id, event_id, event_type, status, reason, rules_matched, evaluated_at)
    SELECT tenant_id, event_id, event_type, status, reason, rules_matched, evaluated_at FROM automation_event_evaluations;
DROP TABLE automation_event_evaluations;
ALTER TABLE automation_event_evaluations_new RENAME TO automation_event_evaluations;

CREATE TABLE notification_templates_new (
    tenant_id       TEXT     NOT NULL DEFAULT 'default',
    id              TEXT     NOT NULL,
    channel         TEXT     NOT NULL,
    description     TEXT     NOT NULL DEFAULT '',
    current_version INTEGER  NOT NULL,
    created_at      DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL,
    shared          BOOLEAN  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO notification_templates_new (tenant_id, id, channel, description, current_version, created_at, updated_at, shared)
    SELECT tenant_id, id, channel, description, current_version, created_at, updated_at, shared FROM notification_templates;
CREATE TABLE notification_template_versions_new (
    tenant_id   TEXT     NOT NULL DEFAULT 'default',
    template_id TEXT     NOT NULL,
    version     INTEGER  NOT NULL,
    subject     TEXT     NOT NULL DEFAULT '',
    body        TEXT     NOT NULL DEFAULT '',
    html_body   TEXT     NOT NULL DEFAULT '',
    created_at  DATETIME NOT NULL,
    PRIMARY KEY (tenant_id, template_id, version),
    FOREIGN KEY (tenant_id, template_id) REFERENCES notification_templates (tenant_id, id) ON DELETE CASCADE
);
INSERT INTO notification_template_versions_new (tenant_id, template_id, version, subject, body, html_body, created_at)
    SELECT tenant_id, template_id, version, subject, body, html_body, created_at FROM notification_template_versions;
DROP TABLE notification_template_versions;
DROP TABLE notification_templates;
ALTER TABLE notification_templates_new RENAME TO notification_templates;
ALTER TABLE notification_template_versions_new RENAME TO notification_template_versions;
CREATE INDEX notification_templates_tenant_idx ON notification_templates (tenant_id, id DESC);

CREATE TABLE webhook_sources_new (
    id                 TEXT     PRIMARY KEY,
    tenant_id          TEXT     NOT NULL DEFAULT 'default',
    name               TEXT     NOT NULL,
    description        TEXT     NOT NULL DEFAULT '',
    scheme             TEXT     NOT NULL,
    secret             TEXT     NOT NULL,
    signature_header   TEXT     NOT NULL DEFAULT '',
    id_header          TEXT     NOT NULL DEFAULT '',
    event_type_header  TEXT     NOT NULL DEFAULT '',
    event_type_path    TEXT     NOT NULL DEFAULT '',
    default_event_type TEXT     NOT NULL DEFAULT '',
    tolerance_seconds  INTEGER  NOT NULL DEFAULT 300,
    created_at         DATETIME NOT NULL,
    updated_at         DATETIME NOT NULL,
    CONSTRAINT webhook_sources_tenant_name_key UNIQUE (tenant_id, name)
);
INSERT INTO webhook_sources_new (id, tenant_id, name, description, scheme, secret, signature_header, id_header,
        event_type_header, event_type_path, default_event_type, tolerance_seconds, created_at, updated_at)
    SELECT id, tenant_id, name, description, scheme, secret, signature_header, id_header,
        event_type_header, event_type_path, default_event_type, tolerance_seconds, created_at, updated_at
    FROM webhook_sources;
DROP TABLE webhook_sources;
ALTER TABLE webhook_sources_new RENAME TO webhook_sources;
CREATE INDEX webhook_sources_tenant_idx ON webhook_sources (tenant_id, id DESC);
CREATE INDEX webhook_sources_name_idx ON webhook_sources (name, created_at);

CREATE TABLE webhook_messages_new (
    tenant_id       TEXT     NOT NULL DEFAULT 'default',
    id              TEXT     NOT NULL,
    event_type      TEXT     NOT NULL,
    payload         TEXT     NOT NULL,
    idempotency_key TEXT,
    source          TEXT     NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO webhook_messages_new (tenant_id, id, event_type, payload, idempotency_key, source, created_at)
    SELECT tenant_id, id, event_type, payload, idempotency_key, source, created_at FROM webhook_messages;
CREATE TABLE webhook_deliveries_new (
    id               TEXT     PRIMARY KEY,
    message_id       TEXT     NOT NULL,
    endpoint_id      TEXT     NOT NULL REFERENCES webhook_endpoints (id),
    event_type       TEXT     NOT NULL,
    status           TEXT     NOT NULL,
    attempts         INTEGER  NOT NULL DEFAULT 0,
    schedule_base    INTEGER  NOT NULL DEFAULT 0,
    next_attempt_at  DATETIME,
    last_status_code INTEGER  NOT NULL DEFAULT 0,
    last_error       TEXT     NOT NULL DEFAULT '',
    created_at       DATETIME NOT NULL,
    updated_at       DATETIME NOT NULL,
    completed_at     DATETIME,
    tenant_id        TEXT     NOT NULL DEFAULT 'default',
    UNIQUE (message_id, endpoint_id),
    FOREIGN KEY (tenant_id, message_id) REFERENCES webhook_messages (tenant_id, id) ON DELETE CASCADE
);
INSERT INTO webhook_deliveries_new (id, message_id, endpoint_id, event_type, status, attempts, schedule_base,
        next_attempt_at, last_status_code, last_error, created_at, updated_at, completed_at, tenant_id)
    SELECT id, message_id, endpoint_id, event_type, status, attempts, schedule_base,
        next_attempt_at, last_status_code, last_error, created_at, updated_at, completed_at, tenant_id
    FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_messages;
ALTER TABLE webhook_messages_new RENAME TO webhook_messages;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE UNIQUE INDEX webhook_messages_idempotency_idx ON webhook_messages (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX webhook_messages_tenant_idx ON webhook_messages (tenant_id, id DESC);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_fifo_idx ON webhook_deliveries (endpoint_id, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_type_idx ON webhook_deliveries (event_type, id DESC);
CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (status, id DESC);
CREATE INDEX webhook_deliveries_tenant_idx ON webhook_deliveries (tenant_id, id DESC);
CREATE INDEX webhook_deliveries_message_idx ON webhook_deliveries (tenant_id, message_id);

-- Daily quotas (executions_per_day, messages_per_day): what each tenant has taken per UTC day,
-- raised in the transaction that creates the work, whoever starts it (store.ReserveQuota).
CREATE TABLE tenant_quota_usage (
    tenant_id TEXT    NOT NULL,
    quota     TEXT    NOT NULL,
    day       TEXT    NOT NULL,
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, quota, day)
);

COMMIT;
PRAGMA foreign_keys = ON;

-- +goose Down
-- The keys stay composite: going back to global ids would have to drop rows of one tenant or
-- another wherever two tenants chose the same id.
DROP TABLE tenant_quota_usage;
