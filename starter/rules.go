package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func rulesCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Manage automation rules"}
	cmd.AddCommand(rulesListCmd(c), rulesShowCmd(c), rulesWriteCmd(c, false), rulesWriteCmd(c, true),
		rulesSetEnabledCmd(c, "enable"), rulesSetEnabledCmd(c, "disable"), rulesTestCmd(c), rulesExecutionsCmd(c))
	return cmd
}

type ruleRow struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Version int    `json:"version"`
	Trigger struct {
		Type      string `json:"type"`
		EventType string `json:"event_type"`
		Cron      string `json:"cron"`
		Source    string `json:"source"`
	} `json:"trigger"`
	Priority  int       `json:"priority"`
	UpdatedAt time.Time `json:"updated_at"`
}

func rulesListCmd(c *apiClient) *cobra.Command {
	var enabled, trigger string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List automation rules, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, next, err := c.list("/api/v1/automation/rules"+query("enabled", enabled, "trigger_type", trigger), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[ruleRow](items)
			if err != nil {
				return err
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tNAME\tTRIGGER\tPRIORITY\tENABLED\tVERSION\tUPDATED")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%t\t%d\t%s\n", r.ID, r.Name, r.trigger(), r.Priority,
					r.Enabled, r.Version, r.UpdatedAt.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&enabled, "enabled", "", "true or false")
	cmd.Flags().StringVar(&trigger, "trigger-type", "", "event, schedule or webhook")
	lf.add(cmd)
	return cmd
}

func (r ruleRow) trigger() string {
	return strings.TrimSpace(r.Trigger.Type + " " + r.Trigger.EventType + r.Trigger.Cron + r.Trigger.Source)
}

func rulesShowCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a rule's definition (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.showJSON("/api/v1/automation/rules/" + args[0])
		},
	}
}

// rulesWriteCmd is `rules create -f rule.json` (POST) or `rules update ID -f rule.json` (PUT: the
// file replaces the definition, a new version).
func rulesWriteCmd(c *apiClient, update bool) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "create -f rule.json",
		Short: "Create a rule from a JSON file (the API's body; - reads standard input)",
		Args:  cobra.NoArgs,
	}
	if update {
		cmd.Use, cmd.Short, cmd.Args = "update ID -f rule.json", "Replace a rule's definition with a JSON file (a new version)", cobra.ExactArgs(1)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body, err := readJSONFile(cmd, file)
		if err != nil {
			return err
		}
		method, path := "POST", "/api/v1/automation/rules"
		if update {
			method, path = "PUT", path+"/"+args[0]
		}
		var r ruleRow
		raw, _, err := c.call(method, path, body, &r)
		if err != nil || c.printJSON(raw) {
			return err
		}
		fmt.Fprintf(c.out, "rule %s %q version %d (%s, enabled=%t)\n", r.ID, r.Name, r.Version, r.trigger(), r.Enabled)
		return nil
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the rule, a JSON file (- for standard input)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func rulesSetEnabledCmd(c *apiClient, verb string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a rule",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r ruleRow
			raw, _, err := c.call("POST", "/api/v1/automation/rules/"+args[0]+"/"+verb, nil, &r)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "rule %s enabled=%t\n", r.ID, r.Enabled)
			return nil
		},
	}
}

type conditionRow struct {
	Path       string          `json:"path"`
	Type       string          `json:"type"`
	Field      string          `json:"field"`
	Operator   string          `json:"operator"`
	Expected   json.RawMessage `json:"expected"`
	Expression string          `json:"expression"`
	Actual     json.RawMessage `json:"actual"`
	Missing    bool            `json:"missing"`
	Matched    bool            `json:"matched"`
	Error      string          `json:"error"`
	Children   []conditionRow  `json:"children"`
}

func printConditions(w io.Writer, list []conditionRow, indent string) {
	for _, r := range list {
		mark := "✗"
		if r.Matched {
			mark = "✓"
		}
		what := r.Type
		switch r.Type {
		case "field_check":
			what = fmt.Sprintf("%s %s %s", r.Field, r.Operator, r.Expected)
		case "expression":
			what = r.Expression
		}
		actual := "actual " + string(r.Actual)
		if r.Missing {
			actual = "missing"
		}
		if r.Type == "all" || r.Type == "any" || r.Type == "not" {
			actual = ""
		}
		if r.Error != "" {
			actual += " error: " + r.Error
		}
		fmt.Fprintf(w, "%s%s %s: %s  %s\n", indent, mark, r.Path, what, actual)
		printConditions(w, r.Children, indent+"  ")
	}
}

func rulesTestCmd(c *apiClient) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "test ID -f event.json",
		Short: "Dry run: what the rule would do with the event (conditions, rendered actions); nothing is sent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			event, err := readJSONFile(cmd, file)
			if err != nil {
				return err
			}
			if err := checkSampleEvent(event); err != nil {
				return err
			}
			var res struct {
				TriggerMatched bool           `json:"trigger_matched"`
				Matched        bool           `json:"matched"`
				WouldRun       bool           `json:"would_run"`
				Reason         string         `json:"reason"`
				Conditions     []conditionRow `json:"conditions"`
				Actions        []struct {
					Index     int             `json:"index"`
					Type      string          `json:"type"`
					Available bool            `json:"available"`
					Rendered  json.RawMessage `json:"rendered"`
					Error     string          `json:"error"`
				} `json:"actions"`
			}
			out, _, err := c.call("POST", "/api/v1/automation/rules/"+args[0]+"/test", map[string]any{"event": event}, &res)
			if err != nil || c.printJSON(out) {
				return err
			}
			verdict := "would run"
			if !res.WouldRun {
				verdict = "would not run: " + res.Reason
			}
			// The conditions' own verdict: "matched" is the trigger's and the conditions' together.
			hold := true
			for _, r := range res.Conditions {
				hold = hold && r.Matched
			}
			fmt.Fprintf(c.out, "trigger matched: %t, conditions hold: %t — %s\n", res.TriggerMatched, hold, verdict)
			if len(res.Conditions) > 0 {
				fmt.Fprintln(c.out, "conditions:")
				printConditions(c.out, res.Conditions, "  ")
			}
			fmt.Fprintln(c.out, "actions (rendered, not sent):")
			for _, a := range res.Actions {
				if a.Error != "" {
					fmt.Fprintf(c.out, "  [%d] %s: error: %s\n", a.Index, a.Type, a.Error)
					continue
				}
				note := ""
				if !a.Available {
					note = " (not available in this deployment)"
				}
				fmt.Fprintf(c.out, "  [%d] %s%s: %s\n", a.Index, a.Type, note, a.Rendered)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", `the sample event, a JSON file (- for stdin): {"type": "user.created", "data": {"user": {…}}}`)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// checkSampleEvent refuses a file that is plainly not an event: an object none of whose fields
// is an event's, such as the event's data alone ({"user": {…}}), which would otherwise dry-run
// an event without data.
func checkSampleEvent(raw json.RawMessage) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return usagef(`the file must hold an event object: {"type": "user.created", "data": {…}}`)
	}
	if len(m) == 0 {
		return nil
	}
	// The fields of a dry run's event, and "event" (the wrapped form).
	for _, f := range []string{"event", "type", "data", "id", "source", "subject", "occurred_at", "time",
		"specversion", "datacontenttype", "depth"} {
		if _, ok := m[f]; ok {
			return nil
		}
	}
	return usagef(`the file is not an event (it has none of type, data, source, subject …): write {"type": "user.created", "data": %s}; conditions and templates read the data's fields`, clipJSON(raw))
}

func clipJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil || buf.Len() > 80 {
		return "{…}"
	}
	return buf.String()
}

type executionRow struct {
	ID       string `json:"id"`
	EventID  string `json:"event_id"`
	RuleID   string `json:"rule_id"`
	RuleName string `json:"rule_name"`
	Status   string `json:"status"`
	Reason   string `json:"reason"`
	Actions  []struct {
		Index  int    `json:"index"`
		Type   string `json:"type"`
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"actions"`
	EvaluatedAt time.Time `json:"evaluated_at"`
}

func printExecutions(c *apiClient, list []executionRow) {
	w := c.table()
	fmt.Fprintln(w, "EXECUTION\tEVENT\tRULE\tSTATUS\tREASON\tACTIONS")
	for _, x := range list {
		var acts []string
		for _, a := range x.Actions {
			s := fmt.Sprintf("%d:%s=%s", a.Index, a.Type, a.Status)
			if a.Error != "" {
				s += " (" + a.Error + ")"
			}
			acts = append(acts, s)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, x.EventID, x.RuleName, x.Status, x.Reason, strings.Join(acts, ", "))
	}
	w.Flush()
}

func rulesExecutionsCmd(c *apiClient) *cobra.Command {
	var status string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "executions ID",
		Short: "A rule's executions: matched or not and why, actions with status",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			items, next, err := c.list("/api/v1/automation/rules/"+args[0]+"/executions"+query("status", status), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[executionRow](items)
			if err != nil {
				return err
			}
			printExecutions(c, rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only executions with this status")
	lf.add(cmd)
	return cmd
}
