package definition

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
)

// Options are what validation needs from outside the definition.
type Options struct {
	// Templates compiles the templates in step configs.
	Templates *templating.Engine
	// Unavailable says why a step type cannot run in this deployment ("" when it can): the
	// notification and webhook steps need their modules wired in.
	Unavailable func(stepType string) string
	// Egress, when set, refuses http_request destinations the SSRF guard refuses without DNS (a
	// literal non-public address, an address in disguise, localhost); see Egress.
	Egress Egress
	// Limits are the evaluation limits expressions and jq programs must compile within (the
	// nesting limit; zero fields: defaults).
	Limits sandbox.Limits
}

// Egress is the part of the SSRF guard (netguard.Policy) that judges URLs without DNS. A host
// name passes: only the request, at run time, can resolve it.
type Egress interface {
	// CheckURLStatic judges a whole URL: scheme, credentials and host.
	CheckURLStatic(raw string) error
	// CheckHost judges a URL's host alone (of a URL whose other parts are templates).
	CheckHost(host string) error
}

// Validate checks a definition and returns every problem with its JSON path.
func Validate(d *Definition, o Options) validation.Problems {
	v := &validator{o: o, ids: map[string]string{}, all: map[string]bool{}}
	Walk(d.Steps, func(s Step) { v.all[s.ID] = true })
	name := strings.TrimSpace(d.Name)
	switch {
	case name == "":
		v.add("name", "is required")
	case len(d.Name) > 200:
		v.add("name", "must be at most 200 characters")
	}
	if len(d.Description) > 5000 {
		v.add("description", "must be at most 5000 characters")
	}
	if !slices.Contains(TriggerTypes, d.TriggerType) {
		v.add("trigger_type", "must be one of %s, got %q", strings.Join(TriggerTypes, ", "), d.TriggerType)
	}
	if d.TriggerType == TriggerSchedule && d.Schedule == nil {
		v.add("schedule", "is required when trigger_type is schedule")
	}
	if d.Schedule != nil {
		if d.TriggerType != TriggerSchedule {
			v.add("schedule", "is only allowed when trigger_type is schedule")
		} else {
			v.schedule("schedule", d.Schedule)
		}
	}
	if d.Timeout != "" {
		if t, err := ParseDuration(d.Timeout); err != nil || t <= 0 || t > MaxExecutionTimeout {
			v.add("timeout", "must be a positive duration of at most 365d, got %q", d.Timeout)
		}
	}
	if len(d.Steps) == 0 {
		v.add("steps", "must list at least one step")
	}
	v.list("steps", d.Steps, nil, 0)
	if v.count > MaxSteps {
		v.add("steps", "has %d steps in all; at most %d are allowed", v.count, MaxSteps)
	}
	return v.problems
}

type validator struct {
	o        Options
	problems validation.Problems
	// ids maps every step id seen to its path, to report duplicates.
	ids map[string]string
	// all holds every step id of the definition.
	all   map[string]bool
	count int
}

func (v *validator) add(field, format string, args ...any) { v.problems.Add(field, format, args...) }

func (v *validator) schedule(path string, s *Schedule) {
	switch {
	case s.Cron == "" && s.Interval == "":
		v.add(path, "needs cron or interval")
	case s.Cron != "" && s.Interval != "":
		v.add(path, "takes cron or interval, not both")
	}
	if s.Cron != "" {
		if n := len(strings.Fields(s.Cron)); n != 5 && !strings.HasPrefix(s.Cron, "@") {
			v.add(path+".cron", "must have 5 fields (minute hour day-of-month month day-of-week), got %d", n)
		}
	}
	if s.Interval != "" {
		if d, err := ParseDuration(s.Interval); err != nil || d < time.Second {
			v.add(path+".interval", "must be a duration of at least 1s, got %q", s.Interval)
		}
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			v.add(path+".timezone", "is not a known IANA time zone: %q", s.Timezone)
		}
	}
	if s.Priority != "" && !slices.Contains(Priorities, s.Priority) {
		v.add(path+".priority", "must be one of %s", strings.Join(Priorities, ", "))
	}
	switch s.Overlap {
	case "", "skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all":
	default:
		v.add(path+".overlap", "must be skip, buffer_one, buffer_all, cancel_other, terminate_other or allow_all")
	}
}

// list checks a list of sibling steps. visible are the step ids every step of the list may
// reference (those that have finished before the list starts).
func (v *validator) list(path string, steps []Step, visible map[string]bool, depth int) {
	if depth > MaxNesting {
		v.add(path, "nests parallel and branch steps more than %d levels deep", MaxNesting)
		return
	}
	index := map[string]int{}
	for i, s := range steps {
		v.count++
		p := validation.Index(path, i)
		switch {
		case s.ID == "":
			v.add(p+".id", "is required")
		case !stepIDPattern.MatchString(s.ID):
			v.add(p+".id", "must start with a letter or _ and contain only letters, digits and _ (at most 64), got %q", s.ID)
		case v.ids[s.ID] != "":
			v.add(p+".id", "%q is already the id of %s; step ids must be unique", s.ID, v.ids[s.ID])
		default:
			v.ids[s.ID] = p
			index[s.ID] = i
		}
	}
	deps := Deps(steps)
	for i, s := range steps {
		for j, d := range s.DependsOn {
			switch k, ok := index[d]; {
			case !ok:
				v.add(fmt.Sprintf("%s.depends_on[%d]", validation.Index(path, i), j),
					"%q is not a step of the same list", d)
			case k == i:
				v.add(fmt.Sprintf("%s.depends_on[%d]", validation.Index(path, i), j), "a step cannot depend on itself")
			}
		}
	}
	if cycle := findCycle(steps, deps, index); cycle != nil {
		v.add(path, "the dependencies form a cycle: %s", strings.Join(cycle, " → "))
	}
	// ancestors[i]: every step id that has finished when step i starts.
	ancestors := make([]map[string]bool, len(steps))
	var reach func(i int) map[string]bool
	reach = func(i int) map[string]bool {
		if ancestors[i] != nil {
			return ancestors[i]
		}
		a := map[string]bool{}
		ancestors[i] = a // a cycle (reported above) ends here instead of looping
		for id := range visible {
			a[id] = true
		}
		for _, d := range deps[i] {
			k, ok := index[d]
			if !ok || k == i {
				continue
			}
			for id := range reach(k) {
				a[id] = true
			}
			Walk([]Step{steps[k]}, func(s Step) { a[s.ID] = true })
		}
		return a
	}
	for i, s := range steps {
		v.step(validation.Index(path, i), s, reach(i), depth)
	}
}

// findCycle returns the ids of a dependency cycle, or nil.
func findCycle(steps []Step, deps [][]string, index map[string]int) []string {
	const (
		unvisited = iota
		visiting
		done
	)
	state := make([]int, len(steps))
	var stack []string
	var visit func(i int) []string
	visit = func(i int) []string {
		state[i] = visiting
		stack = append(stack, steps[i].ID)
		for _, d := range deps[i] {
			k, ok := index[d]
			if !ok || k == i {
				continue
			}
			switch state[k] {
			case visiting:
				start := slices.Index(stack, d)
				return append(slices.Clone(stack[start:]), d)
			case unvisited:
				if c := visit(k); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
		return nil
	}
	for i := range steps {
		if state[i] == unvisited {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

func (v *validator) step(path string, s Step, visible map[string]bool, depth int) {
	if !slices.Contains(StepTypes, s.Type) {
		v.add(path+".type", "must be one of %s, got %q", strings.Join(StepTypes, ", "), s.Type)
		return
	}
	if v.o.Unavailable != nil {
		if why := v.o.Unavailable(s.Type); why != "" {
			v.add(path+".type", "%s steps are not available: %s", s.Type, why)
		}
	}
	if s.Condition != "" {
		if _, err := CompileCondition(s.Condition, v.o.Limits); err != nil {
			v.add(path+".condition", "%v", err)
		}
		v.refs(path+".condition", s.Condition, s.ID, visible)
	}
	switch s.OnError {
	case "", OnErrorFail, OnErrorContinue:
	default:
		v.add(path+".on_error", "must be fail or continue, got %q", s.OnError)
	}
	if s.Retry != nil {
		v.retry(path+".retry", s)
	}
	if s.Timeout != "" {
		if !IsActivityStep(s.Type) && s.Type != TypeSubWorkflow {
			v.add(path+".timeout", "does not apply to %s steps", s.Type)
		} else if t, err := ParseDuration(s.Timeout); err != nil || t <= 0 || t > MaxExecutionTimeout {
			v.add(path+".timeout", "must be a positive duration, got %q", s.Timeout)
		}
	}
	cp := path + ".config"
	decode := func(into any) bool {
		if err := s.Decode(into); err != nil {
			v.add(cp, "%s", configError(err))
			return false
		}
		return true
	}
	switch s.Type {
	case TypeDataTransform:
		var c DataTransformConfig
		if !decode(&c) {
			return
		}
		switch {
		case c.JQ == "" && len(c.Mapping) == 0 && len(c.Assert) == 0:
			v.add(cp, "needs jq, mapping or assert")
		case c.JQ != "" && len(c.Mapping) > 0:
			v.add(cp, "takes jq or mapping, not both")
		}
		if c.JQ != "" {
			if _, err := CompileJQ(c.JQ, v.o.Limits); err != nil {
				v.add(cp+".jq", "%v", err)
			}
			v.refs(cp+".jq", c.JQ, s.ID, visible)
		}
		for _, k := range sortedKeys(c.Mapping) {
			if _, err := CompileValue(c.Mapping[k], v.o.Limits); err != nil {
				v.add(cp+".mapping."+k, "%v", err)
			}
			v.refs(cp+".mapping."+k, c.Mapping[k], s.ID, visible)
		}
		for i, a := range c.Assert {
			ap := fmt.Sprintf("%s.assert[%d].that", cp, i)
			if a.That == "" {
				v.add(ap, "is required")
			} else if _, err := CompileCondition(a.That, v.o.Limits); err != nil {
				v.add(ap, "%v", err)
			}
			v.refs(ap, a.That, s.ID, visible)
		}
		if c.Data != nil {
			v.templates(cp+".data", c.Data, s.ID, visible)
		}
	case TypeHTTPRequest:
		var c HTTPRequestConfig
		if !decode(&c) {
			return
		}
		switch m := strings.ToUpper(c.Method); m {
		case "", http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead:
		default:
			v.add(cp+".method", "must be GET, POST, PUT, PATCH, DELETE or HEAD, got %q", c.Method)
		}
		if c.URL == "" {
			v.add(cp+".url", "is required")
		} else if !templating.IsTemplate(c.URL) {
			if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.add(cp+".url", "must be an absolute http or https URL")
			} else if v.o.Egress != nil {
				if err := v.o.Egress.CheckURLStatic(c.URL); err != nil {
					v.add(cp+".url", "%v", err)
				}
			}
		} else if host, ok := literalHost(c.URL); ok && v.o.Egress != nil {
			if err := v.o.Egress.CheckHost(host); err != nil {
				v.add(cp+".url", "%v", err)
			}
		}
		for i, st := range c.ExpectStatus {
			if st < 100 || st > 599 {
				v.add(fmt.Sprintf("%s.expect_status[%d]", cp, i), "must be an HTTP status (100-599)")
			}
		}
		v.templates(cp, rawConfig(s.Config), s.ID, visible)
	case TypeNotification:
		var c NotificationConfig
		if !decode(&c) {
			return
		}
		if c.Channel != "email" && c.Channel != "sms" {
			v.add(cp+".channel", "must be email or sms, got %q", c.Channel)
		}
		if c.To == nil {
			v.add(cp+".to", "is required")
		}
		if c.Body == "" && c.TemplateID == "" {
			v.add(cp, "needs body or template_id")
		}
		v.templates(cp, rawConfig(s.Config), s.ID, visible)
	case TypeWebhook:
		var c WebhookConfig
		if !decode(&c) {
			return
		}
		if c.EventType == "" {
			v.add(cp+".event_type", "is required")
		}
		v.templates(cp, rawConfig(s.Config), s.ID, visible)
	case TypeDelay:
		var c DelayConfig
		if !decode(&c) {
			return
		}
		switch {
		case c.Duration == "" && c.Until == "":
			v.add(cp, "needs duration or until")
		case c.Duration != "" && c.Until != "":
			v.add(cp, "takes duration or until, not both")
		}
		if c.Duration != "" && !templating.IsTemplate(c.Duration) {
			if d, err := ParseDuration(c.Duration); err != nil || d < 0 || d > MaxExecutionTimeout {
				v.add(cp+".duration", "must be a duration like 30s, 5m or 2h, got %q", c.Duration)
			}
		}
		if c.Until != "" && !templating.IsTemplate(c.Until) {
			if _, err := time.Parse(time.RFC3339, c.Until); err != nil {
				v.add(cp+".until", "must be an RFC 3339 time, got %q", c.Until)
			}
		}
		v.templates(cp, rawConfig(s.Config), s.ID, visible)
	case TypeWaitForSignal:
		var c WaitForSignalConfig
		if !decode(&c) {
			return
		}
		if !validation.IsSignalName(c.Signal) {
			v.add(cp+".signal", "must be 1-64 letters, digits, _, - or . , got %q", c.Signal)
		}
		if c.Timeout != "" {
			if d, err := ParseDuration(c.Timeout); err != nil || d <= 0 || d > MaxExecutionTimeout {
				v.add(cp+".timeout", "must be a positive duration, got %q", c.Timeout)
			}
		}
		if c.OnTimeout != "" && c.OnTimeout != OnErrorFail && c.OnTimeout != OnErrorContinue {
			v.add(cp+".on_timeout", "must be fail or continue, got %q", c.OnTimeout)
		}
	case TypeBranch:
		var c BranchConfig
		if !decode(&c) {
			return
		}
		if len(c.Cases) == 0 {
			v.add(cp+".cases", "must list at least one case")
		}
		for i, cs := range c.Cases {
			p := fmt.Sprintf("%s.cases[%d]", cp, i)
			if cs.When == "" {
				v.add(p+".when", "is required")
			} else if _, err := CompileCondition(cs.When, v.o.Limits); err != nil {
				v.add(p+".when", "%v", err)
			}
			v.refs(p+".when", cs.When, s.ID, visible)
			v.list(p+".steps", cs.Steps, visible, depth+1)
		}
		if c.Default != nil {
			v.list(cp+".default", c.Default, visible, depth+1)
		}
	case TypeParallel:
		var c ParallelConfig
		if !decode(&c) {
			return
		}
		if len(c.Branches) < 1 {
			v.add(cp+".branches", "must list at least one branch")
		}
		for i, b := range c.Branches {
			p := fmt.Sprintf("%s.branches[%d]", cp, i)
			if len(b.Steps) == 0 {
				v.add(p+".steps", "must list at least one step")
			}
			v.list(p+".steps", b.Steps, visible, depth+1)
		}
	case TypeSubWorkflow:
		var c SubWorkflowConfig
		if !decode(&c) {
			return
		}
		if c.WorkflowID == "" {
			v.add(cp+".workflow_id", "is required")
		}
		v.templates(cp, rawConfig(s.Config), s.ID, visible)
	}
}

// literalHost returns the host of a templated URL when the host itself holds no template
// ("http://10.0.0.1:{{ input.port }}/x" → 10.0.0.1); ok is false when the host is only known once
// the templates are rendered.
func literalHost(raw string) (host string, ok bool) {
	_, rest, found := strings.Cut(raw, "://")
	if !found {
		return "", false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	host = rest
	if strings.HasPrefix(host, "[") {
		if j := strings.IndexByte(host, ']'); j >= 0 {
			host = host[:j+1]
		}
	} else if j := strings.IndexByte(host, ':'); j >= 0 {
		host = host[:j]
	}
	if host == "" || strings.ContainsAny(host, "{}") {
		return "", false
	}
	return host, true
}

func (v *validator) retry(path string, s Step) {
	r := s.Retry
	if !IsActivityStep(s.Type) && s.Type != TypeSubWorkflow {
		v.add(path, "does not apply to %s steps", s.Type)
		return
	}
	if r.MaxAttempts < 0 || r.MaxAttempts > 100 {
		v.add(path+".max_attempts", "must be from 1 to 100")
	}
	if r.BackoffCoefficient != 0 && (r.BackoffCoefficient < 1 || r.BackoffCoefficient > 100) {
		v.add(path+".backoff_coefficient", "must be from 1 to 100")
	}
	var initial, maximum time.Duration
	var err error
	if r.InitialInterval != "" {
		if initial, err = ParseDuration(r.InitialInterval); err != nil || initial <= 0 {
			v.add(path+".initial_interval", "must be a positive duration, got %q", r.InitialInterval)
		}
	}
	if r.MaxInterval != "" {
		if maximum, err = ParseDuration(r.MaxInterval); err != nil || maximum <= 0 {
			v.add(path+".max_interval", "must be a positive duration, got %q", r.MaxInterval)
		}
	}
	if initial > 0 && maximum > 0 && maximum < initial {
		v.add(path+".max_interval", "must not be shorter than initial_interval")
	}
}

// templates checks every template string inside value compiles and refers only to visible steps.
func (v *validator) templates(path string, value any, self string, visible map[string]bool) {
	if v.o.Templates != nil {
		problems := v.o.Templates.CompileValue(value)
		for _, p := range sortedKeys(problems) {
			v.add(validation.Join(path, p), "template does not compile: %v", problems[p])
		}
	}
	walkStrings(path, value, func(p, s string) {
		if templating.IsTemplate(s) {
			v.refs(p, s, self, visible)
		}
	})
}

// refs reports references to steps that will not have run when this one does.
func (v *validator) refs(path, text, self string, visible map[string]bool) {
	for _, id := range References(text) {
		switch {
		case id == self:
			v.add(path, "refers to its own step %q", id)
		case !visible[id]:
			if v.all[id] {
				v.add(path, "refers to step %q, which does not run before this step (list it in depends_on or move it earlier)", id)
			} else {
				v.add(path, "refers to step %q, which does not exist", id)
			}
		}
	}
}

func rawConfig(raw json.RawMessage) any {
	var out any
	if len(raw) == 0 || json.Unmarshal(raw, &out) != nil {
		return nil
	}
	return out
}

func walkStrings(path string, v any, fn func(path, s string)) {
	switch x := v.(type) {
	case string:
		fn(path, x)
	case map[string]any:
		for _, k := range sortedKeys(x) {
			walkStrings(validation.Join(path, k), x[k], fn)
		}
	case []any:
		for i, item := range x {
			walkStrings(validation.Index(path, i), item, fn)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// configError turns a JSON decoding error into a message about the config.
func configError(err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field != "" {
			return fmt.Sprintf("%s must be %s, got %s", typ.Field, typ.Type.String(), typ.Value)
		}
		return fmt.Sprintf("must be an object, got %s", typ.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f
	}
	return strings.TrimPrefix(msg, "json: ")
}
