package webhooks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEndpointFilters(t *testing.T) {
	tr := NewTransformer(nil)
	view, err := EventView("", "order.created", time.Time{}, []byte(`{"total": 150, "tags": ["vip"]}`))
	if err != nil {
		t.Fatal(err)
	}
	view = filterView(view)
	for src, want := range map[string]bool{
		"":                          true,
		`event.data.total > 100`:    true,
		`event.type == "order.new"`: false,
		`"vip" in event.data.tags`:  true,
		`event.data.missing == nil`: true,
	} {
		got, err := tr.Filter(context.Background(), src, view)
		if err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", src, got, err, want)
		}
	}
	if msg := tr.CheckFilter("event.data.total >"); msg == "" {
		t.Error("a filter that does not compile passes the check")
	}
	if msg := tr.CheckFilter("nope.x == 1"); msg == "" {
		t.Error("a filter over an unknown name passes the check")
	}
	// A runaway filter stops at the sandbox's limits.
	if _, err := tr.Filter(context.Background(), `len(map(1..100000000, # * 2)) > 0`, view); err == nil {
		t.Error("a runaway filter was not stopped")
	}
}

func TestEndpointTransforms(t *testing.T) {
	tr := NewTransformer(nil)
	view, err := EventView("msg_1", "order.created", time.Unix(0, 0), []byte(`{"total": 150}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Transform(context.Background(), `{body: {amount: .data.total, id: .id}, headers: {"X-A": "b"}, event_type: "order.v2"}`, view)
	if err != nil || string(res.Body) != `{"amount":150,"id":"msg_1"}` || res.Headers["X-A"] != "b" || res.EventType != "order.v2" {
		t.Errorf("transform: %+v %v", res, err)
	}
	for src, want := range map[string]string{
		`.data`:               "body: is required",
		`{body: 1, other: 2}`: "other",
		`{body: 1, headers: {"webhook-id": "x"}}`: "set by the service",
		`{body: 1, event_type: "a b"}`:            "event_type",
		`error("boom")`:                           "boom",
		`[1, 2]`:                                  "an array",
		`def f: f; f`:                             "",
	} {
		_, err := tr.Transform(context.Background(), src, view)
		var te *TransformError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a transform error with %q", src, err, want)
		}
	}
	if msg := tr.CheckTransform("{body: "); msg == "" {
		t.Error("a transform that does not compile passes the check")
	}
}
