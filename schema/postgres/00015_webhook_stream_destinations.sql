-- +goose Up
-- Stream destinations: an endpoint's type is http (a POST to url), nats (a JetStream subject)
-- or amqp (a RabbitMQ exchange and routing key). For a broker endpoint broker_url is the broker's
-- URL with its credentials, encrypted like the signing secret; url keeps it with the password
-- redacted (what the API shows).
ALTER TABLE webhook_endpoints ADD COLUMN type TEXT NOT NULL DEFAULT 'http';
ALTER TABLE webhook_endpoints ADD COLUMN broker_url TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN exchange TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN routing_key TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN routing_key;
ALTER TABLE webhook_endpoints DROP COLUMN exchange;
ALTER TABLE webhook_endpoints DROP COLUMN subject;
ALTER TABLE webhook_endpoints DROP COLUMN broker_url;
ALTER TABLE webhook_endpoints DROP COLUMN type;
