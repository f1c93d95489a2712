package templating

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func data() map[string]any {
	var d map[string]any
	_ = json.Unmarshal([]byte(`{
		"user_name": "John Doe", "app_name": "PyAirtable",
		"user": {"email": "john@example.com", "email_verified": true, "name": "<b>Jo</b>"},
		"items": [1, 2, 3], "count": 3
	}`), &d)
	return d
}

func TestRender(t *testing.T) {
	e := New(Options{})
	for src, want := range map[string]string{
		"Welcome {{ user_name }} to {{ app_name }}!":                       "Welcome John Doe to PyAirtable!",
		"{{ user.email }}":                                                 "john@example.com",
		"{{ user_name | upper }}":                                          "JOHN DOE",
		"{% if user.email_verified %}verified{% else %}pending{% endif %}": "verified",
		"{% for i in items %}{{ i }},{% endfor %}":                         "1,2,3,",
		"{{ missing | default('friend') }}":                                "friend",
		"{% if missing is defined %}x{% else %}y{% endif %}":               "y",
		"{% for i in range(3) %}{{ i }}{% endfor %}":                       "012",
		"no template here":                                                 "no template here",
		"{{ count * 2 }} of {{ items | length }}":                          "6 of 3",
		"{% set greeting = 'Hi ' ~ user_name %}{{ greeting }}":             "Hi John Doe",
		"{{ user.name }}":                                                  "<b>Jo</b>",
	} {
		got, err := e.Render(context.Background(), src, data())
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if got != want {
			t.Errorf("%s: %q, want %q", src, got, want)
		}
	}
}

func TestRenderHTMLEscapes(t *testing.T) {
	got, err := New(Options{}).RenderHTML(context.Background(), "<p>{{ user.name }}</p>{{ '<i>ok</i>' | safe }}", data())
	if err != nil {
		t.Fatal(err)
	}
	if got != "<p>&lt;b&gt;Jo&lt;/b&gt;</p><i>ok</i>" {
		t.Errorf("got %q", got)
	}
}

func TestMissingVariableIsNamed(t *testing.T) {
	e := New(Options{})
	for src, name := range map[string]string{
		"Hi {{ first_name }}": "first_name",
		"Hi {{ user.phone }}": "phone",
		"{{ order.id }}":      "order",
	} {
		_, err := e.Render(context.Background(), src, data())
		var te *Error
		if !errors.As(err, &te) {
			t.Errorf("%s: %v, want a template error", src, err)
			continue
		}
		if !strings.Contains(te.Msg, name) {
			t.Errorf("%s: message %q does not name %s", src, te.Msg, name)
		}
	}
}

func TestSandbox(t *testing.T) {
	e := New(Options{})
	for _, src := range []string{
		"{% include '/etc/passwd' %}",
		"{% import 'x' as y %}",
		"{% extends 'base' %}",
		"{% from 'x' import y %}",
		"{{ unclosed",
	} {
		if err := e.Compile(src, false); err == nil {
			t.Errorf("%s compiled", src)
		}
	}
	if _, err := e.Render(context.Background(), "{% for i in range(1000000000) %}{% endfor %}", nil); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge range: %v", err)
	}
	small := New(Options{MaxOutput: 100})
	_, err := small.Render(context.Background(), "{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", nil)
	if err == nil || !strings.Contains(err.Error(), "exceeds 100 bytes") {
		t.Errorf("output cap: %v", err)
	}
}

func TestRenderValueKeepsTypes(t *testing.T) {
	e := New(Options{})
	in := map[string]any{
		"to":     "{{ user.email }}",
		"count":  "{{ count }}",
		"items":  "{{ items }}",
		"user":   "{{ user }}",
		"text":   "{{ count }} items",
		"nested": []any{"{{ user_name }}", 5, true},
		"plain":  "x",
	}
	out, err := e.RenderValue(context.Background(), in, data())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(out)
	want := `{"count":3,"items":[1,2,3],"nested":["John Doe",5,true],"plain":"x","text":"3 items","to":"john@example.com","user":{"email":"john@example.com","email_verified":true,"name":"\u003cb\u003eJo\u003c/b\u003e"}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := e.RenderValue(context.Background(), map[string]any{"a": []any{"{{ nope }}"}}, data()); err == nil || !strings.Contains(err.Error(), "a: [0]") {
		t.Errorf("error path: %v", err)
	}
	problems := e.CompileValue(map[string]any{"ok": "{{ a }}", "bad": []any{"x", "{% if %}"}})
	if len(problems) != 1 || problems["bad[1]"] == nil {
		t.Errorf("CompileValue: %v", problems)
	}
}
