package webhooks

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Limits of broker destinations.
const maxBrokerName = 255

var (
	// natsToken is one token of a JetStream subject to publish on (no wildcards, no spaces).
	natsToken = regexp.MustCompile(`^[A-Za-z0-9_\-$:]+$`)
	// amqpName is an exchange name or routing key RabbitMQ accepts (printable, no spaces).
	amqpName = regexp.MustCompile(`^[\x21-\x7e]*$`)
)

// destination is where an endpoint's messages go: its type and the type's settings.
type destination struct {
	Type, URL, Subject, Exchange, RoutingKey string
}

// checkDestination validates an endpoint's destination: an http(s) URL the SSRF guard allows,
// or a broker URL whose host it allows with the subject, or exchange and routing key.
func (s *Service) checkDestination(ctx context.Context, p *validation.Problems, d destination) {
	only := func(field, value, kind string) {
		if value != "" {
			p.Add(field, "is only for %s endpoints", kind)
		}
	}
	switch d.Type {
	case TypeHTTP:
		s.checkURL(ctx, p, d.URL)
		only("subject", d.Subject, "nats")
		only("exchange", d.Exchange, "amqp")
		only("routing_key", d.RoutingKey, "amqp")
	case TypeNATS:
		s.checkBrokerURL(ctx, p, d.URL, "nats", "tls")
		checkSubject(p, d.Subject)
		only("exchange", d.Exchange, "amqp")
		only("routing_key", d.RoutingKey, "amqp")
	case TypeAMQP:
		s.checkBrokerURL(ctx, p, d.URL, "amqp", "amqps")
		only("subject", d.Subject, "nats")
		checkAMQPName(p, "exchange", d.Exchange)
		checkAMQPName(p, "routing_key", d.RoutingKey)
		if d.Exchange == "" && d.RoutingKey == "" {
			p.Add("routing_key", "is required with the default exchange (it names the queue)")
		}
	default:
		p.Add("type", "must be one of http, nats, amqp")
	}
}

func checkSubject(p *validation.Problems, subject string) {
	switch {
	case subject == "":
		p.Add("subject", "is required")
		return
	case len(subject) > maxBrokerName:
		p.Add("subject", "must be at most %d characters", maxBrokerName)
		return
	}
	for _, tok := range strings.Split(subject, ".") {
		if !natsToken.MatchString(tok) {
			p.Add("subject", "must be dot-separated tokens of letters, digits, _ - $ : (no wildcards)")
			return
		}
	}
}

func checkAMQPName(p *validation.Problems, field, v string) {
	if len(v) > maxBrokerName {
		p.Add(field, "must be at most %d characters", maxBrokerName)
	} else if !amqpName.MatchString(v) {
		p.Add(field, "must be printable ASCII without spaces")
	}
}

// checkBrokerURL validates a broker URL (one server; credentials allowed: they are stored
// encrypted) and runs its host through the SSRF guard as an HTTP URL's.
func (s *Service) checkBrokerURL(ctx context.Context, p *validation.Problems, raw string, schemes ...string) {
	if raw == "" {
		p.Add("url", "is required")
		return
	}
	if len(raw) > maxURLLength {
		p.Add("url", "must be at most %d characters", maxURLLength)
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" || strings.Contains(raw, ",") || (u.Scheme != schemes[0] && u.Scheme != schemes[1]) {
		p.Add("url", "must be one %s:// or %s:// URL with a host", schemes[0], schemes[1])
		return
	}
	if u.Scheme == "amqp" || u.Scheme == "amqps" {
		if _, err := amqp.ParseURI(raw); err != nil {
			p.Add("url", "%v", err)
			return
		}
	}
	if err := s.egress.CheckURL(ctx, "https://"+u.Host); err != nil {
		var be *netguard.BlockedError
		if errors.As(err, &be) {
			p.Add("url", "%s", be.Error())
		} else {
			p.Add("url", "cannot be checked: %v", err)
		}
	}
}

// setDestination stores a checked destination on a new endpoint row: a broker URL sealed
// (bound to the endpoint) and shown redacted.
func (s *Service) setDestination(e *store.WebhookEndpoint, d destination) error {
	e.Type, e.Subject, e.Exchange, e.RoutingKey, e.URL = d.Type, d.Subject, d.Exchange, d.RoutingKey, d.URL
	if d.Type == TypeHTTP {
		return nil
	}
	sealed, err := s.secrets.Seal(d.URL, brokerURLOwner(e.ID))
	if err != nil {
		return err
	}
	e.BrokerURL, e.URL = sealed, RedactURL(d.URL)
	return nil
}

// patchDestination checks the destination fields of a patch against the stored endpoint and
// sets the columns that change. It says whether the address changed.
func (s *Service) patchDestination(ctx context.Context, p *validation.Problems, cur store.WebhookEndpoint, in EndpointPatch, cols map[string]any) bool {
	if in.URL == nil && in.Subject == nil && in.Exchange == nil && in.RoutingKey == nil {
		return false
	}
	d := destination{Type: EndpointType(cur), URL: cur.URL, Subject: cur.Subject, Exchange: cur.Exchange, RoutingKey: cur.RoutingKey}
	set := func(v *string, dst *string, col string) {
		if v != nil {
			*dst = *v
			cols[col] = *v
		}
	}
	set(in.Subject, &d.Subject, "subject")
	set(in.Exchange, &d.Exchange, "exchange")
	set(in.RoutingKey, &d.RoutingKey, "routing_key")
	if in.URL != nil {
		d.URL = *in.URL
	} else if d.Type != TypeHTTP {
		d.URL = "" // the stored URL is sealed: check the rest only
	}
	var q validation.Problems
	s.checkDestination(ctx, &q, d)
	for _, problem := range q {
		if problem.Field == "url" && in.URL == nil {
			continue
		}
		*p = append(*p, problem)
	}
	if in.URL != nil {
		if d.Type == TypeHTTP {
			cols["url"] = d.URL
		} else if sealed, err := s.secrets.Seal(d.URL, brokerURLOwner(cur.ID)); err == nil {
			cols["url"], cols["broker_url"] = RedactURL(d.URL), sealed
		} else {
			p.Add("url", "cannot be stored: %v", err)
		}
	}
	return in.URL != nil
}

// EndpointType is the endpoint's type (rows from before schema 00015 are http).
func EndpointType(e store.WebhookEndpoint) string {
	if e.Type == "" {
		return TypeHTTP
	}
	return e.Type
}

// BrokerURL opens a broker endpoint's sealed URL (with its credentials).
func (b *SecretBox) BrokerURL(e store.WebhookEndpoint) (string, error) {
	return b.Open(e.BrokerURL, brokerURLOwner(e.ID))
}

func brokerURLOwner(endpointID string) string { return endpointID + "/broker_url" }
