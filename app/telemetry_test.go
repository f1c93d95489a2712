package app

import (
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

func TestSDKMetricsView(t *testing.T) {
	s, ok := sdkMetricsView(sdkmetric.Instrument{Name: "temporal_workflow_completed", Kind: sdkmetric.InstrumentKindCounter})
	if !ok || s.Description != temporalMetricsHelp["temporal_workflow_completed"] || s.Name != "temporal_workflow_completed" {
		t.Errorf("counter: %+v %v", s, ok)
	}
	s, ok = sdkMetricsView(sdkmetric.Instrument{Name: "temporal_activity_execution_latency", Unit: "s", Kind: sdkmetric.InstrumentKindHistogram})
	agg, isBuckets := s.Aggregation.(sdkmetric.AggregationExplicitBucketHistogram)
	if !ok || !isBuckets || agg.Boundaries[len(agg.Boundaries)-1] != 300 || s.Description == "" {
		t.Errorf("seconds histogram: %+v %v", s, ok)
	}
	s, _ = sdkMetricsView(sdkmetric.Instrument{Name: "temporal_new_in_a_later_sdk", Kind: sdkmetric.InstrumentKindCounter})
	if !strings.HasPrefix(s.Description, undocumentedMetric) {
		t.Errorf("an unknown SDK metric gets %q", s.Description)
	}
	if _, ok := sdkMetricsView(sdkmetric.Instrument{Name: "other", Description: "has one", Kind: sdkmetric.InstrumentKindCounter}); ok {
		t.Error("the view changed an instrument it has nothing to add to")
	}
}

func TestServiceName(t *testing.T) {
	for _, tc := range []struct {
		api, worker bool
		want        string
	}{{true, false, "automation-api"}, {false, true, "automation-worker"}, {true, true, "automation"}} {
		if got := ServiceName(tc.api, tc.worker); got != tc.want {
			t.Errorf("ServiceName(%v, %v) = %q, want %q", tc.api, tc.worker, got, tc.want)
		}
	}
}
