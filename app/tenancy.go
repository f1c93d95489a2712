package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/internal/tenant"
)

// tenantHeader carries the tenant a workflow acts for in Temporal headers: set when a request
// (or any context with a tenant) starts or signals a workflow, read into the workflow's context
// and passed from there to every activity it runs, whose context.Context then acts for the
// tenant in the store. The default tenant sends no header: histories of default-tenant work look
// as they did before tenants, and workflows without one act for the default tenant.
const tenantHeader = "automation-tenant"

type workflowTenantKey struct{}

// tenantPropagator is the workflow.ContextPropagator of tenantHeader.
type tenantPropagator struct{}

var _ workflow.ContextPropagator = tenantPropagator{}

func injectTenant(id string, w workflow.HeaderWriter) error {
	if id == "" || id == tenant.Default {
		return nil
	}
	p, err := converter.GetDefaultDataConverter().ToPayload(id)
	if err != nil {
		return fmt.Errorf("tenant header: %w", err)
	}
	w.Set(tenantHeader, p)
	return nil
}

func extractTenant(r workflow.HeaderReader) (string, error) {
	p, ok := r.Get(tenantHeader)
	if !ok {
		return "", nil
	}
	var id string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &id); err != nil {
		return "", fmt.Errorf("tenant header: %w", err)
	}
	return id, nil
}

// Inject sends the context's tenant (nothing for the default tenant or tenant.System).
func (tenantPropagator) Inject(ctx context.Context, w workflow.HeaderWriter) error {
	id, system := tenant.From(ctx)
	if system {
		return nil
	}
	return injectTenant(id, w)
}

// InjectFromWorkflow passes the workflow's tenant on to its activities and child workflows.
func (tenantPropagator) InjectFromWorkflow(ctx workflow.Context, w workflow.HeaderWriter) error {
	id, _ := ctx.Value(workflowTenantKey{}).(string)
	return injectTenant(id, w)
}

// Extract makes an activity's context act for the tenant of the workflow that ran it.
func (tenantPropagator) Extract(ctx context.Context, r workflow.HeaderReader) (context.Context, error) {
	id, err := extractTenant(r)
	if err != nil || id == "" {
		return ctx, err
	}
	return tenant.With(ctx, id), nil
}

// ExtractToWorkflow keeps the workflow's tenant in its context.
func (tenantPropagator) ExtractToWorkflow(ctx workflow.Context, r workflow.HeaderReader) (workflow.Context, error) {
	id, err := extractTenant(r)
	if err != nil || id == "" {
		return ctx, err
	}
	return workflow.WithValue(ctx, workflowTenantKey{}, id), nil
}

// tenantIDs is the client interceptor that puts the context's tenant into Temporal: every
// workflow id the service starts, signals, cancels, terminates, queries or describes is
// tenant.WorkflowID's, and every workflow started (schedules' too) carries the TenantId search
// attribute. tenant.System calls (cross-tenant maintenance) pass unchanged.
type tenantIDs struct {
	interceptor.ClientInterceptorBase
}

func (tenantIDs) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &tenantIDsOutbound{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}}
}

type tenantIDsOutbound struct {
	interceptor.ClientOutboundInterceptorBase
}

func ctxTenant(ctx context.Context) string {
	id, system := tenant.From(ctx)
	if system {
		return ""
	}
	return id
}

func withTenantAttribute(sa temporal.SearchAttributes, id string) temporal.SearchAttributes {
	if sa.Size() == 0 {
		return temporal.NewSearchAttributes(engine.SearchTenantID.ValueSet(id))
	}
	return temporal.NewSearchAttributes(sa.Copy(), engine.SearchTenantID.ValueSet(id))
}

// tenantStart sets the tenant's workflow id and search attribute on o and returns the search
// attributes o had before (see unmappedAttribute).
func tenantStart(ctx context.Context, o *client.StartWorkflowOptions) (before temporal.SearchAttributes, set bool) {
	id := ctxTenant(ctx)
	if id == "" || o == nil {
		return before, false
	}
	o.ID = tenant.WorkflowID(id, o.ID)
	before = o.TypedSearchAttributes
	o.TypedSearchAttributes = withTenantAttribute(o.TypedSearchAttributes, id)
	return before, true
}

// unmappedAttribute reports Temporal's refusal of a search attribute the namespace does not know
// yet: the API serves before the attributes registered at start-up are in the namespace's cache
// (about a second on the embedded server). The start is then made without TenantId rather than
// refused; its id still carries the tenant.
func unmappedAttribute(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no mapping defined for search attribute")
}

// attributeWait is how long a start refused for an unknown TenantId is retried before it is made
// without it: every process registers the attribute at start-up (app.Run), and Temporal loads it
// within its namespace cache refresh (10 s on a cluster, 1 s embedded), so a workflow started in
// that window still gets it.
var attributeWait = 15 * time.Second

// whileUnmapped calls start again while Temporal refuses TenantId as unknown, for up to
// attributeWait, and returns its last result.
func whileUnmapped[T any](ctx context.Context, start func() (T, error)) (T, error) {
	deadline := time.Now().Add(attributeWait)
	for {
		v, err := start()
		if !unmappedAttribute(err) || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (o *tenantIDsOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	before, set := tenantStart(ctx, in.Options)
	start := func() (client.WorkflowRun, error) { return o.Next.ExecuteWorkflow(ctx, in) }
	if !set {
		return start()
	}
	run, err := whileUnmapped(ctx, start)
	if unmappedAttribute(err) {
		in.Options.TypedSearchAttributes = before
		return start()
	}
	return run, err
}

func (o *tenantIDsOutbound) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	before, set := tenantStart(ctx, in.Options)
	start := func() (client.WorkflowRun, error) { return o.Next.SignalWithStartWorkflow(ctx, in) }
	if !set {
		return start()
	}
	run, err := whileUnmapped(ctx, start)
	if unmappedAttribute(err) {
		in.Options.TypedSearchAttributes = before
		return start()
	}
	return run, err
}

func (o *tenantIDsOutbound) SignalWorkflow(ctx context.Context, in *interceptor.ClientSignalWorkflowInput) error {
	in.WorkflowID = tenant.WorkflowID(ctxTenant(ctx), in.WorkflowID)
	return o.Next.SignalWorkflow(ctx, in)
}

func (o *tenantIDsOutbound) CancelWorkflow(ctx context.Context, in *interceptor.ClientCancelWorkflowInput) error {
	in.WorkflowID = tenant.WorkflowID(ctxTenant(ctx), in.WorkflowID)
	return o.Next.CancelWorkflow(ctx, in)
}

func (o *tenantIDsOutbound) TerminateWorkflow(ctx context.Context, in *interceptor.ClientTerminateWorkflowInput) error {
	in.WorkflowID = tenant.WorkflowID(ctxTenant(ctx), in.WorkflowID)
	return o.Next.TerminateWorkflow(ctx, in)
}

func (o *tenantIDsOutbound) QueryWorkflow(ctx context.Context, in *interceptor.ClientQueryWorkflowInput) (converter.EncodedValue, error) {
	in.WorkflowID = tenant.WorkflowID(ctxTenant(ctx), in.WorkflowID)
	return o.Next.QueryWorkflow(ctx, in)
}

func (o *tenantIDsOutbound) DescribeWorkflow(ctx context.Context, in *interceptor.ClientDescribeWorkflowInput) (*interceptor.ClientDescribeWorkflowOutput, error) {
	in.WorkflowID = tenant.WorkflowID(ctxTenant(ctx), in.WorkflowID)
	return o.Next.DescribeWorkflow(ctx, in)
}

func (o *tenantIDsOutbound) CreateSchedule(ctx context.Context, in *interceptor.ScheduleClientCreateInput) (client.ScheduleHandle, error) {
	var (
		action *client.ScheduleWorkflowAction
		before temporal.SearchAttributes
	)
	if id := ctxTenant(ctx); id != "" && in.Options != nil {
		if a, ok := in.Options.Action.(*client.ScheduleWorkflowAction); ok {
			action, before = a, a.TypedSearchAttributes
			a.ID = tenant.WorkflowID(id, a.ID)
			a.TypedSearchAttributes = withTenantAttribute(a.TypedSearchAttributes, id)
		}
	}
	start := func() (client.ScheduleHandle, error) { return o.Next.CreateSchedule(ctx, in) }
	if action == nil {
		return start()
	}
	h, err := whileUnmapped(ctx, start)
	if unmappedAttribute(err) {
		action.TypedSearchAttributes = before
		return o.Next.CreateSchedule(ctx, in)
	}
	return h, err
}
