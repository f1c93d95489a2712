package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// executionView is what the CLI reads of an execution.
type executionView struct {
	ID                 string         `json:"id"`
	WorkflowID         string         `json:"workflow_id"`
	WorkflowName       string         `json:"workflow_name"`
	Version            int            `json:"version"`
	Status             string         `json:"status"`
	Priority           string         `json:"priority"`
	TriggeredBy        string         `json:"triggered_by"`
	Error              string         `json:"error"`
	Input              map[string]any `json:"input_data"`
	TemporalWorkflowID string         `json:"temporal_workflow_id"`
	TemporalRunID      string         `json:"temporal_run_id"`
	TemporalURL        string         `json:"temporal_url"`
	CreatedAt          time.Time      `json:"created_at"`
	StartedAt          *time.Time     `json:"started_at"`
	FinishedAt         *time.Time     `json:"finished_at"`
	Live               bool           `json:"live"`
	Steps              []stepView     `json:"steps"`
}

type stepView struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Output     any        `json:"output"`
	Error      string     `json:"error"`
	WaitingFor string     `json:"waiting_for"`
}

func finished(status string) bool {
	switch status {
	case "completed", "failed", "cancelled", "terminated", "timed_out":
		return true
	}
	return false
}

var errExecutionFailed = errors.New("the execution did not complete")

// followExecution polls an execution and prints a line each time a step changes, until the
// execution ends (exit 1 unless it completed).
func followExecution(c *apiClient, id string, timeout time.Duration) error {
	seen := map[string]string{}
	deadline := time.Now().Add(timeout)
	for {
		var e executionView
		if _, _, err := c.call("GET", "/api/v1/executions/"+id, nil, &e); err != nil {
			return err
		}
		for _, s := range e.Steps {
			line := s.Status
			if s.Attempts > 1 {
				line += fmt.Sprintf(" (attempt %d)", s.Attempts)
			}
			if s.WaitingFor != "" {
				line += " for signal " + s.WaitingFor
			}
			if s.Error != "" && (s.Status == "failed" || s.Status == "running") {
				line += ": " + s.Error
			}
			if seen[s.ID] != line && s.Status != "pending" {
				seen[s.ID] = line
				fmt.Fprintf(c.out, "  %s  step %-20s %-16s %s\n", time.Now().Format("15:04:05"), s.ID, s.Type, line)
			}
		}
		if finished(e.Status) {
			took := ""
			if e.StartedAt != nil && e.FinishedAt != nil {
				took = " in " + e.FinishedAt.Sub(*e.StartedAt).Round(time.Millisecond).String()
			}
			fmt.Fprintf(c.out, "execution %s %s%s\n", e.ID, e.Status, took)
			if e.Error != "" {
				fmt.Fprintf(c.out, "error: %s\n", e.Error)
			}
			if e.Status != "completed" {
				return errExecutionFailed
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("execution %s is still %s after %s", id, e.Status, timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func executionsCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "executions", Short: "Inspect and control workflow executions"}
	cmd.AddCommand(executionsListCmd(c), executionsShowCmd(c), executionsActionCmd(c, "cancel"),
		executionsActionCmd(c, "terminate"), executionsActionCmd(c, "retry"), executionsSignalCmd(c))
	return cmd
}

func executionsListCmd(c *apiClient) *cobra.Command {
	var workflow, status string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List executions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, next, err := c.list("/api/v1/executions"+query("workflow_id", workflow, "status", status), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[executionView](items)
			if err != nil {
				return err
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tWORKFLOW\tVERSION\tSTATUS\tPRIORITY\tCREATED")
			for _, it := range rows {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", it.ID, it.WorkflowID, it.Version, it.Status, it.Priority,
					it.CreatedAt.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&workflow, "workflow", "", "only executions of this workflow id")
	cmd.Flags().StringVar(&status, "status", "", "pending, running, completed, failed, cancelled, terminated")
	lf.add(cmd)
	return cmd
}

func executionsShowCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an execution and each of its steps",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e executionView
			raw, _, err := c.call("GET", "/api/v1/executions/"+args[0], nil, &e)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "execution %s: %s\n", e.ID, e.Status)
			fmt.Fprintf(c.out, "workflow   %s %q version %d, priority %s, triggered by %s\n", e.WorkflowID, e.WorkflowName,
				e.Version, e.Priority, e.TriggeredBy)
			fmt.Fprintf(c.out, "temporal   %s (run %s)\n", e.TemporalWorkflowID, e.TemporalRunID)
			if e.TemporalURL != "" {
				fmt.Fprintf(c.out, "web ui     %s\n", e.TemporalURL)
			}
			if e.Error != "" {
				fmt.Fprintf(c.out, "error      %s\n", e.Error)
			}
			w := c.table()
			fmt.Fprintln(w, "STEP\tTYPE\tSTATUS\tATTEMPTS\tDURATION\tOUTPUT / ERROR")
			for _, s := range e.Steps {
				dur := ""
				if s.StartedAt != nil && s.FinishedAt != nil {
					dur = s.FinishedAt.Sub(*s.StartedAt).Round(time.Millisecond).String()
				}
				detail := s.Error
				if detail == "" && s.Output != nil {
					b, _ := json.Marshal(s.Output)
					detail = string(b)
					if len(detail) > 80 {
						detail = detail[:80] + "…"
					}
				}
				if s.WaitingFor != "" {
					detail = "waiting for signal " + s.WaitingFor
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Type, s.Status, s.Attempts, dur, detail)
			}
			return w.Flush()
		},
	}
}

func executionsActionCmd(c *apiClient, action string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " ID",
		Short: strings.ToUpper(action[:1]) + action[1:] + " an execution",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e executionView
			raw, _, err := c.call("POST", "/api/v1/executions/"+args[0]+"/"+action, nil, &e)
			if err != nil || c.printJSON(raw) {
				return err
			}
			if action == "retry" {
				fmt.Fprintf(c.out, "execution %s started (retry of %s)\n", e.ID, args[0])
			} else {
				fmt.Fprintf(c.out, "execution %s: %s requested\n", args[0], action)
			}
			return nil
		},
	}
}

func executionsSignalCmd(c *apiClient) *cobra.Command {
	var payload string
	cmd := &cobra.Command{
		Use:   "signal ID NAME [--payload '{...}']",
		Short: "Signal a running execution (resumes a wait_for_signal step)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body any
			if payload != "" {
				if err := json.Unmarshal([]byte(payload), &body); err != nil {
					return fmt.Errorf("--payload must be JSON: %w", err)
				}
			}
			if _, _, err := c.call("POST", "/api/v1/executions/"+args[0]+"/signal/"+args[1], body, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "signal %s sent to execution %s\n", args[1], args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&payload, "payload", "", "the signal's payload (JSON)")
	return cmd
}
