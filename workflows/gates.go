// Gates where the run waits on people (approval, legal hold), and the phase, search attributes, notifications and log they show in.

package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
)

func (wf *deprovision) approvalGate(ctx workflow.Context) Phase {
	wf.awaitRights(ctx) // rights.go: rights found may make the run need an approval
	if !wf.status.ApprovalNeeded {
		return PhaseRemoving
	}
	wf.setPhase(ctx, PhaseAwaitingApproval)
	gate := wf.openGate(ctx, "approval", "removal plan "+wf.status.PlanDigest+" needs an approver")
	timeout := wf.base.Policy.Approval.Timeout.D()
	ok, _ := awaitFor(ctx, timeout, "approval due "+at(workflow.Now(ctx).Add(timeout)), func() bool {
		return wf.approvedCurrentPlan() || wf.rejected != nil || wf.rescinded != nil || (wf.superseding != nil && wf.t.Kind == KindRoleChange)
	})
	wf.closeGate(gate)
	switch {
	case wf.rescinded != nil:
		return PhaseRescinded
	case wf.rejected != nil:
		wf.log(ctx, "approval", wf.rejected.Approver, "removal rejected; access stays contained", true)
		return PhaseRejected
	case !ok:
		wf.notify(ctx, "approval_expired", fmt.Sprintf("no approval within %s; access stays contained, removal not done", timeout))
		return PhaseApprovalExpired
	}
	return PhaseRemoving
}

func (wf *deprovision) approvedCurrentPlan() bool {
	return wf.approved != nil && wf.approved.PlanDigest == wf.status.PlanDigest
}

// waitWhileHeld blocks destructive steps while a legal hold is in force; it
// reports whether the termination was rescinded meanwhile.
func (wf *deprovision) waitWhileHeld(ctx workflow.Context) bool {
	if wf.status.LegalHold == nil {
		return wf.rescinded != nil
	}
	wf.setPhase(ctx, PhaseOnHold)
	gate := wf.openGate(ctx, "legal_hold", "destructive steps wait for release-hold")
	_ = workflow.Await(ctx, func() bool {
		return wf.status.LegalHold == nil || (wf.rescinded != nil && !wf.removalStarted) || (wf.superseding != nil && wf.t.Kind == KindRoleChange)
	})
	wf.closeGate(gate)
	return wf.rescinded != nil && !wf.removalStarted
}

// watchSLA starts a timer for a phase; a breach notifies and sets SLABreached.

// ---- gates, phase, notifications ----

func (wf *deprovision) openGate(ctx workflow.Context, kind, detail string) string {
	wf.status.PendingGates = append(wf.status.PendingGates, Gate{Kind: kind, Detail: detail, Since: workflow.Now(ctx)})
	return kind
}

func (wf *deprovision) closeGate(kind string) {
	wf.status.PendingGates = slices.DeleteFunc(wf.status.PendingGates, func(g Gate) bool { return g.Kind == kind })
}

func (wf *deprovision) setPhase(ctx workflow.Context, p Phase) {
	wf.status.Phase = p
	wf.updatePhaseAttribute(ctx)
}

// updatePhaseAttribute keeps DeprovisionStatus current; an open exception
// shows as "exception" so it can be found in the Web UI.
func (wf *deprovision) updatePhaseAttribute(ctx workflow.Context) {
	shown := string(wf.status.Phase)
	for _, c := range wf.status.Controls {
		if c.State == StateException && (!isFinal(wf.status.Phase) || wf.watching) {
			shown = "exception"
		}
	}
	wf.upsert(ctx,
		SAEmployeeID.ValueSet(wf.t.EmployeeID),
		SAStatus.ValueSet(shown),
		SAPrivileged.ValueSet(wf.t.Privileged),
		SALegalHold.ValueSet(wf.status.LegalHold != nil),
		SASLABreached.ValueSet(wf.status.SLABreached),
	)
}

func isFinal(p Phase) bool {
	switch p {
	case PhaseCompleted, PhaseRescinded, PhaseRejected, PhaseApprovalExpired:
		return true
	}
	return false
}

func (wf *deprovision) upsert(ctx workflow.Context, updates ...temporal.SearchAttributeUpdate) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes not updated", "error", err)
	}
}

func (wf *deprovision) notify(ctx workflow.Context, kind, text string) {
	n := activities.Notification{Kind: kind, WorkflowID: wf.status.WorkflowID, EmployeeID: wf.t.EmployeeID, Text: text}
	// A notification never blocks the policy: it runs on its own.
	wf.notifying++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.notifying-- }()
		var sent bool
		if err := workflow.ExecuteActivity(withSummary(wf.shortOptions(ctx), "notify: "+kind), a.Notify, n).Get(ctx, &sent); err != nil {
			wf.log(ctx, "notify", "", kind+" notification failed: "+errorText(err), false)
		}
	})
}

func (wf *deprovision) log(ctx workflow.Context, kind, by, detail string, accepted bool) {
	wf.status.Log = append(wf.status.Log, LogEntry{At: workflow.Now(ctx), Kind: kind, By: by, Detail: detail, Accepted: accepted})
}
