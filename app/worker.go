package app

import (
	"sync"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/webhooks"
	"github.com/pyairtable/automation-domain/workflows"
)

// stickyScheduleToStartTimeout is how long a workflow task waits on the sticky queue of the
// worker that ran the workflow last before any worker may take it: after a worker dies, its
// long-running workflows (rule evaluators, dispatchers) move on after this long instead of the
// SDK's 5 s.
const stickyScheduleToStartTimeout = 2 * time.Second

// NewWorker builds the Temporal worker for this service's task queue with every workflow and
// activity registered. WORKERS scales how many tasks it polls for and runs at once.
//
// Notification deliveries run on task queues of their own, one per channel, each with
// Temporal's task-queue activity rate limit set to the provider's send rate, and webhook
// sender sessions on theirs (webhooks.SenderTaskQueue), with room for many at once since most
// of them wait: the returned worker starts and stops those workers with itself.
func NewWorker(d *Deps) worker.Worker {
	n := d.Config.Workers
	w := worker.New(d.Temporal, workflows.TaskQueue, worker.Options{
		MaxConcurrentActivityTaskPollers:        2 * n,
		MaxConcurrentWorkflowTaskPollers:        2 * n,
		MaxConcurrentActivityExecutionSize:      200 * n,
		MaxConcurrentWorkflowTaskExecutionSize:  200 * n,
		MaxConcurrentLocalActivityExecutionSize: 200 * n,
		WorkerStopTimeout:                       d.Config.ShutdownTimeout,
		StickyScheduleToStartTimeout:            stickyScheduleToStartTimeout,
		EnableSessionWorker:                     false,
	})
	email := worker.New(d.Temporal, notify.EmailTaskQueue, worker.Options{
		TaskQueueActivitiesPerSecond:       d.Config.SMTPRatePerSecond,
		MaxConcurrentActivityExecutionSize: d.Config.SMTPMaxConnections * n,
		MaxConcurrentActivityTaskPollers:   2 * n,
		WorkerStopTimeout:                  d.Config.ShutdownTimeout,
		DisableWorkflowWorker:              true,
	})
	sms := worker.New(d.Temporal, notify.SMSTaskQueue, worker.Options{
		TaskQueueActivitiesPerSecond:       d.Config.TwilioRatePerSecond,
		MaxConcurrentActivityExecutionSize: 50 * n,
		MaxConcurrentActivityTaskPollers:   2 * n,
		WorkerStopTimeout:                  d.Config.ShutdownTimeout,
		DisableWorkflowWorker:              true,
	})
	senders := worker.New(d.Temporal, webhooks.SenderTaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: 2000 * n,
		MaxConcurrentActivityTaskPollers:   2 * n,
		WorkerStopTimeout:                  d.Config.ShutdownTimeout,
		DisableWorkflowWorker:              true,
	})

	// Every activity struct is built here, once, and registered with its domain's workflows.
	workflows.RegisterPlatform(w, &activities.Diagnostics{Store: d.Store, Identity: identity()}, &activities.Events{Bus: d.Events})
	workflows.RegisterNotifications(w, email, sms, &activities.Notifications{Store: d.Store, Channels: d.Notify.Channels(),
		Metrics: d.notificationMetrics, Templates: d.Templates})
	workflows.RegisterEngine(w, &activities.WorkflowEngine{
		Store: d.Store, Templates: d.Templates, Eval: d.Eval, Egress: d.Egress,
		Notifier: d.StepNotifier, Webhooks: d.StepWebhooks, Log: d.Log.With("component", "workflow-engine"),
	})
	workflows.RegisterRules(w, &activities.Rules{
		Store: d.Store, Bus: d.Events, Templates: d.Templates, Expressions: d.Expressions,
		Cache:   rules.NewCache(d.Store, d.Templates, 0),
		Targets: d.RuleTargets, MaxDepth: d.Config.RulesMaxDepth, Retention: d.Config.EventRetention,
		Log: d.Log.With("component", "rules"), Metrics: activities.NewRulesMetrics(d.Registry),
	})
	workflows.RegisterWebhooks(w, senders, &activities.Webhooks{
		Store: d.Store, Sender: d.Webhooks.Sender(), Secrets: d.Webhooks.Secrets(), Limiter: d.Limiter,
		Events: d.Events, Metrics: d.Webhooks.Metrics(), Settings: d.Webhooks.Settings(),
		Senders: d.Webhooks.Senders(), StopGrace: min(activities.DefaultStopGrace, d.Config.ShutdownTimeout/2),
		Transformer: d.Webhooks.Transformer(),
	})
	return &workerGroup{Worker: w, extra: []worker.Worker{email, sms, senders}}
}

// workerGroup is the main worker (registrations go to it) plus workers of other task queues
// that start and stop with it.
type workerGroup struct {
	worker.Worker
	extra []worker.Worker
}

// Start starts every worker, or none.
func (g *workerGroup) Start() error {
	if err := g.Worker.Start(); err != nil {
		return err
	}
	for i, w := range g.extra {
		if err := w.Start(); err != nil {
			for _, started := range g.extra[:i] {
				started.Stop()
			}
			g.Worker.Stop()
			return err
		}
	}
	return nil
}

// Run starts every worker and blocks until the interrupt channel fires, then stops them.
func (g *workerGroup) Run(interruptCh <-chan any) error {
	if err := g.Start(); err != nil {
		return err
	}
	<-interruptCh
	g.Stop()
	return nil
}

// Stop stops every worker at once (each waits for its running activities up to
// SHUTDOWN_TIMEOUT; sender sessions hand their endpoints over within seconds).
func (g *workerGroup) Stop() {
	var wg sync.WaitGroup
	for _, w := range append([]worker.Worker{g.Worker}, g.extra...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Stop()
		}()
	}
	wg.Wait()
}

var _ worker.Worker = (*workerGroup)(nil)
