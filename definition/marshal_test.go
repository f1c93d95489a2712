package definition

import (
	"encoding/json"
	"testing"
)

// An absent depends_on (the step after the previous one) stays absent; an explicit [] (no
// dependencies) stays []; neither is written as null; and both read back as they were.
func TestStepDependsOnRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		nilDeps  bool
	}{
		{in: `{"id":"a","type":"delay"}`, want: `{"id":"a","type":"delay"}`, nilDeps: true},
		{in: `{"id":"a","type":"delay","depends_on":null}`, want: `{"id":"a","type":"delay"}`, nilDeps: true},
		{in: `{"id":"a","type":"delay","depends_on":[]}`, want: `{"id":"a","type":"delay","depends_on":[]}`},
		{in: `{"id":"b","type":"delay","depends_on":["a"]}`, want: `{"id":"b","type":"delay","depends_on":["a"]}`},
	} {
		var s Step
		if err := json.Unmarshal([]byte(tc.in), &s); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != tc.want {
			t.Errorf("%s → %s, want %s", tc.in, out, tc.want)
		}
		var again Step
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatal(err)
		}
		if (again.DependsOn == nil) != tc.nilDeps {
			t.Errorf("%s read back with depends_on %#v", out, again.DependsOn)
		}
	}
	// Nested in a definition (and through a pointer) the method applies too.
	out, _ := json.Marshal(&Definition{Steps: []Step{{ID: "a", Type: "delay"}}})
	var m map[string][]map[string]any
	_ = json.Unmarshal(out, &m)
	if _, ok := m["steps"][0]["depends_on"]; ok {
		t.Errorf("a definition's step without dependencies is written with depends_on: %s", out)
	}
}
