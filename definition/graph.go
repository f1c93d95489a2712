package definition

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
)

// Deps returns, for each step of a list, the sibling ids it waits for: its depends_on when
// present, else the previous step (none for the first).
func Deps(steps []Step) [][]string {
	out := make([][]string, len(steps))
	for i, s := range steps {
		switch {
		case s.DependsOn != nil:
			out[i] = s.DependsOn
		case i > 0:
			out[i] = []string{steps[i-1].ID}
		}
	}
	return out
}

// Children returns the step lists nested in a branch or parallel step, each with its JSON path
// relative to the step's config. Other steps (and configs that do not parse) have none.
func Children(s Step) (lists [][]Step, paths []string) {
	switch s.Type {
	case TypeParallel:
		var c ParallelConfig
		if s.Decode(&c) != nil {
			return nil, nil
		}
		for i, b := range c.Branches {
			lists = append(lists, b.Steps)
			paths = append(paths, fmt.Sprintf("branches[%d].steps", i))
		}
	case TypeBranch:
		var c BranchConfig
		if s.Decode(&c) != nil {
			return nil, nil
		}
		for i, cs := range c.Cases {
			lists = append(lists, cs.Steps)
			paths = append(paths, fmt.Sprintf("cases[%d].steps", i))
		}
		if c.Default != nil {
			lists = append(lists, c.Default)
			paths = append(paths, "default")
		}
	}
	return lists, paths
}

// Walk calls fn for every step, nested ones included, in document order.
func Walk(steps []Step, fn func(s Step)) {
	for _, s := range steps {
		fn(s)
		lists, _ := Children(s)
		for _, l := range lists {
			Walk(l, fn)
		}
	}
}

// Find returns the step with this id anywhere in the definition.
func (d *Definition) Find(id string) (Step, bool) {
	var found Step
	ok := false
	Walk(d.Steps, func(s Step) {
		if !ok && s.ID == id {
			found, ok = s, true
		}
	})
	return found, ok
}

// StepIDs lists every step id in document order.
func (d *Definition) StepIDs() []string {
	var ids []string
	Walk(d.Steps, func(s Step) { ids = append(ids, s.ID) })
	return ids
}

// stepRef finds references to other steps in templates and expressions: steps.<id> and
// steps["<id>"] / steps['<id>'].
var stepRef = regexp.MustCompile(`\bsteps\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']+)["']\s*\])`)

// References returns the step ids that text refers to, sorted and unique.
func References(text string) []string {
	seen := map[string]bool{}
	for _, m := range stepRef.FindAllStringSubmatch(text, -1) {
		id := m[1]
		if id == "" {
			id = m[2]
		}
		seen[id] = true
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// UsesScope reports whether a step needs the execution's data to run: its config or condition
// has a template or an expression that can read it. Steps that do not are run without loading it.
func (s *Step) UsesScope() bool {
	if s.Condition != "" || s.Type == TypeDataTransform || s.Type == TypeBranch {
		return true
	}
	return bytes.Contains(s.Config, []byte("{{")) || bytes.Contains(s.Config, []byte("{%"))
}

func decodeStrict(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}
