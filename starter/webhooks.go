package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// webhooksCmd is `starter webhooks endpoints|deliver|deliveries …`.
func webhooksCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "webhooks", Short: "Manage webhook endpoints, send messages and read the delivery log"}
	endpoints := &cobra.Command{Use: "endpoints", Short: "Webhook endpoints"}
	endpoints.AddCommand(webhookEndpointsListCmd(c), webhookEndpointsCreateCmd(c), webhookEndpointShowCmd(c),
		webhookEndpointSetEnabledCmd(c, "enable", true), webhookEndpointSetEnabledCmd(c, "disable", false),
		webhookEndpointDeleteCmd(c), webhookEndpointSecretCmd(c), webhookEndpointRecoverCmd(c))
	deliveries := &cobra.Command{Use: "deliveries", Short: "The delivery log"}
	deliveries.AddCommand(webhookDeliveriesListCmd(c), webhookDeliveryShowCmd(c), webhookDeliveryRetryCmd(c))
	cmd.AddCommand(endpoints, webhookDeliverCmd(c), deliveries)
	return cmd
}

type endpointSummary struct {
	ID                  string   `json:"id"`
	Name                string   `json:"name"`
	URL                 string   `json:"url"`
	Events              []string `json:"events"`
	Enabled             bool     `json:"enabled"`
	DisabledReason      string   `json:"disabled_reason"`
	Ordered             bool     `json:"ordered"`
	ConsecutiveFailures int      `json:"consecutive_failures"`
}

func webhookEndpointsListCmd(c *apiClient) *cobra.Command {
	var enabled string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List webhook endpoints, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, next, err := c.list("/api/v1/webhooks/endpoints"+query("enabled", enabled), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[endpointSummary](items)
			if err != nil {
				return err
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tNAME\tURL\tEVENTS\tENABLED\tFAILURES")
			for _, it := range rows {
				state := strconv.FormatBool(it.Enabled)
				if !it.Enabled && it.DisabledReason != "" {
					state += " (" + it.DisabledReason + ")"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", it.ID, it.Name, it.URL, strings.Join(it.Events, ","), state, it.ConsecutiveFailures)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&enabled, "enabled", "", "true or false")
	lf.add(cmd)
	return cmd
}

func webhookEndpointsCreateCmd(c *apiClient) *cobra.Command {
	var body struct {
		Name               string            `json:"name"`
		URL                string            `json:"url"`
		Events             []string          `json:"events,omitempty"`
		Secret             string            `json:"secret,omitempty"`
		Description        string            `json:"description,omitempty"`
		Headers            map[string]string `json:"headers,omitempty"`
		RateLimitPerSecond int               `json:"rate_limit_per_second,omitempty"`
		Ordered            bool              `json:"ordered,omitempty"`
		MaxAttempts        int               `json:"max_attempts,omitempty"`
		RetrySchedule      []string          `json:"retry_schedule,omitempty"`
		TimeoutSeconds     int               `json:"timeout_seconds,omitempty"`
	}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Register an endpoint (prints its id and signing secret)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var e endpointSummary
			raw, _, err := c.call("POST", "/api/v1/webhooks/endpoints", body, &e)
			if err != nil || c.printJSON(raw) {
				return err
			}
			var sec struct {
				Key string `json:"key"`
			}
			if _, _, err := c.call("GET", "/api/v1/webhooks/endpoints/"+e.ID+"/secret", nil, &sec); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "endpoint %s\nsecret %s\n", e.ID, sec.Key)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&body.Name, "name", "", "endpoint name (required)")
	f.StringVar(&body.URL, "url", "", "receiver URL (required)")
	f.StringSliceVar(&body.Events, "events", nil, "event types or patterns, comma-separated (default *)")
	f.StringVar(&body.Secret, "secret", "", "signing secret (default: a generated whsec_ secret)")
	f.StringVar(&body.Description, "description", "", "description")
	f.StringToStringVar(&body.Headers, "header", nil, "extra request header name=value (repeatable)")
	f.IntVar(&body.RateLimitPerSecond, "rate-limit", 0, "requests per second (0: no limit)")
	f.BoolVar(&body.Ordered, "ordered", false, "deliver one at a time, in order")
	f.IntVar(&body.MaxAttempts, "max-attempts", 0, "requests per delivery (0: default)")
	f.StringSliceVar(&body.RetrySchedule, "retry-schedule", nil, "delays before each retry, e.g. 5s,5m,30m")
	f.IntVar(&body.TimeoutSeconds, "timeout", 0, "request timeout in seconds (0: default)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("url")
	return cmd
}

func webhookEndpointShowCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "show <id>",
		Short: "Show an endpoint as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.showJSON("/api/v1/webhooks/endpoints/" + args[0])
		},
	}
}

func webhookEndpointSetEnabledCmd(c *apiClient, verb string, enabled bool) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " <id>",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " an endpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e endpointSummary
			raw, _, err := c.call("PATCH", "/api/v1/webhooks/endpoints/"+args[0], map[string]any{"enabled": enabled}, &e)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "endpoint %s enabled=%t\n", e.ID, e.Enabled)
			return nil
		},
	}
}

func webhookEndpointDeleteCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "delete <id>",
		Short: "Delete an endpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := c.call("DELETE", "/api/v1/webhooks/endpoints/"+args[0], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "endpoint %s deleted\n", args[0])
			return nil
		},
	}
}

func webhookEndpointSecretCmd(c *apiClient) *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:   "secret <id>",
		Short: "Print an endpoint's signing secret (--rotate replaces it; the old one signs for 24 h more)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sec struct {
				Key string `json:"key"`
			}
			method, path := "GET", "/api/v1/webhooks/endpoints/"+args[0]+"/secret"
			if rotate {
				method, path = "POST", path+"/rotate"
			}
			raw, _, err := c.call(method, path, nil, &sec)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintln(c.out, sec.Key)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "rotate the secret first")
	return cmd
}

func webhookEndpointRecoverCmd(c *apiClient) *cobra.Command {
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "recover <id>",
		Short: "Re-send every failed delivery to the endpoint from the last --since",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Recovered int `json:"recovered"`
			}
			body := map[string]any{"since": time.Now().Add(-since).UTC().Format(time.RFC3339)}
			raw, _, err := c.call("POST", "/api/v1/webhooks/endpoints/"+args[0]+"/recover", body, &out)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "%d deliveries pending again\n", out.Recovered)
			return nil
		},
	}
	cmd.Flags().DurationVar(&since, "since", 24*time.Hour, "how far back")
	return cmd
}

func webhookDeliverCmd(c *apiClient) *cobra.Command {
	var eventType, payload, key string
	var endpoints []string
	cmd := &cobra.Command{
		Use:   "deliver",
		Short: "Send a message to every matching endpoint (--payload JSON, or @file, or - for stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readPayload(payload)
			if err != nil {
				return err
			}
			body := map[string]any{"event_type": eventType, "payload": data}
			if key != "" {
				body["idempotency_key"] = key
			}
			if len(endpoints) > 0 {
				body["endpoint_ids"] = endpoints
			}
			var m struct {
				MessageID  string `json:"message_id"`
				Duplicate  bool   `json:"duplicate"`
				Deliveries []struct {
					ID         string `json:"id"`
					EndpointID string `json:"endpoint_id"`
				} `json:"deliveries"`
			}
			raw, _, err := c.call("POST", "/api/v1/webhooks/deliver", body, &m)
			if err != nil || c.printJSON(raw) {
				return err
			}
			note := ""
			if m.Duplicate {
				note = " (duplicate of an earlier request)"
			}
			fmt.Fprintf(c.out, "message %s to %d endpoints%s\n", m.MessageID, len(m.Deliveries), note)
			for _, d := range m.Deliveries {
				fmt.Fprintf(c.out, "  delivery %s → endpoint %s\n", d.ID, d.EndpointID)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&eventType, "event-type", "", "event type, e.g. workflow.completed (required)")
	cmd.Flags().StringVar(&payload, "payload", "{}", "JSON payload, @file or - for stdin")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "the same key never sends twice")
	cmd.Flags().StringSliceVar(&endpoints, "endpoint", nil, "only these endpoint ids")
	_ = cmd.MarkFlagRequired("event-type")
	return cmd
}

func readPayload(arg string) (json.RawMessage, error) {
	var b []byte
	var err error
	switch {
	case arg == "-":
		b, err = io.ReadAll(os.Stdin)
	case strings.HasPrefix(arg, "@"):
		b, err = os.ReadFile(arg[1:])
	default:
		b = []byte(arg)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("--payload is not valid JSON")
	}
	return b, nil
}

type deliverySummary struct {
	ID             string    `json:"id"`
	MessageID      string    `json:"message_id"`
	EndpointID     string    `json:"endpoint_id"`
	EventType      string    `json:"event_type"`
	Status         string    `json:"status"`
	AttemptCount   int       `json:"attempt_count"`
	LastStatusCode int       `json:"last_status_code"`
	LastError      string    `json:"last_error"`
	CreatedAt      time.Time `json:"created_at"`
}

func webhookDeliveriesListCmd(c *apiClient) *cobra.Command {
	var endpoint, message, eventType, status string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List deliveries, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, next, err := c.list("/api/v1/webhooks/deliveries"+query("endpoint_id", endpoint, "message_id", message, "event_type", eventType, "status", status), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[deliverySummary](items)
			if err != nil {
				return err
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tENDPOINT\tEVENT\tSTATUS\tATTEMPTS\tLAST\tCREATED")
			for _, it := range rows {
				last := it.LastError
				if it.LastStatusCode != 0 {
					last = strconv.Itoa(it.LastStatusCode)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", it.ID, it.EndpointID, it.EventType, it.Status, it.AttemptCount,
					last, it.CreatedAt.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "endpoint id")
	cmd.Flags().StringVar(&message, "message", "", "message id")
	cmd.Flags().StringVar(&eventType, "event-type", "", "event type")
	cmd.Flags().StringVar(&status, "status", "", "pending, succeeded or failed")
	lf.add(cmd)
	return cmd
}

func webhookDeliveryShowCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "show <id>",
		Short: "Show a delivery with its payload and every attempt, as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.showJSON("/api/v1/webhooks/deliveries/" + args[0])
		},
	}
}

func webhookDeliveryRetryCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "retry <id>",
		Short: "Send a finished delivery again now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d deliverySummary
			raw, _, err := c.call("POST", "/api/v1/webhooks/deliveries/"+args[0]+"/retry", nil, &d)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "delivery %s is %s again\n", d.ID, d.Status)
			return nil
		},
	}
}
