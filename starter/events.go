package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func eventsCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Send events and see what the automation rules made of them"}
	cmd.AddCommand(eventsSendCmd(c), eventsListCmd(c), eventsShowCmd(c))
	return cmd
}

func eventsSendCmd(c *apiClient) *cobra.Command {
	var typ, data, id, source, subject string
	cmd := &cobra.Command{
		Use:   "send --type user.created --data '{\"user\": {...}}'",
		Short: "Send an event (it is stored, then evaluated by the rules)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"type": typ}
			if data != "" {
				var d json.RawMessage
				if err := json.Unmarshal([]byte(data), &d); err != nil {
					return fmt.Errorf("--data is not JSON: %w", err)
				}
				body["data"] = d
			}
			for k, v := range map[string]string{"id": id, "source": source, "subject": subject} {
				if v != "" {
					body[k] = v
				}
			}
			var out struct {
				ID        string `json:"id"`
				Duplicate bool   `json:"duplicate"`
			}
			raw, _, err := c.call("POST", "/api/v1/events", body, &out)
			if err != nil || c.printJSON(raw) {
				return err
			}
			if out.Duplicate {
				fmt.Fprintf(c.out, "event %s was accepted before; it is not evaluated again\n", out.ID)
			} else {
				fmt.Fprintf(c.out, "accepted event %s\n", out.ID)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "event type, e.g. user.created (required)")
	cmd.Flags().StringVar(&data, "data", "", "event data, a JSON object")
	cmd.Flags().StringVar(&id, "id", "", "event id (the same id is accepted once)")
	cmd.Flags().StringVar(&source, "source", "", "event source (default api)")
	cmd.Flags().StringVar(&subject, "subject", "", "event subject")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

type eventRow struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Source     string    `json:"source"`
	Depth      int       `json:"depth"`
	ReceivedAt time.Time `json:"received_at"`
	Evaluation *struct {
		Status     string `json:"status"`
		Reason     string `json:"reason"`
		RulesFired int    `json:"rules_fired"`
	} `json:"evaluation"`
}

func eventsListCmd(c *apiClient) *cobra.Command {
	var typ string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List events, most recent first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, next, err := c.list("/api/v1/events"+query("type", typ), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[eventRow](items)
			if err != nil {
				return err
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tTYPE\tSOURCE\tDEPTH\tRECEIVED\tRULES")
			for _, it := range rows {
				rules := "waiting"
				if it.Evaluation != nil {
					rules = fmt.Sprintf("%d fired", it.Evaluation.RulesFired)
					if it.Evaluation.Status != "evaluated" {
						rules = it.Evaluation.Status + ": " + it.Evaluation.Reason
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", it.ID, it.Type, it.Source, it.Depth,
					it.ReceivedAt.Local().Format(time.DateTime), rules)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "only events of this type")
	lf.add(cmd)
	return cmd
}

func eventsShowCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an event, the rules that considered it and what ran",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e struct {
				eventRow
				Executions []executionRow `json:"executions"`
			}
			raw, _, err := c.call("GET", "/api/v1/events/"+args[0], nil, &e)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "event %s  %s  depth %d\n", e.ID, e.Type, e.Depth)
			if e.Evaluation == nil {
				fmt.Fprintln(c.out, "not evaluated yet")
			} else {
				fmt.Fprintf(c.out, "%s: %s\n", e.Evaluation.Status, e.Evaluation.Reason)
			}
			printExecutions(c, e.Executions)
			return nil
		},
	}
}
