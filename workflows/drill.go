package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
)

// Drill is a simulated termination of the designated canary in every
// configured target (issue 14): each containment control applied and read
// back, verified again, then the account restored. The receipts go into a
// signed drill report; a failure notifies through the webhook and shows in
// the attestation. A quarterly schedule runs it; `starter drill -now` too.
const (
	DrillWorkflowType   = "Drill"
	DrillScheduleID     = "drill"
	ActivityDrillReport = "WriteDrillReport"
)

// DrillInput is empty: the canary and targets come from the configuration.
type DrillInput struct{}

// DrillTarget is one target's part of a drill.
type DrillTarget struct {
	Name      string            `json:"name"`
	Kind      string            `json:"kind"`
	Account   string            `json:"account,omitempty"`
	Contained bool              `json:"contained"` // every containment control observed or acknowledged
	Verified  bool              `json:"verified"`  // read again: still holds
	Restored  bool              `json:"restored"`  // every restore control applied
	Receipts  []control.Receipt `json:"receipts"`
	Error     string            `json:"error,omitempty"`
}

// Passed is true when the target was contained, verified and restored.
func (t DrillTarget) Passed() bool { return t.Contained && t.Verified && t.Restored && t.Error == "" }

// DrillResult is the drill's record.
type DrillResult struct {
	ID         string        `json:"id"`
	StartedAt  time.Time     `json:"startedAt"`
	FinishedAt time.Time     `json:"finishedAt"`
	Canary     string        `json:"canary"`
	Targets    []DrillTarget `json:"targets"`
	Passed     bool          `json:"passed"`
	Where      string        `json:"where,omitempty"` // the signed report in the evidence store
}

// DrillWorkflow runs one drill. It returns its result even when the drill
// failed (Passed false): the record is the point.
func DrillWorkflow(ctx workflow.Context, _ DrillInput) (DrillResult, error) {
	res := DrillResult{ID: workflow.GetInfo(ctx).WorkflowExecution.RunID, StartedAt: workflow.Now(ctx), Targets: []DrillTarget{}}
	var a *activities.Activities
	local := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, NonRetryableErrorTypes: activities.NonRetryable},
	})
	var plan activities.DrillPlan
	if err := workflow.ExecuteActivity(withSummary(local, "load the drill plan"), a.LoadDrillPlan).Get(ctx, &plan); err != nil {
		return res, fmt.Errorf("drill: %w", err)
	}
	res.Canary = plan.Canary.EmployeeID
	res.Passed = len(plan.Targets) > 0
	for _, pt := range plan.Targets {
		t := drillTarget(ctx, pt, plan.Canary, res.StartedAt)
		res.Passed = res.Passed && t.Passed()
		res.Targets = append(res.Targets, t)
	}
	res.FinishedAt = workflow.Now(ctx)
	if !res.Passed {
		text := "termination drill failed:"
		for _, t := range res.Targets {
			if !t.Passed() {
				text += fmt.Sprintf(" %s (contained %v, verified %v, restored %v) %s;", t.Name, t.Contained, t.Verified, t.Restored, t.Error)
			}
		}
		if len(res.Targets) == 0 {
			text += " no target to drill"
		}
		_ = workflow.ExecuteActivity(withSummary(local, "notify: drill_failed"), a.Notify, activities.Notification{Kind: "drill_failed",
			WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, EmployeeID: res.Canary, Text: text}).Get(ctx, nil)
	}
	rctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
	})
	if err := workflow.ExecuteActivity(withSummary(rctx, "write the drill report"), ActivityDrillReport, res).Get(ctx, &res.Where); err != nil {
		return res, fmt.Errorf("drill: the report was not written: %w", err)
	}
	return res, nil
}

// drillTarget contains, verifies and restores the canary in one target.
// Restore runs whatever happened before it: a drill must not leave the
// canary half-terminated.
func drillTarget(ctx workflow.Context, pt activities.PlanTarget, canary control.Person, since time.Time) DrillTarget {
	var a *activities.Activities
	out := DrillTarget{Name: pt.Name, Kind: pt.Kind, Receipts: []control.Receipt{}}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           pt.TaskQueue,
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 3, NonRetryableErrorTypes: activities.NonRetryable},
	})
	var res activities.Resolution
	if err := workflow.ExecuteActivity(withSummary(ctx, pt.Name+" · find the canary"), a.ResolveAccount, activities.ResolveInput{Target: pt.Name, Person: canary}).Get(ctx, &res); err != nil {
		out.Error = "resolve the canary: " + err.Error()
		return out
	}
	if res.NoAccount {
		out.Error = "the canary has no account here"
		return out
	}
	out.Account = res.Account.ID
	apply := func(phase control.Phase, name string, verify bool) bool {
		in := activities.ControlInput{ControlID: pt.Name + "/" + name, Target: pt.Name, Control: name, Phase: phase,
			Account: res.Account, Params: control.Params{Since: since}}
		fn, summary := a.ApplyControl, controlName(pt.Name, name)
		if verify {
			fn, summary = a.VerifyControl, summary+" · re-verify"
		}
		var r control.Receipt
		err := workflow.ExecuteActivity(withSummary(ctx, summary), fn, in).Get(ctx, &r)
		if err != nil {
			out.Error += fmt.Sprintf("%s %s: %v; ", phase, in.ControlID, err)
			return false
		}
		out.Receipts = append(out.Receipts, r)
		return (r.Outcome == control.Observed || r.Outcome == control.Acknowledged) && !r.Drift
	}
	out.Contained = len(pt.Containment) > 0
	for _, c := range pt.Containment {
		out.Contained = apply(control.Containment, c, false) && out.Contained
	}
	if out.Contained {
		out.Verified = true
		for _, c := range pt.Containment {
			out.Verified = apply(control.Containment, c, true) && out.Verified
		}
	}
	out.Restored = len(pt.Restore) > 0
	for _, c := range pt.Restore {
		out.Restored = apply(control.Restore, c, false) && out.Restored
	}
	if len(pt.Restore) == 0 {
		out.Error += "this target has no restore controls: the canary stays contained; "
	}
	return out
}
