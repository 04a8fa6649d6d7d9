// SLA timers and re-verification after token lifetimes.

package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
)

func (wf *deprovision) watchSLA(ctx workflow.Context, phase string, within time.Duration, done func() bool) {
	wf.watchSLASince(ctx, phase, within, done, time.Time{})
}

// watchSLASince is watchSLA for a watcher that starts late: doneAt, when
// set, is when the phase was done, and decides whether it was in time.
func (wf *deprovision) watchSLASince(ctx workflow.Context, phase string, within time.Duration, done func() bool, doneAt time.Time) {
	due := wf.startedAt.Add(within)
	if !wf.v.followSchedule && (wf.t.EffectiveAt.After(due) || wf.t.EffectiveAt.IsZero()) {
		due = wf.effectiveAt.Add(within)
	}
	// From version follow-schedule the clock starts when containment did: the
	// current effective time, or the run's start when that had passed.
	i := len(wf.status.Deadlines)
	wf.status.Deadlines = append(wf.status.Deadlines, Deadline{Phase: phase, Due: due})
	wf.slaDone = append(wf.slaDone, done)
	if !doneAt.IsZero() {
		// Done before the watcher could start: judged, here and now (the run
		// may be closing), by when it was done.
		wf.slaWatching = append(wf.slaWatching, false)
		if doneAt.After(due) {
			wf.breachSLA(ctx, i, phase, within, due)
		}
		wf.status.Deadlines[i].MetAt = doneAt
		return
	}
	wf.slaWatching = append(wf.slaWatching, true)
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.slaWatching[i] = false }()
		met, _ := awaitFor(ctx, due.Sub(workflow.Now(ctx)), phase+" SLA due "+at(due), func() bool { return done() || wf.rescinded != nil })
		if !met && wf.v.slaRecheck {
			// A due already past returns at once without looking: a rescinded
			// run closing now breaches nothing, nor notifies as it closes.
			met = done() || wf.rescinded != nil
		}
		if met {
			if done() {
				wf.status.Deadlines[i].MetAt = workflow.Now(ctx)
			}
			return
		}
		wf.breachSLA(ctx, i, phase, within, due)
		// Record when it was finally met, late.
		_ = workflow.Await(ctx, func() bool { return done() })
		wf.status.Deadlines[i].MetAt = workflow.Now(ctx)
	})
}

// breachSLA records and announces that deadline i was missed.
func (wf *deprovision) breachSLA(ctx workflow.Context, i int, phase string, within time.Duration, due time.Time) {
	wf.status.Deadlines[i].Breached = true
	wf.status.SLABreached = true
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"phase": phase}).Counter("offboard_sla_breaches_total").Inc(1)
	wf.upsert(ctx, SASLABreached.ValueSet(true))
	wf.log(ctx, "sla_breach", "", phase+" SLA breached at "+due.UTC().Format(time.RFC3339), true)
	wf.notify(ctx, "sla_breach", fmt.Sprintf("%s not done within %s (due %s)", phase, within, due.UTC().Format(time.RFC3339)))
}

// deadlinesRecorded: every deadline whose phase is done says when it was met.
func (wf *deprovision) deadlinesRecorded() bool {
	for i, d := range wf.status.Deadlines {
		if d.MetAt.IsZero() && wf.slaWatching[i] && wf.slaDone[i]() {
			return false
		}
	}
	return true
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
			if wf.sleepUntil(ctx, from.Add(d.D()), "re-verify at") || (wf.pooled && wf.rescinded != nil) {
				return
			}
			wf.reverify(ctx, d.D())
		}
	})
}

func (wf *deprovision) reverify(ctx workflow.Context, after time.Duration) {
	if wf.v.reverifyDeletion && wf.deletionStarted {
		return
	}
	var ids []string
	var futures []workflow.Future
	for _, c := range wf.status.Controls {
		if c.Phase != control.Containment || c.State != StateDone || c.Control == "resolve" {
			continue
		}
		in := activities.ControlInput{ControlID: c.ID, Target: c.Target, Control: c.Control, Phase: c.Phase,
			Account: wf.accounts[c.Target], Params: wf.params(c)}
		ids = append(ids, c.ID)
		futures = append(futures, workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, c.Target), controlName(c.Target, c.Control)+" · re-verify"), a.VerifyControl, in))
	}
	for i, f := range futures {
		var r control.Receipt
		if err := f.Get(ctx, &r); err != nil {
			wf.log(ctx, "reverify", "", ids[i]+": could not verify: "+errorText(err), false)
			if wf.v.reverifyExceptions && wf.rescinded == nil {
				wf.reopen(ctx, ids[i], err) // unproven is not observed: a person looks
			}
			continue
		}
		if !r.Drift || (wf.pooled && wf.rescinded != nil) || (wf.v.reverifyDeletion && wf.deletionStarted) {
			continue
		}
		msg := fmt.Sprintf("%s drifted %s after containment: %s; re-containing", ids[i], after, r.Detail)
		wf.status.Drift = append(wf.status.Drift, msg)
		wf.log(ctx, "drift", "", msg, true)
		wf.notify(ctx, "drift", msg)
		wf.setState(ids[i], StateRunning)
		receipt, err := wf.applyControl(ctx, ids[i])
		if err != nil && wf.v.reverifyExceptions {
			wf.reopen(ctx, ids[i], err)
			continue
		}
		if err != nil {
			// Before reverify-exceptions: a waiver here re-applied the control at once.
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

// reopen turns a containment control that no longer proves to hold into an
// exception of its own, waiting for retry or waive like any other.
func (wf *deprovision) reopen(ctx workflow.Context, id string, err error) {
	wf.openWork++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		wf.runControl(ctx, id, err)
	})
}

// sleepUntil waits until t; it reports whether the run is stopping instead
// (from version restore-open-exceptions, also once it is rescinded).
func (wf *deprovision) sleepUntil(ctx workflow.Context, t time.Time, what string) bool {
	stop := func() bool { return wf.stopping || (wf.v.restoreOpen && wf.rescinded != nil) }
	if d := t.Sub(workflow.Now(ctx)); d > 0 {
		_, _ = awaitFor(ctx, d, what+" "+at(t), stop)
	}
	return stop()
}
