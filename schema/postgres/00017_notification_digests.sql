-- +goose Up
-- Digests (issue 16). A category may be digested: its non-critical notifications to one
-- subscriber within a window (digest_window_seconds from the first, or until the next
-- digest_until, HH:MM in the subscriber's time zone) are held and sent as one message listing
-- them, rendered with digest_template_id when set.
ALTER TABLE notification_categories ADD COLUMN digest_window_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notification_categories ADD COLUMN digest_until TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_categories ADD COLUMN digest_template_id TEXT NOT NULL DEFAULT '';

-- One window of one subscriber's digest of a category on a channel. It is open while items join
-- it and closed once its message is composed; at most one is open per key. leader_id is the
-- delivery whose SendNotification workflow holds the window on a durable timer and then sends
-- it; notification_id and delivery_id are the digest message's, chosen when the window opens so
-- that every item shows where it went and a retried close composes the same message.
CREATE TABLE notification_digests (
    tenant_id       TEXT        NOT NULL,
    id              TEXT        NOT NULL,
    subscriber_id   TEXT        NOT NULL,
    category        TEXT        NOT NULL,
    channel         TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    leader_id       TEXT        NOT NULL,
    closes_at       TIMESTAMPTZ NOT NULL,
    notification_id TEXT        NOT NULL,
    delivery_id     TEXT        NOT NULL,
    template_id     TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    closed_at       TIMESTAMPTZ NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX notification_digests_open_idx ON notification_digests (tenant_id, subscriber_id, category, channel)
    WHERE status = 'open';

-- A digested delivery points at its digest and at the digest's notification.
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
