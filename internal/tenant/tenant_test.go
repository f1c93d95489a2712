package tenant

import (
	"context"
	"testing"
)

func TestScopes(t *testing.T) {
	bg := context.Background()
	if id, sys := From(bg); id != Default || sys {
		t.Errorf("no tenant: %q %v, want the default tenant", id, sys)
	}
	if id, sys := From(With(bg, "acme")); id != "acme" || sys {
		t.Errorf("acme: %q %v", id, sys)
	}
	if id, sys := From(System(With(bg, "acme"))); id != "" || !sys {
		t.Errorf("system: %q %v", id, sys)
	}
	for _, id := range []string{"", "Acme", "-a", "a b", "a/b"} {
		if ValidID(id) {
			t.Errorf("%q is valid", id)
		}
	}
}

// Default-tenant workflow ids stay as they were (running workflows are found); others carry the
// tenant once.
func TestWorkflowID(t *testing.T) {
	for _, c := range []struct{ tenant, id, want string }{
		{Default, "rules-evaluator-3", "rules-evaluator-3"},
		{"", "x", "x"},
		{"acme", "rules-evaluator-3", "acme/rules-evaluator-3"},
		{"acme", "acme/rules-evaluator-3", "acme/rules-evaluator-3"},
	} {
		if got := WorkflowID(c.tenant, c.id); got != c.want {
			t.Errorf("WorkflowID(%q, %q) = %q, want %q", c.tenant, c.id, got, c.want)
		}
	}
}
