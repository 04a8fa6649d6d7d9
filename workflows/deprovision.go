// Package workflows holds the Deprovision workflow: the whole policy of
// design.md, phase by phase, in the order it happens. Only deterministic code
// lives here; everything that touches the outside world is an activity.
package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
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
	// Decisions are signed Workflow Updates (updates.go); older runs took signals.
	versionSignedDecisions = "signed-decisions"
	// The policy under every interleaving (issue 12, found by the simulation):
	versionRestoreOpen        = "restore-open-exceptions" // a rescind restores even with a containment control in exception
	versionFollowSchedule     = "follow-schedule"         // since, retention and SLA follow a rescheduled effective time
	versionDetachWaivers      = "detach-waivers"          // a waived control lets the rest of its phase go on
	versionBoundRateLimits    = "bound-rate-limits"       // a persistent 429 becomes an exception after maxRateLimitedRounds
	versionReverifyExceptions = "reverify-exceptions"     // a re-verification that cannot read back is an exception
	versionHoldEachStep       = "hold-each-step"          // a hold placed during removal or deletion stops the next step
	versionCloseOpenWork      = "close-open-work"         // a role change refused or rescinded stops its exceptions before it closes
	versionRoleChangeLookups  = "role-change-lookups"     // a role change settles its failed lookups before approval and removal
	versionSLARecheck         = "sla-recheck"             // an SLA whose due had passed when it started is checked, not breached blindly
	// Once deletion begins, re-verification no longer re-contains: deleting
	// an account takes its containment with it (IAM's deny-all policy goes
	// before the user), which is not drift (found by make chaos on the stack).
	versionReverifyUntilDeletion = "reverify-until-deletion"
	// A destructive step rate-limited while a legal hold was placed waits for
	// the release before its next round (make simulate, seed 4887).
	versionHoldBetweenRounds = "hold-between-rounds"
	// An account is deleted only once its removal controls that are being
	// applied have settled (make simulate, seed 9283: a waiver expired while
	// held, and at release the deletion ran under the re-opened removal).
	versionDeleteAfterRemoval = "delete-after-removal"
	// Proven identity: no-account receipts say what was searched, a leaver
	// found nowhere is an exception, admin rights found make the run privileged.
	versionProvenIdentity = "proven-identity"
	// A run starts the archiving of its own evidence as it finishes (archive.go).
	versionArchiveAtClose = "archive-at-close"
	// Containment starts once the accounts are found; their admin rights and
	// holdings are read beside it (rights.go, issue 17).
	versionRightsBeside = "rights-beside-containment"
	// Non-human identities the leaver owned or could know (nonhuman.go):
	// discovered beside containment, acted on in the non_human phase.
	versionNonHuman = "non-human"
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
	wf.listenHR(ctx)
	return wf.run(ctx)
}

func (wf *deprovision) run(ctx workflow.Context) (Result, error) {
	// 1. Search attributes and the status query are up before anything waits.
	wf.setPhase(ctx, PhaseScheduled)
	wf.keepDetails(ctx) // the Web UI's current details (summary.go)
	base, err := wf.loadPlan(ctx)
	if err != nil {
		return Result{}, err
	}
	wf.base = base
	wf.planLoaded = true
	wf.readVersions(ctx)

	// 2. Blast-radius guard: a quarantined event waits for security before anything.
	if wf.t.Quarantined {
		wf.setPhase(ctx, PhaseQuarantined)
		gate := wf.openGate(ctx, "quarantine", "too many terminations at once: a security approver must release this one (planDigest \""+QuarantineDigest+"\")")
		_ = workflow.Await(ctx, func() bool { return wf.quarantineReleased || wf.rescinded != nil })
		wf.closeGate(gate)
		if wf.rescinded != nil {
			return wf.finish(ctx, PhaseRescinded)
		}
	}

	// 3. Future effective time: a durable timer that rescind cancels and
	// reschedule moves.
	if rescinded := wf.waitForEffectiveTime(ctx); rescinded {
		return wf.finish(ctx, PhaseRescinded)
	}
	wf.startedAt = workflow.Now(ctx)

	// 4. Accounts in every target, in parallel: not found anywhere is "no account".
	wf.resolveAccounts(ctx)

	// 5. A role change has its own, shorter story.
	if wf.t.Kind == KindRoleChange {
		res, err := wf.runRoleChange(ctx)
		if wf.superseding == nil || err != nil {
			return res, err
		}
		// A termination superseded the role change (hrevent.go): it runs from
		// its effective time on, over the accounts already found.
		if rescinded := wf.becomeTermination(ctx); rescinded {
			return wf.finish(ctx, PhaseRescinded)
		}
	}

	// 6. Containment, all systems in parallel, with its SLA timers.
	wf.setPhase(ctx, PhaseContaining)
	wf.watchContainmentSLA(ctx) // rights.go: once the rights read beside containment are in
	wf.watchSLA(ctx, "credentials", wf.base.Policy.CredentialsSLA.D(), func() bool { return wf.removalDone })
	wf.runPhaseParallel(ctx, control.Containment)
	wf.discoverNonHuman(ctx) // beside containment, after its activities are scheduled
	_ = workflow.Await(ctx, func() bool { return wf.phaseSettled(control.Containment) || wf.rescinded != nil })
	if wf.phaseDone(control.Containment) {
		wf.status.ContainedAt = workflow.Now(ctx)
		workflow.GetMetricsHandler(ctx).Timer("offboard_time_to_contain_seconds").Record(wf.status.ContainedAt.Sub(wf.effectiveAt))
	}
	if wf.rescinded != nil {
		return wf.restore(ctx)
	}
	wf.startBreakGlass(ctx) // rotating them breaks nothing: no approval needed

	// 7. Re-verification after token lifetimes runs beside everything below.
	wf.reverifyLater(ctx)

	// 8. Approval gate, where policy asks for it, bound to the plan's digest,
	// which names every non-human identity once discovery is done.
	wf.awaitDiscovery(ctx)
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

	// 9. Legal hold: containment ran; destructive steps wait for release-hold
	// (and, from version hold-each-step, a hold placed later stops the next step).
	if rescinded := wf.waitWhileHeld(ctx); rescinded {
		return wf.restore(ctx)
	}

	// 10. Removal, within the credentials SLA; from here on rescind is too late.
	wf.setPhase(ctx, PhaseRemoving)
	wf.removalStarted = true
	wf.startOwned(ctx) // each identity step by step, beside removal
	wf.runPhaseSequential(ctx, control.Removal)
	wf.removalDone = wf.phaseDone(control.Removal)

	// 11. Account deletion only after the retention period and with no hold.
	wf.setPhase(ctx, PhaseRetention)
	_ = wf.sleepUntil(ctx, wf.retentionEnds(), "retention until")
	_ = wf.waitWhileHeld(ctx)
	wf.setPhase(ctx, PhaseDeleting)
	wf.deletionStarted = true
	wf.runPhaseSequential(ctx, control.Deletion)

	// 12. A control in exception, a waiver not yet expired or a pending
	// re-verification keeps the run open: it never turns into success.
	wf.waitForOpenWork(ctx)
	return wf.finish(ctx, PhaseCompleted)
}

// runRoleChange removes exactly the groups the new role does not grant;
// nothing is disabled.
// A termination for the same person supersedes it at any of its waits
// (hrevent.go): it returns then, and the run goes on as that termination.
func (wf *deprovision) runRoleChange(ctx workflow.Context) (Result, error) {
	if wf.v.roleChangeLookups {
		// A lookup that failed is retried or waived before the plan is
		// approved and acted on, as containment waits for it in a termination.
		_ = workflow.Await(ctx, func() bool {
			return wf.phaseSettled(control.Containment) || wf.rescinded != nil || wf.superseding != nil
		})
		if wf.superseding != nil {
			return Result{}, nil
		}
		if wf.rescinded != nil {
			wf.abandonOpenWork(ctx)
			return wf.finish(ctx, PhaseRescinded)
		}
	}
	decision := wf.approvalGate(ctx)
	if wf.superseding != nil {
		return Result{}, nil
	}
	if decision != PhaseRemoving {
		wf.abandonOpenWork(ctx)
		return wf.finish(ctx, decision)
	}
	rescinded := wf.waitWhileHeld(ctx)
	if wf.superseding != nil {
		return Result{}, nil
	}
	if rescinded {
		wf.abandonOpenWork(ctx)
		return wf.finish(ctx, PhaseRescinded)
	}
	wf.setPhase(ctx, PhaseRemoving)
	wf.removalStarted = true
	wf.watchSLA(ctx, "credentials", wf.base.Policy.CredentialsSLA.D(), func() bool { return wf.removalDone })
	wf.runPhaseParallel(ctx, control.RoleChange)
	_ = workflow.Await(ctx, func() bool { return wf.phaseSettled(control.RoleChange) })
	wf.removalDone = wf.phaseDone(control.RoleChange)
	_ = workflow.Await(ctx, func() bool { return wf.openWork == 0 || wf.superseding != nil })
	if wf.superseding != nil {
		return Result{}, nil
	}
	return wf.finish(ctx, PhaseCompleted)
}

// abandonOpenWork: a role change that closes with nothing to do (refused,
// or rescinded) stops its exceptions waiting for people first, so it closes
// with no gate open (from version close-open-work).
func (wf *deprovision) abandonOpenWork(ctx workflow.Context) {
	if !wf.v.closeOpenWork {
		return
	}
	wf.stopping = true
	wf.waitForOpenWork(ctx)
}

// restore undoes containment when the termination is rescinded before removal.
func (wf *deprovision) restore(ctx workflow.Context) (Result, error) {
	wf.setPhase(ctx, PhaseRestoring)
	wf.stopping = true // exceptions stop waiting for people
	if wf.v.restoreOpen {
		// A control in exception never settles: wait only until no containment
		// control is still running or waiting on a person, then restore them all.
		_ = workflow.Await(ctx, func() bool { return !wf.containmentBusy() })
	} else {
		_ = workflow.Await(ctx, func() bool { return wf.phaseSettled(control.Containment) })
	}
	wf.stopping = false
	wf.runPhaseParallel(ctx, control.Restore)
	_ = workflow.Await(ctx, func() bool { return wf.phaseSettled(control.Restore) })
	wf.waitForOpenWork(ctx)
	return wf.finish(ctx, PhaseRescinded)
}

// retentionEnds is when accounts may be deleted: the retention period after
// the effective time (the current one, from version follow-schedule).
func (wf *deprovision) retentionEnds() time.Time {
	if wf.v.followSchedule {
		return wf.effectiveAt.Add(wf.base.Policy.Retention.D())
	}
	return wf.t.EffectiveAt.Add(wf.base.Policy.Retention.D())
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
	removalStarted     bool
	removalDone        bool
	stopping           bool
	openWork           int
	pooled             bool // version pooled-controls: parallel controls share one coroutine
	targetQueues       bool // version target-queues: a target with limits runs on its own task queue
	watching           bool // version watch-after-refusal: removal refused, the run still re-verifies
	notifying          int  // notifications not yet delivered: the run waits for them before it closes
	v                  versions
	heldSteps          int           // destructive steps waiting for a hold placed during their phase
	slaDone            []func() bool // per status.Deadlines entry: whether its phase is done
	slaWatching        []bool        // per status.Deadlines entry: its watcher still runs
	phaseBeforeHold    Phase         // the phase those steps return to on release

	controlIndex map[string]int // control id → index in status.Controls
	retries      map[string]int // control id → retry requests not yet used
	waivers      map[string]*Waive
	accounts     map[string]control.Account // target → account, when one was found

	// Who the run is about (hrevent.go).
	discover     bool         // version proven-identity: no-account receipts, found-nowhere gate, admin rights discovered
	resolved     bool         // the first lookup in every target is done
	identityOpen bool         // the found-nowhere exception is open
	corrections  int          // identity corrections applied
	superseding  *Termination // a termination that supersedes this role change
	planLoaded   bool         // wf.base holds the plan (and the keys signed HR events are checked with)

	deletionStarted bool // accounts are being deleted: re-verification stops re-containing (reverify-until-deletion)
	rightsPending   int  // targets whose rights are being read beside containment (rights.go)

	nh nonHuman // the identities the leaver owned or could know (nonhuman.go)
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
		Privileged:   t.Privileged,
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
		err = workflow.ExecuteActivity(withSummary(wf.shortOptions(ctx), "load the plan"), a.LoadPlan, in).Get(ctx, &base)
	} else {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 10 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, NonRetryableErrorTypes: activities.NonRetryable},
			Summary:             "load the plan",
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
	return p.Always || (p.Privileged && wf.t.Privileged) || (p.ForCause && wf.t.Reason == ReasonForCause) || wf.nonHumanNeedsApproval() || wf.t.ContainOnly
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
		_, _ = awaitFor(ctx, wait, "effective "+at(wf.effectiveAt), func() bool { return wf.rescinded != nil || wf.scheduleChanged })
	}
}

// resolveAccounts finds the person's account in every target, in parallel.
// "No account" is only what a target proved (with a record of what it
// searched); a lookup that fails is an exception on the target's resolve
// control. A leaver found nowhere waits for a person (hrevent.go).
func (wf *deprovision) resolveAccounts(ctx workflow.Context) {
	person := wf.person()
	findOnly := workflow.GetVersion(ctx, versionRightsBeside, workflow.DefaultVersion, 1) == 1
	futures := make([]workflow.Future, len(wf.base.Targets))
	for i, pt := range wf.base.Targets {
		wf.status.Accounts = append(wf.status.Accounts, AccountStatus{Target: pt.Name, Kind: pt.Kind, State: "pending"})
		futures[i] = workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, pt.Name), pt.Name+" · find the account"), a.ResolveAccount, activities.ResolveInput{Target: pt.Name, Person: person, FindOnly: findOnly})
	}
	var later []rightsTarget
	wf.discover = workflow.GetVersion(ctx, versionProvenIdentity, workflow.DefaultVersion, 1) == 1
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
				wf.retryResolve(ctx, i, pt, err)
			})
			continue
		}
		wf.recordResolution(ctx, i, pt, res)
		if res.RightsLater && !res.NoAccount {
			later = append(later, rightsTarget{i, pt})
		}
	}
	wf.readRightsLater(ctx, later)
	// Controls of the targets with an account, in configuration order.
	for _, pt := range wf.base.Targets {
		if _, ok := wf.accounts[pt.Name]; ok {
			wf.addTargetControls(pt)
		}
	}
	if wf.discover {
		wf.discoverPrivilege(ctx)
		wf.awaitIdentity(ctx)
	}
	wf.resolved = true
	wf.status.PlanDigest = wf.planDigest()
}

func (wf *deprovision) recordResolution(ctx workflow.Context, i int, pt activities.PlanTarget, res activities.Resolution) {
	st := &wf.status.Accounts[i]
	if res.NoAccount {
		st.State, st.NoAccount, st.ID, st.Login, st.Error, st.Searched = "no_account", true, "", "", "", res.Searched
		if wf.discover {
			// The proof behind "no account" is a receipt like any other.
			id := pt.Name + "/resolve"
			wf.addControl(pt.Name, "resolve", "resolve", control.Containment)
			wf.settle(ctx, id, control.Receipt{ControlID: id, System: pt.Name, Kind: pt.Kind, Action: "resolve", Phase: control.Containment,
				Outcome: control.Observed, Detail: "no account; searched: " + strings.Join(res.Searched, "; "),
				StartedAt: workflow.Now(ctx), FinishedAt: workflow.Now(ctx)})
		}
		return
	}
	st.State, st.NoAccount, st.ID, st.Login, st.Error, st.Searched = "resolved", false, res.Account.ID, res.Account.Login, "", nil
	st.Privileges = res.Account.Privileges
	wf.accounts[pt.Name] = res.Account
}

// retryResolve keeps a target whose lookup failed as an exception until a
// person retries it (then its controls join the run) or waives it. Each try
// looks for the person as corrected so far.
func (wf *deprovision) retryResolve(ctx workflow.Context, i int, pt activities.PlanTarget, cause error) {
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
		cause = workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, pt.Name), pt.Name+" · find the account"), a.ResolveAccount, activities.ResolveInput{Target: pt.Name, Person: wf.person()}).Get(ctx, &res)
		if cause == nil {
			wf.recordResolution(ctx, i, pt, res)
			wf.settle(ctx, id, control.Receipt{ControlID: id, System: pt.Name, Kind: pt.Kind, Action: "resolve", Phase: control.Containment,
				Target: res.Account.ID, Login: res.Account.Login, Outcome: control.Observed, Detail: resolveDetail(res),
				StartedAt: workflow.Now(ctx), FinishedAt: workflow.Now(ctx)})
			if !res.NoAccount {
				wf.addTargetControls(pt)
				wf.discoverPrivilege(ctx)
				wf.discoverFound(ctx, pt) // nonhuman.go
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
		return "no account; searched: " + strings.Join(res.Searched, "; ")
	}
	if len(res.Account.Privileges) > 0 {
		return "account " + res.Account.ID + "; admin rights: " + strings.Join(res.Account.Privileges, "; ")
	}
	return "account " + res.Account.ID
}

func (wf *deprovision) waitForOpenWork(ctx workflow.Context) {
	_ = workflow.Await(ctx, func() bool { return wf.openWork == 0 })
}

func (wf *deprovision) finish(ctx workflow.Context, phase Phase) (Result, error) {
	// Notifications are delivered, and every SLA met has recorded when, so
	// the result says what the status query says.
	_ = workflow.Await(ctx, func() bool { return wf.notifying == 0 && wf.deadlinesRecorded() })
	wf.setPhase(ctx, phase)
	workflow.SetCurrentDetails(ctx, wf.details())
	res := Result{Phase: phase, SLABreached: wf.status.SLABreached, Receipts: []control.Receipt{}, Status: wf.status}
	for _, c := range wf.status.Controls {
		if c.Receipt != nil {
			res.Receipts = append(res.Receipts, *c.Receipt)
		}
	}
	wf.archiveAtClose(ctx) // last: the result is what the run decided
	return res, nil
}

// planDigest binds an approval to the exact removal plan: every destructive
// control with its account and parameters, in order.
func (wf *deprovision) planDigest() string {
	type item struct {
		ID      string          `json:"id"`
		Account control.Account `json:"account"`
		Params  control.Params  `json:"params"`
		Owned   *PlanItem       `json:"owned,omitempty"` // a non-human step: the identity, action and new owner
	}
	var items []item
	for _, c := range wf.status.Controls {
		if c.Phase == control.NonHuman && c.Control != "discover" {
			p := wf.ownedPlanItem(c)
			items = append(items, item{ID: c.ID, Account: wf.accounts[c.Target], Owned: &p})
		}
		if c.Phase == control.Removal || c.Phase == control.Deletion || c.Phase == control.RoleChange {
			items = append(items, item{ID: c.ID, Account: wf.accounts[c.Target], Params: wf.params(c)})
		}
	}
	b, _ := json.Marshal(struct {
		EmployeeID string `json:"employeeId"`
		Items      []item `json:"items"`
	}{wf.t.EmployeeID, items})
	sum := sha256.Sum256(b)
	wf.status.Plan = wf.plan() // what the digest covers, for the approver to read
	return "sha256:" + hex.EncodeToString(sum[:])
}
