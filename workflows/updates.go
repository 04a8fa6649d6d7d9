// People's decisions: Workflow Updates carrying a decision signed by the
// operator API (or a break-glass key). The validator refuses anything
// unsigned, signed by a key the run does not trust, meant for another run,
// stale, already applied, or not allowed by policy, so a refusal never
// enters the history; the handler applies what the validator let through.

package workflows

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
)

// Decisions are accepted for this long after the API signed them, and up
// to decisionSkew before (the API's clock and the server's may differ).
// Only the validator checks it: validators do not run on replay.
const (
	decisionMaxAge = 5 * time.Minute
	decisionSkew   = time.Minute
)

// maxIgnoredLogged bounds the log entries for unsigned signals, so a flood
// of them cannot grow the run's state.
const maxIgnoredLogged = 20

// legacySignals are the decisions runs took as signals before they were
// signed Updates; only runs recorded before versionSignedDecisions obey them.
var legacySignals = []string{SignalApprove, SignalLegalHold, SignalReleaseHold, SignalRescind, SignalReschedule, SignalRetry, SignalWaive}

// listen registers the status query, then the decisions: signed Updates for
// new runs; the old signals only for runs recorded before them (replay).
func (wf *deprovision) listen(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	wf.status.EventID, wf.status.RunID = wf.t.EventID, info.WorkflowExecution.RunID
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return wf.status, nil }); err != nil {
		return fmt.Errorf("status query: %w", err)
	}
	if workflow.GetVersion(ctx, versionSignedDecisions, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return wf.listenSignals(ctx)
	}
	wf.ignoreSignals(ctx)
	return wf.handleDecisions(ctx)
}

// ignoreSignals drains the old decision signals: a signal from the Web UI or
// any Temporal client is in the history (signals always are) but changes
// nothing; the log says it was ignored.
func (wf *deprovision) ignoreSignals(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	ignored := 0
	for _, name := range legacySignals {
		sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(c workflow.ReceiveChannel, _ bool) {
			var raw json.RawMessage
			c.Receive(ctx, &raw)
			if ignored++; ignored <= maxIgnoredLogged {
				wf.log(ctx, name, byOf(raw), "ignored: an unsigned signal decides nothing; decisions go through the operator API", false)
			}
		})
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel.Select(ctx)
		}
	})
}

// decisionRule checks one kind of decision against the run's state and
// applies it; check must not change anything.
type decisionRule struct {
	kind  string
	check func(workflow.Context, decision.Verified) error
	apply func(workflow.Context, decision.Verified) (string, error)
}

func (wf *deprovision) handleDecisions(ctx workflow.Context) error {
	applied := map[string]bool{} // digests of decisions applied: none is applied twice
	for _, r := range wf.decisionRules() {
		validate := func(ctx workflow.Context, s decision.Signed) error {
			v, err := wf.verify(r.kind, s, applied)
			if err != nil {
				return err
			}
			// Which run, and when: checked here only. A replayer runs the
			// history under another workflow id, and validators do not run
			// on replay, so the handler never looks at them.
			run := workflow.GetInfo(ctx).WorkflowExecution
			now := workflow.Now(ctx)
			switch {
			case v.WorkflowID != run.ID:
				return fmt.Errorf("decision signed for %s, not %s", v.WorkflowID, run.ID)
			case v.RunID != run.RunID:
				return fmt.Errorf("decision signed for run %s, not this run %s", v.RunID, run.RunID)
			case v.At.Before(now.Add(-decisionMaxAge)):
				return fmt.Errorf("decision signed at %s is older than %s: sign it again", v.At.Format(time.RFC3339), decisionMaxAge)
			case v.At.After(now.Add(decisionSkew)):
				return fmt.Errorf("decision signed at %s is in the future", v.At.Format(time.RFC3339))
			}
			// Nobody decides about their own deprovisioning.
			if err := wf.notTheLeaver(v.Person); err != nil {
				return err
			}
			return r.check(ctx, v)
		}
		handle := func(ctx workflow.Context, s decision.Signed) (DecisionResult, error) {
			// Checked again: another decision may have been applied since the
			// validator ran. Deterministic, so it holds on replay too.
			v, err := wf.verify(r.kind, s, applied)
			if err == nil {
				err = r.check(ctx, v)
			}
			if err != nil {
				return DecisionResult{}, err
			}
			applied[decision.Digest(s)] = true
			detail, err := r.apply(ctx, v)
			if err != nil {
				return DecisionResult{}, err
			}
			wf.logDecision(ctx, v, detail)
			return DecisionResult{Kind: r.kind, By: v.Person, Detail: detail, BreakGlass: v.BreakGlass}, nil
		}
		if err := workflow.SetUpdateHandlerWithOptions(ctx, r.kind, handle, workflow.UpdateHandlerOptions{Validator: validate}); err != nil {
			return fmt.Errorf("update %s: %w", r.kind, err)
		}
	}
	return nil
}

// verify checks the envelope: a trusted key's signature over a decision of
// this kind, not applied before.
func (wf *deprovision) verify(kind string, s decision.Signed, applied map[string]bool) (decision.Verified, error) {
	var keys []decision.Key
	for _, k := range wf.base.People.DecisionKeys {
		if pub, err := decision.ParsePublicKey(k.PublicKey); err == nil {
			keys = append(keys, decision.Key{Public: pub, BreakGlass: k.BreakGlass})
		}
	}
	if len(keys) == 0 {
		return decision.Verified{}, fmt.Errorf("this run trusts no decision key (people.decisionKeys when it started)")
	}
	v, err := decision.Verify(s, keys)
	if err != nil {
		return v, err
	}
	switch {
	case v.Kind != kind:
		return v, fmt.Errorf("decision signed as %s, sent as %s", v.Kind, kind)
	case applied[decision.Digest(s)]:
		return v, fmt.Errorf("this decision was already applied")
	}
	return v, nil
}

func (wf *deprovision) logDecision(ctx workflow.Context, v decision.Verified, detail string) {
	wf.status.Log = append(wf.status.Log, LogEntry{At: workflow.Now(ctx), Kind: v.Kind, By: v.Person, Detail: detail,
		Accepted: true, KeyID: v.KeyID, BreakGlass: v.BreakGlass})
}

// payload decodes the decision's own fields strictly.
func payload(v decision.Verified, into any) error {
	dec := json.NewDecoder(bytes.NewReader(v.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("bad %s payload: %v", v.Kind, err)
	}
	return nil
}

// needRole checks the role the signed decision carries and, when the plan
// lists people for it, that the person is listed; a break-glass key's
// holder is not on the lists.
func needRole(v decision.Verified, role string, listed []string) error {
	if !v.HasRole(role) {
		return fmt.Errorf("%s does not hold the %s role", v.Person, role)
	}
	if len(listed) > 0 && !v.BreakGlass && !contains(listed, v.Person) {
		return fmt.Errorf("%s is not among this run's people with the %s role", v.Person, role)
	}
	return nil
}

func (wf *deprovision) decisionRules() []decisionRule {
	return []decisionRule{
		{UpdateApprove, wf.checkApprove, wf.applyApprove},
		{UpdateQuarantineRelease, wf.checkQuarantine, wf.applyQuarantine},
		{UpdateLegalHold, wf.checkHold, wf.applyHold},
		{UpdateReleaseHold, wf.checkRelease, wf.applyRelease},
		{UpdateRescind, wf.checkRescind, wf.applyRescind},
		{UpdateReschedule, wf.checkReschedule, wf.applyReschedule},
		{UpdateRetry, wf.checkRetry, wf.applyRetry},
		{UpdateWaive, wf.checkWaive, wf.applyWaive},
		{UpdateIdentityCorrection, wf.checkCorrection, wf.applyCorrection},
	}
}

// ---- approval ----

func (wf *deprovision) checkApprove(_ workflow.Context, v decision.Verified) error {
	var p ApproveRequest
	if err := payload(v, &p); err != nil {
		return err
	}
	digest := decision.NormalizeDigest(v.PlanDigest)
	switch {
	case p.Decision != "approve" && p.Decision != "reject":
		return fmt.Errorf("decision %q is not approve or reject", p.Decision)
	}
	if err := wf.notTheRequester(v.Person); err != nil {
		return err
	}
	if err := needRole(v, decision.RoleApprover, wf.base.People.Approvers); err != nil {
		return err
	}
	switch {
	case wf.status.PlanDigest == "" || !wf.status.ApprovalNeeded:
		return fmt.Errorf("no plan is waiting for approval")
	case digest != wf.status.PlanDigest:
		return fmt.Errorf("plan digest %s does not match the current plan %s: the plan changed, approve the new one", digest, wf.status.PlanDigest)
	case wf.removalStarted || wf.rejected != nil || wf.approvedCurrentPlan():
		return fmt.Errorf("the plan was already decided")
	}
	return nil
}

func (wf *deprovision) applyApprove(ctx workflow.Context, v decision.Verified) (string, error) {
	var p ApproveRequest
	_ = payload(v, &p)
	rec := ApprovalRecord{Approve: Approve{Approver: v.Person, Decision: p.Decision, PlanDigest: wf.status.PlanDigest, Reason: p.Reason},
		At: workflow.Now(ctx), BreakGlass: v.BreakGlass}
	if p.Decision == "reject" {
		wf.rejected = &rec
	} else {
		wf.approved = &rec
	}
	wf.status.Approvals = append(wf.status.Approvals, rec)
	return "plan " + rec.PlanDigest + " " + p.Decision + "d", nil
}

// notTheRequester refuses the person who asked for the deprovisioning as
// its approver.
func (wf *deprovision) notTheRequester(person string) error {
	if r := decision.NormalizeID(wf.t.RequestedBy); r != "" && r == decision.NormalizeID(person) {
		return fmt.Errorf("%s requested this deprovisioning and may not approve it", person)
	}
	return nil
}

// notTheLeaver refuses a person who is, by any identifier the run knows, the
// leaver. Identifiers compare trimmed and lower-case, and an e-mail's local
// part also matches a bare login: in doubt, someone else decides.
func (wf *deprovision) notTheLeaver(person string) error {
	who := decision.NormalizeID(person)
	local, _, isMail := strings.Cut(who, "@")
	ids := []string{wf.t.EmployeeID, wf.t.Email}
	for _, k := range workflow.DeterministicKeys(wf.t.Accounts) {
		ids = append(ids, wf.t.Accounts[k])
	}
	for _, a := range wf.status.Accounts {
		ids = append(ids, a.ID, a.Login)
	}
	for _, c := range wf.status.Corrections {
		ids = append(ids, c.Email)
		for _, k := range workflow.DeterministicKeys(c.Accounts) {
			ids = append(ids, c.Accounts[k])
		}
	}
	for _, id := range ids {
		id = decision.NormalizeID(id)
		if id == "" {
			continue
		}
		idLocal, _, idMail := strings.Cut(id, "@")
		if id == who || (isMail && !idMail && id == local) || (isMail && idMail && idLocal == local) || (!isMail && idMail && idLocal == who) {
			return fmt.Errorf("%s is the leaver (matches %q) and may not decide about their own deprovisioning", person, id)
		}
	}
	return nil
}

// ---- quarantine ----

func (wf *deprovision) checkQuarantine(_ workflow.Context, v decision.Verified) error {
	var p ApproveRequest
	if err := payload(v, &p); err != nil {
		return err
	}
	if p.Decision != "approve" && p.Decision != "reject" {
		return fmt.Errorf("decision %q is not approve or reject", p.Decision)
	}
	if err := needRole(v, decision.RoleSecurity, wf.base.People.Security); err != nil {
		return err
	}
	if !wf.t.Quarantined || wf.quarantineReleased || wf.rescinded != nil {
		return fmt.Errorf("this run is not quarantined")
	}
	return nil
}

func (wf *deprovision) applyQuarantine(ctx workflow.Context, v decision.Verified) (string, error) {
	var p ApproveRequest
	_ = payload(v, &p)
	rec := ApprovalRecord{Approve: Approve{Approver: v.Person, Decision: p.Decision, PlanDigest: QuarantineDigest, Reason: p.Reason},
		At: workflow.Now(ctx), BreakGlass: v.BreakGlass}
	if p.Decision == "reject" {
		wf.rescinded = &Rescind{By: v.Person, Reason: "quarantine rejected: " + p.Reason}
	} else {
		wf.quarantineReleased = true
	}
	wf.status.Approvals = append(wf.status.Approvals, rec)
	return "quarantine " + p.Decision + "d", nil
}

// ---- legal hold ----

func (wf *deprovision) checkHold(_ workflow.Context, v decision.Verified) error {
	var p Hold
	if err := payload(v, &p); err != nil {
		return err
	}
	if err := needRole(v, decision.RoleHR, nil); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(p.CaseRef) == "":
		return fmt.Errorf("caseRef is required")
	case wf.status.LegalHold != nil:
		return fmt.Errorf("a legal hold (case %s) is already in force", wf.status.LegalHold.CaseRef)
	}
	return nil
}

func (wf *deprovision) applyHold(ctx workflow.Context, v decision.Verified) (string, error) {
	var p Hold
	_ = payload(v, &p)
	p.By = v.Person
	wf.status.LegalHold = &p
	wf.status.Holds = append(wf.status.Holds, HoldRecord{Hold: p, PlacedAt: workflow.Now(ctx)})
	wf.updatePhaseAttribute(ctx)
	return "legal hold placed for case " + p.CaseRef, nil
}

func (wf *deprovision) checkRelease(_ workflow.Context, v decision.Verified) error {
	var p Release
	if err := payload(v, &p); err != nil {
		return err
	}
	if err := needRole(v, decision.RoleHR, nil); err != nil {
		return err
	}
	switch {
	case wf.status.LegalHold == nil:
		return fmt.Errorf("no legal hold is in force")
	case p.CaseRef != wf.status.LegalHold.CaseRef:
		return fmt.Errorf("case %q does not match the hold's case %q", p.CaseRef, wf.status.LegalHold.CaseRef)
	}
	return nil
}

func (wf *deprovision) applyRelease(ctx workflow.Context, v decision.Verified) (string, error) {
	var p Release
	_ = payload(v, &p)
	wf.status.LegalHold = nil
	last := &wf.status.Holds[len(wf.status.Holds)-1]
	last.ReleasedBy, last.ReleasedAt = v.Person, workflow.Now(ctx)
	wf.updatePhaseAttribute(ctx)
	return "legal hold for case " + p.CaseRef + " released", nil
}

// ---- rescind and reschedule: they name the event or time they mean ----

// namesThisRun checks that a rescind or reschedule refers to this run's
// event, or to its effective time.
func (wf *deprovision) namesThisRun(eventID string, at time.Time) error {
	switch {
	case eventID == "" && at.IsZero():
		return fmt.Errorf("name the event (eventId) or the effective time it refers to")
	case eventID != "" && eventID != wf.t.EventID:
		return fmt.Errorf("event %s is not this run's event (%s)", eventID, wf.t.EventID)
	case !at.IsZero() && !at.Equal(wf.effectiveAt) && !at.Equal(wf.t.EffectiveAt):
		return fmt.Errorf("effective time %s is not this run's (%s)", at.UTC().Format(time.RFC3339), wf.effectiveAt.UTC().Format(time.RFC3339))
	}
	return nil
}

func (wf *deprovision) checkRescind(_ workflow.Context, v decision.Verified) error {
	var p Rescind
	if err := payload(v, &p); err != nil {
		return err
	}
	if err := needRole(v, decision.RoleHR, nil); err != nil {
		return err
	}
	if err := wf.namesThisRun(p.EventID, p.EffectiveAt); err != nil {
		return err
	}
	switch {
	case wf.rescinded != nil:
		return fmt.Errorf("already rescinded by %s", wf.rescinded.By)
	case wf.removalStarted:
		return fmt.Errorf("removal has started: too late to rescind; a rehire needs new accounts")
	}
	return nil
}

func (wf *deprovision) applyRescind(_ workflow.Context, v decision.Verified) (string, error) {
	var p Rescind
	_ = payload(v, &p)
	p.By = v.Person
	wf.rescinded = &p
	wf.stopping = true
	return "rescinded: " + p.Reason, nil
}

func (wf *deprovision) checkReschedule(_ workflow.Context, v decision.Verified) error {
	var p Reschedule
	if err := payload(v, &p); err != nil {
		return err
	}
	if err := needRole(v, decision.RoleHR, nil); err != nil {
		return err
	}
	if err := wf.namesThisRun(p.EventID, p.From); err != nil {
		return err
	}
	switch {
	case p.EffectiveAt.IsZero():
		return fmt.Errorf("effectiveAt is required")
	case !wf.startedAt.IsZero():
		return fmt.Errorf("the effective time has passed and containment has started")
	case wf.rescinded != nil:
		return fmt.Errorf("already rescinded by %s", wf.rescinded.By)
	}
	return nil
}

func (wf *deprovision) applyReschedule(_ workflow.Context, v decision.Verified) (string, error) {
	var p Reschedule
	_ = payload(v, &p)
	wf.effectiveAt = p.EffectiveAt
	wf.status.EffectiveAt = p.EffectiveAt
	wf.scheduleChanged = true
	return "effective time moved to " + p.EffectiveAt.UTC().Format(time.RFC3339), nil
}

// ---- exceptions: retry and waive ----

func (wf *deprovision) checkRetry(_ workflow.Context, v decision.Verified) error {
	var p Retry
	if err := payload(v, &p); err != nil {
		return err
	}
	if err := needRole(v, decision.RoleSecurity, nil); err != nil {
		return err
	}
	i, ok := wf.controlIndex[p.Control]
	switch {
	case !ok:
		return fmt.Errorf("unknown control %q", p.Control)
	case wf.status.Controls[i].State != StateException && wf.status.Controls[i].State != StateWaived:
		return fmt.Errorf("control %s is %s, not in exception", p.Control, wf.status.Controls[i].State)
	}
	return nil
}

func (wf *deprovision) applyRetry(_ workflow.Context, v decision.Verified) (string, error) {
	var p Retry
	_ = payload(v, &p)
	wf.retries[p.Control]++
	return "retry " + p.Control, nil
}

func (wf *deprovision) checkWaive(ctx workflow.Context, v decision.Verified) error {
	var p Waive
	if err := payload(v, &p); err != nil {
		return err
	}
	if err := needRole(v, decision.RoleSecurity, wf.base.People.Security); err != nil {
		return err
	}
	i, ok := wf.controlIndex[p.Control]
	now := workflow.Now(ctx)
	maxWaiver := wf.base.Policy.MaxWaiver.D()
	switch {
	case !ok:
		return fmt.Errorf("unknown control %q", p.Control)
	case wf.status.Controls[i].State != StateException:
		return fmt.Errorf("control %s is %s, not in exception", p.Control, wf.status.Controls[i].State)
	case strings.TrimSpace(p.Reason) == "":
		return fmt.Errorf("a waiver needs a reason")
	case !p.ExpiresAt.After(now):
		return fmt.Errorf("waiver already expired at %s", p.ExpiresAt.UTC().Format(time.RFC3339))
	case maxWaiver > 0 && p.ExpiresAt.Sub(now) > maxWaiver:
		return fmt.Errorf("waiver longer than the policy's maximum of %s", maxWaiver)
	}
	return nil
}

func (wf *deprovision) applyWaive(_ workflow.Context, v decision.Verified) (string, error) {
	var p Waive
	_ = payload(v, &p)
	p.By = v.Person
	wf.waivers[p.Control] = &p
	return "waived " + p.Control + " until " + p.ExpiresAt.UTC().Format(time.RFC3339) + ": " + p.Reason, nil
}

// ---- identity correction (what it does: hrevent.go) ----

func (wf *deprovision) checkCorrection(_ workflow.Context, v decision.Verified) error {
	var p IdentityCorrection
	if err := payload(v, &p); err != nil {
		return err
	}
	if !v.HasRole(decision.RoleHR) && !v.HasRole(decision.RoleSecurity) {
		return fmt.Errorf("%s holds neither the hr nor the security role", v.Person)
	}
	switch {
	case isFinal(wf.status.Phase):
		return fmt.Errorf("the run is closed (%s)", wf.status.Phase)
	case wf.removalStarted:
		return fmt.Errorf("removal has started, the plan can no longer change: start a termination for the corrected identity")
	case p.Email == "" && p.Name == "" && len(p.Accounts) == 0:
		return fmt.Errorf("a correction names an email, a name or account hints")
	}
	return nil
}

func (wf *deprovision) applyCorrection(ctx workflow.Context, v decision.Verified) (string, error) {
	var p IdentityCorrection
	_ = payload(v, &p)
	p.By = v.Person
	if err := wf.correctIdentity(ctx, p); err != nil {
		return "", err
	}
	return "identity corrected: " + p.Reason, nil
}

// plan lists the destructive steps PlanDigest covers, for the approver.
func (wf *deprovision) plan() []PlanItem {
	var items []PlanItem
	for _, c := range wf.status.Controls {
		if c.Phase == control.NonHuman && c.Control != "discover" {
			items = append(items, wf.ownedPlanItem(c))
		}
		if c.Phase != control.Removal && c.Phase != control.Deletion && c.Phase != control.RoleChange {
			continue
		}
		acct := wf.accounts[c.Target]
		items = append(items, PlanItem{Control: c.ID, Phase: c.Phase, Account: acct.ID, Login: acct.Login,
			Privileges: acct.Privileges, Params: wf.params(c), Removes: removes(c.Control, acct, wf.params(c))})
	}
	return items
}
