-- +goose Up
-- Issue 17: the event catalog (event types with JSON Schemas, per tenant), the tenant's catalog
-- setting, and per-endpoint filters, transformations and destination kinds.
CREATE TABLE event_types (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    name        TEXT        NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    -- schema and example are kept as given (TEXT, not JSONB); '' when none.
    schema      TEXT        NOT NULL DEFAULT '',
    example     TEXT        NOT NULL DEFAULT '',
    deprecated  BOOLEAN     NOT NULL DEFAULT FALSE,
    -- versions: a JSON array of {version, schema, example, created_at}, oldest first.
    versions    TEXT        NOT NULL DEFAULT '[]',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX event_types_name_idx ON event_types (tenant_id, name);
CREATE INDEX event_types_tenant_idx ON event_types (tenant_id, id DESC);

CREATE TABLE event_catalog_settings (
    tenant_id            TEXT PRIMARY KEY,
    reject_unknown_types BOOLEAN     NOT NULL DEFAULT FALSE,
    updated_at           TIMESTAMPTZ NOT NULL
);

ALTER TABLE webhook_endpoints ADD COLUMN filter TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN transform TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN transform;
ALTER TABLE webhook_endpoints DROP COLUMN filter;
DROP TABLE event_catalog_settings;
DROP TABLE event_types;
