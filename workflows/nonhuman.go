// Non-human identities (issue 15): what the leaver owned or could know.
// Discovery runs beside containment; each identity becomes controls of the
// non_human phase, one per step, run in order, the later ones after durable
// grace and purge timers. Break-glass rotations run right after containment;
// the rest wait for the approval of a plan that names every identity.

package workflows

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
)

// nonHuman is the run's non-human state; status.NonHuman is what people see.
type nonHuman struct {
	on          bool               // version non-human
	discovering int                // targets whose discovery has not settled
	steps       map[string]ownedAt // control id → its identity and step
	since       map[string]time.Time
	ran         map[int]bool // status.NonHuman items whose steps have started
	matched     bool         // the break-glass registry has been matched
	closed      bool         // the approval gate has read the plan: nothing joins it any more
}

// ownedAt places one control: status.NonHuman[item], its step'th step.
type ownedAt struct {
	item int
	step control.Step
}

// discoverNonHuman starts discovery in every target with an account, and
// matches the break-glass registry, beside containment: it never delays it.
func (wf *deprovision) discoverNonHuman(ctx workflow.Context) {
	if workflow.GetVersion(ctx, versionNonHuman, workflow.DefaultVersion, 1) != 1 || wf.base.NonHuman == nil {
		return
	}
	wf.nh = nonHuman{on: true, steps: map[string]ownedAt{}, since: map[string]time.Time{}, ran: map[int]bool{}}
	wf.nh.discovering++ // until the break-glass registry is matched
	wf.openWork++
	// A coroutine of its own, started after containment's: its activities
	// are scheduled after containment's, in the same workflow task.
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		for _, pt := range wf.base.Targets {
			wf.discoverIn(ctx, pt)
		}
		// The registry is matched on the groups and admin rights, which some
		// targets read beside containment (rights.go).
		wf.awaitRights(ctx)
		wf.matchBreakGlass()
		wf.nh.matched = true
		wf.nh.discovering--
		wf.status.PlanDigest = wf.planDigest()
	})
}

// discoverIn starts discovery in one target where the leaver has an account.
func (wf *deprovision) discoverIn(ctx workflow.Context, pt activities.PlanTarget) {
	acct, ok := wf.accounts[pt.Name]
	id := pt.Name + "/owned/discover"
	if _, seen := wf.controlIndex[id]; !ok || seen {
		return
	}
	if !pt.Owner {
		wf.status.NonHumanSearched = append(wf.status.NonHumanSearched, pt.Name+": cannot list non-human identities")
		return
	}
	wf.addControl(pt.Name, "owned/discover", "discover", control.NonHuman)
	wf.setState(id, StateRunning)
	f := workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, pt.Name), pt.Name+" · find non-human identities"),
		a.DiscoverOwned, activities.DiscoverInput{Target: pt.Name, Account: acct})
	wf.nh.discovering++
	wf.openWork++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		wf.settleDiscovery(ctx, pt, acct, f)
	})
}

// discoverFound: an account found late (a lookup retried, an identity
// corrected) before removal began is searched too, and may match the
// break-glass registry; the approval gate waits for it.
func (wf *deprovision) discoverFound(ctx workflow.Context, pt activities.PlanTarget) {
	if !wf.nh.on || wf.t.Kind == KindRoleChange {
		return
	}
	if wf.nh.closed || wf.removalStarted {
		// The plan was approved without it: said, not acted on behind the approver's back.
		wf.status.NonHumanSearched = append(wf.status.NonHumanSearched, pt.Name+": account found after the plan was approved; not searched (a person must look)")
		wf.log(ctx, "non_human", "", pt.Name+": account found after the plan was approved; its non-human identities were not searched", false)
		return
	}
	wf.discoverIn(ctx, pt)
	if wf.nh.matched {
		wf.matchBreakGlass()
	}
	wf.status.PlanDigest = wf.planDigest()
}

// settleDiscovery records what a target found; a discovery that failed is
// an exception that waits for retry (look again) or waive (a person
// accepts not knowing), like a failed lookup of the account.
func (wf *deprovision) settleDiscovery(ctx workflow.Context, pt activities.PlanTarget, acct control.Account, f workflow.Future) {
	id := pt.Name + "/owned/discover"
	defer func() { wf.nh.discovering-- }()
	for {
		var d activities.Discovery
		err := f.Get(ctx, &d)
		if err == nil {
			wf.settle(ctx, id, control.Receipt{ControlID: id, System: pt.Name, Kind: pt.Kind, Action: "discover", Phase: control.NonHuman,
				Target: acct.ID, Login: acct.Login, Outcome: control.Observed, Detail: fmt.Sprintf("%d non-human identities found", len(d.Owned)),
				StartedAt: workflow.Now(ctx), FinishedAt: workflow.Now(ctx)})
			wf.status.NonHumanSearched = append(wf.status.NonHumanSearched, fmt.Sprintf("%s: %d found", pt.Name, len(d.Owned)))
			for _, o := range d.Owned {
				wf.addOwned(pt, o, wf.base.NonHuman.Policy.Action(o.Kind), false)
			}
			wf.status.PlanDigest = wf.planDigest()
			return
		}
		wf.exception(ctx, id, err)
		if !wf.awaitDecision(ctx, id) {
			return
		}
		if w := wf.waivers[id]; w != nil {
			wf.settleWaived(ctx, id, *w)
			wf.status.NonHumanSearched = append(wf.status.NonHumanSearched, pt.Name+": not known (discovery waived)")
			return
		}
		f = workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, pt.Name), pt.Name+" · find non-human identities"),
			a.DiscoverOwned, activities.DiscoverInput{Target: pt.Name, Account: acct})
	}
}

// matchBreakGlass finds the registry's accounts the leaver could know: a
// group of theirs (any target's Holds), an admin right a target showed, or
// an HR role. Registry and targets are walked in order: no map ranges.
func (wf *deprovision) matchBreakGlass() {
	for _, b := range wf.base.NonHuman.BreakGlass {
		if !wf.mayKnow(b.KnownBy.Groups, b.KnownBy.Roles) {
			continue
		}
		pt := activities.PlanTarget{Name: b.Target}
		for _, t := range wf.base.Targets {
			if t.Name == b.Target {
				pt = t
			}
		}
		wf.addOwned(pt, control.Owned{Target: b.Target, Kind: control.KindBreakGlass, ID: b.Account, Name: b.Name, Secret: b.Secret}, control.Rotate, true)
	}
}

func (wf *deprovision) mayKnow(groups, roles []string) bool {
	for _, role := range roles {
		for _, r := range wf.t.Roles {
			if strings.EqualFold(r, role) {
				return true
			}
		}
	}
	for _, pt := range wf.base.Targets {
		acct, ok := wf.accounts[pt.Name]
		if !ok {
			continue
		}
		for _, g := range groups {
			for _, h := range acct.Holds {
				if strings.EqualFold(h, "group "+g) {
					return true
				}
			}
		}
		for _, role := range roles {
			for _, p := range acct.Privileges {
				if hasWords(p, role) {
					return true
				}
			}
		}
	}
	return false
}

// hasWords: s names phrase as whole words, in any case ("okta admin role
// SUPER_ADMIN" names SUPER_ADMIN; "GROUP_ADMIN" does not name ADMIN). A
// looser match would only rotate more, never less.
func hasWords(s, phrase string) bool {
	s, phrase = strings.ToLower(s), strings.ToLower(phrase)
	word := func(b byte) bool { return b == '_' || b == '-' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' }
	for from := 0; phrase != ""; {
		i := strings.Index(s[from:], phrase)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(phrase)
		if (i == 0 || !word(s[i-1])) && (end == len(s) || !word(s[end])) {
			return true
		}
		from = i + 1
	}
	return false
}

// addOwned makes one identity a line of the plan and a control per step.
// A kind the target cannot handle, or a reown with nobody to take over, is
// one control that waits for a person as an exception.
func (wf *deprovision) addOwned(pt activities.PlanTarget, o control.Owned, action control.Action, breakGlass bool) {
	st := OwnedStatus{Owned: o, Action: action, BreakGlass: breakGlass, Controls: []string{}}
	steps := pt.OwnedSteps[activities.OwnedKey(o.Kind, action)]
	if action == control.Reown {
		st.NewOwner = wf.t.Manager
		if st.NewOwner == "" {
			st.NewOwner = wf.base.NonHuman.Policy.Team
		}
		if st.NewOwner == "" {
			st.Problem = "no one to hand it to: the HR event names no manager and nonHuman.team is not set"
		}
	}
	if steps == nil {
		st.Problem = fmt.Sprintf("%s cannot %s a %s: a person must, then waive this control", o.Target, action, o.Kind)
		steps = []control.Step{{Name: "unsupported"}}
	}
	for _, other := range wf.status.NonHuman {
		if other.Owned.Target == o.Target && other.Owned.Kind == o.Kind && other.Owned.ID == o.ID {
			return // the same identity twice (found again after a retry)
		}
	}
	if other, ok := wf.secretWriter(o, action); ok && st.Problem == "" {
		// Two rotations into one secret: the second promote would hide the
		// first's value, and a service or person would lose its credential.
		st.Problem = fmt.Sprintf("its rotation would write secret %s, which the rotation of %s %s (%s) writes too: "+
			"a person must give it a secret of its own (nonHuman.secretName or the breakGlass registry) and rotate it, then waive this control",
			o.Secret, other.Owned.Kind, cmp.Or(other.Owned.Name, other.Owned.ID), other.Owned.Target)
		steps = []control.Step{{Name: "secret-in-use"}}
	}
	i := len(wf.status.NonHuman)
	slug := strings.ReplaceAll(o.Kind, " ", "-")
	for _, s := range steps {
		suffix := "owned/" + slug + "/" + o.ID + "/" + s.Name
		id := o.Target + "/" + suffix
		if _, dup := wf.controlIndex[id]; dup {
			return // the same identity twice (found again after a retry)
		}
		wf.addControl(o.Target, suffix, s.Name, control.NonHuman)
		wf.nh.steps[id] = ownedAt{item: i, step: s}
		st.Controls = append(st.Controls, id)
	}
	wf.status.NonHuman = append(wf.status.NonHuman, st)
}

// writesSecret is the secret-store entry a rotation of o writes to; "" for
// any other action, and for an owned secret (Secrets Manager's own rotation
// replaces its value in place).
func writesSecret(o control.Owned, action control.Action) string {
	if action != control.Rotate || o.Kind == control.KindSecret {
		return ""
	}
	return o.Secret
}

// secretWriter is the identity already in the plan whose rotation writes the
// secret o's would.
func (wf *deprovision) secretWriter(o control.Owned, action control.Action) (OwnedStatus, bool) {
	secret := writesSecret(o, action)
	if secret == "" {
		return OwnedStatus{}, false
	}
	for _, it := range wf.status.NonHuman {
		if writesSecret(it.Owned, it.Action) == secret {
			return it, true
		}
	}
	return OwnedStatus{}, false
}

// awaitDiscovery holds the approval gate until every discovery settled, so
// the plan approved names every identity; non-human items then need an
// approval where policy says so.
func (wf *deprovision) awaitDiscovery(ctx workflow.Context) {
	if !wf.nh.on {
		return
	}
	_ = workflow.Await(ctx, func() bool { return wf.nh.discovering == 0 || wf.rescinded != nil })
	wf.nh.closed = true
	wf.status.ApprovalNeeded = wf.approvalRequired(wf.base)
	wf.status.PlanDigest = wf.planDigest()
}

// nonHumanNeedsApproval: items that wait for an approval by policy.
func (wf *deprovision) nonHumanNeedsApproval() bool {
	if !wf.nh.on || !wf.base.NonHuman.Policy.RequireApproval {
		return false
	}
	for _, it := range wf.status.NonHuman {
		if !it.BreakGlass || wf.base.NonHuman.Policy.BreakGlassApproval {
			return true
		}
	}
	return false
}

// startBreakGlass rotates the break-glass accounts the leaver could know,
// right after containment: it breaks nothing (the new value is in the vault).
func (wf *deprovision) startBreakGlass(ctx workflow.Context) {
	if !wf.nh.on || wf.base.NonHuman.Policy.BreakGlassApproval {
		return
	}
	wf.openWork++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		_ = workflow.Await(ctx, func() bool { return wf.nh.matched || wf.rescinded != nil })
		if wf.rescinded != nil {
			return
		}
		for i, it := range wf.status.NonHuman {
			if it.BreakGlass {
				wf.runOwned(ctx, i)
			}
		}
	})
}

// startOwned starts every identity not yet started, once removal may begin
// (approved where policy asks, no legal hold).
func (wf *deprovision) startOwned(ctx workflow.Context) {
	if !wf.nh.on {
		return
	}
	for i := range wf.status.NonHuman {
		wf.runOwned(ctx, i)
	}
}

// runOwned runs one identity's steps in order, each after its wait. A step
// waived or in exception holds the later ones back: deactivating the old key
// of a rotation whose new key was never stored would break a service.
func (wf *deprovision) runOwned(ctx workflow.Context, i int) {
	if wf.nh.ran[i] {
		return
	}
	wf.nh.ran[i] = true
	it := wf.status.NonHuman[i]
	wf.openWork++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { wf.openWork-- }()
		prev := workflow.Now(ctx)
		for _, id := range it.Controls {
			s := wf.nh.steps[id].step
			if wait := wf.ownedWait(s.After); wait > 0 {
				if wf.sleepUntil(ctx, prev.Add(wait), string(s.After)+" of "+controlIDName(id)+" until") {
					return
				}
			}
			wf.setState(id, StateRunning)
			wf.runControl(ctx, id, nil)
			_ = workflow.Await(ctx, func() bool { return wf.state(id) == StateDone || wf.abandoned(id) })
			if wf.state(id) != StateDone {
				return
			}
			prev = workflow.Now(ctx)
		}
		if it.Owned.Kind == control.KindAPIToken && it.Problem == "" {
			// Okta API tokens can be neither rotated nor handed over: whatever
			// the policy, the token is revoked, and whoever takes over issues a new one.
			wf.notify(ctx, "api_token_revoked", it.Owned.Say()+" was revoked; "+wf.tokenOwner()+" should issue a new token where a service used it")
		}
	})
}

func (wf *deprovision) tokenOwner() string {
	if wf.t.Manager != "" {
		return "the leaver's manager (" + wf.t.Manager + ")"
	}
	if wf.base.NonHuman.Policy.Team != "" {
		return wf.base.NonHuman.Policy.Team
	}
	return "its service's owner"
}

func (wf *deprovision) ownedWait(w control.Wait) time.Duration {
	switch w {
	case control.Grace:
		return wf.base.NonHuman.Policy.Grace.D()
	case control.Purge:
		return wf.base.NonHuman.Policy.Purge.D()
	}
	return 0
}

func (wf *deprovision) state(id string) ControlState {
	return wf.status.Controls[wf.controlIndex[id]].State
}

// startOwnedStep schedules one attempt of ApplyOwned (startApply's
// counterpart for the non_human phase); an identity nobody can act on fails
// at once, as an exception that waits for a person.
func (wf *deprovision) startOwnedStep(ctx workflow.Context, id string) workflow.Future {
	at := wf.nh.steps[id]
	it := wf.status.NonHuman[at.item]
	if it.Problem != "" {
		f, set := workflow.NewFuture(ctx)
		set.Set(nil, temporal.NewNonRetryableApplicationError(id+": "+it.Problem, activities.ErrTypePermanent, nil))
		return f
	}
	if _, ok := wf.nh.since[id]; !ok {
		wf.nh.since[id] = workflow.Now(ctx)
	}
	p := control.OwnedParams{NewOwner: it.NewOwner, Leaver: wf.accounts[it.Owned.Target], Since: wf.nh.since[id]}
	if it.Action == control.Rotate {
		p.Token = rotationToken(wf.status.WorkflowID, it.Owned)
	}
	in := activities.OwnedInput{ControlID: id, Target: it.Owned.Target, Step: at.step.Name, Owned: it.Owned, Params: p}
	if it.BreakGlass {
		return wf.rotateBreakGlass(ctx, id, in)
	}
	return workflow.ExecuteActivity(withSummary(wf.controlOptions(ctx, it.Owned.Target), controlIDName(id)), a.ApplyOwned, in)
}

// BreakGlassWorkflowType is the child workflow that applies one step to a
// break-glass account; its workflow id is the account's
// (BreakGlassWorkflowID), so two runs never rotate the same account at once:
// two admins leaving together would otherwise each store a password and
// set another, and the vault could keep the one the account no longer has.
const BreakGlassWorkflowType = "BreakGlassStep"

// BreakGlassWorkflowID is the one workflow id per break-glass account.
func BreakGlassWorkflowID(o control.Owned) string {
	sum := sha256.Sum256([]byte(o.Target + "\x00" + o.ID))
	return "breakglass-" + o.Target + "-" + hex.EncodeToString(sum[:8])
}

// BreakGlassInput is one step on a break-glass account, with the activity
// options of the run that asks for it.
type BreakGlassInput struct {
	Step      activities.OwnedInput `json:"step"`
	TaskQueue string                `json:"taskQueue,omitempty"`
	Attempts  int32                 `json:"attempts"`
	Initial   time.Duration         `json:"initial"`
	Maximum   time.Duration         `json:"maximum"`
}

// BreakGlassStep applies one step to a break-glass account: observe →
// enforce if needed → observe, as ApplyOwned does.
func BreakGlassStep(ctx workflow.Context, in BreakGlassInput) (control.Receipt, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           in.TaskQueue,
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		Summary:             controlIDName(in.Step.ControlID),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: in.Initial, BackoffCoefficient: 2, MaximumInterval: in.Maximum,
			MaximumAttempts: in.Attempts, NonRetryableErrorTypes: activities.NonRetryable},
	})
	var r control.Receipt
	err := workflow.ExecuteActivity(ctx, a.ApplyOwned, in.Step).Get(ctx, &r)
	return r, err
}

// rotateBreakGlass runs the step as the account's child workflow; while
// another run's is open, it waits and asks again.
func (wf *deprovision) rotateBreakGlass(ctx workflow.Context, id string, in activities.OwnedInput) workflow.Future {
	opts := workflow.GetActivityOptions(wf.controlOptions(ctx, in.Target))
	bg := BreakGlassInput{Step: in, TaskQueue: opts.TaskQueue, Attempts: opts.RetryPolicy.MaximumAttempts,
		Initial: opts.RetryPolicy.InitialInterval, Maximum: opts.RetryPolicy.MaximumInterval}
	f, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID:            BreakGlassWorkflowID(in.Owned),
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
				ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON, // a rotation under way finishes
				StaticSummary:         controlIDName(id),
			})
			var r control.Receipt
			err := workflow.ExecuteChildWorkflow(cctx, BreakGlassWorkflowType, bg).Get(ctx, &r)
			if temporal.IsWorkflowExecutionAlreadyStartedError(err) && !wf.stopping {
				_, _ = awaitFor(ctx, breakGlassRetry, "another run is rotating "+controlIDName(id)+"; again", func() bool { return wf.stopping })
				continue
			}
			set.Set(r, err)
			return
		}
	})
	return f
}

// breakGlassRetry is how long a run waits for another's rotation of the same account.
const breakGlassRetry = 10 * time.Second

// ownedDestructive: decommissioning, and a rotation's later steps (the old
// credential stops working, then goes), wait for a legal hold's release.
func (wf *deprovision) ownedDestructive(id string) bool {
	at, ok := wf.nh.steps[id]
	if !ok {
		return false
	}
	return wf.status.NonHuman[at.item].Action == control.Decommission || at.step.After != control.Now
}

// rotationToken identifies one run's rotation of one identity, the same for
// every retry and replay, in the form of a UUID (Secrets Manager's
// ClientRequestToken): a retried rotation finds the version it stored.
func rotationToken(workflowID string, o control.Owned) string {
	sum := sha256.Sum256([]byte(workflowID + "\x00" + o.Target + "\x00" + o.Kind + "\x00" + o.ID + "\x00rotate"))
	sum[6] = sum[6]&0x0f | 0x50 // version 5 (name-based)
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ownedPlanItem is one non-human step as the approver reads it.
func (wf *deprovision) ownedPlanItem(c ControlStatus) PlanItem {
	at := wf.nh.steps[c.ID]
	it := wf.status.NonHuman[at.item]
	o := it.Owned
	return PlanItem{Control: c.ID, Phase: c.Phase, Account: o.ID, Login: o.Name, Owned: &o, Action: it.Action,
		NewOwner: it.NewOwner, Step: at.step.Name, After: at.step.After, Removes: []string{ownedSays(it, at.step)}}
}

// ownedSays is a plan line: "service user deploy-bot (aws): access key …1234
// (Active) → rotate: deactivate_old, after the grace period".
func ownedSays(it OwnedStatus, s control.Step) string {
	line := it.Owned.Say() + " → " + string(it.Action)
	if it.NewOwner != "" {
		line += " to " + it.NewOwner
	}
	line += ": " + s.Name
	switch s.After {
	case control.Grace:
		line += ", after the grace period"
	case control.Purge:
		line += ", after the purge period"
	}
	if it.Problem != "" {
		line += " (" + it.Problem + ")"
	}
	return line
}
