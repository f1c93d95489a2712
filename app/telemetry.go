package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// ServiceName is the OpenTelemetry service.name a process reports (target_info on /metrics)
// unless OTEL_SERVICE_NAME says otherwise: automation-api, automation-worker, or automation for
// the all-in-one process.
func ServiceName(apiPart, workerPart bool) string {
	switch {
	case apiPart && !workerPart:
		return "automation-api"
	case workerPart && !apiPart:
		return "automation-worker"
	}
	return "automation"
}

// newMeterProvider exports OpenTelemetry metrics (the Temporal SDK's) to reg, describing the
// process as service (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override) at version.
func newMeterProvider(ctx context.Context, reg prometheus.Registerer, service, version string) (*sdkmetric.MeterProvider, error) {
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(service), semconv.ServiceVersion(version)),
		resource.WithFromEnv(), // later detectors win: OTEL_SERVICE_NAME over the default
	)
	if err != nil {
		return nil, fmt.Errorf("metrics resource (OTEL_RESOURCE_ATTRIBUTES?): %w", err)
	}
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithResource(res),
		sdkmetric.WithView(sdkMetricsView)), nil
}

// secondsBuckets suit the SDK's timers, which it records in seconds (OpenTelemetry's default
// buckets are meant for milliseconds).
var secondsBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// sdkMetricsView gives the Temporal SDK's instruments, which it creates without descriptions,
// the HELP text Prometheus shows, and its second-valued histograms buckets that fit.
func sdkMetricsView(inst sdkmetric.Instrument) (sdkmetric.Stream, bool) {
	s := sdkmetric.Stream{Name: inst.Name, Description: inst.Description, Unit: inst.Unit}
	changed := false
	if s.Description == "" && strings.HasPrefix(inst.Name, "temporal_") {
		s.Description, changed = temporalMetricHelp(inst.Name), true
	}
	if inst.Kind == sdkmetric.InstrumentKindHistogram && inst.Unit == "s" {
		s.Aggregation, changed = sdkmetric.AggregationExplicitBucketHistogram{Boundaries: secondsBuckets}, true
	}
	return s, changed
}

// undocumentedMetric starts the HELP text of an SDK metric missing from temporalMetricsHelp
// (one a newer SDK added); a test fails when it shows.
const undocumentedMetric = "Temporal Go SDK metric (not described here yet; see Temporal's SDK metrics reference): "

func temporalMetricHelp(name string) string {
	if h, ok := temporalMetricsHelp[name]; ok {
		return h
	}
	return undocumentedMetric + name
}

// temporalMetricsHelp describes the Temporal Go SDK's metrics (go.temporal.io/sdk
// internal/common/metrics), by instrument name.
var temporalMetricsHelp = map[string]string{
	"temporal_request":                                 "Requests the Temporal client sent to the frontend, by operation.",
	"temporal_request_failure":                         "Requests to the Temporal frontend that failed, by operation and status code.",
	"temporal_request_latency":                         "Latency of requests to the Temporal frontend, by operation.",
	"temporal_request_resource_exhausted":              "Requests to the Temporal frontend refused as resource exhausted, by cause.",
	"temporal_long_request":                            "Long-poll requests the Temporal client sent to the frontend, by operation.",
	"temporal_long_request_failure":                    "Long-poll requests to the Temporal frontend that failed, by operation and status code.",
	"temporal_long_request_latency":                    "Latency of long-poll requests to the Temporal frontend, by operation.",
	"temporal_long_request_resource_exhausted":         "Long-poll requests to the Temporal frontend refused as resource exhausted, by cause.",
	"temporal_request_attempt":                         "Attempts of requests to the Temporal frontend (each gRPC retry counts), by operation.",
	"temporal_request_failure_attempt":                 "Failed attempts of requests to the Temporal frontend, by operation and status code.",
	"temporal_request_latency_attempt":                 "Latency of each attempt of a request to the Temporal frontend, by operation.",
	"temporal_long_request_attempt":                    "Attempts of long-poll requests to the Temporal frontend (each gRPC retry counts), by operation.",
	"temporal_long_request_failure_attempt":            "Failed attempts of long-poll requests to the Temporal frontend, by operation and status code.",
	"temporal_long_request_latency_attempt":            "Latency of each attempt of a long-poll request to the Temporal frontend, by operation.",
	"temporal_workflow_completed":                      "Workflow executions that completed successfully, by workflow type.",
	"temporal_workflow_canceled":                       "Workflow executions that ended cancelled, by workflow type.",
	"temporal_workflow_failed":                         "Workflow executions that failed, by workflow type.",
	"temporal_workflow_continue_as_new":                "Workflow executions that continued as new, by workflow type.",
	"temporal_workflow_endtoend_latency":               "Time from a workflow execution's start to its close, by workflow type.",
	"temporal_workflow_task_replay_latency":            "Time this worker spent replaying workflow history (cache misses).",
	"temporal_workflow_task_queue_poll_empty":          "Workflow task polls that returned no task.",
	"temporal_workflow_task_queue_poll_succeed":        "Workflow task polls that returned a task.",
	"temporal_workflow_task_schedule_to_start_latency": "Time workflow tasks waited in the task queue before a worker picked them up.",
	"temporal_workflow_task_execution_latency":         "Time this worker spent processing a workflow task.",
	"temporal_workflow_task_execution_failed":          "Workflow tasks that failed (panics, non-determinism), by failure reason.",
	"temporal_workflow_task_no_completion":             "Workflow tasks that ended without a completion being sent to the server.",
	"temporal_workflow_active_thread_count":            "Workflow coroutines alive in this worker.",
	"temporal_activity_poll_no_task":                   "Activity task polls that returned no task.",
	"temporal_activity_schedule_to_start_latency":      "Time activity tasks waited in the task queue before a worker picked them up.",
	"temporal_activity_execution_failed":               "Activity executions that returned an error, by activity type.",
	"temporal_activity_execution_latency":              "Time an activity execution attempt took in this worker, by activity type.",
	"temporal_activity_succeed_endtoend_latency":       "Time from an activity's scheduling to its successful completion, retries included.",
	"temporal_activity_task_error":                     "Activity tasks that failed inside the worker before or after running the activity.",
	"temporal_unregistered_activity_invocation":        "Activity tasks for a type this worker has not registered.",
	"temporal_local_activity_total":                    "Local activity executions started, by activity type.",
	"temporal_local_activity_canceled":                 "Local activity executions that were cancelled (deprecated name).",
	"temporal_local_activity_execution_cancelled":      "Local activity executions that were cancelled, by activity type.",
	"temporal_local_activity_failed":                   "Local activity executions that failed (deprecated name).",
	"temporal_local_activity_execution_failed":         "Local activity executions that failed, by activity type.",
	"temporal_local_activity_error":                    "Local activity attempts that returned an error, by activity type.",
	"temporal_local_activity_execution_latency":        "Time a local activity attempt took in this worker, by activity type.",
	"temporal_local_activity_succeed_endtoend_latency": "Time from a local activity's scheduling to its successful completion, retries included.",
	"temporal_corrupted_signals":                       "Signals dropped because their payload could not be decoded.",
	"temporal_worker_start":                            "Workers started in this process, by worker type.",
	"temporal_worker_task_slots_available":             "Task slots free in this worker, by worker type.",
	"temporal_worker_task_slots_used":                  "Task slots in use in this worker, by worker type.",
	"temporal_poller_start":                            "Pollers started in this process, by worker type.",
	"temporal_num_pollers":                             "Pollers currently polling, by poller type.",
	"temporal_sticky_cache_hit":                        "Workflow tasks served from this worker's sticky cache.",
	"temporal_sticky_cache_miss":                       "Workflow tasks that missed this worker's sticky cache (replayed from history).",
	"temporal_sticky_cache_total_forced_eviction":      "Workflow executions evicted from the sticky cache to make room.",
	"temporal_sticky_cache_size":                       "Workflow executions held in this worker's sticky cache.",
	"temporal_nexus_poll_no_task":                      "Nexus task polls that returned no task.",
	"temporal_nexus_task_schedule_to_start_latency":    "Time Nexus tasks waited in the task queue before a worker picked them up.",
	"temporal_nexus_task_execution_failed":             "Nexus task handlers that failed, by service and operation.",
	"temporal_nexus_task_execution_latency":            "Time a Nexus task handler took, by service and operation.",
	"temporal_nexus_task_endtoend_latency":             "Time from a Nexus task's scheduling to its completion.",
}
