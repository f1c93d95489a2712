package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func workflowsCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "workflows", Short: "Manage workflow definitions"}
	cmd.AddCommand(workflowsListCmd(c), workflowsCreateCmd(c), workflowsShowCmd(c), workflowsExecuteCmd(c),
		workflowsPauseCmd(c, true), workflowsPauseCmd(c, false), workflowsDeleteCmd(c))
	return cmd
}

type workflowSummary struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	TriggerType string    `json:"trigger_type"`
	Enabled     bool      `json:"enabled"`
	Version     int       `json:"version"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func workflowsListCmd(c *apiClient) *cobra.Command {
	var name, trigger, enabled string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List workflow definitions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, next, err := c.list("/api/v1/workflows"+query("name", name, "trigger_type", trigger, "enabled", enabled), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[workflowSummary](items)
			if err != nil {
				return err
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tNAME\tTRIGGER\tENABLED\tVERSION\tUPDATED")
			for _, it := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%d\t%s\n", it.ID, it.Name, it.TriggerType, it.Enabled, it.Version,
					it.UpdatedAt.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "only definitions with this name")
	cmd.Flags().StringVar(&trigger, "trigger-type", "", "manual, event, schedule or webhook")
	cmd.Flags().StringVar(&enabled, "enabled", "", "true or false")
	lf.add(cmd)
	return cmd
}

func workflowsCreateCmd(c *apiClient) *cobra.Command {
	var file, update string
	cmd := &cobra.Command{
		Use:   "create -f definition.json",
		Short: "Create a workflow definition from a JSON file (--update ID makes it a new version of ID)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			def, err := readJSONFile(cmd, file)
			if err != nil {
				return err
			}
			method, path := "POST", "/api/v1/workflows"
			if update != "" {
				method, path = "PUT", "/api/v1/workflows/"+update
			}
			var w workflowSummary
			raw, _, err := c.call(method, path, def, &w)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "workflow %s %q version %d (%s)\n", w.ID, w.Name, w.Version, w.TriggerType)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "definition JSON file (- for standard input)")
	cmd.Flags().StringVar(&update, "update", "", "store the file as a new version of this workflow id")
	return cmd
}

func workflowsShowCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a workflow definition (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.showJSON("/api/v1/workflows/" + args[0])
		},
	}
}

func workflowsDeleteCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a workflow definition (and its schedule)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := c.call("DELETE", "/api/v1/workflows/"+args[0], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "workflow %s deleted\n", args[0])
			return nil
		},
	}
}

func workflowsPauseCmd(c *apiClient, pause bool) *cobra.Command {
	verb := "resume"
	if pause {
		verb = "pause"
	}
	return &cobra.Command{
		Use:   verb + " ID",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " the schedule of a schedule-triggered workflow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var w struct {
				ID     string `json:"id"`
				Paused bool   `json:"paused"`
			}
			raw, _, err := c.call("POST", "/api/v1/workflows/"+args[0]+"/"+verb, nil, &w)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "workflow %s paused=%t\n", w.ID, w.Paused)
			return nil
		},
	}
}

func workflowsExecuteCmd(c *apiClient) *cobra.Command {
	var input, priority, key string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "execute ID [--input '{...}'] [--priority high] [--wait]",
		Short: "Start an execution; --wait follows it step by step until it ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if input != "" {
				var in map[string]any
				if err := json.Unmarshal([]byte(input), &in); err != nil {
					return fmt.Errorf("--input must be a JSON object: %w", err)
				}
				body["input_data"] = in
			}
			if priority != "" {
				body["priority"] = priority
			}
			var headers []string
			if key != "" {
				headers = []string{"Idempotency-Key", key}
			}
			var e executionView
			raw, _, err := c.call("POST", "/api/v1/workflows/"+args[0]+"/execute", body, &e, headers...)
			if err != nil {
				return err
			}
			if !wait {
				if c.printJSON(raw) {
					return nil
				}
				fmt.Fprintf(c.out, "execution %s started (temporal workflow %s, run %s)\n", e.ID, e.TemporalWorkflowID, e.TemporalRunID)
				if e.TemporalURL != "" {
					fmt.Fprintln(c.out, e.TemporalURL)
				}
				return nil
			}
			fmt.Fprintf(c.out, "execution %s started\n", e.ID)
			return followExecution(c, e.ID, timeout)
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "input_data as a JSON object")
	cmd.Flags().StringVar(&priority, "priority", "", "low, normal, high or critical")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "Idempotency-Key header (repeat safely)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the execution and print a line per step")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait follows")
	return cmd
}
