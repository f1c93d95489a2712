package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func workflowsCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "workflows", Short: "Manage workflow definitions"}
	cmd.AddCommand(workflowsListCmd(c))
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
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List workflow definitions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var items []workflowSummary
			cursor := ""
			for {
				var page struct {
					Items      []workflowSummary `json:"items"`
					NextCursor string            `json:"next_cursor"`
				}
				path := "/api/v1/workflows" + query("name", name, "trigger_type", trigger,
					"enabled", enabled, "limit", strconv.Itoa(limit), "cursor", cursor)
				if _, _, err := c.call("GET", path, nil, &page); err != nil {
					return err
				}
				items = append(items, page.Items...)
				if !all || page.NextCursor == "" {
					break
				}
				cursor = page.NextCursor
			}
			if c.output == "json" {
				raw, _ := json.Marshal(items)
				c.printJSON(raw)
				return nil
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tNAME\tTRIGGER\tENABLED\tVERSION\tUPDATED")
			for _, it := range items {
				fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%d\t%s\n", it.ID, it.Name, it.TriggerType, it.Enabled, it.Version,
					it.UpdatedAt.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "only definitions with this name")
	cmd.Flags().StringVar(&trigger, "trigger-type", "", "manual, event, schedule or webhook")
	cmd.Flags().StringVar(&enabled, "enabled", "", "true or false")
	cmd.Flags().IntVar(&limit, "limit", 50, "page size (1-200)")
	cmd.Flags().BoolVar(&all, "all", false, "follow next_cursor through every page")
	return cmd
}
