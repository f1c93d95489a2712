package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
)

// Ping is the diagnostic workflow: one activity round trip through a worker and the database.
// POST /api/v1/diagnostics/ping starts it to prove the whole path works.
func Ping(ctx workflow.Context, in activities.PingInput) (activities.PingResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var d *activities.Diagnostics
	var out activities.PingResult
	err := workflow.ExecuteActivity(ctx, d.Pong, in).Get(ctx, &out)
	return out, err
}
