package workflows

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/internal/decision"
)

// The sandbox's keys (internal/config/default.yaml lists their public halves).
var (
	apiKey   = seedKey("sandbox-decision-key")
	glassKey = seedKey("sandbox-break-glass-key")
	strayKey = seedKey("not-configured")
)

func seedKey(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(s[:])
}

// testRoles are what the operator API's tokens would prove in these tests;
// mallory holds no role, ada is the leaver.
var testRoles = map[string][]string{
	"alice@example.test": {decision.RoleSecurity, decision.RoleApprover},
	"bob@example.test":   {decision.RoleSecurity, decision.RoleApprover},
	"hr@example.test":    {decision.RoleHR},
	"hr-bot":             {decision.RoleHR},
	"legal@example.test": {decision.RoleHR},
	"ada@example.test":   {decision.RoleApprover},
}

// verdict is what one update came back with.
type verdict struct {
	kind, by string
	accepted bool
	detail   string
}

// decisionFor builds the decision a person makes about the running test run.
func (s *deprovisionSuite) decisionFor(kind, person, digest string, p any) decision.Decision {
	body, err := json.Marshal(p)
	s.Require().NoError(err)
	s.nonce++
	return decision.Decision{
		WorkflowID: "default-test-workflow-id", RunID: "default-test-run-id", Kind: kind,
		Person: person, Roles: testRoles[person], PlanDigest: digest, Payload: body,
		At: s.env.Now(), Nonce: fmt.Sprint(s.nonce),
	}
}

// send delivers a signed decision as the Update of its kind and records the verdict.
func (s *deprovisionSuite) send(kind string, signed decision.Signed) {
	d, _ := decision.Parse(signed.Body)
	s.nonce++ // every send is its own update
	s.env.UpdateWorkflow(kind, fmt.Sprintf("u-%d", s.nonce), &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { s.verdicts = append(s.verdicts, verdict{kind, d.Person, false, err.Error()}) },
		OnComplete: func(v any, err error) {
			if err != nil {
				s.verdicts = append(s.verdicts, verdict{kind, d.Person, false, err.Error()})
				return
			}
			r := v.(DecisionResult)
			s.verdicts = append(s.verdicts, verdict{kind, r.By, true, r.Detail})
		},
	}, signed)
}

// decide signs with the API's key and sends.
func (s *deprovisionSuite) decide(kind, person, digest string, p any) {
	signed, err := decision.Sign(apiKey, s.decisionFor(kind, person, digest, p))
	s.Require().NoError(err)
	s.send(kind, signed)
}

// signal is how the tests written for signals make their decisions: the
// same person and payload, signed by the API as its token would prove them.
func (s *deprovisionSuite) signal(name string, v any) {
	event := s.status().EventID
	switch p := v.(type) {
	case Approve:
		if p.PlanDigest == QuarantineDigest {
			s.decide(UpdateQuarantineRelease, p.Approver, "", ApproveRequest{Decision: p.Decision, Reason: p.Reason})
			return
		}
		s.decide(UpdateApprove, p.Approver, p.PlanDigest, ApproveRequest{Decision: p.Decision, Reason: p.Reason})
	case Hold:
		s.decide(UpdateLegalHold, p.By, "", Hold{CaseRef: p.CaseRef, Reason: p.Reason})
	case Release:
		s.decide(UpdateReleaseHold, p.By, "", Release{CaseRef: p.CaseRef})
	case Rescind:
		if p.EventID == "" && p.EffectiveAt.IsZero() {
			p.EventID = event
		}
		by := p.By
		p.By = ""
		s.decide(UpdateRescind, by, "", p)
	case Reschedule:
		if p.EventID == "" && p.From.IsZero() {
			p.EventID = event
		}
		by := p.By
		p.By = ""
		s.decide(UpdateReschedule, by, "", p)
	case Retry:
		s.decide(UpdateRetry, p.By, "", Retry{Control: p.Control})
	case Waive:
		by := p.By
		p.By = ""
		s.decide(UpdateWaive, by, "", p)
	case HREvent: // a signal, signed by the relay as the HR system
		s.env.SignalWorkflow(name, s.signedHREvent(p.Termination, apiKey))
	default:
		s.env.SignalWorkflow(name, v)
	}
}

// signedHREvent is an HR event as the relay sends it: signed by key.
func (s *deprovisionSuite) signedHREvent(t Termination, key ed25519.PrivateKey) HREvent {
	d := s.decisionFor(decision.KindHREvent, "hris:"+t.Source, "", t)
	d.Roles = []string{decision.RoleHR}
	signed, err := decision.Sign(key, d)
	s.Require().NoError(err)
	return HREvent{Termination: t, Signed: &signed}
}

// refused lists the reasons of the refused decisions of a kind, in order.
func (s *deprovisionSuite) refused(kind string) []string {
	var out []string
	for _, v := range s.verdicts {
		if v.kind == kind && !v.accepted {
			out = append(out, v.detail)
		}
	}
	return out
}

func (s *deprovisionSuite) lastRefused() string {
	for i := len(s.verdicts) - 1; i >= 0; i-- {
		if !s.verdicts[i].accepted {
			return s.verdicts[i].detail
		}
	}
	return ""
}

// TestForgedDecisionsAreRefused: unsigned, stray-key, tampered, other-run,
// wrong-kind, stale and replayed decisions are refused by the validator and
// leave no trace in the run; only the good one is applied.
func (s *deprovisionSuite) TestForgedDecisionsAreRefused() {
	t := s.termination()
	t.EffectiveAt = s.start.Add(48 * time.Hour)
	var good decision.Signed
	s.at(time.Hour, func() {
		rescind := func(mut func(*decision.Decision)) decision.Decision {
			d := s.decisionFor(UpdateRescind, "hr@example.test", "", Rescind{Reason: "offer accepted", EventID: "evt-1"})
			if mut != nil {
				mut(&d)
			}
			return d
		}
		sign := func(k ed25519.PrivateKey, d decision.Decision) decision.Signed {
			signed, err := decision.Sign(k, d)
			s.Require().NoError(err)
			return signed
		}
		s.send(UpdateRescind, decision.Signed{})            // unsigned
		s.send(UpdateRescind, sign(strayKey, rescind(nil))) // a key nobody configured
		tampered := sign(apiKey, rescind(nil))
		tampered.Body = []byte(string(tampered.Body[:len(tampered.Body)-2]) + "x}")
		s.send(UpdateRescind, tampered)                                                                             // changed after signing
		s.send(UpdateRescind, sign(apiKey, rescind(func(d *decision.Decision) { d.RunID = "another-run" })))        // replayed for another run
		s.send(UpdateRescind, sign(apiKey, rescind(func(d *decision.Decision) { d.WorkflowID = "deprovision-X" }))) // another person's run
		s.send(UpdateLegalHold, sign(apiKey, rescind(nil)))                                                         // sent as another kind
		s.send(UpdateRescind, sign(apiKey, rescind(func(d *decision.Decision) { d.At = d.At.Add(-decisionMaxAge - time.Second) })))
		s.send(UpdateRescind, sign(apiKey, rescind(func(d *decision.Decision) { d.At = d.At.Add(decisionSkew + time.Second) })))
		s.send(UpdateRescind, sign(apiKey, rescind(func(d *decision.Decision) { d.Person, d.Roles = "mallory@example.test", nil })))
		s.send(UpdateRescind, sign(apiKey, s.decisionFor(UpdateRescind, "hr@example.test", "", Rescind{EventID: "evt-newer"})))
		s.send(UpdateRescind, sign(apiKey, s.decisionFor(UpdateRescind, "hr@example.test", "", Rescind{})))
		s.Equal(PhaseScheduled, s.status().Phase, "nothing above was applied")
		// A hold, its release, and the same signed hold again: the replay
		// would put the hold back, so the run refuses what it applied before.
		hold := sign(apiKey, s.decisionFor(UpdateLegalHold, "legal@example.test", "", Hold{CaseRef: "CASE-7"}))
		s.send(UpdateLegalHold, hold)
		s.decide(UpdateReleaseHold, "legal@example.test", "", Release{CaseRef: "CASE-7"})
		s.send(UpdateLegalHold, hold)
		s.Nil(s.status().LegalHold)
		good = sign(apiKey, rescind(nil))
		s.send(UpdateRescind, good)
	})
	res := s.run(t)
	s.Equal(PhaseRescinded, res.Phase)
	reasons := s.refused(UpdateRescind)
	s.Require().Len(reasons, 10, "%q", reasons)
	for i, want := range []string{"not signed", "does not trust", "signature does not match", "not this run", "signed for deprovision-X",
		"older than", "in the future", "does not hold the hr role", "not this run's event", "name the event"} {
		s.Contains(reasons[i], want, "refusal %d", i)
	}
	holds := s.refused(UpdateLegalHold)
	s.Require().Len(holds, 2)
	s.Contains(holds[0], "signed as rescind, sent as legal-hold")
	s.Contains(holds[1], "already applied")
	s.Require().Len(res.Status.Holds, 1)
	var decided []LogEntry
	for _, l := range res.Status.Log {
		if l.Kind == UpdateRescind {
			decided = append(decided, l)
		}
	}
	s.Require().Len(decided, 1, "only the good rescind is in the run's log")
	s.Equal("hr@example.test", decided[0].By)
	s.Equal(decision.KeyID(apiKey.Public().(ed25519.PublicKey)), decided[0].KeyID)
	s.False(decided[0].BreakGlass)
}

// TestUnsignedSignalsChangeNothing: a new run ignores the old signals (a
// Temporal client or the Web UI can still send them) and says so.
func (s *deprovisionSuite) TestUnsignedSignalsChangeNothing() {
	t := s.termination()
	t.Privileged = true
	s.at(time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.env.SignalWorkflow(SignalApprove, Approve{Approver: "alice@example.test", Decision: "approve", PlanDigest: st.PlanDigest})
		s.env.SignalWorkflow(SignalRescind, Rescind{By: "hr@example.test"})
	})
	res := s.run(t)
	s.Equal(PhaseApprovalExpired, res.Phase, "the signalled approval did not count")
	s.Equal(0, s.okta.count("remove_groups"))
	s.Equal(0, s.okta.count("unsuspend"), "the signalled rescind did not count")
	s.Empty(res.Status.Approvals)
	s.Contains(lastLog(res.Status, SignalApprove).Detail, "ignored")
	s.False(lastLog(res.Status, SignalApprove).Accepted)
	s.Contains(lastLog(res.Status, SignalRescind).Detail, "ignored")
}

// TestApproverIsNotTheLeaverByAnyName: the leaver is refused by an account
// hint, an e-mail with other case and spaces, the employee id, a resolved
// login; the digest is accepted without its prefix; a break-glass approval
// is marked.
func (s *deprovisionSuite) TestApproverIsNotTheLeaverByAnyName() {
	t := s.termination()
	t.Privileged = true
	t.Accounts = map[string]string{"okta": "mallory.admin@example.test"}
	testRoles["mallory.admin@example.test"] = []string{decision.RoleApprover}
	testRoles[" ADA@Example.test "] = []string{decision.RoleApprover}
	testRoles["e1001"] = []string{decision.RoleApprover}
	testRoles["ada"] = []string{decision.RoleApprover}
	testRoles["break-glass"] = []string{decision.RoleApprover}
	defer func() {
		for _, k := range []string{"mallory.admin@example.test", " ADA@Example.test ", "e1001", "ada", "break-glass"} {
			delete(testRoles, k)
		}
	}()
	s.at(time.Minute, func() {
		st := s.status()
		s.Require().NotEmpty(st.Plan, "the approver sees the plan, not only its digest")
		s.Equal(st.PlanDigest[:7], "sha256:")
		approve := ApproveRequest{Decision: "approve"}
		for _, who := range []string{"mallory.admin@example.test", " ADA@Example.test ", "e1001", "ada"} {
			s.decide(UpdateApprove, who, st.PlanDigest, approve)
		}
		s.decide(UpdateApprove, "hr@example.test", st.PlanDigest, approve) // no approver role
		signed, err := decision.Sign(glassKey, s.decisionFor(UpdateApprove, "break-glass", st.PlanDigest[len("sha256:"):], approve))
		s.Require().NoError(err)
		s.send(UpdateApprove, signed)
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	reasons := s.refused(UpdateApprove)
	s.Require().Len(reasons, 5, "%q", reasons)
	for i := range 4 {
		s.Contains(reasons[i], "is the leaver", reasons[i])
	}
	s.Contains(reasons[4], "does not hold the approver role")
	s.Require().Len(res.Status.Approvals, 1)
	s.True(res.Status.Approvals[0].BreakGlass)
	s.True(lastLog(res.Status, UpdateApprove).BreakGlass, "the log marks a break-glass decision")
}

// TestLeaverDecidesNothingAboutThemselves: an HR person being let go may
// not rescind, hold or correct their own deprovisioning.
func (s *deprovisionSuite) TestLeaverDecidesNothingAboutThemselves() {
	t := s.termination()
	t.EffectiveAt = s.start.Add(48 * time.Hour)
	testRoles["ADA@example.test"] = []string{decision.RoleHR, decision.RoleSecurity}
	defer delete(testRoles, "ADA@example.test")
	s.at(time.Hour, func() {
		s.decide(UpdateRescind, "ADA@example.test", "", Rescind{EventID: "evt-1", Reason: "changed my mind"})
		s.decide(UpdateLegalHold, "ADA@example.test", "", Hold{CaseRef: "CASE-1"})
		s.decide(UpdateIdentityCorrection, "ADA@example.test", "", IdentityCorrection{Email: "someone.else@example.test"})
		s.decide(UpdateRescind, "hr@example.test", "", Rescind{EventID: "evt-1", Reason: "test over"})
	})
	res := s.run(t)
	s.Equal(PhaseRescinded, res.Phase)
	s.Require().Len(s.verdicts, 4)
	for _, v := range s.verdicts[:3] {
		s.False(v.accepted)
		s.Contains(v.detail, "is the leaver")
	}
	s.Equal("hr@example.test", res.Status.Log[len(res.Status.Log)-1].By)
	s.Nil(res.Status.LegalHold)
	s.Empty(res.Status.Corrections)
}
