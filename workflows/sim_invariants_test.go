package workflows

// The policy's invariants, checked after every simulated scenario.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/control"
)

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
			if st.Phase == PhaseRestoring && c.Phase == control.Containment {
				continue // a rescinded run waits on nobody for its containment
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
		if st.ApprovalNeeded && !approvedBy(st, e.Scheduled) {
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
	for _, c := range st.Controls {
		lines = append(lines, fmt.Sprintf("control %s %s %s attempts=%d", c.ID, c.State, c.Outcome, c.Attempts))
	}
	for _, a := range st.Approvals {
		lines = append(lines, fmt.Sprintf("approval %s %s %s", a.Approver, a.Decision, a.At.Sub(r.start)))
	}
	for _, h := range st.Holds {
		lines = append(lines, fmt.Sprintf("hold %s %s..%s", h.CaseRef, h.PlacedAt.Sub(r.start), h.ReleasedAt.Sub(r.start)))
	}
	var logs []string
	for _, e := range st.Log {
		if e.Accepted {
			logs = append(logs, fmt.Sprintf("log %s %s %s %s", e.At.Sub(r.start), e.Kind, e.By, e.Detail))
		}
	}
	slices.Sort(logs)
	var enf []string
	for _, e := range r.log.enforces {
		enf = append(enf, fmt.Sprintf("enforce %s %s", e.ID, e.At.Sub(r.start)))
	}
	slices.Sort(enf)
	return strings.Join(slices.Concat(lines, logs, enf), "\n")
}
