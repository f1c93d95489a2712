package app

import (
	"go.temporal.io/sdk/worker"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/workflows"
)

// NewWorker builds the Temporal worker for this service's task queue with every workflow and
// activity registered. WORKERS scales how many tasks it polls for and runs at once.
func NewWorker(d *Deps) worker.Worker {
	n := d.Config.Workers
	w := worker.New(d.Temporal, workflows.TaskQueue, worker.Options{
		MaxConcurrentActivityTaskPollers:        2 * n,
		MaxConcurrentWorkflowTaskPollers:        2 * n,
		MaxConcurrentActivityExecutionSize:      200 * n,
		MaxConcurrentWorkflowTaskExecutionSize:  200 * n,
		MaxConcurrentLocalActivityExecutionSize: 200 * n,
		WorkerStopTimeout:                       d.Config.ShutdownTimeout,
		EnableSessionWorker:                     false,
	})
	w.RegisterWorkflow(workflows.Ping)
	w.RegisterActivity(&activities.Diagnostics{Store: d.Store, Identity: identity()})
	w.RegisterActivity(&activities.Events{Bus: d.Events})
	w.RegisterWorkflow(workflows.WebhookDispatcher)
	w.RegisterActivity(&activities.Webhooks{
		Store: d.Store, Sender: d.Webhooks.Sender(), Secrets: d.Webhooks.Secrets(), Limiter: d.Limiter,
		Events: d.Events, Metrics: d.Webhooks.Metrics(), Settings: d.Webhooks.Settings(),
	})
	return w
}
