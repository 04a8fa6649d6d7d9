// Package workflows holds the Deprovision workflow: the whole policy of
// design.md, phase by phase, in the order it happens. Only deterministic code
// lives here; everything that touches the outside world is an activity.
package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
)

// Change ids for workflow.GetVersion: each names a change to the command
// sequence; histories recorded before it replay on the old branch.
const (
	versionLocalPlan     = "local-plan"
	versionPooledControl = "pooled-controls"
	versionTargetQueues  = "target-queues"
	versionWatchRefused  = "watch-after-refusal"
)

// a is how the workflow names activities: methods on a nil pointer, so there
// are no string names to drift.
var a *activities.Activities

// Deprovision removes one person's access everywhere, on time, and proves it.
func Deprovision(ctx workflow.Context, t Termination) (Result, error) {
	if err := t.Validate(); err != nil {
		return Result{}, err
	}
	wf := newDeprovision(ctx, t)
	if err := wf.listen(ctx); err != nil {
		return Result{}, err
	}
	return wf.run(ctx)
}

func (wf *deprovision) run(ctx workflow.Context) (Result, error) {
	// 1. Search attributes and the status query are up before anything waits.
	wf.setPhase(ctx, PhaseScheduled)
	base, err := wf.loadPlan(ctx)
	if err != nil {
		return Result{}, err
	}
	wf.base = base
	wf.pooled = workflow.GetVersion(ctx, versionPooledControl, workflow.DefaultVersion, 1) == 1
	wf.targetQueues = workflow.GetVersion(ctx, versionTargetQueues, workflow.DefaultVersion, 1) == 1

	// Blast-radius guard: a quarantined event waits for security before anything.
	if wf.t.Quarantined {
		wf.setPhase(ctx, PhaseQuarantined)
		gate := wf.openGate(ctx, "quarantine", "too many terminations at once: a security approver must release this one (planDigest \""+QuarantineDigest+"\")")
		_ = workflow.Await(ctx, func() bool { return wf.quarantineReleased || wf.rescinded != nil })
		wf.closeGate(gate)
		if wf.rescinded != nil {
			return wf.finish(ctx, PhaseRescinded)
		}
	}

	// 2. Future effective time: a durable timer that rescind cancels and
	// reschedule moves.
	if rescinded := wf.waitForEffectiveTime(ctx); rescinded {
		return wf.finish(ctx, PhaseRescinded)
	}
	wf.startedAt = workflow.Now(ctx)

	// Accounts in every target, in parallel: not found anywhere is "no account".
	wf.resolveAccounts(ctx)

	if wf.t.Kind == KindRoleChange {
		return wf.runRoleChange(ctx)
	}

	// 3. Containment, all systems in parallel, with its SLA timer (9).
	wf.setPhase(ctx, PhaseContaining)
	wf.watchSLA(ctx, "containment", wf.base.Policy.ContainmentSLA.D(), func() bool { return wf.phaseDone(control.Containment) })
	wf.watchSLA(ctx, "credentials", wf.base.Policy.CredentialsSLA.D(), func() bool { return wf.removalDone })
	wf.runPhaseParallel(ctx, control.Containment)
	_ = workflow.Await(ctx, func() bool { return wf.phaseSettled(control.Containment) || wf.rescinded != nil })
	if wf.phaseDone(control.Containment) {
		wf.status.ContainedAt = workflow.Now(ctx)
		workflow.GetMetricsHandler(ctx).Timer("offboard_time_to_contain_seconds").Record(wf.status.ContainedAt.Sub(wf.effectiveAt))
	}
	if wf.rescinded != nil {
		return wf.restore(ctx)
	}

	// 8. Re-verification after token lifetimes runs beside everything below.
	wf.reverifyLater(ctx)

	// 4. Approval gate, where policy asks for it, bound to the plan's digest.
	if decision := wf.approvalGate(ctx); decision != PhaseRemoving {
		if decision == PhaseRescinded {
			return wf.restore(ctx)
		}
		if workflow.GetVersion(ctx, versionWatchRefused, workflow.DefaultVersion, 1) == 1 {
			// Removal refused (rejected, or no approval in time): access stays
			// contained, so its re-verifications and waivers go on, and HR may
			// still rescind, nothing having been removed.
			wf.watching = true // an exception still shows as "exception"
			wf.setPhase(ctx, decision)
			_ = workflow.Await(ctx, func() bool { return wf.openWork == 0 || wf.rescinded != nil })
			wf.watching = false
			if wf.rescinded != nil {
				return wf.restore(ctx)
			}
		}
		return wf.finish(ctx, decision)
	}

	// 5. Legal hold: containment ran; destructive steps wait for release-hold.
	if rescinded := wf.waitWhileHeld(ctx); rescinded {
		return wf.restore(ctx)
	}

	// 6. Removal, within the credentials SLA; from here on rescind is too late.
	wf.setPhase(ctx, PhaseRemoving)
	wf.removalStarted = true
	wf.runPhaseSequential(ctx, control.Removal)
	wf.removalDone = wf.phaseDone(control.Removal)

	// Account deletion only after the retention period and with no hold.
	wf.setPhase(ctx, PhaseRetention)
	retentionEnds := wf.t.EffectiveAt.Add(wf.base.Policy.Retention.D())
	_ = wf.sleepUntil(ctx, retentionEnds)
	_ = wf.waitWhileHeld(ctx)
	wf.setPhase(ctx, PhaseDeleting)
	wf.runPhaseSequential(ctx, control.Deletion)

	// 10. A control in exception, a waiver not yet expired or a pending
	// re-verification keeps the run open: it never turns into success.
	wf.waitForOpenWork(ctx)
	return wf.finish(ctx, PhaseCompleted)
}

// 7. Role change: remove exactly the groups the new role does not grant;
// nothing is disabled.
func (wf *deprovision) runRoleChange(ctx workflow.Context) (Result, error) {
	if decision := wf.approvalGate(ctx); decision != PhaseRemoving {
		return wf.finish(ctx, decision)
	}
	if rescinded := wf.waitWhileHeld(ctx); rescinded {
		return wf.finish(ctx, PhaseRescinded)
	}
	wf.setPhase(ctx, PhaseRemoving)
	wf.removalStarted = true
	wf.watchSLA(ctx, "credentials", wf.base.Policy.CredentialsSLA.D(), func() bool { return wf.removalDone })
	wf.runPhaseParallel(ctx, control.RoleChange)
	_ = workflow.Await(ctx, func() bool { return wf.phaseSettled(control.RoleChange) })
	wf.removalDone = wf.phaseDone(control.RoleChange)
	wf.waitForOpenWork(ctx)
	return wf.finish(ctx, PhaseCompleted)
}

// restore undoes containment when the termination is rescinded before removal.
func (wf *deprovision) restore(ctx workflow.Context) (Result, error) {
	wf.setPhase(ctx, PhaseRestoring)
	wf.stopping = true // exceptions stop waiting for people
	_ = workflow.Await(ctx, func() bool { return wf.phaseSettled(control.Containment) })
	wf.stopping = false
	wf.runPhaseParallel(ctx, control.Restore)
	_ = workflow.Await(ctx, func() bool { return wf.phaseSettled(control.Restore) })
	wf.waitForOpenWork(ctx)
	return wf.finish(ctx, PhaseRescinded)
}

// ---- the state behind the story ----

type deprovision struct {
	t      Termination
	base   activities.PlanBase
	status Status

	effectiveAt        time.Time
	scheduleChanged    bool
	startedAt          time.Time
	quarantineReleased bool
	rescinded          *Rescind
	approved           *ApprovalRecord
	rejected           *ApprovalRecord
	awaitingApproval   bool
	removalStarted     bool
	removalDone        bool
	stopping           bool
	openWork           int
	pooled             bool // version pooled-controls: parallel controls share one coroutine
	targetQueues       bool // version target-queues: a target with limits runs on its own task queue
	watching           bool // version watch-after-refusal: removal refused, the run still re-verifies
	notifying          int  // notifications not yet delivered: the run waits for them before it closes

	controlIndex map[string]int // control id → index in status.Controls
	retries      map[string]int // control id → retry requests not yet used
	waivers      map[string]*Waive
	accounts     map[string]control.Account // target → account, when one was found
}

func newDeprovision(ctx workflow.Context, t Termination) *deprovision {
	info := workflow.GetInfo(ctx)
	wf := &deprovision{
		t:            t,
		effectiveAt:  t.EffectiveAt,
		controlIndex: map[string]int{},
		retries:      map[string]int{},
		waivers:      map[string]*Waive{},
		accounts:     map[string]control.Account{},
	}
	wf.status = Status{
		WorkflowID:   info.WorkflowExecution.ID,
		EmployeeID:   t.EmployeeID,
		Kind:         t.Kind,
		EffectiveAt:  t.EffectiveAt,
		Accounts:     []AccountStatus{},
		Controls:     []ControlStatus{},
		PendingGates: []Gate{},
		Deadlines:    []Deadline{},
		Log:          []LogEntry{},
	}
	if t.LegalHold != nil {
		wf.placeHold(ctx, *t.LegalHold, "set by the HR event")
	}
	return wf
}

func (wf *deprovision) loadPlan(ctx workflow.Context) (activities.PlanBase, error) {
	var base activities.PlanBase
	in := activities.PlanInput{Kind: string(wf.t.Kind), NewRole: wf.t.NewRole}
	var err error
	// Version 1 reads the plan in a local activity: it only reads the worker's
	// configuration, and saves a round trip on the way to containment.
	if workflow.GetVersion(ctx, versionLocalPlan, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		err = workflow.ExecuteActivity(wf.shortOptions(ctx), a.LoadPlan, in).Get(ctx, &base)
	} else {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 10 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, NonRetryableErrorTypes: activities.NonRetryable},
		})
		err = workflow.ExecuteLocalActivity(lctx, a.LoadPlan, in).Get(ctx, &base)
	}
	if err != nil {
		return base, fmt.Errorf("load plan: %w", err)
	}
	wf.status.ApprovalNeeded = wf.approvalRequired(base)
	return base, nil
}

func (wf *deprovision) approvalRequired(base activities.PlanBase) bool {
	p := base.Policy.Approval
	return p.Always || (p.Privileged && wf.t.Privileged) || (p.ForCause && wf.t.Reason == ReasonForCause)
}

// waitForEffectiveTime sleeps until the effective time; it reports whether
// the termination was rescinded first.
func (wf *deprovision) waitForEffectiveTime(ctx workflow.Context) bool {
	for {
		if wf.rescinded != nil {
			return true
		}
		wait := wf.effectiveAt.Sub(workflow.Now(ctx))
		if wait <= 0 {
			return false
		}
		wf.scheduleChanged = false
		_, _ = workflow.AwaitWithTimeout(ctx, wait, func() bool { return wf.rescinded != nil || wf.scheduleChanged })
	}
}

func (wf *deprovision) resolveAccounts(ctx workflow.Context) {
	person := control.Person{EmployeeID: wf.t.EmployeeID, Email: wf.t.Email, Name: wf.t.Name, Hints: wf.t.Accounts}
	futures := make([]workflow.Future, len(wf.base.Targets))
	for i, pt := range wf.base.Targets {
		wf.status.Accounts = append(wf.status.Accounts, AccountStatus{Target: pt.Name, Kind: pt.Kind, State: "pending"})
		futures[i] = workflow.ExecuteActivity(wf.controlOptions(ctx, pt.Name), a.ResolveAccount, activities.ResolveInput{Target: pt.Name, Person: person})
	}
	for i, pt := range wf.base.Targets {
		var res activities.Resolution
		st := &wf.status.Accounts[i]
		if err := futures[i].Get(ctx, &res); err != nil {
			// Failing for good is an exception on the target's resolve control:
			// it can be retried or waived like any other control.
			st.State, st.Error = "exception", errorText(err)
			wf.addControl(pt.Name, "resolve", "resolve", control.Containment)
			wf.openWork++
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer func() { wf.openWork-- }()
				wf.retryResolve(ctx, i, pt, person, err)
			})
			continue
		}
		wf.recordResolution(i, pt, res)
	}
	// Controls of the targets with an account, in configuration order.
	for _, pt := range wf.base.Targets {
		if _, ok := wf.accounts[pt.Name]; ok {
			wf.addTargetControls(pt)
		}
	}
	wf.status.PlanDigest = wf.planDigest()
}

func (wf *deprovision) recordResolution(i int, pt activities.PlanTarget, res activities.Resolution) {
	st := &wf.status.Accounts[i]
	if res.NoAccount {
		st.State, st.NoAccount = "no_account", true
		return
	}
	st.State, st.ID, st.Login, st.Error = "resolved", res.Account.ID, res.Account.Login, ""
	wf.accounts[pt.Name] = res.Account
}

// retryResolve keeps a target whose lookup failed as an exception until a
// person retries it (then its controls join the run) or waives it.
func (wf *deprovision) retryResolve(ctx workflow.Context, i int, pt activities.PlanTarget, person control.Person, cause error) {
	id := pt.Name + "/resolve"
	for {
		wf.exception(ctx, id, cause)
		if !wf.awaitDecision(ctx, id) {
			return
		}
		if w := wf.waivers[id]; w != nil {
			wf.settleWaived(ctx, id, *w)
			return
		}
		wf.setState(id, StateRunning)
		var res activities.Resolution
		cause = workflow.ExecuteActivity(wf.controlOptions(ctx, pt.Name), a.ResolveAccount, activities.ResolveInput{Target: pt.Name, Person: person}).Get(ctx, &res)
		if cause == nil {
			wf.recordResolution(i, pt, res)
			wf.settle(ctx, id, control.Receipt{ControlID: id, System: pt.Name, Kind: pt.Kind, Action: "resolve", Phase: control.Containment,
				Target: res.Account.ID, Login: res.Account.Login, Outcome: control.Observed, Detail: resolveDetail(res),
				StartedAt: workflow.Now(ctx), FinishedAt: workflow.Now(ctx)})
			if !res.NoAccount {
				wf.addTargetControls(pt)
				wf.status.PlanDigest = wf.planDigest()
				if !wf.removalStarted {
					wf.runTargetControls(ctx, pt.Name, control.Containment)
				}
			}
			return
		}
	}
}

func resolveDetail(res activities.Resolution) string {
	if res.NoAccount {
		return "no account"
	}
	return "account " + res.Account.ID
}

func (wf *deprovision) addTargetControls(pt activities.PlanTarget) {
	add := func(phase control.Phase, names []string) {
		for _, name := range names {
			wf.addControl(pt.Name, name, name, phase)
		}
	}
	if wf.t.Kind == KindRoleChange {
		add(control.RoleChange, pt.RoleChange)
		return
	}
	add(control.Containment, pt.Containment)
	add(control.Removal, pt.Removal)
	add(control.Deletion, pt.Deletion)
}

func (wf *deprovision) addControl(target, idSuffix, name string, phase control.Phase) {
	id := target + "/" + idSuffix
	if phase == control.Restore {
		id = target + "/restore/" + idSuffix
	}
	if _, ok := wf.controlIndex[id]; ok {
		return
	}
	wf.controlIndex[id] = len(wf.status.Controls)
	wf.status.Controls = append(wf.status.Controls, ControlStatus{ID: id, Target: target, Control: name, Phase: phase, State: StatePending})
}

// runPhaseParallel starts every control of a phase at once.
func (wf *deprovision) runPhaseParallel(ctx workflow.Context, phase control.Phase) {
	for _, pt := range wf.base.Targets {
		if _, ok := wf.accounts[pt.Name]; !ok {
			continue
		}
		if phase == control.Restore {
			for _, name := range pt.Restore {
				wf.addControl(pt.Name, name, name, control.Restore)
			}
		}
		wf.runTargetControls(ctx, pt.Name, phase)
	}
}

// runTargetControls starts one target's controls of a phase, each on its own.
func (wf *deprovision) runTargetControls(ctx workflow.Context, target string, phase control.Phase) {
	var ids []string
	for i := range wf.status.Controls {
		c := wf.status.Controls[i]
		if c.Target != target || c.Phase != phase || c.State != StatePending {
			continue
		}
		wf.setState(c.ID, StateRunning)
		ids = append(ids, c.ID)
	}
	if wf.pooled {
		wf.runPooled(ctx, ids)
		return
	}
	for _, id := range ids {
		wf.openWork++
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { wf.openWork-- }()
			wf.runControl(ctx, id, nil)
		})
	}
}

// runPooled runs controls side by side from one coroutine: it schedules each
// control's first attempt in order and settles them as they complete; only a
// control that fails for good gets a coroutine of its own, to wait for a
// person. (One coroutine per control cost a goroutine each: 500 terminations
// in flight held thousands of them.)
func (wf *deprovision) runPooled(ctx workflow.Context, ids []string) {
	if len(ids) == 0 {
		return
	}
	wf.openWork++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		sel := workflow.NewSelector(ctx)
		pending := 0
		var start func(id string)
		start = func(id string) {
			pending++
			sel.AddFuture(wf.startApply(ctx, id), func(f workflow.Future) {
				pending--
				var receipt control.Receipt
				err := f.Get(ctx, &receipt)
				switch {
				case err == nil:
					wf.settle(ctx, id, receipt)
				case isRateLimited(err) && !wf.stopping:
					start(id) // the activity already waited as long as the system asked
				default:
					wf.openWork++
					workflow.Go(ctx, func(ctx workflow.Context) {
						defer func() { wf.openWork-- }()
						wf.runControl(ctx, id, err)
					})
				}
			})
		}
		for _, id := range ids {
			start(id)
		}
		for pending > 0 {
			sel.Select(ctx)
		}
	})
}

// runPhaseSequential runs a phase target by target in parallel, each target's
// controls in order (AWS needs credentials gone before the user can go).
func (wf *deprovision) runPhaseSequential(ctx workflow.Context, phase control.Phase) {
	wg := workflow.NewWaitGroup(ctx)
	for _, pt := range wf.base.Targets {
		if _, ok := wf.accounts[pt.Name]; !ok {
			continue
		}
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			for i := range wf.status.Controls {
				c := wf.status.Controls[i]
				if c.Target == pt.Name && c.Phase == phase && c.State == StatePending {
					wf.setState(c.ID, StateRunning)
					wf.runControl(ctx, c.ID, nil)
				}
			}
		})
	}
	wg.Wait(ctx)
}

// runControl runs one control until it holds or is waived. A control that
// fails for good becomes an exception and waits for retry or waive; an
// expired waiver re-opens it.
func (wf *deprovision) runControl(ctx workflow.Context, id string, failed error) {
	for {
		err := failed
		failed = nil
		if err == nil {
			var receipt control.Receipt
			receipt, err = wf.applyControl(ctx, id)
			if err == nil {
				wf.settle(ctx, id, receipt)
				return
			}
		}
		wf.exception(ctx, id, err)
		if !wf.awaitDecision(ctx, id) {
			return
		}
		w := wf.waivers[id]
		if w == nil {
			continue // retry
		}
		wf.settleWaived(ctx, id, *w)
		// The waiver holds until it expires or someone asks for a retry.
		_, _ = workflow.AwaitWithTimeout(ctx, w.ExpiresAt.Sub(workflow.Now(ctx)), func() bool { return wf.retries[id] > 0 || wf.stopping })
		if wf.stopping {
			return
		}
		if wf.retries[id] > 0 {
			wf.retries[id]--
		} else {
			wf.log(ctx, "waiver_expired", w.By, id+": waiver expired; the control is re-opened", true)
		}
		delete(wf.waivers, id)
		wf.setState(id, StateRunning)
	}
}

// startApply schedules one attempt of the ApplyControl activity.
func (wf *deprovision) startApply(ctx workflow.Context, id string) workflow.Future {
	i := wf.controlIndex[id]
	c := wf.status.Controls[i]
	wf.status.Controls[i].Attempts++
	in := activities.ControlInput{ControlID: id, Target: c.Target, Control: c.Control, Phase: c.Phase,
		Account: wf.accounts[c.Target], Params: wf.params(c)}
	return workflow.ExecuteActivity(wf.controlOptions(ctx, c.Target), a.ApplyControl, in)
}

// applyControl runs the ApplyControl activity, going on through rate limits.
func (wf *deprovision) applyControl(ctx workflow.Context, id string) (control.Receipt, error) {
	for {
		var receipt control.Receipt
		err := wf.startApply(ctx, id).Get(ctx, &receipt)
		if err != nil && isRateLimited(err) && !wf.stopping {
			continue // the activity already waited as long as the system asked
		}
		return receipt, err
	}
}

func (wf *deprovision) params(c ControlStatus) control.Params {
	p := control.Params{Since: wf.t.EffectiveAt}
	if c.Phase == control.RoleChange {
		for _, pt := range wf.base.Targets {
			if pt.Name == c.Target {
				p.KeepGroups = pt.KeepGroups
			}
		}
	}
	return p
}

// awaitDecision waits until a person retries or waives the control; false
// when the run is stopping (rescinded) instead.
func (wf *deprovision) awaitDecision(ctx workflow.Context, id string) bool {
	_ = workflow.Await(ctx, func() bool { return wf.retries[id] > 0 || wf.waivers[id] != nil || wf.stopping })
	wf.closeGate("exception:" + id)
	workflow.GetMetricsHandler(ctx).Counter("offboard_exceptions_open").Inc(-1)
	if wf.stopping {
		return false
	}
	if wf.waivers[id] == nil {
		wf.retries[id]--
		wf.setState(id, StateRunning)
	}
	return true
}

func (wf *deprovision) exception(ctx workflow.Context, id string, err error) {
	c := &wf.status.Controls[wf.controlIndex[id]]
	c.State, c.Error, c.Outcome = StateException, errorText(err), control.Failed
	r := failedReceipt(ctx, *c, wf.accounts[c.Target], err)
	c.Receipt = &r
	wf.openGate(ctx, "exception:"+id, id+" failed: "+c.Error+" (retry or waive)")
	wf.countControl(ctx, *c, r.Kind)
	workflow.GetMetricsHandler(ctx).Counter("offboard_exceptions_open").Inc(1)
	wf.notify(ctx, "exception", id+" failed and waits for retry or waive: "+c.Error)
	wf.updatePhaseAttribute(ctx)
}

func (wf *deprovision) settle(ctx workflow.Context, id string, r control.Receipt) {
	c := &wf.status.Controls[wf.controlIndex[id]]
	c.State, c.Outcome, c.Error, c.Receipt, c.Waiver = StateDone, r.Outcome, "", &r, nil
	wf.countControl(ctx, *c, r.Kind)
}

// countControl feeds offboard_controls_total. Metrics from workflow code go
// through workflow.GetMetricsHandler, which records nothing during replay.
func (wf *deprovision) countControl(ctx workflow.Context, c ControlStatus, kind string) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{
		"system": c.Target, "kind": kind, "action": c.Control, "phase": string(c.Phase), "outcome": string(c.Outcome),
	}).Counter("offboard_controls_total").Inc(1)
}

func (wf *deprovision) settleWaived(ctx workflow.Context, id string, w Waive) {
	c := &wf.status.Controls[wf.controlIndex[id]]
	r := control.Receipt{}
	if c.Receipt != nil {
		r = *c.Receipt
	}
	r.Outcome, r.By, r.Reason, r.ExpiresAt = control.Waived, w.By, w.Reason, w.ExpiresAt
	c.State, c.Outcome, c.Receipt, c.Waiver = StateWaived, control.Waived, &r, &w
	wf.countControl(ctx, *c, r.Kind)
}

func (wf *deprovision) setState(id string, s ControlState) {
	wf.status.Controls[wf.controlIndex[id]].State = s
}

// phaseSettled: every control of the phase is done or waived.
func (wf *deprovision) phaseSettled(phase control.Phase) bool {
	for _, c := range wf.status.Controls {
		if c.Phase == phase && c.State != StateDone && c.State != StateWaived && c.State != StateSkipped {
			return false
		}
	}
	return true
}

// phaseDone: every control of the phase holds (a waiver is not done).
func (wf *deprovision) phaseDone(phase control.Phase) bool {
	for _, c := range wf.status.Controls {
		if c.Phase == phase && c.State != StateDone && c.State != StateSkipped {
			return false
		}
	}
	return true
}

// approvalGate waits for an approval of the current plan where policy asks.
// It returns PhaseRemoving to go on, or the phase to finish in.
func (wf *deprovision) approvalGate(ctx workflow.Context) Phase {
	if !wf.status.ApprovalNeeded {
		return PhaseRemoving
	}
	wf.setPhase(ctx, PhaseAwaitingApproval)
	wf.awaitingApproval = true
	defer func() { wf.awaitingApproval = false }()
	gate := wf.openGate(ctx, "approval", "removal plan "+wf.status.PlanDigest+" needs an approver")
	timeout := wf.base.Policy.Approval.Timeout.D()
	ok, _ := workflow.AwaitWithTimeout(ctx, timeout, func() bool {
		return wf.approvedCurrentPlan() || wf.rejected != nil || wf.rescinded != nil
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
	_ = workflow.Await(ctx, func() bool { return wf.status.LegalHold == nil || (wf.rescinded != nil && !wf.removalStarted) })
	wf.closeGate(gate)
	return wf.rescinded != nil && !wf.removalStarted
}

// watchSLA starts a timer for a phase; a breach notifies and sets SLABreached.
func (wf *deprovision) watchSLA(ctx workflow.Context, phase string, within time.Duration, done func() bool) {
	due := wf.startedAt.Add(within)
	if wf.t.EffectiveAt.After(due) || wf.t.EffectiveAt.IsZero() {
		due = wf.effectiveAt.Add(within)
	}
	i := len(wf.status.Deadlines)
	wf.status.Deadlines = append(wf.status.Deadlines, Deadline{Phase: phase, Due: due})
	workflow.Go(ctx, func(ctx workflow.Context) {
		met, _ := workflow.AwaitWithTimeout(ctx, due.Sub(workflow.Now(ctx)), func() bool { return done() || wf.rescinded != nil })
		if met {
			if done() {
				wf.status.Deadlines[i].MetAt = workflow.Now(ctx)
			}
			return
		}
		wf.status.Deadlines[i].Breached = true
		wf.status.SLABreached = true
		workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"phase": phase}).Counter("offboard_sla_breaches_total").Inc(1)
		wf.upsert(ctx, SASLABreached.ValueSet(true))
		wf.log(ctx, "sla_breach", "", phase+" SLA breached at "+due.UTC().Format(time.RFC3339), true)
		wf.notify(ctx, "sla_breach", fmt.Sprintf("%s not done within %s (due %s)", phase, within, due.UTC().Format(time.RFC3339)))
		// Record when it was finally met, late.
		_ = workflow.Await(ctx, func() bool { return done() })
		wf.status.Deadlines[i].MetAt = workflow.Now(ctx)
	})
}

// reverifyLater observes every containment control again after each
// configured delay; drift is re-contained and flagged.
func (wf *deprovision) reverifyLater(ctx workflow.Context) {
	if len(wf.base.Policy.Reverify) == 0 {
		return
	}
	wf.openWork++
	from := workflow.Now(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		for _, d := range wf.base.Policy.Reverify {
			// A rescinded termination is restored, not re-contained (fixed with
			// the pooled-controls version; older runs replay as they ran).
			if wf.sleepUntil(ctx, from.Add(d.D())) || (wf.pooled && wf.rescinded != nil) {
				return
			}
			wf.reverify(ctx, d.D())
		}
	})
}

func (wf *deprovision) reverify(ctx workflow.Context, after time.Duration) {
	var ids []string
	var futures []workflow.Future
	for _, c := range wf.status.Controls {
		if c.Phase != control.Containment || c.State != StateDone || c.Control == "resolve" {
			continue
		}
		in := activities.ControlInput{ControlID: c.ID, Target: c.Target, Control: c.Control, Phase: c.Phase,
			Account: wf.accounts[c.Target], Params: wf.params(c)}
		ids = append(ids, c.ID)
		futures = append(futures, workflow.ExecuteActivity(wf.controlOptions(ctx, c.Target), a.VerifyControl, in))
	}
	for i, f := range futures {
		var r control.Receipt
		if err := f.Get(ctx, &r); err != nil {
			wf.log(ctx, "reverify", "", ids[i]+": could not verify: "+errorText(err), false)
			continue
		}
		if !r.Drift || (wf.pooled && wf.rescinded != nil) {
			continue
		}
		msg := fmt.Sprintf("%s drifted %s after containment: %s; re-containing", ids[i], after, r.Detail)
		wf.status.Drift = append(wf.status.Drift, msg)
		wf.log(ctx, "drift", "", msg, true)
		wf.notify(ctx, "drift", msg)
		wf.setState(ids[i], StateRunning)
		receipt, err := wf.applyControl(ctx, ids[i])
		if err != nil {
			wf.openWork++
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer func() { wf.openWork-- }()
				wf.exception(ctx, ids[i], err)
				if wf.awaitDecision(ctx, ids[i]) {
					wf.runControl(ctx, ids[i], nil)
				}
			})
			continue
		}
		receipt.Drift = true
		wf.settle(ctx, ids[i], receipt)
	}
}

// sleepUntil waits until t; it reports whether the run is stopping instead.
func (wf *deprovision) sleepUntil(ctx workflow.Context, t time.Time) bool {
	if d := t.Sub(workflow.Now(ctx)); d > 0 {
		_, _ = workflow.AwaitWithTimeout(ctx, d, func() bool { return wf.stopping })
	}
	return wf.stopping
}

func (wf *deprovision) waitForOpenWork(ctx workflow.Context) {
	_ = workflow.Await(ctx, func() bool { return wf.openWork == 0 })
}

func (wf *deprovision) finish(ctx workflow.Context, phase Phase) (Result, error) {
	_ = workflow.Await(ctx, func() bool { return wf.notifying == 0 })
	wf.setPhase(ctx, phase)
	res := Result{Phase: phase, SLABreached: wf.status.SLABreached, Receipts: []control.Receipt{}, Status: wf.status}
	for _, c := range wf.status.Controls {
		if c.Receipt != nil {
			res.Receipts = append(res.Receipts, *c.Receipt)
		}
	}
	return res, nil
}

// planDigest binds an approval to the exact removal plan: every destructive
// control with its account and parameters, in order.
func (wf *deprovision) planDigest() string {
	type item struct {
		ID      string          `json:"id"`
		Account control.Account `json:"account"`
		Params  control.Params  `json:"params"`
	}
	var items []item
	for _, c := range wf.status.Controls {
		if c.Phase == control.Removal || c.Phase == control.Deletion || c.Phase == control.RoleChange {
			items = append(items, item{ID: c.ID, Account: wf.accounts[c.Target], Params: wf.params(c)})
		}
	}
	b, _ := json.Marshal(struct {
		EmployeeID string `json:"employeeId"`
		Items      []item `json:"items"`
	}{wf.t.EmployeeID, items})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

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
		if err := workflow.ExecuteActivity(wf.shortOptions(ctx), a.Notify, n).Get(ctx, &sent); err != nil {
			wf.log(ctx, "notify", "", kind+" notification failed: "+errorText(err), false)
		}
	})
}

func (wf *deprovision) log(ctx workflow.Context, kind, by, detail string, accepted bool) {
	wf.status.Log = append(wf.status.Log, LogEntry{At: workflow.Now(ctx), Kind: kind, By: by, Detail: detail, Accepted: accepted})
}

// ---- activity options ----

// controlOptions: a control is retried with backoff, honouring a system's
// Retry-After, until ControlAttempts; then it becomes an exception. It runs
// on the target's own task queue when the target has one, where the Temporal
// server holds the target's activities to its rate limit across all workers.
func (wf *deprovision) controlOptions(ctx workflow.Context, target string) workflow.Context {
	attempts := wf.base.Policy.ControlAttempts
	if attempts < 1 {
		attempts = 5
	}
	initial, maximum := wf.base.Policy.Retry.InitialInterval.D(), wf.base.Policy.Retry.MaximumInterval.D()
	if initial <= 0 {
		initial, maximum = time.Second, time.Minute // plans recorded before the retry policy existed
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           wf.taskQueue(target),
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        initial,
			BackoffCoefficient:     2,
			MaximumInterval:        maximum,
			MaximumAttempts:        attempts,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
}

// taskQueue is the target's task queue from the plan; "" is the workflow's own.
func (wf *deprovision) taskQueue(target string) string {
	if !wf.targetQueues {
		return ""
	}
	for _, pt := range wf.base.Targets {
		if pt.Name == target {
			return pt.TaskQueue
		}
	}
	return ""
}

func (wf *deprovision) shortOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
}

func isRateLimited(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeRateLimited
}

// errorText is the innermost message of an activity failure, for people.
func errorText(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Error()
	}
	return err.Error()
}

// failedReceipt records a control that did not hold, with the last call's proof.
func failedReceipt(ctx workflow.Context, c ControlStatus, acct control.Account, err error) control.Receipt {
	r := control.Receipt{ControlID: c.ID, System: c.Target, Action: c.Control, Phase: c.Phase, Target: acct.ID, Login: acct.Login,
		Outcome: control.Failed, Detail: errorText(err), StartedAt: workflow.Now(ctx), FinishedAt: workflow.Now(ctx)}
	var appErr *temporal.ApplicationError
	errors.As(err, &appErr)
	if appErr != nil && appErr.HasDetails() {
		var d activities.FailureDetail
		if appErr.Details(&d) == nil {
			r.HTTPStatus, r.RequestID, r.Digest = d.HTTPStatus, d.RequestID, d.Digest
		}
	}
	return r
}
