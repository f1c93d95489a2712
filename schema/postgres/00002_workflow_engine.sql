-- +goose Up
-- The workflow engine: every definition keeps its current body on the workflows row and every
-- version it ever had in workflow_versions (an execution pins the version it started with);
-- executions and their per-step records are written by the interpreter's activities, so lists
-- and details never need Temporal's visibility store.
ALTER TABLE workflows ADD COLUMN definition JSONB NOT NULL DEFAULT '{}';
ALTER TABLE workflows ADD COLUMN schedule_id TEXT NOT NULL DEFAULT '';
ALTER TABLE workflows ADD COLUMN paused BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX workflows_trigger_idx ON workflows (trigger_type) WHERE deleted_at IS NULL;

CREATE TABLE workflow_versions (
    workflow_id  TEXT        NOT NULL REFERENCES workflows (id),
    version      INTEGER     NOT NULL,
    name         TEXT        NOT NULL,
    description  TEXT        NOT NULL DEFAULT '',
    trigger_type TEXT        NOT NULL,
    definition   JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE workflow_executions (
    id                   TEXT PRIMARY KEY,
    workflow_id          TEXT        NOT NULL REFERENCES workflows (id),
    version              INTEGER     NOT NULL,
    status               TEXT        NOT NULL,
    priority             TEXT        NOT NULL DEFAULT 'normal',
    triggered_by         TEXT        NOT NULL DEFAULT 'manual',
    input                JSONB       NOT NULL DEFAULT '{}',
    output               JSONB,
    error                TEXT        NOT NULL DEFAULT '',
    idempotency_key      TEXT,
    temporal_workflow_id TEXT        NOT NULL,
    temporal_run_id      TEXT        NOT NULL DEFAULT '',
    retry_of             TEXT        NOT NULL DEFAULT '',
    parent_execution_id  TEXT        NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL,
    started_at           TIMESTAMPTZ,
    finished_at          TIMESTAMPTZ,
    updated_at           TIMESTAMPTZ NOT NULL
);
-- Same Idempotency-Key on the same definition → the same execution.
CREATE UNIQUE INDEX workflow_executions_idempotency_idx ON workflow_executions (workflow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- One row per Temporal workflow: scheduled and child runs create theirs from the interpreter.
CREATE UNIQUE INDEX workflow_executions_temporal_idx ON workflow_executions (temporal_workflow_id);
CREATE INDEX workflow_executions_workflow_idx ON workflow_executions (workflow_id, id DESC);
CREATE INDEX workflow_executions_status_idx ON workflow_executions (status, id DESC);

CREATE TABLE workflow_execution_steps (
    execution_id TEXT        NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    step_id      TEXT        NOT NULL,
    type         TEXT        NOT NULL,
    status       TEXT        NOT NULL,
    attempts     INTEGER     NOT NULL DEFAULT 0,
    output       JSONB,
    error        TEXT        NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL,
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
