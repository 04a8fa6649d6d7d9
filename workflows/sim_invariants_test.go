package workflows

// The policy's invariants, checked after every simulated scenario.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/control"
)

var simDigest = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

var simContainment = map[string]bool{"suspend": true, "revoke_sessions": true, "clear_tokens": true}
var simDestructive = map[string]bool{"remove_groups": true, "remove_keys": true, "delete": true}

// checkScenario returns every invariant the run broke.
func checkScenario(sc simScenario, r *simRun) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	st := r.final

	// The run ends, or waits on a named person or a timer; never stuck.
	if !r.closed {
		if r.queried != nil {
			return append(v, fmt.Sprintf("workflow failed: %v (query: %v)", r.err, r.queried))
		}
		if !waitsOnSomeone(st, r.start.Add(simHorizon)) {
			bad("stuck: open at the horizon in phase %s waiting on nobody (controls %s)", st.Phase, controlStates(st))
		}
	} else {
		if r.err != nil {
			return append(v, "result: "+r.err.Error())
		}
		if r.queried != nil {
			bad("status query after close: %v", r.queried)
		}
		if len(st.PendingGates) > 0 {
			bad("closed in %s with gates still open: %v", st.Phase, st.PendingGates)
		}
		// The status query agrees with the result.
		// (The query may add what it derives, like the plan; the result's fields must agree.)
		a, b := sameKeys(r.res.Status, st)
		if a != b || r.res.Phase != st.Phase {
			bad("the status query disagrees with the result: %s", firstDiff(string(a), string(b)))
		}
		var receipts int
		for _, c := range st.Controls {
			if c.Receipt != nil {
				receipts++
			}
		}
		if receipts != len(r.res.Receipts) {
			bad("result has %d receipts, status %d", len(r.res.Receipts), receipts)
		}
	}
	// Every open exception is a gate, and every exception gate an open exception.
	if !r.closed {
		gates := map[string]bool{}
		for _, g := range st.PendingGates {
			gates[g.Kind] = true
		}
		for _, c := range st.Controls {
			if st.Phase == PhaseRestoring && (c.Phase == control.Containment || c.Phase == control.NonHuman) {
				continue // a rescinded run waits on nobody for its containment, nor for the discovery beside it
			}
			if (c.State == StateException) != gates["exception:"+c.ID] && !isFinal(st.Phase) {
				bad("%s is %s but its exception gate open=%v", c.ID, c.State, gates["exception:"+c.ID])
			}
		}
	}

	kind := st.Kind
	rescinded := st.Phase == PhaseRescinded
	// A termination not rescinded: every containment control observed,
	// waived with a reason, or in an open exception; completed only when
	// every control holds.
	if kind != KindRoleChange && !rescinded && st.Phase != PhaseScheduled && st.Phase != PhaseQuarantined {
		for _, c := range st.Controls {
			if c.Phase != control.Containment || c.Control == "resolve" {
				continue
			}
			switch c.State {
			case StateDone:
				if c.Outcome != control.Observed && !(c.Outcome == control.Acknowledged && c.Control == "clear_tokens") {
					bad("%s done as %s", c.ID, c.Outcome)
				}
			case StateWaived:
				if c.Waiver == nil || strings.TrimSpace(c.Waiver.Reason) == "" {
					bad("%s waived without a reason", c.ID)
				}
			case StateException:
				if r.closed {
					bad("closed in %s with %s in exception", st.Phase, c.ID)
				}
			default:
				bad("%s is %s in phase %s", c.ID, c.State, st.Phase)
			}
		}
	}
	if st.Phase == PhaseCompleted {
		for _, c := range st.Controls {
			if c.State != StateDone && !(c.State == StateWaived && c.Waiver != nil && c.Waiver.Reason != "") {
				bad("completed with %s %s", c.ID, c.State)
			}
		}
	}

	// Nothing destructive before approval, while held, before retention
	// from the current effective time, or in a rescinded run; a role change
	// disables nothing.
	retentionEnds := st.EffectiveAt.Add(simCfg.Policy.Retention.D())
	for _, e := range r.log.enforces {
		name := e.ID[strings.Index(e.ID, "/")+1:]
		if simContainment[name] && e.Scheduled.Before(st.EffectiveAt) {
			bad("%s enforced at %s, before the effective time %s", e.ID, e.Scheduled, st.EffectiveAt)
		}
		if kind == KindRoleChange && name != "remove_groups" {
			bad("role change enforced %s", e.ID)
		}
		if !simDestructive[name] {
			continue
		}
		if rescinded {
			bad("rescinded run enforced %s", e.ID)
		}
		if st.ApprovalNeeded && !approvedBy(st, e.Scheduled) && !roleChangeStep(st, r, e) {
			bad("%s enforced at %s without an approval before it", e.ID, e.Scheduled.Sub(r.start))
		}
		for _, h := range st.Holds {
			if h.PlacedAt.Before(e.Scheduled) && (h.ReleasedAt.IsZero() || e.Scheduled.Before(h.ReleasedAt)) {
				bad("%s enforced at %s while held (placed %s)", e.ID, e.Scheduled.Sub(r.start), h.PlacedAt.Sub(r.start))
			}
		}
		if name == "delete" && e.Scheduled.Before(retentionEnds) {
			bad("%s at %s, before retention ends %s", e.ID, e.Scheduled.Sub(r.start), retentionEnds.Sub(r.start))
		}
	}

	// SLA clocks start no earlier than the current effective time (a
	// superseded role change keeps its own deadline: not checked here).
	slas := map[string]time.Duration{"containment": simCfg.Policy.ContainmentSLA.D(), "credentials": simCfg.Policy.CredentialsSLA.D()}
	if p := simCfg.Policy.PrivilegedContainmentSLA.D(); st.Privileged && p > 0 {
		slas["containment"] = p // privileged, as HR declared or a target showed
	}
	for _, dl := range st.Deadlines {
		if st.Superseded != "" {
			break
		}
		if dl.Due.Add(-slas[dl.Phase]).Before(st.EffectiveAt) {
			bad("%s SLA due %s, before %s after the effective time", dl.Phase, dl.Due.Sub(r.start), slas[dl.Phase])
		}
	}

	// A quarantine security rejected touches nothing.
	if sc.Rejected && len(r.log.enforces) > 0 {
		bad("a rejected quarantine enforced %s", r.log.enforces[0].ID)
	}

	// No SLA breach is recorded once the run is rescinded.
	var rescindedAt time.Time
	for _, e := range st.Log {
		if e.Kind == UpdateRescind && e.Accepted && rescindedAt.IsZero() {
			rescindedAt = e.At
		}
		if e.Kind == "sla_breach" && !rescindedAt.IsZero() && !e.At.Before(rescindedAt) {
			bad("%s at %s, after the rescind at %s", e.Detail, e.At.Sub(r.start), rescindedAt.Sub(r.start))
		}
	}

	// A rescind restores every account it contained.
	if rescinded && r.closed {
		for _, name := range simTargetNames {
			if r.targets[name].suspended() {
				if c := simControl(st, name+"/restore/unsuspend"); c.State != StateWaived {
					bad("rescinded, but %s is still suspended (restore %s)", name, c.State)
				}
			}
		}
	}

	// No control applied again after it was observed, unless its state was
	// undone from outside or a person asked.
	r.mu.Lock()
	applies := slices.Clone(r.applies)
	r.mu.Unlock()
	lastOK := map[string]time.Time{}
	for _, a := range applies {
		if ok, seen := lastOK[a.ID]; seen && a.At.After(ok) || seen && a.At.Equal(ok) {
			if !resetBetween(r.log, a.ID, ok, a.At) && !retriedBetween(st, a.ID, ok, a.At) {
				bad("%s applied again at %s after it was observed at %s", a.ID, a.At.Sub(r.start), ok.Sub(r.start))
			}
		}
		if a.OK {
			lastOK[a.ID] = a.At
		}
	}

	// A control its target never failed does not end in exception, and a
	// control whose state can no longer be read back is not left observed
	// once a re-verification found that out.
	faults := map[string]simBehaviour{}
	gone := map[string]bool{}
	for _, b := range sc.Behaviours {
		faults[b.Control] = b
		if b.Kind == "gone" {
			gone[strings.SplitN(b.Control, "/", 2)[0]] = true
		}
	}
	for _, c := range st.Controls {
		name := c.Control
		if c.Phase == control.Restore {
			name = strings.TrimPrefix(c.ID, c.Target+"/restore/")
		}
		if c.Phase == control.NonHuman {
			continue // checkNonHuman knows what may fail them
		}
		b, faulty := faults[c.Target+"/"+name]
		if (c.State == StateException || c.State == StateWaived) && !faulty && !gone[c.Target] && c.Control != "resolve" {
			bad("%s is %s though %s never failed it: %s", c.ID, c.State, c.Target, c.Error)
		}
		if b.Kind == "unreadable" && c.State == StateDone && c.Outcome == control.Observed {
			for _, e := range st.Log {
				if e.Kind == "reverify" && strings.HasPrefix(e.Detail, c.ID+": could not verify") {
					bad("%s still observed after a re-verification could not read it back", c.ID)
					break
				}
			}
		}
	}
	if sc.NonHuman != nil {
		checkNonHuman(sc, r, bad)
	}
	r.mu.Lock()
	v = append(v, r.midway...)
	r.mu.Unlock()

	// A group removal observed before an account was deleted left no
	// groups (a waived or failed one may leave them to the deletion).
	for _, n := range r.log.notes {
		var last *simApply
		for i, a := range r.applies {
			if a.ID == n.Target+"/remove_groups" && !a.At.After(n.At) {
				last = &r.applies[i]
			}
		}
		if last != nil && last.OK {
			bad("%s, though remove_groups was observed at %s", n.What, last.At.Sub(r.start))
		}
	}

	// Every decision made invalid on purpose is refused.
	r.mu.Lock()
	for _, vd := range r.verdicts {
		if vd.Bad != "" && vd.Accepted {
			bad("a %s by %s made invalid (%s) was accepted", vd.Kind, vd.By, vd.Bad)
		}
	}
	r.mu.Unlock()

	if e := r.historyEvents(); e > simHistoryBound {
		bad("history of ~%d events, over the bound %d", e, simHistoryBound)
	}

	// A refused decision changes nothing: the run without the decisions made
	// invalid on purpose ends the same.
	if len(v) == 0 && sc.hasBad() {
		if a, b := digestRun(r), digestRun(runScenarioOld(sc.valid(), r.old)); a != b {
			bad("a refused decision changed the run:\n--- with\n%s\n--- without\n%s", a, b)
		}
	}
	return v
}

func waitsOnSomeone(st Status, horizon time.Time) bool {
	if len(st.PendingGates) > 0 {
		return true
	}
	for _, c := range st.Controls {
		if c.State == StateWaived && c.Waiver != nil && c.Waiver.ExpiresAt.After(horizon) {
			return true // a timer
		}
	}
	return false
}

// roleChangeStep: e is a step of a role change a termination superseded,
// made under the role change's approval policy: before the supersede, or a
// retry of one of its controls after it. The termination's policy may ask
// for more (an approval for the non-human identities it finds).
func roleChangeStep(st Status, r *simRun, e simEnforce) bool {
	if st.Superseded == "" {
		return false
	}
	for _, l := range st.Log {
		if l.Kind == SignalHREvent && l.Accepted && strings.Contains(l.Detail, "supersedes the role change") && l.At.After(e.Scheduled) {
			return true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.applies {
		if a.At.Equal(e.Scheduled) && strings.HasPrefix(a.ID, e.ID[:strings.Index(e.ID, "/")+1]) && simControl(st, a.ID).Phase == control.RoleChange {
			return true
		}
	}
	return false
}

func approvedBy(st Status, at time.Time) bool {
	for _, a := range st.Approvals {
		if a.Decision == "approve" && a.PlanDigest != QuarantineDigest && !a.At.After(at) {
			return true
		}
	}
	return false
}

func resetBetween(l *simLog, id string, from, to time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, at := range l.resets[id] {
		if !at.Before(from) && !at.After(to) {
			return true
		}
	}
	return false
}

func retriedBetween(st Status, id string, from, to time.Time) bool {
	for _, e := range st.Log {
		if e.Accepted && (e.Kind == SignalRetry && e.Detail == "retry "+id || e.Kind == "waiver_expired") && !e.At.Before(from) && !e.At.After(to) {
			return true
		}
	}
	return false
}

// sameKeys encodes both, keeping only the top-level fields the first has.
func sameKeys(res, query Status) (string, string) {
	var x, y map[string]json.RawMessage
	ra, _ := json.Marshal(res)
	rb, _ := json.Marshal(query)
	_ = json.Unmarshal(ra, &x)
	_ = json.Unmarshal(rb, &y)
	for k := range y {
		if _, ok := x[k]; !ok {
			delete(y, k)
		}
	}
	a, _ := json.Marshal(x)
	b, _ := json.Marshal(y)
	return string(a), string(b)
}

func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-80)
	return fmt.Sprintf("result …%s… status …%s…", a[lo:min(len(a), i+80)], b[lo:min(len(b), i+80)])
}

func simControl(st Status, id string) ControlStatus {
	for _, c := range st.Controls {
		if c.ID == id {
			return c
		}
	}
	return ControlStatus{}
}

func controlStates(st Status) string {
	var out []string
	for _, c := range st.Controls {
		out = append(out, c.ID+"="+string(c.State))
	}
	return strings.Join(out, " ")
}

// digestRun is what a run decided, without the log of refusals and without
// the order in which concurrent activities happened to finish.
func digestRun(r *simRun) string {
	st := r.final
	var lines []string
	lines = append(lines, fmt.Sprintf("closed=%v phase=%s effective=%s contained=%s sla=%v drift=%d",
		r.closed, st.Phase, st.EffectiveAt.Sub(r.start), st.ContainedAt.Sub(r.start), st.SLABreached, len(st.Drift)))
	var controls []string
	for _, c := range st.Controls {
		controls = append(controls, fmt.Sprintf("control %s %s %s attempts=%d", c.ID, c.State, c.Outcome, c.Attempts))
	}
	slices.Sort(controls) // non-human steps join in the order discoveries happened to finish
	lines = append(lines, controls...)
	for _, a := range st.Approvals {
		lines = append(lines, fmt.Sprintf("approval %s %s %s", a.Approver, a.Decision, a.At.Sub(r.start)))
	}
	for _, h := range st.Holds {
		lines = append(lines, fmt.Sprintf("hold %s %s..%s", h.CaseRef, h.PlacedAt.Sub(r.start), h.ReleasedAt.Sub(r.start)))
	}
	var logs []string
	for _, e := range st.Log {
		if e.Accepted {
			// The digest covers non-human steps in the order discoveries finished.
			detail := simDigest.ReplaceAllString(e.Detail, "sha256:…")
			logs = append(logs, fmt.Sprintf("log %s %s %s %s", e.At.Sub(r.start), e.Kind, e.By, detail))
		}
	}
	slices.Sort(logs)
	var enf []string
	for _, e := range slices.Concat(r.log.enforces, r.log.owned) {
		enf = append(enf, fmt.Sprintf("enforce %s %s", e.ID, e.At.Sub(r.start)))
	}
	slices.Sort(enf)
	return strings.Join(slices.Concat(lines, logs, enf), "\n")
}

// checkNonHuman checks what a run did with the identities the leaver owned
// or could know (nonhuman.go).
func checkNonHuman(sc simScenario, r *simRun, bad func(string, ...any)) {
	st := r.final
	nh := sc.NonHuman
	end := r.ended
	faults := map[string]simBehaviour{}
	for _, b := range nh.Behaviours {
		faults[b.Control] = b
	}
	var rescindedAt time.Time
	for _, e := range st.Log {
		if e.Kind == UpdateRescind && e.Accepted {
			rescindedAt = e.At
			break
		}
	}
	bgApproval := func(it OwnedStatus) bool { return !it.BreakGlass || nh.BreakGlassApproval }

	// Every identity a discovery returned is in the plan, and every
	// registry account the leaver could know once the registry was matched.
	for _, name := range simTargetNames {
		if simControl(st, name+"/owned/discover").State != StateDone {
			continue
		}
		for _, o := range r.owners[name].discovered() {
			if !slices.ContainsFunc(st.NonHuman, func(it OwnedStatus) bool { return it.Owned.Target == o.Target && it.Owned.ID == o.ID }) {
				bad("%s %s (%s) was discovered but is not in the plan", o.Kind, o.ID, o.Target)
			}
		}
	}
	if a := simAccount(st, nh.KnowsBreakGlass); a != nil && a.State == "resolved" && st.Kind != KindRoleChange && st.Superseded == "" &&
		!slices.Contains([]Phase{PhaseScheduled, PhaseQuarantined, PhaseContaining, PhaseRescinded, PhaseRestoring}, st.Phase) && rescindedAt.IsZero() {
		for _, b := range simRegistry {
			if !slices.ContainsFunc(st.NonHuman, func(it OwnedStatus) bool { return it.BreakGlass && it.Owned.ID == b.Account }) {
				bad("the leaver is in group admins in %s, but break-glass %s is not in the plan", nh.KnowsBreakGlass, b.Name)
			}
		}
	}

	removalBegan := slices.Contains([]Phase{PhaseRemoving, PhaseRetention, PhaseDeleting, PhaseCompleted}, st.Phase)
	for _, c := range st.Controls {
		if c.Phase == control.Removal && c.State != StatePending {
			removalBegan = true
		}
	}
	for _, it := range st.NonHuman {
		cannot := simOwnedSteps(it.Owned.Target, it.Owned.Kind, it.Action) == nil || it.Action == control.Reown && nh.Team == ""
		if cannot && it.Problem == "" {
			bad("%s: nobody can %s it, yet the plan names no problem", it.Owned.Say(), it.Action)
		}
		var prev *ControlStatus
		for k, id := range it.Controls {
			c := simControl(st, id)
			step := id[strings.LastIndex(id, "/")+1:]
			switch c.State {
			case StateDone:
				// Done only with a receipt whose last call is a read-back that held, and true in the target.
				if cannot {
					bad("%s done, though nobody can %s %s", id, it.Action, it.Owned.Say())
				}
				if c.Receipt == nil || c.Outcome != control.Observed && c.Outcome != control.Acknowledged {
					bad("%s done as %q without a receipt that proves it", id, c.Outcome)
				} else if n := len(c.Receipt.Calls); n == 0 || c.Receipt.Calls[n-1].Holds == nil || !*c.Receipt.Calls[n-1].Holds {
					bad("%s done as %s, but its receipt ends without a read-back that held", id, c.Outcome)
				}
				if o := r.owners[it.Owned.Target]; o != nil && !o.ownedHolds(it.Owned, step, it.NewOwner) {
					bad("%s done, but %s says it does not hold", id, it.Owned.Target)
				}
			case StateException, StateWaived:
				// Only with a cause: a problem the plan names, or the target failed it.
				_, faulty := faults[id]
				if it.Problem == "" && !faulty && !faultyIdentity(nh, it.Owned) && !strings.Contains(c.Error, "activity cap") {
					bad("%s is %s though %s never failed it: %s", id, c.State, it.Owned.Target, c.Error)
				}
			case StatePending:
				// Nothing silently dropped: a step not run waits for its
				// turn, the approval or removal, a hold, or its timer.
				if prev != nil && prev.State != StateDone || st.LegalHold != nil {
					break
				}
				started := removalBegan || it.BreakGlass && !nh.BreakGlassApproval && !st.ContainedAt.IsZero() && rescindedAt.IsZero()
				if !started || isFinal(st.Phase) && st.Phase != PhaseCompleted {
					break
				}
				if prev != nil && prev.Receipt != nil {
					wait := map[string]time.Duration{"deactivate_old": simCfg.NonHuman.Grace.D(), "delete_old": simCfg.NonHuman.Purge.D(), "delete": simCfg.NonHuman.Purge.D()}[step]
					if prev.Receipt.FinishedAt.Add(wait + time.Hour).After(end) {
						break
					}
				}
				bad("%s (step %d of %s) never ran: %s at the end in phase %s", id, k+1, it.Owned.Say(), c.State, st.Phase)
			}
			prev = &c
		}
	}

	// Destructive steps never under a hold, in a rescinded run, or before
	// the approval policy asks for; a rescinded run ran no step scheduled
	// after the rescind, and none that cannot be undone.
	byID := map[string]OwnedStatus{}
	for _, it := range st.NonHuman {
		for _, id := range it.Controls {
			byID[id] = it
		}
	}
	bgChanges := map[string]int{}
	for _, e := range r.log.owned {
		if !e.Changed {
			continue
		}
		step := e.ID[strings.LastIndex(e.ID, "/")+1:]
		it, known := byID[e.ID]
		if !known {
			bad("%s enforced at %s, but the plan has no such step", e.ID, e.Scheduled.Sub(r.start))
			continue
		}
		if it.BreakGlass {
			bgChanges[it.Owned.Target+"/"+it.Owned.ID]++
		}
		if !rescindedAt.IsZero() && e.Scheduled.After(rescindedAt) {
			bad("%s scheduled at %s, after the rescind at %s", e.ID, e.Scheduled.Sub(r.start), rescindedAt.Sub(r.start))
		}
		if st.Phase == PhaseRescinded || st.Phase == PhaseRestoring {
			if step != "set_password" {
				bad("rescinded run enforced %s, which cannot be undone", e.ID)
			}
		}
		if bgApproval(it) && (nh.RequireApproval || st.ApprovalNeeded) && !approvedBy(st, e.Scheduled) {
			bad("%s enforced at %s without the approval it needs", e.ID, e.Scheduled.Sub(r.start))
		}
		if !simOwnedDestructive[step] {
			continue
		}
		for _, h := range st.Holds {
			if h.PlacedAt.Before(e.Scheduled) && (h.ReleasedAt.IsZero() || e.Scheduled.Before(h.ReleasedAt)) {
				bad("%s enforced at %s while held (placed %s)", e.ID, e.Scheduled.Sub(r.start), h.PlacedAt.Sub(r.start))
			}
		}
	}

	// A break-glass password is changed once per run, and no value a
	// rotation stored is in a receipt, an error, the status or the result.
	for acct, n := range bgChanges {
		if n > 1 {
			bad("break-glass %s had its password changed %d times", acct, n)
		}
	}
	if r.secrets != nil {
		res, _ := json.Marshal(r.res)
		status, _ := json.Marshal(st)
		r.mu.Lock()
		said := strings.Join(r.ownedSaid, "\n")
		r.mu.Unlock()
		for _, v := range r.secrets.secretValues() {
			for where, text := range map[string]string{"an ApplyOwned receipt or error": said, "the status": string(status), "the result": string(res)} {
				if strings.Contains(text, v) {
					bad("a rotated secret value is in %s", where)
				}
			}
		}
	}
}

// faultyIdentity: a behaviour of the scenario deletes o or fails one of its steps.
func faultyIdentity(nh *simNonHuman, o control.Owned) bool {
	prefix := ownedControlID(o, "")
	return slices.ContainsFunc(nh.Behaviours, func(b simBehaviour) bool { return strings.HasPrefix(b.Control, prefix) })
}

func simAccount(st Status, target string) *AccountStatus {
	for i := range st.Accounts {
		if st.Accounts[i].Target == target {
			return &st.Accounts[i]
		}
	}
	return nil
}
