-- +goose Up
-- Channel fallback (issue 16): a notification may list channels in order; when a delivery
-- fails for good or is skipped, a delivery on the next channel replaces it. channel is the
-- delivery's own channel ('' means the notification's), fallback_of the delivery it replaces,
-- fallback_id the delivery that replaced it (a replaced delivery does not count towards the
-- notification's status).
ALTER TABLE notification_deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_deliveries ADD COLUMN fallback_of TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_deliveries ADD COLUMN fallback_id TEXT NOT NULL DEFAULT '';

-- Quiet hours (issue 16): a subscriber's daily window (HH:MM or HH:MM:SS in their time_zone,
-- '' for none) in which non-critical notifications wait; a delivery waiting for its end keeps
-- held_until and held_reason ('quiet_hours').
ALTER TABLE subscribers ADD COLUMN quiet_hours_start TEXT NOT NULL DEFAULT '';
ALTER TABLE subscribers ADD COLUMN quiet_hours_end TEXT NOT NULL DEFAULT '';
ALTER TABLE notification_deliveries ADD COLUMN held_until TIMESTAMPTZ NULL;
ALTER TABLE notification_deliveries ADD COLUMN held_reason TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE notification_deliveries DROP COLUMN held_reason;
ALTER TABLE notification_deliveries DROP COLUMN held_until;
ALTER TABLE subscribers DROP COLUMN quiet_hours_end;
ALTER TABLE subscribers DROP COLUMN quiet_hours_start;
ALTER TABLE notification_deliveries DROP COLUMN fallback_id;
ALTER TABLE notification_deliveries DROP COLUMN fallback_of;
ALTER TABLE notification_deliveries DROP COLUMN channel;
