-- +goose Up
-- See ../postgres/00014_notification_fallback.sql for what the columns are for.
ALTER TABLE notification_deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_deliveries ADD COLUMN fallback_of TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_deliveries ADD COLUMN fallback_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subscribers ADD COLUMN quiet_hours_start TEXT NOT NULL DEFAULT '';
ALTER TABLE subscribers ADD COLUMN quiet_hours_end TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_deliveries ADD COLUMN held_until DATETIME NULL;
ALTER TABLE notification_deliveries ADD COLUMN held_reason TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE notification_deliveries DROP COLUMN held_reason;
ALTER TABLE notification_deliveries DROP COLUMN held_until;
ALTER TABLE subscribers DROP COLUMN quiet_hours_end;
ALTER TABLE subscribers DROP COLUMN quiet_hours_start;
ALTER TABLE notification_deliveries DROP COLUMN fallback_id;
ALTER TABLE notification_deliveries DROP COLUMN fallback_of;
ALTER TABLE notification_deliveries DROP COLUMN channel;
