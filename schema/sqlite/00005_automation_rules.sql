-- +goose Up
-- See ../postgres/00005_automation_rules.sql for what each table is for.
CREATE TABLE automation_rules (
    id           TEXT PRIMARY KEY,
    name         TEXT     NOT NULL,
    description  TEXT     NOT NULL DEFAULT '',
    trigger_type TEXT     NOT NULL,
    event_type   TEXT     NOT NULL DEFAULT '',
    source       TEXT     NOT NULL DEFAULT '',
    priority     INTEGER  NOT NULL DEFAULT 0,
    enabled      BOOLEAN  NOT NULL DEFAULT 1,
    version      INTEGER  NOT NULL DEFAULT 1,
    definition   TEXT     NOT NULL,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL,
    deleted_at   DATETIME
);
CREATE INDEX automation_rules_live_idx ON automation_rules (id DESC) WHERE deleted_at IS NULL;
CREATE INDEX automation_rules_active_idx ON automation_rules (priority DESC, id)
    WHERE enabled AND deleted_at IS NULL;

CREATE TABLE automation_rule_versions (
    rule_id    TEXT     NOT NULL REFERENCES automation_rules (id),
    version    INTEGER  NOT NULL,
    definition TEXT     NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (rule_id, version)
);

CREATE TABLE automation_event_evaluations (
    event_id      TEXT PRIMARY KEY,
    event_type    TEXT     NOT NULL,
    status        TEXT     NOT NULL,
    reason        TEXT     NOT NULL DEFAULT '',
    rules_matched INTEGER  NOT NULL DEFAULT 0,
    evaluated_at  DATETIME NOT NULL
);

CREATE TABLE automation_executions (
    id           TEXT PRIMARY KEY,
    event_id     TEXT     NOT NULL,
    event_type   TEXT     NOT NULL,
    rule_id      TEXT     NOT NULL,
    rule_version INTEGER  NOT NULL,
    status       TEXT     NOT NULL,
    reason       TEXT     NOT NULL DEFAULT '',
    fired        BOOLEAN  NOT NULL DEFAULT 0,
    conditions   TEXT     NOT NULL DEFAULT '[]',
    dedup_key    TEXT     NOT NULL DEFAULT '',
    action_count INTEGER  NOT NULL DEFAULT 0,
    evaluated_at DATETIME NOT NULL,
    finished_at  DATETIME,
    CONSTRAINT automation_executions_once UNIQUE (event_id, rule_id)
);
CREATE INDEX automation_executions_rule_idx ON automation_executions (rule_id, id DESC);
CREATE INDEX automation_executions_fired_idx ON automation_executions (rule_id, evaluated_at) WHERE fired;
CREATE INDEX automation_executions_dedup_idx ON automation_executions (rule_id, dedup_key, evaluated_at)
    WHERE fired AND dedup_key <> '';

CREATE TABLE automation_action_outcomes (
    execution_id    TEXT     NOT NULL REFERENCES automation_executions (id) ON DELETE CASCADE,
    action_index    INTEGER  NOT NULL,
    type            TEXT     NOT NULL,
    status          TEXT     NOT NULL,
    idempotency_key TEXT     NOT NULL,
    rendered        TEXT,
    result          TEXT,
    error           TEXT     NOT NULL DEFAULT '',
    attempts        INTEGER  NOT NULL DEFAULT 0,
    started_at      DATETIME,
    finished_at     DATETIME,
    PRIMARY KEY (execution_id, action_index)
);

CREATE INDEX events_received_idx ON events (received_at);

-- +goose Down
DROP INDEX events_received_idx;
DROP TABLE automation_action_outcomes;
DROP TABLE automation_executions;
DROP TABLE automation_event_evaluations;
DROP TABLE automation_rule_versions;
DROP TABLE automation_rules;
