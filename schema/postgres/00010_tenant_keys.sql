-- +goose Up
-- Tenants (issue 13), the keys: ids a client chooses (event ids, notification template ids,
-- inbound source names) and the ids derived from them (an event's webhook message, its rule
-- evaluation) were unique across tenants, so that one tenant could not use an id another had
-- taken, and the refusal told it that the id existed. They are unique per tenant from here on.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (tenant_id, id);

ALTER TABLE automation_event_evaluations DROP CONSTRAINT automation_event_evaluations_pkey;
ALTER TABLE automation_event_evaluations ADD CONSTRAINT automation_event_evaluations_pkey PRIMARY KEY (tenant_id, event_id);

-- The seed templates stay the default tenant's, shared with every tenant; another tenant may now
-- define its own of the same id, which it then renders instead.
ALTER TABLE notification_template_versions DROP CONSTRAINT notification_template_versions_template_id_fkey;
ALTER TABLE notification_template_versions DROP CONSTRAINT notification_template_versions_pkey;
ALTER TABLE notification_templates DROP CONSTRAINT notification_templates_pkey;
ALTER TABLE notification_templates ADD CONSTRAINT notification_templates_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE notification_template_versions ADD CONSTRAINT notification_template_versions_pkey
    PRIMARY KEY (tenant_id, template_id, version);
ALTER TABLE notification_template_versions ADD CONSTRAINT notification_template_versions_template_id_fkey
    FOREIGN KEY (tenant_id, template_id) REFERENCES notification_templates (tenant_id, id) ON DELETE CASCADE;

-- Inbound sources are named per tenant (the inbound URL of a tenant's source names its id when
-- the name alone would not say whose it is).
ALTER TABLE webhook_sources DROP CONSTRAINT webhook_sources_name_key;
ALTER TABLE webhook_sources ADD CONSTRAINT webhook_sources_tenant_name_key UNIQUE (tenant_id, name);
CREATE INDEX webhook_sources_name_idx ON webhook_sources (name, created_at);

-- An event's webhook message takes the event's id.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_message_id_fkey;
ALTER TABLE webhook_messages DROP CONSTRAINT webhook_messages_pkey;
ALTER TABLE webhook_messages ADD CONSTRAINT webhook_messages_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_message_id_fkey
    FOREIGN KEY (tenant_id, message_id) REFERENCES webhook_messages (tenant_id, id) ON DELETE CASCADE;
CREATE INDEX webhook_deliveries_message_idx ON webhook_deliveries (tenant_id, message_id);

-- Daily quotas (executions_per_day, messages_per_day): what each tenant has taken per UTC day,
-- raised in the transaction that creates the work, whoever starts it (store.ReserveQuota).
CREATE TABLE tenant_quota_usage (
    tenant_id TEXT    NOT NULL,
    quota     TEXT    NOT NULL,
    day       TEXT    NOT NULL,
    used      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, quota, day)
);

-- +goose Down
-- The keys stay composite: going back to global ids would have to drop rows of one tenant or
-- another wherever two tenants chose the same id.
DROP TABLE tenant_quota_usage;
