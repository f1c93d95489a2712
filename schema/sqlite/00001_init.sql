-- +goose Up
-- See ../postgres/00001_init.sql for what each table is for. Times are stored as UTC text in
-- SQLite's own format, which sorts in time order.
CREATE TABLE workflows (
    id           TEXT PRIMARY KEY,
    name         TEXT     NOT NULL,
    description  TEXT     NOT NULL DEFAULT '',
    trigger_type TEXT     NOT NULL,
    enabled      BOOLEAN  NOT NULL DEFAULT 1,
    version      INTEGER  NOT NULL DEFAULT 1,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL,
    deleted_at   DATETIME
);
CREATE INDEX workflows_live_idx ON workflows (id DESC) WHERE deleted_at IS NULL;
CREATE INDEX workflows_name_idx ON workflows (name);

CREATE TABLE events (
    id             TEXT PRIMARY KEY,
    type           TEXT     NOT NULL,
    source         TEXT     NOT NULL DEFAULT '',
    subject        TEXT     NOT NULL DEFAULT '',
    data           TEXT     NOT NULL DEFAULT '{}',
    occurred_at    DATETIME NOT NULL,
    received_at    DATETIME NOT NULL,
    causation_id   TEXT     NOT NULL DEFAULT '',
    correlation_id TEXT     NOT NULL DEFAULT '',
    depth          INTEGER  NOT NULL DEFAULT 0,
    dispatched_at  DATETIME
);
CREATE INDEX events_type_idx ON events (type, received_at DESC);
CREATE INDEX events_undispatched_idx ON events (received_at) WHERE dispatched_at IS NULL;

-- +goose Down
DROP TABLE events;
DROP TABLE workflows;
