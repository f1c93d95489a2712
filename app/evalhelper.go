package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/templating"
)

// RunEvalHelper makes this process an evaluation helper when the service started it as one
// (EVAL_ISOLATION=process re-executes the service's own binary): it renders templates and runs
// jq programs and expressions sent by its parent until the parent goes, then exits. Otherwise
// it returns at once. Every main calls it first, and so does a TestMain whose tests start the
// service.
func RunEvalHelper() {
	handlers := sandbox.Handlers{}
	for _, hs := range []sandbox.Handlers{templating.HelperHandlers(), definition.HelperHandlers(), rules.HelperHandlers()} {
		for name, h := range hs {
			handlers[name] = h
		}
	}
	sandbox.ServeHelperIfRequested(handlers)
}

// registerPoolMetrics exposes the helper pool's state on reg.
func registerPoolMetrics(reg prometheus.Registerer, p *sandbox.Pool) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "automation_eval_helpers",
			Help: "Evaluation helper processes running."}, func() float64 { return float64(len(p.PIDs())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "automation_eval_helpers_started_total",
			Help: "Evaluation helper processes started."}, func() float64 { return float64(p.Stats().Started) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "automation_eval_helpers_lost_total",
			Help: "Evaluation helper processes that died or were killed during an evaluation (a limit, a crash)."},
			func() float64 { return float64(p.Stats().Lost) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "automation_eval_helpers_cpu_seconds_total",
			Help: "CPU time used by evaluation helper processes."}, func() float64 { return p.Stats().CPU.Seconds() }),
	)
}
