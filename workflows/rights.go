// Rights beside containment (issue 17): a target that can find an account
// before reading its admin rights and holdings answers the lookup at once;
// containment starts, and the rights are read beside it. Only the approver
// and the containment SLA need them, and both wait for them.

package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
)

// rightsTarget is an account found with FindOnly, its rights not yet read.
type rightsTarget struct {
	i  int // index in status.Accounts
	pt activities.PlanTarget
}

// readRightsLater reads the rights and holdings of the accounts found
// without them, beside containment. Until they are in, the approval gate
// and the containment SLA's watcher wait (awaitRights, watchContainmentSLA).
func (wf *deprovision) readRightsLater(ctx workflow.Context, later []rightsTarget) {
	if len(later) == 0 {
		return
	}
	wf.rightsPending = len(later)
	wf.openWork++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		futures := make([]workflow.Future, len(later))
		for k, l := range later {
			futures[k] = workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, l.pt.Name), l.pt.Name+" · read rights and holdings"), a.ReadRights,
				activities.RightsInput{Target: l.pt.Name, Account: wf.accounts[l.pt.Name]})
		}
		for k, l := range later {
			var got control.Account
			acct := wf.accounts[l.pt.Name]
			if err := futures[k].Get(ctx, &got); err != nil {
				// Unknown rights are treated as admin rights, and the plan says
				// it cannot show what the account holds: a person decides.
				acct.Privileges = []string{"admin rights unknown: reading them failed (" + errorText(err) + ")"}
				acct.Holds = unreadHolds(l.pt, errorText(err))
			} else {
				acct.Privileges, acct.Holds = got.Privileges, got.Holds
			}
			wf.accounts[l.pt.Name] = acct
			wf.status.Accounts[l.i].Privileges = acct.Privileges
		}
		wf.rightsPending = 0
		wf.discoverPrivilege(ctx)
		wf.status.PlanDigest = wf.planDigest()
	})
}

// unreadHolds says, for every kind the target's destructive controls take
// away, that it could not be read: the approver's plan never shows less
// than is there.
func unreadHolds(pt activities.PlanTarget, reason string) []string {
	var out []string
	seen := map[string]bool{}
	for _, names := range [][]string{pt.Removal, pt.RoleChange, pt.Deletion} {
		for _, name := range names {
			for _, kind := range removedKinds(name) {
				if !seen[kind] {
					seen[kind] = true
					out = append(out, plural(kind)+" could not be read: "+reason)
				}
			}
		}
	}
	return out
}

// awaitRights waits until the rights read beside containment are in: the
// approval gate and the plan digest depend on them.
func (wf *deprovision) awaitRights(ctx workflow.Context) {
	_ = workflow.Await(ctx, func() bool { return wf.rightsPending == 0 })
}

// watchContainmentSLA starts the containment SLA's watcher: at once, or,
// with rights still being read (they may make the person privileged, and
// the privileged SLA shorter), once they are in. The due is counted from
// the same start either way.
func (wf *deprovision) watchContainmentSLA(ctx workflow.Context) {
	done := func() bool { return wf.phaseDone(control.Containment) }
	if wf.rightsPending == 0 {
		wf.watchSLA(ctx, "containment", wf.containmentSLA(), done)
		return
	}
	wf.openWork++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		// Containment may be done before the rights are in: the watcher then
		// judges by when it was done, not by when it could start.
		var doneAt time.Time
		_ = workflow.Await(ctx, func() bool { return wf.rightsPending == 0 || done() })
		if done() {
			doneAt = workflow.Now(ctx)
		}
		wf.awaitRights(ctx)
		wf.watchSLASince(ctx, "containment", wf.containmentSLA(), done, doneAt)
	})
}
