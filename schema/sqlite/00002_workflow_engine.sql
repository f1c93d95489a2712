-- +goose Up
-- See ../postgres/00002_workflow_engine.sql for what each table is for.
ALTER TABLE workflows ADD COLUMN definition TEXT NOT NULL DEFAULT '{}';
ALTER TABLE workflows ADD COLUMN schedule_id TEXT NOT NULL DEFAULT '';
ALTER TABLE workflows ADD COLUMN paused BOOLEAN NOT NULL DEFAULT 0;
CREATE INDEX workflows_trigger_idx ON workflows (trigger_type) WHERE deleted_at IS NULL;

CREATE TABLE workflow_versions (
    workflow_id  TEXT     NOT NULL REFERENCES workflows (id),
    version      INTEGER  NOT NULL,
    name         TEXT     NOT NULL,
    description  TEXT     NOT NULL DEFAULT '',
    trigger_type TEXT     NOT NULL,
    definition   TEXT     NOT NULL,
    created_at   DATETIME NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE workflow_executions (
    id                   TEXT PRIMARY KEY,
    workflow_id          TEXT     NOT NULL REFERENCES workflows (id),
    version              INTEGER  NOT NULL,
    status               TEXT     NOT NULL,
    priority             TEXT     NOT NULL DEFAULT 'normal',
    triggered_by         TEXT     NOT NULL DEFAULT 'manual',
    input                TEXT     NOT NULL DEFAULT '{}',
    output               TEXT,
    error                TEXT     NOT NULL DEFAULT '',
    idempotency_key      TEXT,
    temporal_workflow_id TEXT     NOT NULL,
    temporal_run_id      TEXT     NOT NULL DEFAULT '',
    retry_of             TEXT     NOT NULL DEFAULT '',
    parent_execution_id  TEXT     NOT NULL DEFAULT '',
    created_at           DATETIME NOT NULL,
    started_at           DATETIME,
    finished_at          DATETIME,
    updated_at           DATETIME NOT NULL
);
CREATE UNIQUE INDEX workflow_executions_idempotency_idx ON workflow_executions (workflow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX workflow_executions_temporal_idx ON workflow_executions (temporal_workflow_id);
CREATE INDEX workflow_executions_workflow_idx ON workflow_executions (workflow_id, id DESC);
CREATE INDEX workflow_executions_status_idx ON workflow_executions (status, id DESC);

CREATE TABLE workflow_execution_steps (
    execution_id TEXT     NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    step_id      TEXT     NOT NULL,
    type         TEXT     NOT NULL,
    status       TEXT     NOT NULL,
    attempts     INTEGER  NOT NULL DEFAULT 0,
    output       TEXT,
    error        TEXT     NOT NULL DEFAULT '',
    started_at   DATETIME,
    finished_at  DATETIME,
    updated_at   DATETIME NOT NULL,
    PRIMARY KEY (execution_id, step_id)
);

-- +goose Down
DROP TABLE workflow_execution_steps;
DROP TABLE workflow_executions;
DROP TABLE workflow_versions;
DROP INDEX workflows_trigger_idx;
ALTER TABLE workflows DROP COLUMN paused;
ALTER TABLE workflows DROP COLUMN schedule_id;
ALTER TABLE workflows DROP COLUMN definition;
