package catalog

import (
	"context"
	"encoding/json"
	"strings"
)

// AsyncAPIVersion is the AsyncAPI version Document writes.
const AsyncAPIVersion = "3.0.0"

// Document is the tenant's catalog as an AsyncAPI 3 document, for consumers' tools (code
// generators, docs): one channel per event type (its address the type's name), one receive
// operation per channel (endpoints receive these messages) and one message per type with its
// JSON Schema as the payload (of the "data" field a webhook body carries) and its example.
// Deprecated types are marked with x-deprecated.
func (s *Service) Document(ctx context.Context, version string) (map[string]any, error) {
	types, err := s.All(ctx)
	if err != nil {
		return nil, err
	}
	if version == "" {
		version = "1.0.0"
	}
	channels, operations, messages := map[string]any{}, map[string]any{}, map[string]any{}
	for _, t := range types {
		key := componentKey(t.Name)
		msg := map[string]any{
			"name": t.Name, "title": t.Name, "contentType": "application/json",
			"payload": map[string]any{
				// Draft 2020-12 schemas; AsyncAPI names draft-07 as its newest JSON Schema format.
				"schemaFormat": "application/schema+json;version=draft-07",
				"schema":       schemaOrAny(t.Schema),
			},
		}
		if t.Description != "" {
			msg["summary"] = firstSentence(t.Description)
			msg["description"] = t.Description
		}
		if len(t.Example) > 0 {
			msg["examples"] = []any{map[string]any{"name": "example", "payload": json.RawMessage(t.Example)}}
		}
		if t.Deprecated {
			msg["x-deprecated"] = true
		}
		msg["x-version"] = t.Version
		messages[key] = msg
		channels[key] = map[string]any{
			"address":  t.Name,
			"messages": map[string]any{key: map[string]any{"$ref": "#/components/messages/" + key}},
		}
		operations["receive-"+key] = map[string]any{
			"action":   "receive",
			"summary":  "An endpoint subscribed to " + t.Name + " receives these messages.",
			"channel":  map[string]any{"$ref": "#/channels/" + key},
			"messages": []any{map[string]any{"$ref": "#/channels/" + key + "/messages/" + key}},
		}
	}
	return map[string]any{
		"asyncapi": AsyncAPIVersion,
		"info": map[string]any{
			"title":   "Automation Domain Service events",
			"version": version,
			"description": "The event types of this tenant's catalog. Webhook endpoints receive each as a signed " +
				"Standard Webhooks request whose body is {\"type\", \"timestamp\", \"data\"}; data follows the message's payload schema.",
		},
		"defaultContentType": "application/json",
		"channels":           channels,
		"operations":         operations,
		"components":         map[string]any{"messages": messages},
	}, nil
}

// componentKey is an event type's name as an AsyncAPI component key (^[\w\d.\-_]+$, which
// every valid name already is).
func componentKey(name string) string { return name }

func schemaOrAny(schema json.RawMessage) any {
	if len(schema) == 0 {
		return map[string]any{}
	}
	return schema
}

func firstSentence(s string) string {
	if i := strings.IndexAny(s, ".\n"); i > 0 {
		return s[:i+1]
	}
	return s
}
