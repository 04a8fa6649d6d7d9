package workflows

import (
	"time"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
)

func (s *deprovisionSuite) TestLeaverFoundNowhereWaitsForACorrection() {
	s.okta.missing, s.aws.missing = true, true
	s.at(20*time.Minute, func() {
		st := s.status()
		s.Equal(StateException, controlByID(st, identityControl).State, "found nowhere is an exception, not a success")
		s.True(st.ContainedAt.IsZero())
		s.Empty(s.okta.enforcedNames())
		s.Contains(controlByID(st, identityControl).Error, "email typo@example.test: 0 users", "the exception says what was searched")
		// HR fixes the e-mail: the same event, delivered again corrected.
		s.okta.missing, s.aws.missing = false, false
		t := s.termination()
		t.Email = "ada@example.test"
		s.signal(SignalHREvent, HREvent{Termination: t})
	})
	t := s.termination()
	t.Email = "typo@example.test"
	res := s.run(t)

	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, s.okta.count("suspend"))
	s.Equal(1, s.aws.count("delete"))
	s.Equal(control.Observed, controlByID(res.Status, identityControl).Outcome)
	s.Require().Len(res.Status.Corrections, 1)
	s.Equal("ada@example.test", res.Status.Corrections[0].Email)
	s.Equal("identity corrected (email): corrected HR event evt-1", lastLog(res.Status, "identity_corrected").Detail)
	s.True(res.Status.SLABreached, "containment was not done within its SLA while the identity was wrong")
}

func (s *deprovisionSuite) TestLeaverFoundNowhereIsAttestedByAWaiver() {
	s.okta.missing, s.aws.missing = true, true
	s.at(time.Minute, func() {
		s.signal(SignalWaive, Waive{By: "alice@example.test", Control: identityControl, Reason: "contractor never had accounts",
			ExpiresAt: s.start.Add(24 * time.Hour)})
	})
	res := s.run(s.termination())

	s.Equal(PhaseCompleted, res.Phase)
	c := controlByID(res.Status, identityControl)
	s.Equal(control.Attested, c.Outcome, "a person declared the state")
	s.Equal("alice@example.test", c.Receipt.By)
	s.Contains(c.Receipt.Detail, "searched: okta: email ada@example.test: 0 users")
	s.Equal(control.Observed, controlByID(res.Status, "okta/resolve").Outcome, "each no-account is a receipt of what was searched")
	s.Equal([]string{"email ada@example.test: 0 users"}, res.Status.Accounts[0].Searched)
}

func (s *deprovisionSuite) TestAdminRightsFoundMakeTheRunPrivileged() {
	s.cfg.Policy.Approval.Privileged = true
	s.newEnv()
	s.aws.privileges = []string{"aws policy AdministratorAccess"}
	s.at(time.Hour, func() {
		st := s.status()
		s.True(st.Privileged)
		s.True(st.ApprovalNeeded, "admin rights found: approval per policy although HR did not flag the person")
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Equal([]string{"aws policy AdministratorAccess"}, st.Accounts[1].Privileges)
		s.Contains(lastLog(st, "privilege_discovered").Detail, "aws: aws policy AdministratorAccess")
		s.Equal(0, s.aws.count("delete"), "nothing destructive before the approval")
		s.Equal(s.start.Add(5*time.Minute), st.Deadlines[0].Due, "the privileged containment SLA applies")
		s.signal(SignalRescind, Rescind{By: "hr-bot", Reason: "test over"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseRescinded, res.Phase)
}

func (s *deprovisionSuite) TestTerminationSupersedesARoleChangeInFlight() {
	s.cfg.Policy.Approval.ForCause = true
	s.newEnv()
	rc := s.termination()
	rc.EventID, rc.Kind, rc.NewRole, rc.Reason = "evt-role", KindRoleChange, "sales-engineer", ReasonForCause
	s.at(10*time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase, "the role change waits for its approval")
		s.Empty(s.okta.enforcedNames())
		term := s.termination()
		term.EventID, term.EffectiveAt = "evt-leave", s.start.Add(20*time.Minute)
		s.signal(SignalHREvent, HREvent{Termination: term})
	})
	res := s.run(rc)

	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(KindTermination, res.Status.Kind)
	s.Equal("evt-role", res.Status.Superseded)
	s.Equal(1, s.okta.count("suspend"), "the leaver is contained")
	s.Equal(1, s.aws.count("delete"))
	s.Equal(s.start.Add(20*time.Minute), res.Status.EffectiveAt)
	s.Equal(s.start.Add(20*time.Minute), s.okta.params["suspend"].Since, "containment took effect at the termination's time")
}

func (s *deprovisionSuite) TestCorrectionAfterRemovalStartedIsRefused() {
	s.at(2*time.Hour, func() {
		t := s.termination()
		t.Email = "other@example.test"
		s.signal(SignalHREvent, HREvent{Termination: t})
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Empty(res.Status.Corrections)
	s.Contains(lastLog(res.Status, SignalHREvent).Detail, "removal has started")
}

func (s *deprovisionSuite) TestForgedHREventsChangeNothing() {
	s.okta.missing, s.aws.missing = true, true
	s.at(20*time.Minute, func() {
		s.okta.missing, s.aws.missing = false, false
		t := s.termination()
		t.Email = "ceo@example.test"
		s.env.SignalWorkflow(SignalHREvent, HREvent{Termination: t})      // unsigned: any Temporal client
		s.env.SignalWorkflow(SignalHREvent, s.signedHREvent(t, strayKey)) // a key the run does not trust
		other := s.signedHREvent(t, apiKey)
		other.Termination.Email = "ada@example.test"                                 // the unsigned copy says otherwise:
		s.env.SignalWorkflow(SignalHREvent, HREvent{Termination: other.Termination}) // only the signed copy counts
	})
	s.at(30*time.Minute, func() {
		st := s.status()
		s.Empty(st.Corrections, "no forged event corrected the run")
		s.Equal(StateException, controlByID(st, identityControl).State)
		s.Empty(s.okta.enforcedNames())
		var refused []string
		for _, e := range st.Log {
			if e.Kind == SignalHREvent && !e.Accepted {
				refused = append(refused, e.Detail)
			}
		}
		s.Require().Len(refused, 3)
		s.Contains(refused[0], "must be signed")
		s.Contains(refused[1], "ed25519")
		s.signal(SignalRescind, Rescind{By: "hr-bot", Reason: "test over"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseRescinded, res.Phase)
}

func (s *deprovisionSuite) TestSignedHREventForAnotherRunIsRefused() {
	s.okta.missing, s.aws.missing = true, true
	s.at(20*time.Minute, func() {
		t := s.termination()
		t.Email = "someone@example.test"
		d := s.decisionFor(decision.KindHREvent, "hris:test", "", t)
		d.RunID = "an-older-run"
		signed, err := decision.Sign(apiKey, d)
		s.Require().NoError(err)
		s.env.SignalWorkflow(SignalHREvent, HREvent{Termination: t, Signed: &signed})
	})
	s.at(30*time.Minute, func() {
		st := s.status()
		s.Empty(st.Corrections)
		s.Contains(lastLog(st, SignalHREvent).Detail, "not this run")
		s.signal(SignalRescind, Rescind{By: "hr-bot", Reason: "test over"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseRescinded, res.Phase)
}

func (s *deprovisionSuite) TestAFloodOfUnsignedHREventsIsLoggedBoundedly() {
	s.okta.missing, s.aws.missing = true, true
	s.at(20*time.Minute, func() {
		for range maxIgnoredLogged + 5 {
			s.env.SignalWorkflow(SignalHREvent, HREvent{Termination: s.termination()})
		}
	})
	s.at(30*time.Minute, func() {
		n := 0
		for _, e := range s.status().Log {
			if e.Kind == SignalHREvent && !e.Accepted {
				n++
			}
		}
		s.Equal(maxIgnoredLogged, n)
		s.signal(SignalRescind, Rescind{By: "hr-bot", Reason: "test over"})
	})
	s.Equal(PhaseRescinded, s.run(s.termination()).Phase)
}
