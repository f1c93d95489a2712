// Command starter is the operator's CLI. It talks to the service's REST API (never to the
// database or Temporal directly), so it works against any deployment it can reach.
//
//	starter health
//	starter info
//	starter ping [message]
//	starter workflows list [--trigger-type schedule] [--all]
//	starter workflows create -f definition.json [--update ID]
//	starter workflows execute ID --input '{"x": 1}' [--priority high] [--wait]
//	starter executions list|show ID|cancel ID|terminate ID|retry ID|signal ID NAME
//	starter notifications send-email --to a@example.com --template welcome_email --data '{"user_name":"Ada"}'
//	starter notifications show ID
//	starter events send --type user.created --data '{"user": {...}}'
//	starter events list|show ID
//	starter rules list | rules test ID -f event.json | rules executions ID
//	starter webhooks endpoints list|create|show|enable|disable|delete|secret|recover
//	starter webhooks deliver --event-type workflow.completed --payload '{"id": 1}'
//	starter webhooks deliveries list|show|retry
//
// The API address comes from --api or AUTOMATION_API_URL (default http://localhost:8090); the
// key from --api-key, AUTOMATION_API_KEY or INTERNAL_API_KEY, else the development key that
// `make run` keeps in $DATA_DIR/dev-secrets.json.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI with args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	c := &apiClient{}
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Operate the automation service through its REST API",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.init()
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	c.out = stdout
	root.PersistentFlags().StringVar(&c.baseURL, "api", envOr("AUTOMATION_API_URL", "http://localhost:8090"),
		"API base URL (AUTOMATION_API_URL)")
	root.PersistentFlags().StringVar(&c.key, "api-key", "", "API key (AUTOMATION_API_KEY, INTERNAL_API_KEY)")
	root.PersistentFlags().StringVar(&c.token, "token", os.Getenv("AUTOMATION_API_TOKEN"), "JWT bearer token instead of a key (AUTOMATION_API_TOKEN)")
	root.PersistentFlags().StringVarP(&c.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(healthCmd(c), infoCmd(c), pingCmd(c), workflowsCmd(c), executionsCmd(c),
		notificationsCmd(c), webhooksCmd(c), eventsCmd(c), rulesCmd(c))
	return root
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
