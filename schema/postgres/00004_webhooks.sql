-- +goose Up
-- Outbound webhooks. An endpoint is a receiver with its event filter, signing secrets (encrypted
-- with WEBHOOK_SECRET_KEY), delivery settings and health. A message is one thing to send (a POST
-- to /webhooks/deliver or a domain event); it fans out into one delivery per matching endpoint,
-- and every HTTP request of a delivery is an attempt. The deliveries table is the queue: the
-- endpoint's dispatcher workflow sends what is pending and due, in id order.
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    name                       TEXT        NOT NULL,
    description                TEXT        NOT NULL DEFAULT '',
    url                        TEXT        NOT NULL,
    event_types                JSONB       NOT NULL DEFAULT '["*"]',
    headers                    JSONB       NOT NULL DEFAULT '{}',
    enabled                    BOOLEAN     NOT NULL DEFAULT TRUE,
    disabled_reason            TEXT        NOT NULL DEFAULT '',
    disabled_at                TIMESTAMPTZ,
    rate_limit_per_second      INTEGER     NOT NULL DEFAULT 0,
    ordered                    BOOLEAN     NOT NULL DEFAULT FALSE,
    max_attempts               INTEGER     NOT NULL DEFAULT 0,
    retry_schedule_ms          JSONB       NOT NULL DEFAULT '[]',
    timeout_ms                 INTEGER     NOT NULL DEFAULT 15000,
    disable_after_failures     INTEGER     NOT NULL DEFAULT 0,
    secret                     TEXT        NOT NULL,
    previous_secret            TEXT        NOT NULL DEFAULT '',
    previous_secret_expires_at TIMESTAMPTZ,
    failing_since              TIMESTAMPTZ,
    consecutive_failures       INTEGER     NOT NULL DEFAULT 0,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL,
    deleted_at                 TIMESTAMPTZ
);
CREATE INDEX webhook_endpoints_live_idx ON webhook_endpoints (id DESC) WHERE deleted_at IS NULL;

-- payload is kept as text: the exact bytes the sender gave are the bytes signed and sent.
CREATE TABLE webhook_messages (
    id              TEXT PRIMARY KEY,
    event_type      TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    idempotency_key TEXT,
    source          TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX webhook_messages_idempotency_idx ON webhook_messages (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- attempts counts every HTTP request made; schedule_base is attempts at the last manual retry or
-- recovery, so that the retry schedule starts over from there.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    message_id       TEXT        NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id      TEXT        NOT NULL REFERENCES webhook_endpoints (id),
    event_type       TEXT        NOT NULL,
    status           TEXT        NOT NULL,
    attempts         INTEGER     NOT NULL DEFAULT 0,
    schedule_base    INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    last_status_code INTEGER     NOT NULL DEFAULT 0,
    last_error       TEXT        NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    completed_at     TIMESTAMPTZ,
    UNIQUE (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_fifo_idx ON webhook_deliveries (endpoint_id, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_type_idx ON webhook_deliveries (event_type, id DESC);
CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (status, id DESC);

CREATE TABLE webhook_attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT             NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id      TEXT             NOT NULL,
    attempt          INTEGER          NOT NULL,
    url              TEXT             NOT NULL,
    started_at       TIMESTAMPTZ      NOT NULL,
    duration_ms      DOUBLE PRECISION NOT NULL,
    status_code      INTEGER          NOT NULL DEFAULT 0,
    response_headers JSONB            NOT NULL DEFAULT '{}',
    response_body    TEXT             NOT NULL DEFAULT '',
    error            TEXT             NOT NULL DEFAULT '',
    outcome          TEXT             NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempt);

-- Inbound webhooks: a named source whose requests are verified with its secret, and the
-- webhook ids already accepted from it (replays are refused).
CREATE TABLE webhook_sources (
    id                TEXT PRIMARY KEY,
    name              TEXT        NOT NULL UNIQUE,
    description       TEXT        NOT NULL DEFAULT '',
    scheme            TEXT        NOT NULL,
    secret            TEXT        NOT NULL,
    signature_header  TEXT        NOT NULL DEFAULT '',
    id_header         TEXT        NOT NULL DEFAULT '',
    event_type_header TEXT        NOT NULL DEFAULT '',
    event_type_path   TEXT        NOT NULL DEFAULT '',
    default_event_type TEXT       NOT NULL DEFAULT '',
    tolerance_seconds INTEGER     NOT NULL DEFAULT 300,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_inbound_seen (
    source_id  TEXT        NOT NULL REFERENCES webhook_sources (id) ON DELETE CASCADE,
    webhook_id TEXT        NOT NULL,
    event_id   TEXT        NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source_id, webhook_id)
);
CREATE INDEX webhook_inbound_seen_at_idx ON webhook_inbound_seen (seen_at);

-- +goose Down
DROP TABLE webhook_inbound_seen;
DROP TABLE webhook_sources;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_messages;
DROP TABLE webhook_endpoints;
