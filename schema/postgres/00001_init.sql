-- +goose Up
-- Workflow definitions: the seed's workflow body. The workflow engine adds versions and
-- executions in later migrations.
CREATE TABLE workflows (
    id           TEXT PRIMARY KEY,
    name         TEXT        NOT NULL,
    description  TEXT        NOT NULL DEFAULT '',
    trigger_type TEXT        NOT NULL,
    enabled      BOOLEAN     NOT NULL DEFAULT TRUE,
    version      INTEGER     NOT NULL DEFAULT 1,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ
);
CREATE INDEX workflows_live_idx ON workflows (id DESC) WHERE deleted_at IS NULL;
CREATE INDEX workflows_name_idx ON workflows (name);

-- The service's event log and outbox: every domain event (workflow.completed,
-- notification.sent, …) and every event posted to the API is written here first, then handed to
-- the subscribers (webhook fan-out, automation rules). dispatched_at stays NULL until every
-- subscriber has taken it, so a crash between the write and the hand-off is repaired by the
-- redispatch sweep.
CREATE TABLE events (
    id             TEXT PRIMARY KEY,
    type           TEXT        NOT NULL,
    source         TEXT        NOT NULL DEFAULT '',
    subject        TEXT        NOT NULL DEFAULT '',
    data           JSONB       NOT NULL DEFAULT '{}',
    occurred_at    TIMESTAMPTZ NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL,
    causation_id   TEXT        NOT NULL DEFAULT '',
    correlation_id TEXT        NOT NULL DEFAULT '',
    depth          INTEGER     NOT NULL DEFAULT 0,
    dispatched_at  TIMESTAMPTZ
);
CREATE INDEX events_type_idx ON events (type, received_at DESC);
CREATE INDEX events_undispatched_idx ON events (received_at) WHERE dispatched_at IS NULL;

-- +goose Down
DROP TABLE events;
DROP TABLE workflows;
