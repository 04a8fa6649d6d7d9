package workflows

// How people and the world reach a simulated run: signed decisions as the
// operator API sends them, HR events as the relay signs them, drift in a
// target; over the test environment or a real server.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
)

// simDriver brings people's decisions and HR events to the run: one small
// function per kind of decision, each a signed Workflow Update as the
// operator API sends it, so a change in how decisions travel is a change here.
type simDriver struct {
	tr  simTransport
	run *simRun
}

// simTransport is how decisions, HR events and queries reach a run: the
// SDK's test environment here, a real Temporal server in sim_server_test.go.
type simTransport interface {
	now() time.Time
	ids() (workflowID, runID string)
	update(kind, id string, signed decision.Signed, done func(accepted bool, detail string))
	signal(name string, v any)
	query() (Status, error)
}

// envTransport is the test environment's clock, Updates, signals and query.
type envTransport struct {
	env *testsuite.TestWorkflowEnvironment
}

func (e envTransport) now() time.Time { return e.env.Now() }
func (e envTransport) ids() (string, string) {
	return "default-test-workflow-id", "default-test-run-id"
}
func (e envTransport) signal(name string, v any) {
	e.env.SignalWorkflow(name, v)
}
func (e envTransport) update(kind, id string, signed decision.Signed, done func(bool, string)) {
	e.env.UpdateWorkflow(kind, id, &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { done(false, err.Error()) },
		OnComplete: func(_ any, err error) {
			if err != nil {
				done(false, err.Error())
				return
			}
			done(true, "")
		},
	}, signed)
}
func (e envTransport) query() (Status, error) {
	v, err := e.env.QueryWorkflow(QueryStatus)
	if err != nil {
		return Status{}, err
	}
	var st Status
	return st, v.Get(&st)
}

// The operator API's key as the sandbox configures it (default.yaml lists
// its public half), and a key no run trusts.
var (
	simAPIKey   = simKey("sandbox-decision-key")
	simStrayKey = simKey("not-configured")
)

func simKey(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(s[:])
}

// simRoles are what the operator API's tokens prove about each person.
var simRoles = map[string][]string{
	simApprover: {decision.RoleSecurity, decision.RoleApprover},
	simSecurity: {decision.RoleSecurity, decision.RoleApprover},
	simHR:       {decision.RoleHR},
	simLegal:    {decision.RoleHR},
	simLeaver:   {decision.RoleApprover, decision.RoleSecurity},
}

// simVerdict is what became of one decision.
type simVerdict struct {
	Kind, By, Bad string
	Accepted      bool
	Detail        string
}

// decide signs a decision and sends it as the Update of its kind. A bad
// one is spoiled in the way ev.Bad says, and must be refused.
func (d simDriver) decide(ev simEvent, kind, person, digest string, p any) {
	body, _ := json.Marshal(p)
	r := d.run
	r.mu.Lock()
	r.nonce++
	nonce := r.nonce
	r.mu.Unlock()
	wid, rid := d.tr.ids()
	dec := decision.Decision{WorkflowID: wid, RunID: rid, Kind: kind,
		Person: person, Roles: simRoles[person], PlanDigest: digest, Payload: body, At: d.tr.now(), Nonce: fmt.Sprint(nonce)}
	key := simAPIKey
	switch ev.Bad {
	case "stray-key":
		key = simStrayKey
	case "stale":
		dec.At = dec.At.Add(-time.Hour)
	}
	signed, err := decision.Sign(key, dec)
	if err != nil {
		panic(err)
	}
	d.send(ev, kind, person, signed)
	if ev.Bad == "replay" {
		d.send(ev, kind, person, signed) // the same decision again: already applied
	}
}

func (d simDriver) send(ev simEvent, kind, person string, signed decision.Signed) {
	r := d.run
	r.mu.Lock()
	r.nonce++
	id := fmt.Sprintf("u-%d", r.nonce)
	r.updates++
	i := len(r.verdicts)
	r.verdicts = append(r.verdicts, simVerdict{Kind: kind, By: person, Bad: ev.Bad})
	if ev.Bad == "replay" && i > 0 && r.verdicts[i-1].Bad == "replay" && r.verdicts[i-1].Kind == kind {
		r.verdicts[i-1].Bad = "" // the first delivery of a replayed decision is a good one
	}
	r.mu.Unlock()
	d.tr.update(kind, id, signed, func(ok bool, detail string) {
		r.mu.Lock()
		r.verdicts[i].Accepted, r.verdicts[i].Detail = ok, detail
		r.mu.Unlock()
	})
}

func (d simDriver) approve(ev simEvent, person, digest string, p ApproveRequest) {
	d.decide(ev, UpdateApprove, person, digest, p)
}
func (d simDriver) releaseQuarantine(ev simEvent, person string, p ApproveRequest) {
	d.decide(ev, UpdateQuarantineRelease, person, "", p)
}
func (d simDriver) hold(ev simEvent, person string, p Hold) {
	d.decide(ev, UpdateLegalHold, person, "", p)
}
func (d simDriver) release(ev simEvent, person string, p Release) {
	d.decide(ev, UpdateReleaseHold, person, "", p)
}
func (d simDriver) rescind(ev simEvent, person string, p Rescind) {
	d.decide(ev, UpdateRescind, person, "", p)
}
func (d simDriver) reschedule(ev simEvent, person string, p Reschedule) {
	d.decide(ev, UpdateReschedule, person, "", p)
}
func (d simDriver) correct(ev simEvent, person string, p IdentityCorrection) {
	d.decide(ev, UpdateIdentityCorrection, person, "", p)
}
func (d simDriver) retry(ev simEvent, person string, p Retry) {
	d.decide(ev, UpdateRetry, person, "", p)
}
func (d simDriver) waive(ev simEvent, person string, p Waive) {
	d.decide(ev, UpdateWaive, person, "", p)
}

// hrEvent is a later HR event: those need no answer, so they stay signals,
// signed by the relay as the HR system.
func (d simDriver) hrEvent(ev simEvent, v HREvent) {
	if ev.Bad == "unsigned" {
		d.tr.signal(SignalHREvent, v) // not from the relay: it must change nothing
		return
	}
	r := d.run
	r.mu.Lock()
	r.signals++
	r.nonce++
	nonce := r.nonce
	r.mu.Unlock()
	body, _ := json.Marshal(v.Termination)
	wid, rid := d.tr.ids()
	signed, err := decision.Sign(simAPIKey, decision.Decision{WorkflowID: wid, RunID: rid, Kind: decision.KindHREvent,
		Person: "hris:" + v.Termination.Source, Roles: []string{decision.RoleHR}, Payload: body, At: d.tr.now(), Nonce: fmt.Sprint(nonce)})
	if err != nil {
		panic(err)
	}
	v.Signed = &signed
	d.tr.signal(SignalHREvent, v)
}

func (d simDriver) status() (Status, error) {
	return d.tr.query()
}

// act carries out one event at its time, naming what the run shows now.
func (d simDriver) act(ev simEvent) {
	st, err := d.status()
	if err != nil {
		return
	}
	now := d.tr.now()
	switch ev.Kind {
	case "approve", "reject":
		person, digest := ev.By, st.PlanDigest
		switch ev.Bad {
		case "stale-digest":
			digest = "sha256:" + strings.Repeat("0", 64)
		case "not-approver":
			person = simNobody
		case "leaver":
			person = simLeaver
		case "requester":
			person = simHR
		}
		d.approve(ev, person, digest, ApproveRequest{Decision: ev.Kind, Reason: "sim"})
	case "hold":
		d.hold(ev, ev.By, Hold{CaseRef: simCase, Reason: "litigation"})
	case "release":
		rel := Release{CaseRef: simCase}
		if ev.Bad == "wrong-case" {
			rel.CaseRef = "CASE-99"
		}
		d.release(ev, ev.By, rel)
	case "rescind":
		p := Rescind{Reason: "sim: withdrawn", EventID: d.run.t.EventID}
		if ev.Bad == "other-event" {
			p.EventID = "evt-older"
		}
		d.rescind(ev, ev.By, p)
	case "reschedule":
		p := Reschedule{EffectiveAt: d.run.start.Add(ev.Span), EventID: d.run.t.EventID}
		if ev.Bad == "other-event" {
			p.EventID = "evt-older"
		}
		d.reschedule(ev, ev.By, p)
	case "retry":
		id := pickControl(st, ev)
		if id == "" {
			return
		}
		person := ev.By
		if ev.Bad == "not-security" {
			person = simHR
		}
		d.retry(ev, person, Retry{Control: id})
	case "waive":
		id := pickControl(st, ev)
		if id == "" {
			return
		}
		person := ev.By
		w := Waive{Control: id, Reason: "sim: accepted risk, SEC-1", ExpiresAt: now.Add(ev.Span)}
		switch ev.Bad {
		case "not-security":
			person = simNobody
		case "no-reason":
			w.Reason = " "
		case "expired":
			w.ExpiresAt = now.Add(-time.Hour)
		}
		d.waive(ev, person, w)
	case "drift":
		d.run.targets[simTargetNames[ev.Pick%len(simTargetNames)]].drift("suspend")
	case "redeliver":
		d.hrEvent(ev, HREvent{Termination: d.run.t})
	case "supersede":
		t := d.run.t
		t.EventID, t.Kind, t.Reason, t.NewRole = t.EventID+"-term", KindTermination, ReasonInvoluntary, ""
		t.EffectiveAt = d.run.start.Add(ev.Span)
		d.hrEvent(ev, HREvent{Termination: t})
	case "correct":
		d.correct(ev, ev.By, IdentityCorrection{Name: "Ada Lovelace", Reason: "sim: name spelled wrong"})
	}
}

// pickControl names the control a retry or waiver is about: one in
// exception, or for the invalid ones a control that is not.
func pickControl(st Status, ev simEvent) string {
	switch ev.Bad {
	case "unknown-control":
		return "nope/nope"
	case "not-in-exception":
		var done []string
		for _, c := range st.Controls {
			if c.State == StateDone {
				done = append(done, c.ID)
			}
		}
		if len(done) == 0 {
			return ""
		}
		return done[ev.Pick%len(done)]
	}
	var open, owned []string
	for _, c := range st.Controls {
		if c.State == StateException || (ev.Kind == "retry" && c.State == StateWaived) {
			if c.Phase == control.NonHuman {
				owned = append(owned, c.ID)
				continue
			}
			open = append(open, c.ID)
		}
	}
	// Non-human steps join the status in the order discoveries happened to
	// finish: by name, after the rest, so a scenario names the same one every run.
	slices.Sort(owned)
	open = append(open, owned...)
	if len(open) == 0 {
		return ""
	}
	return open[ev.Pick%len(open)]
}
