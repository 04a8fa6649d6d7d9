package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
)

// summaries records the summary every activity is scheduled with: the
// options the SDK turns into the command's user metadata.
type summaries struct {
	interceptor.WorkerInterceptorBase
	mu   sync.Mutex
	seen []string // "ActivityType: summary", in the order scheduled
}

func (s *summaries) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &summaryInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, s: s}
}

type summaryInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	s *summaries
}

func (i *summaryInbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&summaryOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, s: i.s})
}

type summaryOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	s *summaries
}

func (o *summaryOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.s.mu.Lock()
	o.s.seen = append(o.s.seen, activityType+": "+workflow.GetActivityOptions(ctx).Summary)
	o.s.mu.Unlock()
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

func (o *summaryOutbound) NewTimerWithOptions(ctx workflow.Context, d time.Duration, opts workflow.TimerOptions) workflow.Future {
	o.s.mu.Lock()
	o.s.seen = append(o.s.seen, "timer: "+opts.Summary)
	o.s.mu.Unlock()
	return o.Next.NewTimerWithOptions(ctx, d, opts)
}

func summaryEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *summaries) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	rec := &summaries{}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{rec}})
	var a *activities.Activities
	env.RegisterActivity(a)
	return env, rec
}

// A reconcile run's activities carry the summaries the Web UI shows: the
// listing names its target and no cursor (a cursor may be an account's id).
func TestReconcileActivitiesCarrySummaries(t *testing.T) {
	env, rec := summaryEnv(t)
	var a *activities.Activities
	env.RegisterActivityWithOptions(func(_ context.Context, in LeaversInput) ([]LeaverOutcome, error) {
		return []LeaverOutcome{{EmployeeID: in.Findings[0].EmployeeID, Outcome: OutcomeContained}}, nil
	}, activity.RegisterOptions{Name: ActivityReconcileLeavers})
	env.RegisterActivityWithOptions(func(_ context.Context, rep ReconcileReport) (string, error) {
		return "reconcile/" + rep.ID, nil
	}, activity.RegisterOptions{Name: ActivityReconcileReport})
	env.OnActivity(a.LoadReconcilePlan, mock.Anything).Return(activities.ReconcilePlan{
		Targets: []activities.ReconcileTargetPlan{{Name: "okta", Kind: "okta", Listable: true}},
	}, nil)
	env.OnActivity(a.ReconcileListPages, mock.Anything, activities.ListPageInput{Target: "okta", MaxPages: 5}).
		Return(activities.ListPageResult{Target: "okta", Next: "00u-ada"}, nil)
	env.OnActivity(a.ReconcileListPages, mock.Anything, activities.ListPageInput{Target: "okta", Cursor: "00u-ada", MaxPages: 5}).
		Return(activities.ListPageResult{Target: "okta", Done: true, Findings: []activities.Finding{
			{Kind: activities.FindingLeaverActive, Target: "okta", EmployeeID: "E1", AccountID: "00u1"}}}, nil)
	env.ExecuteWorkflow(Reconcile, ReconcileInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []string{
		"LoadReconcilePlan: load the reconcile plan",
		"ReconcileListPages: okta · list accounts",
		"ReconcileListPages: okta · list accounts, continued",
		"ReconcileLeavers: check 1 leavers against their runs",
		"WriteReconcileReport: write the reconcile report",
	}, rec.seen)
}

// A drill's activities carry summaries: the canary's lookup, each control
// by its name, the re-verification, the failure notice and the report.
func TestDrillActivitiesCarrySummaries(t *testing.T) {
	env, rec := summaryEnv(t)
	var a *activities.Activities
	env.RegisterActivityWithOptions(func(context.Context, DrillResult) (string, error) { return "drill/1", nil },
		activity.RegisterOptions{Name: ActivityDrillReport})
	env.OnActivity(a.LoadDrillPlan, mock.Anything).Return(activities.DrillPlan{
		Canary:  control.Person{EmployeeID: "CANARY"},
		Targets: []activities.PlanTarget{{Name: "okta", Kind: "okta", Containment: []string{"suspend"}}}, // no restore: the drill fails
	}, nil)
	env.OnActivity(a.ResolveAccount, mock.Anything, mock.Anything).Return(activities.Resolution{Account: control.Account{ID: "00uC"}}, nil)
	env.OnActivity(a.ApplyControl, mock.Anything, mock.Anything).Return(control.Receipt{Outcome: control.Observed}, nil)
	env.OnActivity(a.VerifyControl, mock.Anything, mock.Anything).Return(control.Receipt{Outcome: control.Observed}, nil)
	env.OnActivity(a.Notify, mock.Anything, mock.Anything).Return(true, nil)
	env.ExecuteWorkflow(DrillWorkflow, DrillInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []string{
		"LoadDrillPlan: load the drill plan",
		"ResolveAccount: okta · find the canary",
		"ApplyControl: okta · suspend",
		"VerifyControl: okta · suspend · re-verify",
		"Notify: notify: drill_failed",
		"WriteDrillReport: write the drill report",
	}, rec.seen)
}

// The guard schedules no activity; a delivery's memory is one timer, labelled.
func TestDeliveryTimerCarriesASummary(t *testing.T) {
	env, rec := summaryEnv(t)
	env.ExecuteWorkflow(Delivery, env.Now().Add(5*time.Minute))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []string{"timer: remember the delivery until its signature expires"}, rec.seen)
}
