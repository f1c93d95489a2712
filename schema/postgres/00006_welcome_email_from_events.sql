-- +goose Up
-- welcome_email version 2: the seed's "Welcome Email Automation" rule sends this template with
-- the user.created event's data as template_data ({"user": {"email": …, "name": …}}), which has
-- no user_name or app_name, so version 1 (strict: a missing variable is an error) could never
-- render for it. Version 2 renders the same text as version 1 for the seed's notification request
-- (user_name, app_name) and also takes the name from a user object (user.name, else user.email);
-- app_name is optional. With none of them it still names the missing user_name.
-- A template an operator already changed (current_version > 1) is left alone; version 1 stays
-- available to requests that pin it.
INSERT INTO notification_template_versions (template_id, version, subject, body, html_body, created_at)
SELECT 'welcome_email', 2,
    E'{% if user_name is defined %}{% set name = user_name %}{% elif user is mapping and user.name is defined %}{% set name = user.name %}{% elif user is mapping and user.email is defined %}{% set name = user.email %}{% else %}{% set name = user_name %}{% endif %}'
    || E'Welcome{% if app_name is defined %} to {{ app_name }}{% endif %}, {{ name }}!',
    E'{% if user_name is defined %}{% set name = user_name %}{% elif user is mapping and user.name is defined %}{% set name = user.name %}{% elif user is mapping and user.email is defined %}{% set name = user.email %}{% else %}{% set name = user_name %}{% endif %}'
    || E'Hi {{ name }},\n\nWelcome{% if app_name is defined %} to {{ app_name }}{% endif %}! Your account is ready.\n\n'
    || E'The {% if app_name is defined %}{{ app_name }} {% endif %}team\n',
    E'{% if user_name is defined %}{% set name = user_name %}{% elif user is mapping and user.name is defined %}{% set name = user.name %}{% elif user is mapping and user.email is defined %}{% set name = user.email %}{% else %}{% set name = user_name %}{% endif %}'
    || E'<p>Hi {{ name }},</p>\n<p>Welcome{% if app_name is defined %} to <strong>{{ app_name }}</strong>{% endif %}! Your account is ready.</p>\n'
    || E'<p>The {% if app_name is defined %}{{ app_name }} {% endif %}team</p>\n',
    NOW()
FROM notification_templates t
WHERE t.id = 'welcome_email' AND t.current_version = 1
  AND NOT EXISTS (SELECT 1 FROM notification_template_versions v WHERE v.template_id = 'welcome_email' AND v.version = 2);

UPDATE notification_templates
SET current_version = 2, updated_at = NOW(),
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
