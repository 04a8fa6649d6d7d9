package workflows

// Who the run is about, and what proves it: the person's accounts found (or
// provably absent) in every target, admin rights discovered there, a leaver
// found nowhere held as an exception, identity corrections, and a later HR
// event for a run in flight (a corrected event, or a termination that
// supersedes a role change).

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
)

// identityControl is the exception a leaver found in no target waits in.
const identityControl = "identity/resolve"

// person is who the run looks for now: the HR event as corrected so far.
func (wf *deprovision) person() control.Person {
	return control.Person{EmployeeID: wf.t.EmployeeID, Email: wf.t.Email, Name: wf.t.Name, Hints: wf.t.Accounts}
}

// listenHR receives later HR events for this person. They need no answer, so
// they are signals; each is applied or refused, and the log says which.
func (wf *deprovision) listenHR(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalHREvent)
	applied := map[string]bool{} // digests of signed events applied: a redelivery changes nothing
	refused := 0
	workflow.Go(ctx, func(ctx workflow.Context) {
		// The keys the run trusts come with its plan.
		_ = workflow.Await(ctx, func() bool { return wf.planLoaded })
		for {
			var ev HREvent
			ch.Receive(ctx, &ev)
			t, by, err := wf.verifyHREvent(ctx, ev, applied)
			if err == nil {
				err = wf.onHREvent(ctx, t, by)
			}
			if err == nil {
				continue
			}
			// A flood of refused events must not grow the status without end.
			if refused++; refused <= maxIgnoredLogged {
				wf.log(ctx, SignalHREvent, by, "refused: "+err.Error(), false)
			}
		}
	})
}

// verifyHREvent takes the termination from the event's signed copy: a
// decision of kind hr-event by a key the run trusts, for this very run.
func (wf *deprovision) verifyHREvent(ctx workflow.Context, ev HREvent, applied map[string]bool) (Termination, string, error) {
	by := "unsigned:" + ev.Termination.Source
	if ev.Signed == nil {
		return Termination{}, by, fmt.Errorf("an HR event must be signed by the relay; this one is not, so it changes nothing")
	}
	v, err := wf.verify(decision.KindHREvent, *ev.Signed, applied)
	if err != nil {
		return Termination{}, by, err
	}
	by = v.Person
	// The run id alone binds the event (run ids are unique): a replayer runs
	// the history under another workflow id, but the same run id, so this
	// check decides the same way on replay.
	if run := workflow.GetInfo(ctx).WorkflowExecution; v.RunID != run.RunID {
		return Termination{}, by, fmt.Errorf("HR event signed for %s run %s, not this run", v.WorkflowID, v.RunID)
	}
	var t Termination
	if err := payload(v, &t); err != nil {
		return Termination{}, by, err
	}
	applied[decision.Digest(*ev.Signed)] = true
	return t, by, nil
}

// onHREvent applies a later HR event: a termination that supersedes a role
// change in flight, or a correction of who the run is about. A redelivery
// of what the run already knows changes nothing.
func (wf *deprovision) onHREvent(ctx workflow.Context, t Termination, by string) error {
	if !strings.EqualFold(strings.TrimSpace(t.EmployeeID), strings.TrimSpace(wf.t.EmployeeID)) {
		return fmt.Errorf("event %s is about employee %q, this run about %q", t.EventID, t.EmployeeID, wf.t.EmployeeID)
	}
	if (t.Kind == KindTermination || t.Kind == KindContractEnd) && wf.t.Kind == KindRoleChange {
		if wf.superseding != nil || isFinal(wf.status.Phase) {
			return fmt.Errorf("the role change is already superseded or closed")
		}
		tt := t
		wf.superseding = &tt
		wf.log(ctx, SignalHREvent, by, fmt.Sprintf("%s event %s supersedes the role change %s", t.Kind, t.EventID, wf.t.EventID), true)
		if wf.startedAt.IsZero() && !t.Quarantined {
			// The role change has not begun: the run simply becomes the
			// termination, and waits for its effective time instead.
			wf.adoptTermination(ctx)
			wf.scheduleChanged = true
		}
		return nil
	}
	c := IdentityCorrection{EventID: t.EventID, By: by}
	if e := strings.TrimSpace(t.Email); e != "" && !strings.EqualFold(e, strings.TrimSpace(wf.t.Email)) {
		c.Email = e
	}
	if t.Name != "" && t.Name != wf.t.Name {
		c.Name = t.Name
	}
	for _, k := range workflow.DeterministicKeys(t.Accounts) {
		if wf.t.Accounts[k] != t.Accounts[k] {
			if c.Accounts == nil {
				c.Accounts = map[string]string{}
			}
			c.Accounts[k] = t.Accounts[k]
		}
	}
	if c.Email == "" && c.Name == "" && len(c.Accounts) == 0 {
		wf.log(ctx, SignalHREvent, by, "event "+t.EventID+" repeats what the run knows: nothing to change", true)
		return nil
	}
	c.Reason = "corrected HR event " + t.EventID
	return wf.correctIdentity(ctx, c)
}

// correctIdentity fixes who the run is about and looks again for the accounts
// not found yet. Accounts already found stay: they were proven. Once removal
// has started the plan is fixed, so a correction is refused then.
func (wf *deprovision) correctIdentity(ctx workflow.Context, c IdentityCorrection) error {
	switch {
	case isFinal(wf.status.Phase):
		return fmt.Errorf("the run is closed (%s)", wf.status.Phase)
	case wf.removalStarted:
		return fmt.Errorf("removal has started, the plan can no longer change: start a termination for the corrected identity")
	case c.Email == "" && c.Name == "" && len(c.Accounts) == 0:
		return fmt.Errorf("a correction names an email, a name or account hints")
	case c.Email != "" && !strings.Contains(c.Email, "@"):
		return fmt.Errorf("email %q is not an e-mail address", c.Email)
	}
	for _, k := range workflow.DeterministicKeys(c.Accounts) {
		if !wf.hasTarget(k) {
			return fmt.Errorf("no target named %q is configured", k)
		}
	}
	var changed []string
	if c.Email != "" {
		wf.t.Email = strings.TrimSpace(c.Email)
		changed = append(changed, "email")
	}
	if c.Name != "" {
		wf.t.Name = c.Name
		changed = append(changed, "name")
	}
	if len(c.Accounts) > 0 {
		accounts := map[string]string{}
		for _, k := range workflow.DeterministicKeys(wf.t.Accounts) {
			accounts[k] = wf.t.Accounts[k]
		}
		for _, k := range workflow.DeterministicKeys(c.Accounts) {
			accounts[k] = c.Accounts[k]
		}
		wf.t.Accounts = accounts
		changed = append(changed, "account hints for "+strings.Join(workflow.DeterministicKeys(c.Accounts), ", "))
	}
	wf.status.Corrections = append(wf.status.Corrections, c)
	wf.corrections++
	wf.log(ctx, "identity_corrected", c.By, "identity corrected ("+strings.Join(changed, "; ")+"): "+c.Reason, true)
	// Before the first lookup there is nothing to redo; inside the identity
	// gate the gate looks again itself.
	if wf.resolved && !wf.identityOpen {
		wf.openWork++
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { wf.openWork-- }()
			wf.reresolve(ctx)
		})
	}
	return nil
}

// dropPendingRoleChange takes the role change's controls that never ran out
// of the plan: the termination's own removal takes every group anyway.
// Controls already running finish and keep their receipts.
func (wf *deprovision) dropPendingRoleChange(ctx workflow.Context) {
	var kept []ControlStatus
	var dropped []string
	for _, c := range wf.status.Controls {
		if c.Phase == control.RoleChange && c.State == StatePending {
			dropped = append(dropped, c.ID)
			continue
		}
		kept = append(kept, c)
	}
	if len(dropped) == 0 {
		return
	}
	wf.status.Controls = kept
	wf.controlIndex = map[string]int{}
	for i, c := range kept {
		wf.controlIndex[c.ID] = i
	}
	wf.log(ctx, "superseded", "", "role change steps not run, the termination's removal covers them: "+strings.Join(dropped, ", "), true)
}

func (wf *deprovision) hasTarget(name string) bool {
	for _, pt := range wf.base.Targets {
		if pt.Name == name {
			return true
		}
	}
	return false
}

// reresolve looks again, with the identity as corrected, in every target
// where no account was found. New accounts join the plan; once the run is
// past its first lookup they are contained at once.
func (wf *deprovision) reresolve(ctx workflow.Context) {
	type lookup struct {
		i  int
		pt activities.PlanTarget
		f  workflow.Future
	}
	var lookups []lookup
	for i, pt := range wf.base.Targets {
		if wf.status.Accounts[i].State != "no_account" {
			continue // found (proven), or its own exception retries with the corrected identity
		}
		wf.status.Accounts[i].State = "pending"
		lookups = append(lookups, lookup{i, pt, workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, pt.Name), pt.Name+" · find the account"), a.ResolveAccount,
			activities.ResolveInput{Target: pt.Name, Person: wf.person()})})
	}
	for _, l := range lookups {
		var res activities.Resolution
		if err := l.f.Get(ctx, &res); err != nil {
			st := &wf.status.Accounts[l.i]
			st.State, st.Error = "exception", errorText(err)
			wf.addControl(l.pt.Name, "resolve", "resolve", control.Containment)
			wf.setState(l.pt.Name+"/resolve", StateRunning)
			wf.openWork++
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer func() { wf.openWork-- }()
				wf.retryResolve(ctx, l.i, l.pt, err)
			})
			continue
		}
		wf.recordResolution(ctx, l.i, l.pt, res)
		if !res.NoAccount {
			wf.addTargetControls(l.pt)
			wf.discoverFound(ctx, l.pt) // nonhuman.go
			if wf.resolved && !wf.removalStarted && wf.t.Kind != KindRoleChange {
				wf.runTargetControls(ctx, l.pt.Name, control.Containment)
			}
		}
	}
	wf.discoverPrivilege(ctx)
	wf.status.PlanDigest = wf.planDigest()
}

// awaitIdentity holds a leaver found in no target as an exception: finding
// nobody is not proof there is nothing to remove (a mistyped e-mail looks
// the same). It waits for a correction (then looks again), a retry, a
// person attesting that the leaver has no account (a waiver of the
// exception, recorded as attested), or a rescind.
func (wf *deprovision) awaitIdentity(ctx workflow.Context) {
	for wf.foundNowhere() {
		if _, ok := wf.controlIndex[identityControl]; !ok {
			wf.addControl("identity", "resolve", "resolve", control.Containment)
		}
		wf.setState(identityControl, StateRunning)
		wf.identityOpen = true
		wf.exception(ctx, identityControl, fmt.Errorf("%s was found in none of the %d targets (%s): correct the identity, retry, or waive to attest there is no account",
			wf.t.EmployeeID, len(wf.base.Targets), wf.searchedSummary()))
		seen := wf.corrections
		_ = workflow.Await(ctx, func() bool {
			return wf.corrections != seen || wf.retries[identityControl] > 0 || wf.waivers[identityControl] != nil || wf.rescinded != nil
		})
		wf.closeGate("exception:" + identityControl)
		workflow.GetMetricsHandler(ctx).Counter("offboard_exceptions_open").Inc(-1)
		wf.identityOpen = false
		switch {
		case wf.rescinded != nil:
			return
		case wf.waivers[identityControl] != nil:
			w := wf.waivers[identityControl]
			c := &wf.status.Controls[wf.controlIndex[identityControl]]
			r := control.Receipt{ControlID: identityControl, System: "identity", Action: "resolve", Phase: control.Containment,
				Outcome: control.Attested, By: w.By, Reason: w.Reason, Detail: "a person attested that " + wf.t.EmployeeID +
					" has no account in any target; searched: " + wf.searchedSummary(),
				StartedAt: workflow.Now(ctx), FinishedAt: workflow.Now(ctx)}
			c.State, c.Outcome, c.Error, c.Receipt, c.Waiver = StateDone, control.Attested, "", &r, w
			wf.countControl(ctx, *c, "identity")
			wf.updatePhaseAttribute(ctx)
			return
		case wf.retries[identityControl] > 0:
			wf.retries[identityControl]--
		}
		wf.reresolve(ctx)
	}
	if i, ok := wf.controlIndex[identityControl]; ok && wf.status.Controls[i].State != StateDone {
		found := []string{}
		for _, pt := range wf.base.Targets {
			if acct, ok := wf.accounts[pt.Name]; ok {
				found = append(found, pt.Name+" "+acct.ID)
			}
		}
		wf.settle(ctx, identityControl, control.Receipt{ControlID: identityControl, System: "identity", Action: "resolve",
			Phase: control.Containment, Outcome: control.Observed, Detail: "accounts found after correction: " + strings.Join(found, ", "),
			StartedAt: workflow.Now(ctx), FinishedAt: workflow.Now(ctx)})
		wf.updatePhaseAttribute(ctx)
	}
}

// foundNowhere: every target answered, and every one proved there is no
// account. A target still in exception may yet find one.
func (wf *deprovision) foundNowhere() bool {
	if len(wf.base.Targets) == 0 {
		return false
	}
	for _, st := range wf.status.Accounts {
		if st.State != "no_account" {
			return false
		}
	}
	return true
}

func (wf *deprovision) searchedSummary() string {
	var parts []string
	for _, st := range wf.status.Accounts {
		if len(st.Searched) > 0 {
			parts = append(parts, st.Target+": "+strings.Join(st.Searched, "; "))
		}
	}
	if len(parts) == 0 {
		return "no record of the searches"
	}
	return strings.Join(parts, " | ")
}

// discoverPrivilege treats a person holding admin rights in any target as
// privileged, whatever HR declared: approval and SLA follow policy.
func (wf *deprovision) discoverPrivilege(ctx workflow.Context) {
	if !wf.discover {
		return
	}
	var found []string
	for _, st := range wf.status.Accounts {
		for _, p := range st.Privileges {
			found = append(found, st.Target+": "+p)
		}
	}
	if len(found) == 0 {
		return
	}
	wf.status.Privileged = true
	if !wf.t.Privileged {
		wf.t.Privileged = true
		wf.log(ctx, "privilege_discovered", "", "admin rights found although HR did not flag the person privileged: "+strings.Join(found, "; "), true)
		wf.status.ApprovalNeeded = wf.approvalRequired(wf.base)
		wf.updatePhaseAttribute(ctx)
	}
}

// containmentSLA is the policy's containment SLA, or its privileged one for a
// person HR flagged or a target showed privileged (discoverPrivilege).
func (wf *deprovision) containmentSLA() time.Duration {
	if p := wf.base.Policy; wf.t.Privileged && p.PrivilegedContainmentSLA > 0 {
		return p.PrivilegedContainmentSLA.D()
	}
	return wf.base.Policy.ContainmentSLA.D()
}

// becomeTermination turns a role change superseded by a termination into
// that termination: its kind, reason, effective time, privilege and hold;
// the accounts already found stay, and gain the termination's controls. It
// waits for the termination's effective time, and reports whether the
// termination was rescinded first.
func (wf *deprovision) becomeTermination(ctx workflow.Context) bool {
	wf.adoptTermination(ctx)
	if wf.t.Quarantined && !wf.quarantineReleased {
		// The guard held the termination: security releases it first.
		wf.setPhase(ctx, PhaseQuarantined)
		gate := wf.openGate(ctx, "quarantine", "too many terminations at once: a security approver must release this one (planDigest \""+QuarantineDigest+"\")")
		_ = workflow.Await(ctx, func() bool { return wf.quarantineReleased || wf.rescinded != nil })
		wf.closeGate(gate)
		if wf.rescinded != nil {
			return true
		}
	}
	wf.setPhase(ctx, PhaseScheduled)
	if wf.waitForEffectiveTime(ctx) {
		return true
	}
	wf.startedAt = workflow.Now(ctx)
	return false
}

// adoptTermination makes the superseding termination the run's event.
func (wf *deprovision) adoptTermination(ctx workflow.Context) {
	t := *wf.superseding
	wf.status.Superseded = wf.t.EventID
	wf.t.EventID, wf.t.Source, wf.t.Kind, wf.t.Reason = t.EventID, t.Source, t.Kind, t.Reason
	wf.t.EffectiveAt, wf.t.NewRole, wf.t.Privileged = t.EffectiveAt, "", wf.t.Privileged || t.Privileged
	wf.status.Privileged = wf.status.Privileged || wf.t.Privileged
	wf.effectiveAt = t.EffectiveAt
	wf.status.Kind, wf.status.EffectiveAt = t.Kind, t.EffectiveAt
	wf.approved, wf.rejected = nil, nil
	if t.Quarantined {
		wf.t.Quarantined, wf.quarantineReleased = true, false
	}
	wf.dropPendingRoleChange(ctx)
	if t.LegalHold != nil && wf.status.LegalHold == nil {
		wf.placeHold(ctx, *t.LegalHold, "set by the superseding HR event")
	}
	for _, pt := range wf.base.Targets {
		if _, ok := wf.accounts[pt.Name]; ok {
			wf.addTargetControls(pt)
		}
	}
	wf.status.ApprovalNeeded = wf.approvalRequired(wf.base)
	wf.status.PlanDigest = wf.planDigest()
	wf.updatePhaseAttribute(ctx)
}
