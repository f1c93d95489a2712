package app

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/workflows"
)

// registerRules registers the rules engine's workflows (under the names rules.Dispatcher and
// rules.Schedules start them by) and its activities.
func registerRules(w worker.Worker, d *Deps) {
	w.RegisterWorkflowWithOptions(workflows.RuleEvaluator, workflow.RegisterOptions{Name: rules.EvaluatorWorkflow})
	w.RegisterWorkflowWithOptions(workflows.RuleScheduleFire, workflow.RegisterOptions{Name: rules.ScheduleFireWorkflow})
	w.RegisterWorkflowWithOptions(workflows.PurgeExpiredEvents, workflow.RegisterOptions{Name: rules.RetentionWorkflow})
	w.RegisterActivity(&activities.Rules{
		Store: d.Store, Bus: d.Events, Templates: d.Templates, Expressions: d.Expressions,
		Cache:   rules.NewCache(d.Store, d.Templates, 0),
		Targets: d.RuleTargets, MaxDepth: d.Config.RulesMaxDepth, Retention: d.Config.EventRetention,
		Log: d.Log.With("component", "rules"), Metrics: activities.NewRulesMetrics(d.Registry),
	})
}
