package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
)

// Reconcile compares every target's active accounts with the HR roster
// (issue 14). A Temporal Schedule runs it nightly; `starter reconcile --now`
// on demand. Per target, in configuration order, an activity on the
// target's own task queue reads a few pages, heartbeating its cursor; the
// workflow carries the cursor from one activity to the next and continues
// as new after ReconcileActivitiesPerRun of them, so a tenant of any size
// keeps a short history. Then leavers found active are checked against
// their Deprovision runs (drift is re-contained), orphans and ownerless
// service accounts become exceptions with an owner and a due date, and a
// signed report goes to the evidence store.
const (
	ReconcileWorkflowType = "Reconcile"
	ReconcileScheduleID   = "reconcile"
	// QueryReconcile answers the progress of a reconciliation (ReconcileState).
	QueryReconcile = "reconcile"
	// ReconcileActivitiesPerRun bounds one run's history before it continues as new.
	ReconcileActivitiesPerRun = 100
	// MaxReconcileFindings bounds the findings carried from run to run (a
	// workflow's input has a size limit); beyond it they are counted, and
	// the report says how many were not itemised.
	MaxReconcileFindings = 5000

	// Activities of the evidence package (they need Temporal and the
	// store), called by name: this package cannot import it.
	ActivityReconcileLeavers = "ReconcileLeavers"
	ActivityReconcileReport  = "WriteReconcileReport"
)

// Outcomes of a reconciliation finding.
const (
	OutcomeDrift            = "drift: re-containment started"     // a closed run's leaver active again
	OutcomeInFlight         = "in flight: a run is working on it" // its Deprovision is still running
	OutcomeNeverOffboard    = "exception: leaver never offboarded"
	OutcomeContained        = "contained: offboarding started" // policy contain, a leaver never offboarded
	OutcomeException        = "exception"
	OutcomeStartFailed      = "exception: could not start re-containment"
	reconcileNotCovered     = "not covered"
	defaultPagesPerActivity = 5
)

// ReconcileInput tunes one reconciliation; State is set only when a run
// continues as new.
type ReconcileInput struct {
	PagesPerActivity int             `json:"pagesPerActivity,omitempty"`
	Limit            int             `json:"limit,omitempty"`
	ActivitiesPerRun int             `json:"activitiesPerRun,omitempty"`
	State            *ReconcileState `json:"state,omitempty"`
}

// ReconcileState is the progress, carried across continue-as-new.
type ReconcileState struct {
	// ID names the reconciliation in the evidence store: the first run's id.
	ID        string                   `json:"id"`
	StartedAt time.Time                `json:"startedAt"`
	Plan      activities.ReconcilePlan `json:"plan"`
	Next      int                      `json:"next"`   // index of the target being read
	Cursor    string                   `json:"cursor"` // where that target's next activity starts
	Targets   []ReconcileTarget        `json:"targets"`
	Findings  []activities.Finding     `json:"findings"`
	Runs      int                      `json:"runs"` // runs so far, continued as new
	// Dropped counts findings beyond MaxReconcileFindings, not itemised.
	Dropped int `json:"dropped,omitempty"`
}

// ReconcileTarget is one target's part of the report.
type ReconcileTarget struct {
	Name   string                     `json:"name"`
	Kind   string                     `json:"kind"`
	Counts activities.ReconcileCounts `json:"counts"`
	// Error says why the target was not covered, or not wholly: a target
	// that could not be listed is never reported clean.
	Error string `json:"error,omitempty"`
	Done  bool   `json:"done"`
}

// ReconcileItem is one finding with what became of it.
type ReconcileItem struct {
	activities.Finding
	Outcome    string    `json:"outcome"`
	Owner      string    `json:"owner,omitempty"`
	DueAt      time.Time `json:"dueAt,omitzero"`
	WorkflowID string    `json:"workflowId,omitempty"` // the run that re-contains, when one was started or is in flight
	Action     string    `json:"action,omitempty"`     // the command that acts on it
}

// LeaversInput asks what to do about leavers found active.
type LeaversInput struct {
	ReconcileID string               `json:"reconcileId"`
	Findings    []activities.Finding `json:"findings"`
	Contain     bool                 `json:"contain"` // policy: offboard a leaver never offboarded
	GuardMax    int                  `json:"guardMax,omitempty"`
	GuardWindow time.Duration        `json:"guardWindow,omitempty"`
}

// LeaverOutcome is what was done for one leaver (all of their accounts).
type LeaverOutcome struct {
	EmployeeID string `json:"employeeId"`
	Outcome    string `json:"outcome"`
	WorkflowID string `json:"workflowId,omitempty"`
	RunID      string `json:"runId,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

// ReconcileReport is everything the signed report says.
type ReconcileReport struct {
	ID           string            `json:"id"`
	StartedAt    time.Time         `json:"startedAt"`
	FinishedAt   time.Time         `json:"finishedAt"`
	Policy       string            `json:"policy"`
	Targets      []ReconcileTarget `json:"targets"`
	Items        []ReconcileItem   `json:"items"`
	FindingTally map[string]int    `json:"findingTally"`
	// NotItemised counts findings beyond MaxReconcileFindings: in the
	// per-target counts, not in Items.
	NotItemised int `json:"notItemised,omitempty"`
}

// ReconcileResult is the workflow's result.
type ReconcileResult struct {
	Report ReconcileReport `json:"report"`
	// Where is the report's place in the evidence store (workflow id / id).
	Where string `json:"where"`
}

// Reconcile is the workflow.
func Reconcile(ctx workflow.Context, in ReconcileInput) (ReconcileResult, error) {
	var st ReconcileState
	if in.State != nil {
		st = *in.State
	} else {
		st = ReconcileState{ID: workflow.GetInfo(ctx).WorkflowExecution.RunID, StartedAt: workflow.Now(ctx)}
	}
	st.Runs++
	if err := workflow.SetQueryHandler(ctx, QueryReconcile, func() (ReconcileState, error) { return st, nil }); err != nil {
		return ReconcileResult{}, err
	}
	var a *activities.Activities
	local := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: activities.NonRetryable},
	})
	if in.State == nil {
		if err := workflow.ExecuteActivity(withSummary(local, "load the reconcile plan"), a.LoadReconcilePlan).Get(ctx, &st.Plan); err != nil {
			return ReconcileResult{}, fmt.Errorf("reconcile: plan: %w", err)
		}
		for _, t := range st.Plan.Targets {
			st.Targets = append(st.Targets, ReconcileTarget{Name: t.Name, Kind: t.Kind})
		}
	}
	pages := in.PagesPerActivity
	if pages <= 0 {
		pages = defaultPagesPerActivity
	}
	budget := in.ActivitiesPerRun
	if budget <= 0 {
		budget = ReconcileActivitiesPerRun
	}
	for ran := 0; st.Next < len(st.Plan.Targets); {
		plan, out := st.Plan.Targets[st.Next], &st.Targets[st.Next]
		if !plan.Listable {
			out.Error = reconcileNotCovered + ": the connector cannot list accounts"
			st.Next, st.Cursor = st.Next+1, ""
			continue
		}
		if ran == budget {
			next := in
			next.State = &st
			return ReconcileResult{}, workflow.NewContinueAsNewError(ctx, ReconcileWorkflowType, next)
		}
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           plan.TaskQueue,
			StartToCloseTimeout: 30 * time.Minute,
			HeartbeatTimeout:    time.Minute,
			Summary:             listSummary(plan.Name, st.Cursor),
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 10,
				NonRetryableErrorTypes: activities.NonRetryable,
			},
		})
		var res activities.ListPageResult
		err := workflow.ExecuteActivity(actx, a.ReconcileListPages, activities.ListPageInput{
			Target: plan.Name, Cursor: st.Cursor, MaxPages: pages, Limit: in.Limit}).Get(ctx, &res)
		ran++
		if err != nil {
			// What was read stands; the rest of the target is not covered, and says so.
			out.Error = fmt.Sprintf("%s from cursor %q: %v", reconcileNotCovered, st.Cursor, err)
			st.Next, st.Cursor = st.Next+1, ""
			continue
		}
		addCounts(&out.Counts, res.Counts)
		keep := min(len(res.Findings), max(MaxReconcileFindings-len(st.Findings), 0))
		st.Findings = append(st.Findings, res.Findings[:keep]...)
		st.Dropped += len(res.Findings) - keep
		st.Cursor = res.Next
		if res.Done {
			out.Done = true
			st.Next, st.Cursor = st.Next+1, ""
		}
	}
	return finishReconcile(ctx, st)
}

func finishReconcile(ctx workflow.Context, st ReconcileState) (ReconcileResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, NonRetryableErrorTypes: activities.NonRetryable},
	})
	policy := st.Plan.Policy
	due := st.StartedAt.Add(policy.Due())
	var leavers []activities.Finding
	for _, f := range st.Findings {
		if f.Kind == activities.FindingLeaverActive {
			leavers = append(leavers, f)
		}
	}
	outcomes := map[string]LeaverOutcome{}
	if len(leavers) > 0 {
		var got []LeaverOutcome
		in := LeaversInput{ReconcileID: st.ID, Findings: leavers, Contain: policy.OrphanPolicy() == "contain",
			GuardMax: st.Plan.GuardMax, GuardWindow: st.Plan.GuardWindow}
		if err := workflow.ExecuteActivity(withSummary(ctx, fmt.Sprintf("check %d leavers against their runs", len(leavers))), ActivityReconcileLeavers, in).Get(ctx, &got); err != nil {
			// Nobody was re-contained: every leaver stays an exception, said so.
			workflow.GetLogger(ctx).Error("reconcile: leavers not checked against their runs", "error", err)
			for _, f := range leavers {
				got = append(got, LeaverOutcome{EmployeeID: f.EmployeeID, Outcome: OutcomeStartFailed, Detail: err.Error()})
			}
		}
		for _, o := range got {
			outcomes[o.EmployeeID] = o
		}
	}
	rep := ReconcileReport{ID: st.ID, StartedAt: st.StartedAt, Policy: policy.OrphanPolicy(), Targets: st.Targets,
		Items: []ReconcileItem{}, FindingTally: map[string]int{}, NotItemised: st.Dropped}
	for _, f := range st.Findings {
		it := ReconcileItem{Finding: f, Owner: st.Plan.Owner, DueAt: due}
		switch f.Kind {
		case activities.FindingLeaverActive:
			o := outcomes[f.EmployeeID]
			it.Outcome, it.WorkflowID = o.Outcome, o.WorkflowID
			if o.Outcome == OutcomeDrift || o.Outcome == OutcomeInFlight || o.Outcome == OutcomeContained {
				it.DueAt = time.Time{}
				it.Action = "starter status " + f.EmployeeID
			} else {
				it.Action = fmt.Sprintf("starter terminate -employee %s -email %s", f.EmployeeID, f.Email)
			}
			if o.Outcome == "" {
				it.Outcome = OutcomeStartFailed
			}
		case activities.FindingServiceNoOwner:
			it.Outcome = OutcomeException + ": service account without owner"
			it.Action = fmt.Sprintf("name an owner in reconcile.serviceOwners[%q], or disable it in %s", f.Login, f.Target)
		default:
			it.Outcome = OutcomeException + ": no active HR record"
			it.Action = fmt.Sprintf("find who holds %s in %s; disable it there or add them to HR", f.Login, f.Target)
		}
		if it.Manager != "" {
			it.Owner = it.Manager
		}
		rep.FindingTally[f.Kind]++
		rep.Items = append(rep.Items, it)
	}
	slices.SortStableFunc(rep.Items, func(x, y ReconcileItem) int {
		return strings.Compare(x.Target+"\x00"+x.AccountID, y.Target+"\x00"+y.AccountID)
	})
	rep.FinishedAt = workflow.Now(ctx)
	var where string
	if err := workflow.ExecuteActivity(withSummary(ctx, "write the reconcile report"), ActivityReconcileReport, rep).Get(ctx, &where); err != nil {
		return ReconcileResult{Report: rep}, fmt.Errorf("reconcile: the report was not written: %w", err)
	}
	return ReconcileResult{Report: rep, Where: where}, nil
}

// listSummary labels one listing activity: "okta · list accounts". The
// cursor is not shown: some systems' cursors are an account's id or login.
func listSummary(target, cursor string) string {
	if cursor != "" {
		return controlName(target, "list accounts, continued")
	}
	return controlName(target, "list accounts")
}

func addCounts(c *activities.ReconcileCounts, d activities.ReconcileCounts) {
	c.Accounts += d.Accounts
	c.Pages += d.Pages
	c.Matched += d.Matched
	c.ServiceOwned += d.ServiceOwned
	c.LeaverActive += d.LeaverActive
	c.Orphans += d.Orphans
	c.ServiceNoOwner += d.ServiceNoOwner
	c.Canary += d.Canary
}
