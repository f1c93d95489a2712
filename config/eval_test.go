package config

import (
	"strings"
	"testing"
	"time"
)

func TestEvalSettings(t *testing.T) {
	c, err := LoadFrom(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	l := c.EvalLimits()
	if l.Timeout != time.Second || l.MaxSteps != 1_000_000 || l.MaxDepth != 200 || l.MaxNesting != 64 ||
		l.MaxValueBytes != 1<<20 || l.MaxAllocBytes != 64<<20 || c.EvalIsolation != EvalProcess || c.EvalHelpers != 2 {
		t.Errorf("defaults: %+v, isolation %s, helpers %d", l, c.EvalIsolation, c.EvalHelpers)
	}
	if p := c.EvalPool(nil); p == nil || p.MemoryLimit() != 192<<20 {
		t.Errorf("default pool: %v", p)
	}
	c, err = LoadFrom(map[string]string{"EVAL_ISOLATION": "inprocess"})
	if err != nil || c.EvalPool(nil) != nil {
		t.Errorf("in process: %v", err)
	}
	for name, env := range map[string]map[string]string{
		"EVAL_TIMEOUT":             {"EVAL_TIMEOUT": "1ms"},
		"EVAL_MAX_STEPS":           {"EVAL_MAX_STEPS": "10"},
		"EVAL_MAX_DEPTH":           {"EVAL_MAX_DEPTH": "5000"},
		"EVAL_MAX_NESTING":         {"EVAL_MAX_NESTING": "1"},
		"EVAL_MAX_VALUE_BYTES":     {"EVAL_MAX_VALUE_BYTES": "10"},
		"EVAL_MAX_ALLOC_BYTES":     {"EVAL_MAX_VALUE_BYTES": "4096", "EVAL_MAX_ALLOC_BYTES": "2048"},
		"EVAL_ISOLATION":           {"EVAL_ISOLATION": "wasm"},
		"EVAL_HELPERS":             {"EVAL_HELPERS": "0"},
		"EVAL_HELPER_MEMORY_BYTES": {"EVAL_HELPER_MEMORY_BYTES": "1000000"},
		"EVAL_HELPER_STACK_BYTES":  {"EVAL_HELPER_STACK_BYTES": "100"},
		"EVAL_HELPER_IDLE":         {"EVAL_HELPER_IDLE": "10ms"},
	} {
		if _, err := LoadFrom(env); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v should name %s", env, err, name)
		}
	}
}
