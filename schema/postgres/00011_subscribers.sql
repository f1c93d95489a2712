-- +goose Up
-- Subscribers, preferences, categories and suppressions (issue 16). A notification may address
-- subscribers; each delivery is checked at send time against the recipient's suppression and
-- the subscriber's preferences, and a skipped delivery keeps the reason.
CREATE TABLE subscribers (
    tenant_id   TEXT        NOT NULL,
    id          TEXT        NOT NULL,
    external_id TEXT        NOT NULL,
    email       TEXT        NOT NULL DEFAULT '',
    phone       TEXT        NOT NULL DEFAULT '',
    time_zone   TEXT        NOT NULL DEFAULT '',
    locale      TEXT        NOT NULL DEFAULT '',
    data        JSONB       NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX subscribers_external_idx ON subscribers (tenant_id, external_id);
CREATE INDEX subscribers_email_idx ON subscribers (tenant_id, email) WHERE email <> '';
CREATE INDEX subscribers_phone_idx ON subscribers (tenant_id, phone) WHERE phone <> '';

-- A subscriber's choice for one channel and category; '' in either means every one. The most
-- specific row wins (channel+category, then category, then channel, then '').
CREATE TABLE subscriber_preferences (
    tenant_id     TEXT        NOT NULL,
    subscriber_id TEXT        NOT NULL,
    channel       TEXT        NOT NULL DEFAULT '',
    category      TEXT        NOT NULL DEFAULT '',
    enabled       BOOLEAN     NOT NULL,
    source        TEXT        NOT NULL DEFAULT 'api',
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, subscriber_id, channel, category)
);

-- A tenant's categories: its default (opted in unless default_enabled is false) and whether it
-- is transactional (never opted out of, no List-Unsubscribe).
CREATE TABLE notification_categories (
    tenant_id       TEXT        NOT NULL,
    id              TEXT        NOT NULL,
    description     TEXT        NOT NULL DEFAULT '',
    transactional   BOOLEAN     NOT NULL DEFAULT FALSE,
    default_enabled BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Addresses not to send to again: hard bounces, complaints, permanent provider errors.
CREATE TABLE notification_suppressions (
    tenant_id  TEXT        NOT NULL,
    channel    TEXT        NOT NULL,
    address    TEXT        NOT NULL,
    reason     TEXT        NOT NULL,
    source     TEXT        NOT NULL,
    detail     TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, channel, address)
);

ALTER TABLE notifications ADD COLUMN category TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_deliveries ADD COLUMN subscriber_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE notification_deliveries DROP COLUMN subscriber_id;
ALTER TABLE notifications DROP COLUMN category;
DROP TABLE notification_suppressions;
DROP TABLE notification_categories;
DROP TABLE subscriber_preferences;
DROP TABLE subscribers;
