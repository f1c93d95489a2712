-- +goose Up
-- Automation rules. A rule's current state is one row; every change of its definition (trigger,
-- conditions, actions, limits) is a new immutable version, so that an execution always names
-- the exact version that decided it.
CREATE TABLE automation_rules (
    id           TEXT PRIMARY KEY,
    name         TEXT        NOT NULL,
    description  TEXT        NOT NULL DEFAULT '',
    trigger_type TEXT        NOT NULL,
    -- event_type is the trigger's event type pattern (event and webhook triggers), source the
    -- inbound webhook source (webhook triggers): copied from the definition for filtering.
    event_type   TEXT        NOT NULL DEFAULT '',
    source       TEXT        NOT NULL DEFAULT '',
    priority     INTEGER     NOT NULL DEFAULT 0,
    enabled      BOOLEAN     NOT NULL DEFAULT TRUE,
    version      INTEGER     NOT NULL DEFAULT 1,
    definition   JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ
);
CREATE INDEX automation_rules_live_idx ON automation_rules (id DESC) WHERE deleted_at IS NULL;
CREATE INDEX automation_rules_active_idx ON automation_rules (priority DESC, id)
    WHERE enabled AND deleted_at IS NULL;

CREATE TABLE automation_rule_versions (
    rule_id    TEXT        NOT NULL REFERENCES automation_rules (id),
    version    INTEGER     NOT NULL,
    definition JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (rule_id, version)
);

-- One row per event the rules engine took: evaluated, or skipped (causation depth over the
-- limit) with the reason. Its primary key makes an event's evaluation happen once.
CREATE TABLE automation_event_evaluations (
    event_id      TEXT PRIMARY KEY,
    event_type    TEXT        NOT NULL,
    status        TEXT        NOT NULL,
    reason        TEXT        NOT NULL DEFAULT '',
    rules_matched INTEGER     NOT NULL DEFAULT 0,
    evaluated_at  TIMESTAMPTZ NOT NULL
);

-- One row per event x rule whose trigger matched the event: matched or not (conditions with
-- their actual values), skipped (stop_processing, cooldown, rate limit, duplicate) and why, and
-- the run's status. UNIQUE (event_id, rule_id) makes evaluation exactly-once per rule.
-- fired marks the rows whose actions were started: cooldown, rate limits and dedup_key count them.
CREATE TABLE automation_executions (
    id           TEXT PRIMARY KEY,
    event_id     TEXT        NOT NULL,
    event_type   TEXT        NOT NULL,
    rule_id      TEXT        NOT NULL,
    rule_version INTEGER     NOT NULL,
    status       TEXT        NOT NULL,
    reason       TEXT        NOT NULL DEFAULT '',
    fired        BOOLEAN     NOT NULL DEFAULT FALSE,
    conditions   JSONB       NOT NULL DEFAULT '[]',
    dedup_key    TEXT        NOT NULL DEFAULT '',
    action_count INTEGER     NOT NULL DEFAULT 0,
    evaluated_at TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    CONSTRAINT automation_executions_once UNIQUE (event_id, rule_id)
);
CREATE INDEX automation_executions_rule_idx ON automation_executions (rule_id, id DESC);
CREATE INDEX automation_executions_fired_idx ON automation_executions (rule_id, evaluated_at) WHERE fired;
CREATE INDEX automation_executions_dedup_idx ON automation_executions (rule_id, dedup_key, evaluated_at)
    WHERE fired AND dedup_key <> '';

-- The outcome of each action of a fired execution: the rendered action, status, attempts,
-- result (the id the module returned, the emitted event's id) or error, and timings.
CREATE TABLE automation_action_outcomes (
    execution_id    TEXT        NOT NULL REFERENCES automation_executions (id) ON DELETE CASCADE,
    action_index    INTEGER     NOT NULL,
    type            TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    rendered        JSONB,
    result          JSONB,
    error           TEXT        NOT NULL DEFAULT '',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    PRIMARY KEY (execution_id, action_index)
);

-- Event retention purges by age.
CREATE INDEX events_received_idx ON events (received_at);

-- +goose Down
DROP INDEX events_received_idx;
DROP TABLE automation_action_outcomes;
DROP TABLE automation_executions;
DROP TABLE automation_event_evaluations;
DROP TABLE automation_rule_versions;
DROP TABLE automation_rules;
