// Controls: each one observed, enforced only if needed, observed again; exceptions wait for retry or waive.

package workflows

import (
	"errors"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
)

// versions are the change ids read once, at the start of a run: histories
// recorded before a change replay on its old branch.
type versions struct {
	restoreOpen        bool // restore-open-exceptions
	followSchedule     bool // follow-schedule
	detachWaivers      bool // detach-waivers
	boundRateLimits    bool // bound-rate-limits
	reverifyExceptions bool // reverify-exceptions
	holdEachStep       bool // hold-each-step
	closeOpenWork      bool // close-open-work
	roleChangeLookups  bool // role-change-lookups
	slaRecheck         bool // sla-recheck
	reverifyDeletion   bool // reverify-until-deletion
	holdBetweenRounds  bool // hold-between-rounds
	deleteAfterRemoval bool // delete-after-removal
}

func (wf *deprovision) readVersions(ctx workflow.Context) {
	on := func(id string) bool { return workflow.GetVersion(ctx, id, workflow.DefaultVersion, 1) == 1 }
	wf.pooled = on(versionPooledControl)
	wf.targetQueues = on(versionTargetQueues)
	wf.v = versions{
		restoreOpen:        on(versionRestoreOpen),
		followSchedule:     on(versionFollowSchedule),
		detachWaivers:      on(versionDetachWaivers),
		boundRateLimits:    on(versionBoundRateLimits),
		reverifyExceptions: on(versionReverifyExceptions),
		holdEachStep:       on(versionHoldEachStep),
		closeOpenWork:      on(versionCloseOpenWork),
		roleChangeLookups:  on(versionRoleChangeLookups),
		slaRecheck:         on(versionSLARecheck),
		reverifyDeletion:   on(versionReverifyUntilDeletion),
		holdBetweenRounds:  on(versionHoldBetweenRounds),
		deleteAfterRemoval: on(versionDeleteAfterRemoval),
	}
}

// maxRateLimitedRounds bounds a control that keeps answering 429: each round
// is one activity (itself retried ControlAttempts times, as long as the system
// asks) and about 6 history events, so a control writes at most ~60 events
// before it becomes an exception that waits for retry or waive.
const maxRateLimitedRounds = 10

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
	if i, ok := wf.controlIndex[id]; ok {
		if wf.status.Controls[i].Phase == phase {
			return
		}
		// The same control in another phase: a termination superseding a
		// role change removes every group, not only those the role left.
		id = target + "/" + string(phase) + "/" + idSuffix
		if _, ok := wf.controlIndex[id]; ok {
			return
		}
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
		rounds := map[string]int{} // rate-limited rounds per control
		var start func(id string)
		start = func(id string) {
			pending++
			rounds[id]++
			sel.AddFuture(wf.startApply(ctx, id), func(f workflow.Future) {
				pending--
				var receipt control.Receipt
				err := f.Get(ctx, &receipt)
				switch {
				case err == nil:
					wf.settle(ctx, id, receipt)
				case isRateLimited(err) && !wf.stopping && wf.moreRounds(rounds[id]):
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
// expired waiver re-opens it. A destructive control waits for a legal hold
// placed during its phase to be released first.
func (wf *deprovision) runControl(ctx workflow.Context, id string, failed error) {
	for {
		err := failed
		failed = nil
		if err == nil {
			if wf.v.holdEachStep && wf.destructive(id) {
				wf.holdBeforeStep(ctx)
			}
			if c := wf.status.Controls[wf.controlIndex[id]]; wf.v.deleteAfterRemoval && c.Phase == control.Deletion {
				// A removal re-opened (its waiver expired) finishes before its
				// account is deleted under it.
				_ = workflow.Await(ctx, func() bool { return !wf.removalRunning(c.Target) })
			}
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
		if wf.v.detachWaivers {
			// The waiver's wait runs on its own: the controls after this one go on.
			wf.openWork++
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer func() { wf.openWork-- }()
				if wf.awaitWaiverEnd(ctx, id, w) {
					wf.runControl(ctx, id, nil)
				}
			})
			return
		}
		if !wf.awaitWaiverEnd(ctx, id, w) {
			return
		}
	}
}

// awaitWaiverEnd holds a waiver until it expires or someone asks for a retry;
// false when the run stops waiting instead.
func (wf *deprovision) awaitWaiverEnd(ctx workflow.Context, id string, w *Waive) bool {
	_, _ = awaitFor(ctx, w.ExpiresAt.Sub(workflow.Now(ctx)), "waiver of "+controlIDName(id)+" until "+at(w.ExpiresAt), func() bool { return wf.retries[id] > 0 || wf.abandoned(id) })
	if wf.abandoned(id) {
		return false
	}
	if wf.retries[id] > 0 {
		wf.retries[id]--
	} else {
		wf.log(ctx, "waiver_expired", w.By, id+": waiver expired; the control is re-opened", true)
	}
	delete(wf.waivers, id)
	wf.setState(id, StateRunning)
	return true
}

// destructive: removal, deletion and role-change controls wait for a hold.
func (wf *deprovision) destructive(id string) bool {
	switch wf.status.Controls[wf.controlIndex[id]].Phase {
	case control.Removal, control.Deletion, control.RoleChange:
		return true
	case control.NonHuman:
		return wf.ownedDestructive(id)
	}
	return false
}

// removalRunning: one of target's removal controls is being applied.
func (wf *deprovision) removalRunning(target string) bool {
	for _, c := range wf.status.Controls {
		if c.Target == target && c.Phase == control.Removal && c.State == StateRunning {
			return true
		}
	}
	return false
}

// holdBeforeStep waits while a legal hold is in force; the steps held at
// once share one gate and return to the phase they were in.
func (wf *deprovision) holdBeforeStep(ctx workflow.Context) {
	if wf.status.LegalHold == nil {
		return
	}
	if wf.heldSteps == 0 {
		wf.phaseBeforeHold = wf.status.Phase
		wf.setPhase(ctx, PhaseOnHold)
		wf.openGate(ctx, "legal_hold", "destructive steps wait for release-hold")
	}
	wf.heldSteps++
	_ = workflow.Await(ctx, func() bool { return wf.status.LegalHold == nil })
	wf.heldSteps--
	if wf.heldSteps == 0 {
		wf.closeGate("legal_hold")
		wf.setPhase(ctx, wf.phaseBeforeHold)
	}
}

// abandoned: the run no longer waits on people for this control. A rescinded
// run stops waiting for everything but its restore (from version
// restore-open-exceptions; before it, only while restore was starting).
func (wf *deprovision) abandoned(id string) bool {
	if wf.stopping {
		return true
	}
	return wf.v.restoreOpen && wf.rescinded != nil && wf.status.Controls[wf.controlIndex[id]].Phase != control.Restore
}

// containmentBusy: a containment control is still running or waiting on a
// person; restore waits until none is.
func (wf *deprovision) containmentBusy() bool {
	for _, c := range wf.status.Controls {
		if c.Phase == control.Containment && c.State == StateRunning {
			return true
		}
	}
	for _, g := range wf.status.PendingGates {
		if i, ok := wf.controlIndex[strings.TrimPrefix(g.Kind, "exception:")]; ok && wf.status.Controls[i].Phase == control.Containment {
			return true
		}
	}
	return false
}

// startApply schedules one attempt of the ApplyControl activity.
func (wf *deprovision) startApply(ctx workflow.Context, id string) workflow.Future {
	i := wf.controlIndex[id]
	c := wf.status.Controls[i]
	wf.status.Controls[i].Attempts++
	if c.Phase == control.NonHuman {
		return wf.startOwnedStep(ctx, id)
	}
	in := activities.ControlInput{ControlID: id, Target: c.Target, Control: c.Control, Phase: c.Phase,
		Account: wf.accounts[c.Target], Params: wf.params(c)}
	return workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, c.Target), controlName(c.Target, c.Control)), a.ApplyControl, in)
}

// applyControl runs the ApplyControl activity, going on through rate limits
// (up to maxRateLimitedRounds, from version bound-rate-limits).
func (wf *deprovision) applyControl(ctx workflow.Context, id string) (control.Receipt, error) {
	for round := 1; ; round++ {
		var receipt control.Receipt
		err := wf.startApply(ctx, id).Get(ctx, &receipt)
		if err != nil && isRateLimited(err) && !wf.stopping && wf.moreRounds(round) {
			// The activity already waited as long as the system asked; a
			// destructive step placed under a legal hold meanwhile waits too.
			if wf.v.holdBetweenRounds && wf.destructive(id) {
				wf.holdBeforeStep(ctx)
			}
			continue
		}
		return receipt, err
	}
}

// moreRounds: a control rate-limited round times may try again.
func (wf *deprovision) moreRounds(round int) bool {
	return !wf.v.boundRateLimits || round < maxRateLimitedRounds
}

func (wf *deprovision) params(c ControlStatus) control.Params {
	p := control.Params{Since: wf.t.EffectiveAt}
	if wf.v.followSchedule {
		p.Since = wf.effectiveAt // sessions issued before the current effective time
	}
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
	_ = workflow.Await(ctx, func() bool { return wf.retries[id] > 0 || wf.waivers[id] != nil || wf.abandoned(id) })
	wf.closeGate("exception:" + id)
	workflow.GetMetricsHandler(ctx).Counter("offboard_exceptions_open").Inc(-1)
	if wf.abandoned(id) {
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
		if c.Phase == phase && c.State != StateDone && c.State != StateWaived {
			return false
		}
	}
	return true
}

// phaseDone: every control of the phase holds (a waiver is not done).
func (wf *deprovision) phaseDone(phase control.Phase) bool {
	for _, c := range wf.status.Controls {
		if c.Phase == phase && c.State != StateDone {
			return false
		}
	}
	return true
}

// approvalGate waits for an approval of the current plan where policy asks.
// It returns PhaseRemoving to go on, or the phase to finish in.

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
