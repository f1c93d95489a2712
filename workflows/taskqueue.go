// Package workflows holds the service's Temporal workflow definitions. Everything here is
// deterministic: no I/O, no wall clock, no goroutines, no map-order dependence; side effects are
// activities (package activities). `make lint` runs workflowcheck over this package.
//
// Each domain package declares the names of the workflows it starts (notify.NotificationWorkflow,
// engine.InterpreterWorkflow, rules.EvaluatorWorkflow …, webhooks.DispatcherWorkflow) and its
// wire types; the Register function of each domain here registers the workflow functions under
// those names, with the domain's activity struct (register.go). This package imports no store
// and no I/O package.
package workflows

import "github.com/pyairtable/automation-domain/wire"

// TaskQueue is the task queue the worker polls for this service's workflows and activities
// (wire.TaskQueue).
const TaskQueue = wire.TaskQueue
