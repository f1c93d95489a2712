-- +goose Up
-- A tenant's notification settings (issue 16): its default quiet hours (HH:MM or HH:MM:SS in
-- time_zone, UTC when it is ''; both '' for none), which apply to its subscribers who have no
-- quiet hours of their own, in the subscriber's time zone when they have one. One row per
-- tenant, written on the first PUT /api/v1/notifications/settings.
CREATE TABLE notification_settings (
    tenant_id         TEXT PRIMARY KEY,
    quiet_hours_start TEXT        NOT NULL DEFAULT '',
    quiet_hours_end   TEXT        NOT NULL DEFAULT '',
    time_zone         TEXT        NOT NULL DEFAULT '',
    updated_at        TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE notification_settings;
