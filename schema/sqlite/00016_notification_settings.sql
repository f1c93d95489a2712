-- +goose Up
-- See ../postgres/00016_notification_settings.sql for what the table is for.
CREATE TABLE notification_settings (
    tenant_id         TEXT PRIMARY KEY,
    quiet_hours_start TEXT     NOT NULL DEFAULT '',
    quiet_hours_end   TEXT     NOT NULL DEFAULT '',
    time_zone         TEXT     NOT NULL DEFAULT '',
    updated_at        DATETIME NOT NULL
);

-- +goose Down
DROP TABLE notification_settings;
