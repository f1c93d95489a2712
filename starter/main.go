// Command starter is the operator's CLI. It talks to the service's REST API (never to the
// database or Temporal directly), so it works against any deployment it can reach.
//
//	starter health | info | version | ping [message]
//	starter workflows list|show|create -f definition.json [--update ID]|execute ID [--wait]|pause|resume|delete
//	starter executions list|show ID|cancel ID|terminate ID|retry ID|signal ID NAME
//	starter notifications send-email|send-sms|show ID|list|render TEMPLATE_ID
//	starter templates list|show ID|create -f template.json|update ID -f template.json
//	starter events send --type user.created --data '{"user": {...}}' | list | show ID
//	starter rules list|show ID|create -f rule.json|update ID -f rule.json|enable ID|disable ID|test ID -f event.json|executions ID
//	starter webhooks endpoints list|create|show|enable|disable|delete|secret|recover
//	starter webhooks deliver --event-type workflow.completed --payload '{"id": 1}'
//	starter webhooks deliveries list|show|retry
//	starter receive [--port 9999] [--count N]   (a local receiver that prints the requests it gets)
//	starter completion bash|zsh|fish|powershell
//
// Every list takes --limit, --cursor (a previous page's next_cursor) and --all (every page).
// -o json prints what the API answers, and errors as JSON on stderr. Exit codes: 0 done, 1 the
// request failed (or the service reports a problem), 2 the command line is wrong (the usage
// follows the error).
//
// The API address comes from --api or AUTOMATION_API_URL (default http://localhost:8090); the
// key from --api-key, AUTOMATION_API_KEY or INTERNAL_API_KEY, else the development key that
// `make run` keeps in $DATA_DIR/dev-secrets.json.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pyairtable/automation-domain/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=…".
var version string

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	usageErrKey = "usage_error"
)

// usageError is a wrong command line: exit 2, with the command's usage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes the CLI with args and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &apiClient{out: stdout, errOut: stderr}
	root := newRootCmd(c)
	root.SetArgs(args)
	root.SetIn(stdin)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	// Cobra's own errors (flags, arguments, unknown commands, required flags) come before any
	// command runs: they are usage errors too.
	var ue usageError
	usage := errors.As(err, &ue) || !c.ran
	c.reportError(err, usage, cmd, wantsJSON(args))
	if usage {
		return exitUsage
	}
	return exitFailed
}

// wantsJSON reads -o/--output from the raw arguments: a usage error may stop flag parsing before
// it is reached.
func wantsJSON(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-o" || a == "--output":
			if i+1 < len(args) && args[i+1] == "json" {
				return true
			}
		case a == "-ojson" || a == "-o=json" || a == "--output=json":
			return true
		}
	}
	return false
}

// reportError prints err on stderr: as {"error": {…}} (the API's error shape) with -o json,
// else as text, followed by the usage for usage errors.
func (c *apiClient) reportError(err error, usage bool, cmd *cobra.Command, asJSON bool) {
	if asJSON {
		body := map[string]any{"code": "error", "message": err.Error()}
		var ae *apiError
		switch {
		case errors.As(err, &ae):
			body = map[string]any{"code": ae.Body.Error.Code, "message": ae.Body.Error.Message,
				"details": ae.Body.Error.Details, "request_id": ae.Body.Error.RequestID, "status": ae.Status}
		case usage:
			body["code"] = usageErrKey
			if cmd != nil {
				body["usage"] = cmd.UsageString()
			}
		case errors.Is(err, errUnhealthy):
			body["code"] = "unhealthy"
		case errors.Is(err, errExecutionFailed):
			body["code"] = "execution_not_completed"
		}
		b, _ := json.Marshal(map[string]any{"error": body})
		fmt.Fprintln(c.errOut, string(b))
		return
	}
	fmt.Fprintln(c.errOut, "error:", err)
	if usage && cmd != nil {
		fmt.Fprintln(c.errOut)
		fmt.Fprint(c.errOut, cmd.UsageString())
	}
}

func newRootCmd(c *apiClient) *cobra.Command {
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Operate the automation service through its REST API",
		Version:       buildinfo.Version(version),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.init()
		},
	}
	root.PersistentFlags().StringVar(&c.baseURL, "api", envOr("AUTOMATION_API_URL", "http://localhost:8090"),
		"API base URL (AUTOMATION_API_URL)")
	root.PersistentFlags().StringVar(&c.key, "api-key", "", "API key (AUTOMATION_API_KEY, INTERNAL_API_KEY)")
	root.PersistentFlags().StringVar(&c.token, "token", os.Getenv("AUTOMATION_API_TOKEN"), "JWT bearer token instead of a key (AUTOMATION_API_TOKEN)")
	root.PersistentFlags().StringVarP(&c.output, "output", "o", "text", "output format: text or json")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(healthCmd(c), infoCmd(c), versionCmd(c), pingCmd(c), workflowsCmd(c), executionsCmd(c),
		notificationsCmd(c), templatesCmd(c), webhooksCmd(c), eventsCmd(c), rulesCmd(c), receiveCmd(c))
	root.SetOut(c.out)
	root.SetErr(c.errOut)
	// Completion scripts come from cobra (`starter completion bash`); it takes the output now.
	root.InitDefaultCompletionCmd()
	prepare(root, c)
	return root
}

// prepare walks the command tree: a group (a command with subcommands and nothing to run)
// refuses an unknown subcommand as a usage error and shows its help when called alone, and every
// runnable command marks the client once it runs, so that errors before that count as usage
// errors.
func prepare(cmd *cobra.Command, c *apiClient) {
	for _, sub := range cmd.Commands() {
		prepare(sub, c)
	}
	if cmd.HasSubCommands() && cmd.RunE == nil && cmd.Run == nil {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		}
		cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			c.ran = true
			return run(cmd, args)
		}
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
