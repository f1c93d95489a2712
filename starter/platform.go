package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"

	"github.com/spf13/cobra"
)

func healthCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Show the status and latency of every dependency (exit 1 if one is down)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var h struct {
				Status       string `json:"status"`
				Version      string `json:"version"`
				Dependencies map[string]struct {
					Status    string  `json:"status"`
					Mode      string  `json:"mode"`
					LatencyMS float64 `json:"latency_ms"`
					Error     string  `json:"error"`
				} `json:"dependencies"`
			}
			raw, code, err := c.call("GET", "/health/detailed", nil, &h)
			if err != nil {
				return err
			}
			if !c.printJSON(raw) {
				fmt.Fprintf(c.out, "%s (version %s)\n", h.Status, h.Version)
				names := make([]string, 0, len(h.Dependencies))
				for n := range h.Dependencies {
					names = append(names, n)
				}
				sort.Strings(names)
				w := c.table()
				fmt.Fprintln(w, "DEPENDENCY\tSTATUS\tMODE\tLATENCY\tERROR")
				for _, n := range names {
					d := h.Dependencies[n]
					fmt.Fprintf(w, "%s\t%s\t%s\t%.1f ms\t%s\n", n, d.Status, d.Mode, d.LatencyMS, d.Error)
				}
				w.Flush()
			}
			if code != 200 {
				return errUnhealthy
			}
			return nil
		},
	}
}

func infoCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the version, environment, modes and URLs of the service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var info struct {
				Version string            `json:"version"`
				Env     string            `json:"env"`
				Modes   map[string]string `json:"modes"`
				URLs    map[string]string `json:"urls"`
			}
			raw, _, err := c.call("GET", "/info", nil, &info)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "version %s, env %s\n", info.Version, info.Env)
			w := c.table()
			for _, m := range sortedKeys(info.Modes) {
				fmt.Fprintf(w, "%s\t%s\n", m, info.Modes[m])
			}
			for _, u := range sortedKeys(info.URLs) {
				fmt.Fprintf(w, "%s\t%s\n", u, info.URLs[u])
			}
			return w.Flush()
		},
	}
}

func versionCmd(c *apiClient) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the CLI's version and the service's (--client: the CLI's only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := cmd.Root().Version
			var info struct {
				Version string `json:"version"`
				Env     string `json:"env"`
			}
			var err error
			if !clientOnly {
				_, _, err = c.call("GET", "/info", nil, &info)
			}
			if c.output == "json" {
				out := map[string]any{"client": client}
				if !clientOnly && err == nil {
					out["server"] = map[string]string{"version": info.Version, "env": info.Env, "url": c.baseURL}
				}
				raw, _ := json.Marshal(out)
				c.printJSON(raw)
			} else {
				fmt.Fprintf(c.out, "starter %s\n", client)
				if !clientOnly && err == nil {
					fmt.Fprintf(c.out, "service %s (%s, %s)\n", info.Version, info.Env, c.baseURL)
				}
			}
			if err != nil {
				return fmt.Errorf("the service's version: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "the CLI's version only (no request)")
	return cmd
}

func pingCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "ping [message]",
		Short: "Run the ping workflow through Temporal, a worker and the database",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			msg := "ping"
			if len(args) == 1 {
				msg = args[0]
			}
			var p struct {
				Status     string  `json:"status"`
				WorkflowID string  `json:"workflow_id"`
				DurationMS float64 `json:"duration_ms"`
				Result     struct {
					Reply  string `json:"reply"`
					Worker string `json:"worker"`
				} `json:"result"`
				TemporalURL string `json:"temporal_url"`
			}
			raw, _, err := c.call("POST", "/api/v1/diagnostics/ping", map[string]any{"message": msg}, &p)
			if err != nil || c.printJSON(raw) {
				return err
			}
			if p.Status != "completed" {
				return fmt.Errorf("workflow %s did not finish in time (is a worker running?)", p.WorkflowID)
			}
			fmt.Fprintf(c.out, "%s from worker %s in %.0f ms\nworkflow %s\n", p.Result.Reply, p.Result.Worker, p.DurationMS, p.WorkflowID)
			if p.TemporalURL != "" {
				fmt.Fprintln(c.out, p.TemporalURL)
			}
			return nil
		},
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// query builds "?a=b&c=d" from pairs, skipping empty values.
func query(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}
