// Package workflows holds the service's Temporal workflow definitions. Everything here is
// deterministic: no I/O, no wall clock, no goroutines, no map-order dependence; side effects are
// activities (package activities). `make lint` runs workflowcheck over this package.
package workflows

// TaskQueue is the task queue the worker polls for this service's workflows and activities.
const TaskQueue = "automation"
