-- +goose Up
-- See ../postgres/00003_notifications.sql for what each table is for.
-- Notification templates, keyed by a readable id (welcome_email). Every change is a new row in
-- notification_template_versions; current_version names the one sends use by default.
CREATE TABLE notification_templates (
    id              TEXT PRIMARY KEY,
    channel         TEXT        NOT NULL,
    description     TEXT        NOT NULL DEFAULT '',
    current_version INTEGER     NOT NULL,
    created_at      DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL
);

CREATE TABLE notification_template_versions (
    template_id TEXT        NOT NULL REFERENCES notification_templates (id) ON DELETE CASCADE,
    version     INTEGER     NOT NULL,
    subject     TEXT        NOT NULL DEFAULT '',
    body        TEXT        NOT NULL DEFAULT '',
    html_body   TEXT        NOT NULL DEFAULT '',
    created_at  DATETIME NOT NULL,
    PRIMARY KEY (template_id, version)
);

-- One row per send request (an email or SMS to up to 100 recipients), with the rendered content.
-- idempotency_key is a hash of the caller's scope and Idempotency-Key; the Temporal workflow id is
-- derived from it, which is what makes a repeated key start nothing new.
CREATE TABLE notifications (
    id               TEXT PRIMARY KEY,
    channel          TEXT        NOT NULL,
    status           TEXT        NOT NULL,
    subject          TEXT        NOT NULL DEFAULT '',
    body             TEXT        NOT NULL DEFAULT '',
    html_body        TEXT        NOT NULL DEFAULT '',
    cc               TEXT       NOT NULL DEFAULT '[]',
    bcc              TEXT       NOT NULL DEFAULT '[]',
    reply_to         TEXT        NOT NULL DEFAULT '',
    template_id      TEXT        NOT NULL DEFAULT '',
    template_version INTEGER     NOT NULL DEFAULT 0,
    priority         TEXT        NOT NULL DEFAULT 'normal',
    send_at          DATETIME,
    metadata         TEXT       NOT NULL DEFAULT '{}',
    idempotency_key  TEXT        NOT NULL DEFAULT '',
    request_hash     TEXT        NOT NULL DEFAULT '',
    workflow_id      TEXT        NOT NULL,
    causation_id     TEXT        NOT NULL DEFAULT '',
    correlation_id   TEXT        NOT NULL DEFAULT '',
    depth            INTEGER     NOT NULL DEFAULT 0,
    created_at       DATETIME NOT NULL,
    updated_at       DATETIME NOT NULL,
    completed_at     DATETIME
);
CREATE INDEX notifications_channel_idx ON notifications (channel, id DESC);
CREATE INDEX notifications_status_idx ON notifications (status, id DESC);
CREATE INDEX notifications_created_idx ON notifications (created_at);
CREATE INDEX notifications_idempotency_idx ON notifications (idempotency_key) WHERE idempotency_key <> '';

-- One row per recipient: its own status, retries and provider message id.
CREATE TABLE notification_deliveries (
    id                  TEXT PRIMARY KEY,
    notification_id     TEXT        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    position            INTEGER     NOT NULL,
    recipient           TEXT        NOT NULL,
    recipient_key       TEXT        NOT NULL,
    status              TEXT        NOT NULL,
    attempt_count       INTEGER     NOT NULL DEFAULT 0,
    provider            TEXT        NOT NULL DEFAULT '',
    provider_message_id TEXT        NOT NULL DEFAULT '',
    provider_status     TEXT        NOT NULL DEFAULT '',
    error               TEXT        NOT NULL DEFAULT '',
    error_code          TEXT        NOT NULL DEFAULT '',
    scheduled_at        DATETIME,
    sent_at             DATETIME,
    delivered_at        DATETIME,
    failed_at           DATETIME,
    updated_at          DATETIME NOT NULL
);
CREATE INDEX notification_deliveries_notification_idx ON notification_deliveries (notification_id, position);
CREATE INDEX notification_deliveries_recipient_idx ON notification_deliveries (recipient_key, notification_id);
CREATE INDEX notification_deliveries_provider_idx ON notification_deliveries (provider_message_id) WHERE provider_message_id <> '';

-- Every try of a delivery: when, what went wrong, and the Message-ID or provider SID, so that a
-- retry after an accepted send returns that send instead of sending again.
CREATE TABLE notification_attempts (
    delivery_id         TEXT        NOT NULL REFERENCES notification_deliveries (id) ON DELETE CASCADE,
    attempt             INTEGER     NOT NULL,
    status              TEXT        NOT NULL,
    provider_message_id TEXT        NOT NULL DEFAULT '',
    error               TEXT        NOT NULL DEFAULT '',
    error_code          TEXT        NOT NULL DEFAULT '',
    retryable           BOOLEAN     NOT NULL DEFAULT 0,
    started_at          DATETIME NOT NULL,
    finished_at         DATETIME,
    PRIMARY KEY (delivery_id, attempt)
);

-- The per-recipient throttle: the send slot reserved for each delivery and, once it is let
-- through, when (admitted_at). At most NOTIFICATION_RECIPIENT_LIMIT slots, and admissions, of a
-- channel and recipient fall in any window; a delivery over the limit gets a later slot and its
-- workflow sleeps until then.
CREATE TABLE notification_throttle_slots (
    delivery_id   TEXT PRIMARY KEY,
    channel       TEXT        NOT NULL,
    recipient_key TEXT        NOT NULL,
    slot_at       DATETIME NOT NULL,
    admitted_at   DATETIME
);
CREATE INDEX notification_throttle_slots_recipient_idx ON notification_throttle_slots (channel, recipient_key, slot_at DESC);
CREATE INDEX notification_throttle_slots_admitted_idx ON notification_throttle_slots (channel, recipient_key, admitted_at DESC);

-- The seed's templates, so its example requests work out of the box.
INSERT INTO notification_templates (id, channel, description, current_version, created_at, updated_at) VALUES
    ('welcome_email', 'email', 'Welcome a new user (data: user_name, app_name)', 1, strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now')),
    ('verification_sms', 'sms', 'A verification code (data: code, app_name; or the request''s message)', 1, strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now'));
INSERT INTO notification_template_versions (template_id, version, subject, body, html_body, created_at) VALUES
    ('welcome_email', 1, 'Welcome to {{ app_name }}, {{ user_name }}!',
     'Hi {{ user_name }},' || char(10) || char(10) || 'Welcome to {{ app_name }}! Your account is ready.' || char(10) || char(10) || 'The {{ app_name }} team' || char(10),
     '<p>Hi {{ user_name }},</p>' || char(10) || '<p>Welcome to <strong>{{ app_name }}</strong>! Your account is ready.</p>' || char(10) || '<p>The {{ app_name }} team</p>' || char(10),
     strftime('%Y-%m-%d %H:%M:%f', 'now')),
    ('verification_sms', 1, '',
     '{% if code is defined %}Your {{ app_name | default("verification") }} code is {{ code }}{% else %}{{ message }}{% endif %}',
     '', strftime('%Y-%m-%d %H:%M:%f', 'now'));

-- +goose Down
DROP TABLE notification_throttle_slots;
DROP TABLE notification_attempts;
DROP TABLE notification_deliveries;
DROP TABLE notifications;
DROP TABLE notification_template_versions;
DROP TABLE notification_templates;
