-- +goose Up
-- See ../postgres/00006_welcome_email_from_events.sql for why.
INSERT INTO notification_template_versions (template_id, version, subject, body, html_body, created_at)
SELECT 'welcome_email', 2,
    '{% if user_name is defined %}{% set name = user_name %}{% elif user is mapping and user.name is defined %}{% set name = user.name %}{% elif user is mapping and user.email is defined %}{% set name = user.email %}{% else %}{% set name = user_name %}{% endif %}'
    || 'Welcome{% if app_name is defined %} to {{ app_name }}{% endif %}, {{ name }}!',
    '{% if user_name is defined %}{% set name = user_name %}{% elif user is mapping and user.name is defined %}{% set name = user.name %}{% elif user is mapping and user.email is defined %}{% set name = user.email %}{% else %}{% set name = user_name %}{% endif %}'
    || 'Hi {{ name }},' || char(10) || char(10) || 'Welcome{% if app_name is defined %} to {{ app_name }}{% endif %}! Your account is ready.' || char(10) || char(10)
    || 'The {% if app_name is defined %}{{ app_name }} {% endif %}team' || char(10),
    '{% if user_name is defined %}{% set name = user_name %}{% elif user is mapping and user.name is defined %}{% set name = user.name %}{% elif user is mapping and user.email is defined %}{% set name = user.email %}{% else %}{% set name = user_name %}{% endif %}'
    || '<p>Hi {{ name }},</p>' || char(10) || '<p>Welcome{% if app_name is defined %} to <strong>{{ app_name }}</strong>{% endif %}! Your account is ready.</p>' || char(10)
    || '<p>The {% if app_name is defined %}{{ app_name }} {% endif %}team</p>' || char(10),
    strftime('%Y-%m-%d %H:%M:%f', 'now')
FROM notification_templates t
WHERE t.id = 'welcome_email' AND t.current_version = 1
  AND NOT EXISTS (SELECT 1 FROM notification_template_versions v WHERE v.template_id = 'welcome_email' AND v.version = 2);

UPDATE notification_templates
SET current_version = 2, updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now'),
    description = 'Welcome a new user (data: user_name, or a user object with name or email; app_name optional)'
WHERE id = 'welcome_email' AND current_version = 1
  AND EXISTS (SELECT 1 FROM notification_template_versions v WHERE v.template_id = 'welcome_email' AND v.version = 2);

-- +goose Down
UPDATE notification_templates
SET current_version = 1, description = 'Welcome a new user (data: user_name, app_name)'
WHERE id = 'welcome_email' AND current_version = 2;
DELETE FROM notification_template_versions
WHERE template_id = 'welcome_email' AND version = 2
  AND NOT EXISTS (SELECT 1 FROM notification_templates t WHERE t.id = 'welcome_email' AND t.current_version >= 2);
