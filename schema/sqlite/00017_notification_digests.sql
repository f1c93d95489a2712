-- +goose Up
-- See ../postgres/00017_notification_digests.sql for what the table and columns are for.
ALTER TABLE notification_categories ADD COLUMN digest_window_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notification_categories ADD COLUMN digest_until TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_categories ADD COLUMN digest_template_id TEXT NOT NULL DEFAULT '';
CREATE TABLE notification_digests (
    tenant_id       TEXT     NOT NULL,
    id              TEXT     NOT NULL,
    subscriber_id   TEXT     NOT NULL,
    category        TEXT     NOT NULL,
    channel         TEXT     NOT NULL,
    status          TEXT     NOT NULL,
    leader_id       TEXT     NOT NULL,
    closes_at       DATETIME NOT NULL,
    notification_id TEXT     NOT NULL,
    delivery_id     TEXT     NOT NULL,
    template_id     TEXT     NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL,
    closed_at       DATETIME NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX notification_digests_open_idx ON notification_digests (tenant_id, subscriber_id, category, channel)
    WHERE status = 'open';
ALTER TABLE notification_deliveries ADD COLUMN digest_id TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_deliveries ADD COLUMN digest_notification_id TEXT NOT NULL DEFAULT '';
CREATE INDEX notification_deliveries_digest_idx ON notification_deliveries (tenant_id, digest_id) WHERE digest_id <> '';

-- +goose Down
DROP INDEX notification_deliveries_digest_idx;
ALTER TABLE notification_deliveries DROP COLUMN digest_notification_id;
ALTER TABLE notification_deliveries DROP COLUMN digest_id;
DROP TABLE notification_digests;
ALTER TABLE notification_categories DROP COLUMN digest_template_id;
ALTER TABLE notification_categories DROP COLUMN digest_until;
ALTER TABLE notification_categories DROP COLUMN digest_window_seconds;
