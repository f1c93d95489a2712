// Package engine is the workflow engine's service layer: definitions with versions and their
// Temporal Schedules, and executions started on, controlled through and read back from Temporal
// and the database. The HTTP handlers (package api) and other domains (automation rules) call
// it; the interpreter itself is workflows.Interpreter, registered as InterpreterWorkflow.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
	"github.com/pyairtable/automation-domain/wire"
)

// Options are the service's dependencies.
type Options struct {
	Store     *store.Store
	Temporal  client.Client
	Templates *templating.Engine
	// Unavailable says why a step type cannot run in this deployment ("" when it can); see
	// StepUnavailable. Nil: the notification and webhook steps are not available.
	Unavailable func(stepType string) string
	// Egress refuses http_request steps whose destination the SSRF guard refuses at save time
	// (a literal non-public address); nil leaves that to run time.
	Egress *netguard.Policy
	Log    *slog.Logger
}

// Service runs the workflow engine.
type Service struct {
	store       *store.Store
	temporal    client.Client
	templates   *templating.Engine
	unavailable func(string) string
	egress      *netguard.Policy
	log         *slog.Logger
	now         func() time.Time
}

// New returns the service.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Unavailable == nil {
		// Nothing wired: the notification and webhook steps are not available.
		o.Unavailable = func(t string) string { return StepUnavailable(t, nil, nil) }
	}
	return &Service{store: o.Store, temporal: o.Temporal, templates: o.Templates, unavailable: o.Unavailable,
		egress: o.Egress, log: o.Log, now: func() time.Time { return time.Now().UTC() }}
}

// Error is a request the engine refuses for the state things are in (the API answers 409).
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func conflict(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Workflow is a definition as the API shows it: its current body and state.
type Workflow struct {
	ID string `json:"id"`
	definition.Definition
	Enabled   bool      `json:"enabled"`
	Version   int       `json:"version"`
	Paused    bool      `json:"paused"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// View turns a stored definition into a Workflow.
func View(w store.Workflow) Workflow {
	out := Workflow{ID: w.ID, Enabled: w.Enabled, Version: w.Version, Paused: w.Paused,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
	if len(w.Definition) > 0 {
		_ = json.Unmarshal(w.Definition, &out.Definition)
	}
	out.Name, out.Description, out.TriggerType = w.Name, w.Description, w.TriggerType
	out.Enabled = w.Enabled
	out.Definition.Enabled = nil
	if out.Steps == nil {
		out.Steps = []definition.Step{}
	}
	return out
}

// Validate checks a definition, sub_workflow targets included.
func (s *Service) Validate(ctx context.Context, d *definition.Definition, selfID string) error {
	opts := definition.Options{Templates: s.templates, Unavailable: s.unavailable,
		Limits: s.templates.Limits()}
	if s.egress != nil {
		opts.Egress = s.egress
	}
	problems := definition.Validate(d, opts)
	var paths []string
	var targets []string
	walkWithPath("steps", d.Steps, func(path string, st definition.Step) {
		if st.Type != definition.TypeSubWorkflow {
			return
		}
		var c definition.SubWorkflowConfig
		if st.Decode(&c) == nil && c.WorkflowID != "" && !templating.IsTemplate(c.WorkflowID) {
			paths = append(paths, path+".config.workflow_id")
			targets = append(targets, c.WorkflowID)
		}
	})
	for i, id := range targets {
		if id == selfID {
			problems.Add(paths[i], "a workflow cannot run itself as a sub-workflow")
			continue
		}
		if _, err := s.store.GetWorkflow(ctx, id); errors.Is(err, store.ErrNotFound) {
			problems.Add(paths[i], "workflow %q does not exist", id)
		} else if err != nil {
			return err
		}
	}
	return problems.Err()
}

func walkWithPath(path string, steps []definition.Step, fn func(string, definition.Step)) {
	for i, st := range steps {
		p := validation.Index(path, i)
		fn(p, st)
		lists, sub := definition.Children(st)
		for j, l := range lists {
			walkWithPath(p+".config."+sub[j], l, fn)
		}
	}
}

// CreateWorkflow validates and stores a new definition (version 1) and creates its Schedule.
func (s *Service) CreateWorkflow(ctx context.Context, d definition.Definition) (Workflow, error) {
	id := store.NewID()
	if err := s.Validate(ctx, &d, id); err != nil {
		return Workflow{}, err
	}
	now := s.now()
	enabled := d.IsEnabled()
	d.Enabled = nil
	w := store.Workflow{ID: id, Name: d.Name, Description: d.Description, TriggerType: d.TriggerType,
		Enabled: enabled, Version: 1, Definition: store.MustJSON(d), CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateWorkflow(ctx, &w); err != nil {
		return Workflow{}, err
	}
	if err := s.syncSchedule(ctx, &w, &d); err != nil {
		// Without its schedule the definition would silently never run: take it back.
		_ = s.store.DeleteWorkflow(context.WithoutCancel(ctx), id, s.now())
		return Workflow{}, err
	}
	return View(w), nil
}

// UpdateWorkflow stores d as the next version of a definition and updates its Schedule.
// Running executions keep the version they started with.
func (s *Service) UpdateWorkflow(ctx context.Context, id string, d definition.Definition) (Workflow, error) {
	cur, err := s.store.GetWorkflow(ctx, id)
	if err != nil {
		return Workflow{}, err
	}
	if err := s.Validate(ctx, &d, id); err != nil {
		return Workflow{}, err
	}
	enabled := d.IsEnabled()
	d.Enabled = nil
	w := cur
	w.Name, w.Description, w.TriggerType, w.Enabled = d.Name, d.Description, d.TriggerType, enabled
	w.Version, w.Definition, w.UpdatedAt = cur.Version+1, store.MustJSON(d), s.now()
	if err := s.store.UpdateWorkflow(ctx, &w, cur.Version); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Workflow{}, conflict("workflow %s was updated concurrently; read it again and retry", id)
		}
		return Workflow{}, err
	}
	if err := s.syncSchedule(ctx, &w, &d); err != nil {
		return Workflow{}, err
	}
	return View(w), nil
}

// GetWorkflow returns a live definition.
func (s *Service) GetWorkflow(ctx context.Context, id string) (Workflow, error) {
	w, err := s.store.GetWorkflow(ctx, id)
	if err != nil {
		return Workflow{}, err
	}
	return View(w), nil
}

// ListWorkflows lists live definitions, newest first.
func (s *Service) ListWorkflows(ctx context.Context, f store.WorkflowFilter, p store.Page) ([]Workflow, string, error) {
	rows, next, err := s.store.ListWorkflows(ctx, f, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]Workflow, len(rows))
	for i, w := range rows {
		out[i] = View(w)
	}
	return out, next, nil
}

// Version is one stored version of a definition.
type Version struct {
	WorkflowID string `json:"workflow_id"`
	Version    int    `json:"version"`
	definition.Definition
	CreatedAt time.Time `json:"created_at"`
}

func versionView(v store.WorkflowVersion) Version {
	out := Version{WorkflowID: v.WorkflowID, Version: v.Version, CreatedAt: v.CreatedAt}
	_ = json.Unmarshal(v.Definition, &out.Definition)
	out.Name, out.Description, out.TriggerType = v.Name, v.Description, v.TriggerType
	return out
}

// Versions lists a definition's versions, newest first.
func (s *Service) Versions(ctx context.Context, id string) ([]Version, error) {
	if _, err := s.store.GetWorkflow(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.store.ListWorkflowVersions(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]Version, len(rows))
	for i, v := range rows {
		out[i] = versionView(v)
	}
	return out, nil
}

// GetVersion returns one version of a definition (also of a deleted definition, since
// executions refer to it).
func (s *Service) GetVersion(ctx context.Context, id string, version int) (Version, error) {
	v, err := s.store.GetWorkflowVersion(ctx, id, version)
	if err != nil {
		return Version{}, err
	}
	return versionView(v), nil
}

// DeleteWorkflow deletes a definition and its Schedule. Its versions and executions stay
// readable; running executions go on.
func (s *Service) DeleteWorkflow(ctx context.Context, id string) error {
	w, err := s.store.GetWorkflow(ctx, id)
	if err != nil {
		return err
	}
	if w.ScheduleID != "" {
		if err := s.deleteSchedule(ctx, w.ScheduleID); err != nil {
			return err
		}
	}
	return s.store.DeleteWorkflow(ctx, id, s.now())
}

// SetPaused pauses or resumes the Schedule of a schedule-triggered definition.
func (s *Service) SetPaused(ctx context.Context, id string, paused bool) (Workflow, error) {
	w, err := s.store.GetWorkflow(ctx, id)
	if err != nil {
		return Workflow{}, err
	}
	if w.TriggerType != definition.TriggerSchedule || w.ScheduleID == "" {
		return Workflow{}, conflict("workflow %s is triggered by %s; only schedule-triggered workflows can be paused and resumed", id, w.TriggerType)
	}
	h := s.temporal.ScheduleClient().GetHandle(ctx, w.ScheduleID)
	note := "resumed through the API"
	if paused {
		note = "paused through the API"
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: note})
	} else if w.Enabled {
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note})
	}
	if err != nil {
		return Workflow{}, fmt.Errorf("schedule %s: %w", w.ScheduleID, err)
	}
	if err := s.store.SetWorkflowSchedule(ctx, id, w.ScheduleID, paused); err != nil {
		return Workflow{}, err
	}
	w.Paused = paused
	return View(w), nil
}

// ScheduleID is the Temporal Schedule of a schedule-triggered definition.
func ScheduleID(workflowID string) string { return "workflow-schedule-" + workflowID }

// syncSchedule makes the definition's Temporal Schedule match it: created or updated for an
// enabled schedule trigger (paused while the definition is disabled or paused), deleted
// otherwise.
func (s *Service) syncSchedule(ctx context.Context, w *store.Workflow, d *definition.Definition) error {
	if d.TriggerType != definition.TriggerSchedule || d.Schedule == nil {
		if w.ScheduleID != "" {
			if err := s.deleteSchedule(ctx, w.ScheduleID); err != nil {
				return err
			}
			w.ScheduleID, w.Paused = "", false
			return s.store.SetWorkflowSchedule(ctx, w.ID, "", false)
		}
		return nil
	}
	id := ScheduleID(w.ID)
	sc := d.Schedule
	spec := client.ScheduleSpec{TimeZoneName: sc.Timezone}
	if sc.Cron != "" {
		spec.CronExpressions = []string{sc.Cron}
	} else {
		every, _ := definition.ParseDuration(sc.Interval)
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: every}}
	}
	priority := sc.Priority
	if priority == "" {
		priority = definition.PriorityNormal
	}
	action := &client.ScheduleWorkflowAction{
		ID:       "workflow-" + w.ID + "-scheduled",
		Workflow: InterpreterWorkflow,
		Args: []any{RunInput{DefinitionID: w.ID, Priority: priority, Input: sc.InputData,
			TriggeredBy: "schedule"}},
		TaskQueue:                wire.TaskQueue,
		WorkflowExecutionTimeout: d.ExecutionTimeout() + definition.TemporalTimeoutMargin,
		Priority:                 temporal.Priority{PriorityKey: definition.PriorityKey(priority)},
		StaticSummary:            d.Name,
	}
	paused := w.Paused || !w.Enabled
	overlap := overlapPolicy(sc.Overlap)
	sched := s.temporal.ScheduleClient()
	_, err := sched.Create(ctx, client.ScheduleOptions{
		ID: id, Spec: spec, Action: action, Overlap: overlap, Paused: paused,
		Note: "schedule of workflow " + w.ID,
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		err = sched.GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				next := in.Description.Schedule
				next.Spec = &spec
				next.Action = action
				if next.Policy == nil {
					next.Policy = &client.SchedulePolicies{}
				}
				next.Policy.Overlap = overlap
				if next.State == nil {
					next.State = &client.ScheduleState{}
				}
				next.State.Paused = paused
				return &client.ScheduleUpdate{Schedule: &next}, nil
			},
		})
	}
	if err != nil {
		var invalid *serviceerror.InvalidArgument
		if errors.As(err, &invalid) {
			return validation.Problems{{Field: "schedule", Message: "Temporal refused the schedule: " + invalid.Message}}
		}
		return fmt.Errorf("schedule %s: %w", id, err)
	}
	if w.ScheduleID != id {
		w.ScheduleID = id
		return s.store.SetWorkflowSchedule(ctx, w.ID, id, w.Paused)
	}
	return nil
}

func (s *Service) deleteSchedule(ctx context.Context, id string) error {
	err := s.temporal.ScheduleClient().GetHandle(ctx, id).Delete(ctx)
	var notFound *serviceerror.NotFound
	if err != nil && !errors.As(err, &notFound) {
		return fmt.Errorf("delete schedule %s: %w", id, err)
	}
	return nil
}

func overlapPolicy(name string) enumspb.ScheduleOverlapPolicy {
	switch name {
	case "buffer_one":
		return enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE
	case "buffer_all":
		return enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL
	case "cancel_other":
		return enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER
	case "terminate_other":
		return enumspb.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER
	case "allow_all":
		return enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
	}
	return enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
}
