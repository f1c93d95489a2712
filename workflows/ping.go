package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/diagnostics"
)

// Ping is the diagnostic workflow: one activity round trip through a worker and the database.
// POST /api/v1/diagnostics/ping starts it to prove the whole path works.
func Ping(ctx workflow.Context, in diagnostics.PingInput) (diagnostics.PingResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var d *activities.Diagnostics
	var out diagnostics.PingResult
	err := workflow.ExecuteActivity(ctx, d.Pong, in).Get(ctx, &out)
	return out, err
}
