package webhooks

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/validation"
)

func problemFields(t *testing.T, err error) string {
	t.Helper()
	var p validation.Problems
	if !errors.As(err, &p) {
		t.Fatalf("want validation problems, got %v", err)
	}
	var out []string
	for _, q := range p {
		out = append(out, q.Field)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestBrokerEndpoints(t *testing.T) {
	svc, st, _ := newInboundService(t, Settings{})
	ctx := context.Background()

	_, err := svc.CreateEndpoint(ctx, EndpointInput{Name: "n", Type: TypeNATS, URL: "nats://u:pw@127.0.0.1:4222", Subject: "orders.events"})
	if got := problemFields(t, err); got != "url" {
		t.Fatalf("loopback broker without allowance: %s (%v)", got, err)
	}
	svc.egress = &netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

	e, err := svc.CreateEndpoint(ctx, EndpointInput{Name: "n", Type: TypeNATS, URL: "nats://u:pw@127.0.0.1:4222", Subject: "orders.events"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != TypeNATS || e.Subject != "orders.events" || strings.Contains(e.URL, "pw") || !strings.Contains(e.URL, "127.0.0.1:4222") {
		t.Fatalf("view: %+v", e)
	}
	row, err := st.GetWebhookEndpointAny(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row.BrokerURL, "pw") || strings.Contains(row.URL, "pw") {
		t.Fatalf("stored in the clear: %q %q", row.URL, row.BrokerURL)
	}
	if plain, err := svc.secrets.BrokerURL(row); err != nil || plain != "nats://u:pw@127.0.0.1:4222" {
		t.Fatalf("open: %q %v", plain, err)
	}

	a, err := svc.CreateEndpoint(ctx, EndpointInput{Name: "a", Type: TypeAMQP, URL: "amqp://guest:guest@127.0.0.1:5672/", Exchange: "events", RoutingKey: "orders.created"})
	if err != nil || a.Type != TypeAMQP || a.Exchange != "events" || a.RoutingKey != "orders.created" || strings.Contains(a.URL, ":guest@") {
		t.Fatalf("amqp: %+v %v", a, err)
	}
	h, err := svc.CreateEndpoint(ctx, EndpointInput{Name: "h", URL: "http://127.0.0.1:9/hook"})
	if err != nil || h.Type != TypeHTTP {
		t.Fatalf("http: %+v %v", h, err)
	}

	for _, c := range []struct {
		in   EndpointInput
		want string
	}{
		{EndpointInput{Name: "x", Type: "kafka", URL: "kafka://127.0.0.1"}, "type"},
		{EndpointInput{Name: "x", Type: TypeNATS, URL: "nats://127.0.0.1:4222"}, "subject"},
		{EndpointInput{Name: "x", Type: TypeNATS, URL: "nats://127.0.0.1:4222", Subject: "orders.*"}, "subject"},
		{EndpointInput{Name: "x", Type: TypeNATS, URL: "http://127.0.0.1:4222", Subject: "a", Exchange: "e"}, "exchange,url"},
		{EndpointInput{Name: "x", Type: TypeNATS, URL: "nats://127.0.0.1:4222,nats://127.0.0.2:4222", Subject: "a"}, "url"},
		{EndpointInput{Name: "x", Type: TypeNATS, URL: "nats://169.254.169.254:4222", Subject: "a"}, "url"},
		{EndpointInput{Name: "x", Type: TypeAMQP, URL: "amqp://127.0.0.1:5672/"}, "routing_key"},
		{EndpointInput{Name: "x", Type: TypeAMQP, URL: "nats://127.0.0.1:5672/", RoutingKey: "q", Subject: "s"}, "subject,url"},
		{EndpointInput{Name: "x", Type: TypeAMQP, URL: "amqp://127.0.0.1:5672/", Exchange: "has space", RoutingKey: "q"}, "exchange"},
		{EndpointInput{Name: "x", URL: "http://127.0.0.1:9/hook", Subject: "s", RoutingKey: "k"}, "routing_key,subject"},
	} {
		_, err := svc.CreateEndpoint(ctx, c.in)
		if got := problemFields(t, err); got != c.want {
			t.Errorf("%+v: problems at %s, want %s (%v)", c.in, got, c.want, err)
		}
	}
}
