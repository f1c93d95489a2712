package workflows

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/diagnostics"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/webhooks"
)

// One Register per domain: each registers the domain's workflow functions under the names its
// domain package declares (the names other code starts them by, and running histories record)
// and the domain's activity struct, whose exported methods are its activities, named after them.
// The worker (app.NewWorker) builds each activity struct and calls these.

// RegisterPlatform registers the diagnostic Ping workflow (as diagnostics.PingWorkflow), its activity and the Events
// activities that the notification and interpreter workflows publish domain events with.
func RegisterPlatform(w worker.Registry, diag *activities.Diagnostics, events *activities.Events) {
	w.RegisterWorkflowWithOptions(Ping, workflow.RegisterOptions{Name: diagnostics.PingWorkflow})
	w.RegisterActivity(diag)
	w.RegisterActivity(events)
}

// RegisterNotifications registers SendNotification as notify.NotificationWorkflow and the
// notification activities: the bookkeeping ones on w, DeliverEmail on the email task queue's
// worker and DeliverSMS on the SMS one (notify.EmailTaskQueue, notify.SMSTaskQueue), whose rate
// limits are the providers' send rates.
func RegisterNotifications(w, email, sms worker.Registry, a *activities.Notifications) {
	w.RegisterWorkflowWithOptions(SendNotification, workflow.RegisterOptions{Name: notify.NotificationWorkflow})
	w.RegisterActivity(a)
	email.RegisterActivity(a.DeliverEmail)
	sms.RegisterActivity(a.DeliverSMS)
}

// RegisterEngine registers the interpreter as engine.InterpreterWorkflow and the workflow
// engine's activities.
func RegisterEngine(w worker.Registry, a *activities.WorkflowEngine) {
	w.RegisterWorkflowWithOptions(Interpreter, workflow.RegisterOptions{Name: engine.InterpreterWorkflow})
	w.RegisterActivity(a)
}

// RegisterRules registers the rules engine's workflows under the names rules.Dispatcher and
// rules.Schedules start them by, and its activities.
func RegisterRules(w worker.Registry, a *activities.Rules) {
	w.RegisterWorkflowWithOptions(RuleEvaluator, workflow.RegisterOptions{Name: rules.EvaluatorWorkflow})
	w.RegisterWorkflowWithOptions(RuleScheduleFire, workflow.RegisterOptions{Name: rules.ScheduleFireWorkflow})
	w.RegisterWorkflowWithOptions(PurgeExpiredEvents, workflow.RegisterOptions{Name: rules.RetentionWorkflow})
	w.RegisterActivity(a)
}

// RegisterWebhooks registers the dispatcher as webhooks.DispatcherWorkflow and the webhook
// activities: the dispatcher's on w, the sender sessions on the sender task queue's worker
// (webhooks.SenderTaskQueue).
func RegisterWebhooks(w, senders worker.Registry, a *activities.Webhooks) {
	w.RegisterWorkflowWithOptions(WebhookDispatcher, workflow.RegisterOptions{Name: webhooks.DispatcherWorkflow})
	w.RegisterActivity(a)
	senders.RegisterActivity(a.RunWebhookSender)
}
