package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
)

// Service is the rules domain: what the API's rule, rule execution and event routes call. It
// owns the rules' CRUD and versions, keeps each schedule trigger's Temporal Schedule in line
// with its rule (on every write and, at start-up, for every rule: Reconcile), runs dry runs and
// reads what the engine made of each event. Writes to the rules tables happen only here (and in
// the engine's activities, which record evaluations).
type Service struct {
	store       *store.Store
	schedules   *Schedules
	temporal    client.Client
	taskQueue   string
	templates   *templating.Engine
	expressions *Expressions
	targets     Targets
	maxDepth    int
	log         *slog.Logger
	now         func() time.Time
}

// ServiceOptions are a Service's dependencies.
type ServiceOptions struct {
	Store *store.Store
	// Temporal and TaskQueue are where the Schedules of schedule triggers (and of event
	// retention) start their workflows.
	Temporal  client.Client
	TaskQueue string
	// Templates validates and renders rule templates; Expressions evaluates expression
	// conditions in dry runs (in process when nil).
	Templates   *templating.Engine
	Expressions *Expressions
	// Targets say which action types are available (a rule using another is refused).
	Targets Targets
	// MaxDepth is the causation depth beyond which events are not evaluated (RULES_MAX_DEPTH).
	MaxDepth int
	Log      *slog.Logger
}

// NewService returns the rules service; Store, Temporal and Templates are required.
func NewService(o ServiceOptions) (*Service, error) {
	if o.Store == nil || o.Temporal == nil || o.Templates == nil {
		return nil, errors.New("rules: Store, Temporal and Templates are required")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Service{
		store: o.Store, schedules: &Schedules{Temporal: o.Temporal, TaskQueue: o.TaskQueue},
		temporal: o.Temporal, taskQueue: o.TaskQueue, templates: o.Templates, expressions: o.Expressions,
		targets: o.Targets, maxDepth: o.MaxDepth, log: o.Log,
		now: func() time.Time { return time.Now().UTC() },
	}, nil
}

// Targets says which action types this deployment can run.
func (s *Service) Targets() Targets { return s.targets }

// Rule is a stored rule as the API shows it: its definition and its state.
type Rule struct {
	ID string `json:"id"`
	Definition
	Enabled    bool      `json:"enabled"`
	Version    int       `json:"version"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	ScheduleID string    `json:"schedule_id,omitempty"`
}

// RuleVersion is one version of a rule's definition.
type RuleVersion struct {
	Version    int        `json:"version"`
	CreatedAt  time.Time  `json:"created_at"`
	Definition Definition `json:"definition"`
}

func viewRule(r store.Rule) (Rule, error) {
	v := Rule{ID: r.ID, Enabled: r.Enabled, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Definition, &v.Definition); err != nil {
		return v, fmt.Errorf("rule %s: stored definition: %w", r.ID, err)
	}
	if v.Conditions == nil {
		v.Conditions = []Condition{}
	}
	if v.Trigger.Type == TriggerSchedule {
		v.ScheduleID = ScheduleID(r.ID)
	}
	return v, nil
}

func fillRule(r *store.Rule, def Definition) {
	if def.Conditions == nil {
		def.Conditions = []Condition{}
	}
	r.Name, r.Description, r.Priority = def.Name, def.Description, def.Priority
	r.TriggerType, r.EventType, r.Source = def.Trigger.Type, def.Trigger.EventType, def.Trigger.Source
	r.Definition = store.MustJSON(def)
}

// parse decodes and validates a rule body (see DecodeRule), checking its action types against
// the available targets: every problem is returned at once as validation.Problems.
func (s *Service) parse(body json.RawMessage) (RuleInput, error) {
	in, problems, err := DecodeRule(body, "")
	if err != nil && !errors.Is(err, ErrRuleDecode) {
		return in, err
	}
	if err == nil {
		_, more := Compile("", 0, in.Definition, CompileOptions{
			Templates: s.templates, Targets: s.targets, CheckTargets: true,
		})
		problems = append(problems, more...)
	}
	return in, problems.Err()
}

// syncSchedule brings the Temporal Schedule of r in line (only rules that have or had a
// schedule trigger touch Temporal). A schedule Temporal refuses is a problem on trigger.cron.
func (s *Service) syncSchedule(ctx context.Context, r store.Rule, def Definition, hadSchedule bool) error {
	if def.Trigger.Type != TriggerSchedule && !hadSchedule {
		return nil
	}
	err := s.schedules.Sync(ctx, r, def.Trigger)
	if err != nil && IsPermanent(err) {
		var p validation.Problems
		p.Add("trigger.cron", "%v", err)
		return p
	}
	return err
}

// CreateRule validates the rule body (a Definition and "enabled", default true) and stores it as
// version 1. A schedule trigger's Schedule is created in the same transaction: if Temporal
// refuses it, no rule is stored.
func (s *Service) CreateRule(ctx context.Context, body json.RawMessage) (Rule, error) {
	in, err := s.parse(body)
	if err != nil {
		return Rule{}, err
	}
	now := s.now()
	r := store.Rule{ID: store.NewID(), Enabled: in.Enabled == nil || *in.Enabled, CreatedAt: now, UpdatedAt: now}
	fillRule(&r, in.Definition)
	err = s.store.Tx(ctx, func(tx *store.Store) error {
		if err := tx.CreateRule(ctx, &r); err != nil {
			return err
		}
		return s.syncSchedule(ctx, r, in.Definition, false)
	})
	if err != nil {
		return Rule{}, err
	}
	return viewRule(r)
}

// ListRules lists live rules, newest first.
func (s *Service) ListRules(ctx context.Context, f store.RuleFilter, p store.Page) ([]Rule, string, error) {
	items, next, err := s.store.ListRules(ctx, f, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]Rule, 0, len(items))
	for _, r := range items {
		v, err := viewRule(r)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

// GetRule returns a live rule (store.ErrNotFound when there is none).
func (s *Service) GetRule(ctx context.Context, id string) (Rule, error) {
	r, err := s.store.GetRule(ctx, id)
	if err != nil {
		return Rule{}, err
	}
	return viewRule(r)
}

// ReplaceRule replaces rule id's definition (and "enabled" when given); a changed definition
// is a new version, used from the next event on. The rule must exist before its body is
// judged (store.ErrNotFound first).
func (s *Service) ReplaceRule(ctx context.Context, id string, body json.RawMessage) (Rule, error) {
	if _, err := s.store.GetRule(ctx, id); err != nil {
		return Rule{}, err
	}
	in, err := s.parse(body)
	if err != nil {
		return Rule{}, err
	}
	var out store.Rule
	err = s.store.Tx(ctx, func(tx *store.Store) error {
		var hadSchedule bool
		r, err := tx.UpdateRule(ctx, id, func(r *store.Rule) (bool, error) {
			hadSchedule = r.TriggerType == TriggerSchedule
			before := r.Definition
			fillRule(r, in.Definition)
			if in.Enabled != nil {
				r.Enabled = *in.Enabled
			}
			r.UpdatedAt = s.now()
			return !sameJSON(before, r.Definition), nil
		})
		if err != nil {
			return err
		}
		out = r
		return s.syncSchedule(ctx, r, in.Definition, hadSchedule)
	})
	if err != nil {
		return Rule{}, err
	}
	return viewRule(out)
}

func sameJSON(a, b store.JSON) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// DeleteRule soft-deletes rule id: it stops at once (its Schedule is deleted with it); its
// history stays readable.
func (s *Service) DeleteRule(ctx context.Context, id string) error {
	return s.store.Tx(ctx, func(tx *store.Store) error {
		r, err := tx.UpdateRule(ctx, id, func(r *store.Rule) (bool, error) {
			now := s.now()
			r.DeletedAt, r.UpdatedAt, r.Enabled = &now, now, false
			return false, nil
		})
		if err != nil {
			return err
		}
		if r.TriggerType == TriggerSchedule {
			return s.schedules.Delete(ctx, r.ID)
		}
		return nil
	})
}

// SetEnabled enables or disables rule id; a schedule trigger's Schedule is paused while the
// rule is disabled.
func (s *Service) SetEnabled(ctx context.Context, id string, enabled bool) (Rule, error) {
	var out store.Rule
	err := s.store.Tx(ctx, func(tx *store.Store) error {
		r, err := tx.UpdateRule(ctx, id, func(r *store.Rule) (bool, error) {
			r.Enabled, r.UpdatedAt = enabled, s.now()
			return false, nil
		})
		if err != nil {
			return err
		}
		out = r
		if r.TriggerType != TriggerSchedule {
			return nil
		}
		var def Definition
		if err := json.Unmarshal(r.Definition, &def); err != nil {
			return fmt.Errorf("rule %s: stored definition: %w", r.ID, err)
		}
		return s.syncSchedule(ctx, r, def, true)
	})
	if err != nil {
		return Rule{}, err
	}
	return viewRule(out)
}

// Versions lists the versions of live rule id, newest first.
func (s *Service) Versions(ctx context.Context, id string) ([]RuleVersion, error) {
	r, err := s.store.GetRule(ctx, id)
	if err != nil {
		return nil, err
	}
	versions, err := s.store.RuleVersions(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	out := make([]RuleVersion, 0, len(versions))
	for _, rv := range versions {
		v := RuleVersion{Version: rv.Version, CreatedAt: rv.CreatedAt}
		if err := json.Unmarshal(rv.Definition, &v.Definition); err != nil {
			return nil, fmt.Errorf("rule %s version %d: %w", r.ID, rv.Version, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// RetentionInterval is how often the event retention Schedule runs.
const RetentionInterval = time.Hour

// Reconcile creates the event retention Schedule and brings the Schedule of every
// schedule-triggered rule in line with the rule (a rule written while Temporal was unreachable,
// or restored from a backup). A rule whose stored definition does not read, or whose Schedule
// Temporal refuses, is logged and skipped; any other failure is returned.
func (s *Service) Reconcile(ctx context.Context) error {
	if err := EnsureRetentionSchedule(ctx, s.temporal, s.taskQueue, RetentionInterval); err != nil {
		return err
	}
	list, err := s.store.RulesWithTrigger(ctx, TriggerSchedule)
	if err != nil {
		return fmt.Errorf("rules with a schedule trigger: %w", err)
	}
	for _, r := range list {
		var def Definition
		if err := json.Unmarshal(r.Definition, &def); err != nil {
			s.log.Error("stored rule definition is not readable", "rule_id", r.ID, "error", err)
			continue
		}
		if err := s.schedules.Sync(ctx, r, def.Trigger); err != nil {
			if IsPermanent(err) {
				s.log.Error("rule schedule refused by Temporal", "rule_id", r.ID, "error", err)
				continue
			}
			return err
		}
	}
	return nil
}

// KeepReconciling runs Reconcile until it succeeds or ctx ends, waiting retry between attempts
// (a worker runs it at start-up, when Temporal may not answer yet).
func (s *Service) KeepReconciling(ctx context.Context, retry time.Duration) {
	for attempt := 0; ; attempt++ {
		err := s.Reconcile(ctx)
		if err == nil {
			return
		}
		if attempt%10 == 0 {
			s.log.Warn("rule schedules not in place yet; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}
