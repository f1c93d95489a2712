package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestDurationsInHumanUnits(t *testing.T) {
	for _, asJSON := range []bool{true, false} {
		var b bytes.Buffer
		log := New(&b, asJSON, "info")
		log.Info("done", "took", 1500*time.Millisecond, slog.Group("step", "wait", 2*time.Minute))
		out := b.String()
		if asJSON {
			var m map[string]any
			if err := json.Unmarshal(b.Bytes(), &m); err != nil {
				t.Fatalf("not JSON: %s", out)
			}
			if m["took"] != "1.5s" || m["step"].(map[string]any)["wait"] != "2m0s" {
				t.Errorf("JSON durations: %s", out)
			}
		} else if !strings.Contains(out, "took=1.5s") || !strings.Contains(out, "step.wait=2m0s") {
			t.Errorf("text durations: %s", out)
		}
	}
}
