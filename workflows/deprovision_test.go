package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

type deprovisionSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env    *testsuite.TestWorkflowEnvironment
	okta   *fakeTarget
	aws    *fakeTarget
	cfg    config.Config
	start  time.Time
	sent   []activities.Notification
	sentMu sync.Mutex // notifications run as activities, side by side
	// decisions (decide_test.go)
	verdicts []verdict
	nonce    int
}

func TestDeprovision(t *testing.T) { suite.Run(t, new(deprovisionSuite)) }

func (s *deprovisionSuite) SetupTest() {
	cfg, err := config.Default()
	s.Require().NoError(err)
	cfg.Policy.Reverify = []config.Duration{config.Duration(time.Hour)}
	s.cfg = cfg
	s.okta, s.aws = newFake("okta"), newFake("aws")
	s.start = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	s.sent = nil
	s.verdicts, s.nonce = nil, 0
	s.newEnv()
}

// newEnv builds the environment from s.cfg and the fakes; tests that change
// the policy call it again.
func (s *deprovisionSuite) newEnv() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartTime(s.start)
	acts := activities.New(s.cfg, []control.Target{s.okta, s.aws})
	RegisterWorkflows(s.env)
	s.env.RegisterActivity(acts)
	// Notifications are recorded rather than posted.
	s.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, n activities.Notification) (bool, error) {
			s.sentMu.Lock()
			defer s.sentMu.Unlock()
			s.sent = append(s.sent, n)
			return true, nil
		})
}

func (s *deprovisionSuite) termination() Termination {
	return Termination{
		EventID: "evt-1", Source: "test", EmployeeID: "E1001", Email: "ada@example.test", Name: "Ada",
		Kind: KindTermination, Reason: ReasonVoluntary, EffectiveAt: s.start, RequestedBy: "hr-bot",
	}
}

func (s *deprovisionSuite) run(t Termination) Result {
	s.env.ExecuteWorkflow(Deprovision, t)
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var res Result
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	return res
}

func (s *deprovisionSuite) status() Status {
	v, err := s.env.QueryWorkflow(QueryStatus)
	s.Require().NoError(err)
	var st Status
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *deprovisionSuite) at(d time.Duration, fn func()) { s.env.RegisterDelayedCallback(fn, d) }

func controlByID(st Status, id string) ControlStatus {
	for _, c := range st.Controls {
		if c.ID == id {
			return c
		}
	}
	return ControlStatus{}
}

func lastLog(st Status, kind string) LogEntry {
	for i := len(st.Log) - 1; i >= 0; i-- {
		if st.Log[i].Kind == kind {
			return st.Log[i]
		}
	}
	return LogEntry{}
}

func (s *deprovisionSuite) TestPlainTerminationContainsRemovesAndDeletes() {
	res := s.run(s.termination())

	s.Equal(PhaseCompleted, res.Phase)
	s.False(res.SLABreached)
	for _, f := range []*fakeTarget{s.okta, s.aws} {
		s.Equal([]string{"clear_sessions", "deactivate", "delete", "remove_groups", "suspend"}, f.enforcedNames(), f.name)
		s.Equal(1, f.count("suspend"), "each step applied once")
	}
	byID := map[string]control.Receipt{}
	for _, r := range res.Receipts {
		byID[r.ControlID] = r
	}
	s.Equal(control.Observed, byID["okta/suspend"].Outcome)
	s.Equal("req-suspend", byID["okta/suspend"].RequestID)
	s.Equal(control.Acknowledged, byID["okta/clear_sessions"].Outcome)
	s.Equal(control.Observed, byID["aws/delete"].Outcome)
	s.Len(res.Receipts, 10)
	s.Equal(s.start, res.Status.ContainedAt, "contained the moment the effective time arrived")
	s.Require().Len(res.Status.Deadlines, 2)
	for _, d := range res.Status.Deadlines {
		s.False(d.Breached, d.Phase)
		s.False(d.MetAt.IsZero(), d.Phase)
	}
	s.Empty(s.sent)
}

func (s *deprovisionSuite) TestLimitedTargetRunsOnItsOwnTaskQueue() {
	for i := range s.cfg.Targets {
		if s.cfg.Targets[i].Name == "okta" {
			s.cfg.Targets[i].Limits = &config.Limits{ActivitiesPerSecond: 5}
		}
	}
	s.newEnv()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: TaskQueue})
	var mu sync.Mutex
	queues := map[string][]string{} // target → task queue of each of its activities
	s.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var in struct {
			Target string `json:"target"`
		}
		if info.ActivityType.Name == "Notify" || args.Get(&in) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		queues[in.Target] = append(queues[in.Target], info.TaskQueue)
	})

	res := s.run(s.termination())

	s.Equal(PhaseCompleted, res.Phase)
	// resolve + 2 containment + 2 removal + 1 deletion + 2 reverifications.
	s.Len(queues["okta"], 8)
	for _, q := range queues["okta"] {
		s.Equal("deprovision-okta", q)
	}
	s.Len(queues["aws"], 8)
	for _, q := range queues["aws"] {
		s.Equal(TaskQueue, q, "a target without limits stays on the workflow's queue")
	}
}

func (s *deprovisionSuite) TestFutureEffectiveTimeRescindedTouchesNothing() {
	t := s.termination()
	t.EffectiveAt = s.start.Add(48 * time.Hour)
	s.at(time.Hour, func() {
		s.Equal(PhaseScheduled, s.status().Phase)
		s.signal(SignalRescind, Rescind{By: "hr@example.test", Reason: "offer accepted"})
	})
	res := s.run(t)
	s.Equal(PhaseRescinded, res.Phase)
	s.Empty(s.okta.enforcedNames())
	s.Empty(s.aws.enforcedNames())
	s.Empty(res.Receipts)
}

func (s *deprovisionSuite) TestRescheduleMovesTheEffectiveTime() {
	t := s.termination()
	t.EffectiveAt = s.start.Add(2 * time.Hour)
	s.at(time.Hour, func() {
		s.signal(SignalReschedule, Reschedule{By: "hr@example.test", EffectiveAt: s.start.Add(5 * time.Hour)})
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(PhaseScheduled, st.Phase, "the old time passed without containment")
		s.Equal(0, s.okta.count("suspend"))
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(s.start.Add(5*time.Hour), res.Status.ContainedAt)
}

func (s *deprovisionSuite) TestApprovalBoundToPlanDigestAndApproverRole() {
	t := s.termination()
	t.Privileged = true
	s.at(time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Equal(1, s.okta.count("suspend"), "containment does not wait for approval")
		s.Equal(0, s.okta.count("remove_groups"))
		digest := st.PlanDigest
		s.signal(SignalApprove, Approve{Approver: "alice@example.test", Decision: "approve", PlanDigest: "sha256:stale"})
		s.signal(SignalApprove, Approve{Approver: "mallory@example.test", Decision: "approve", PlanDigest: digest})
		s.signal(SignalApprove, Approve{Approver: "ada@example.test", Decision: "approve", PlanDigest: digest})
		s.signal(SignalApprove, Approve{Approver: "alice@example.test", Decision: "approve", PlanDigest: digest})
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, s.okta.count("remove_groups"))
	s.Require().Len(res.Status.Approvals, 1)
	s.Equal("alice@example.test", res.Status.Approvals[0].Approver)
	rejected := s.refused(UpdateApprove)
	s.Require().Len(rejected, 3)
	s.Contains(rejected[0], "does not match the current plan")
	s.Contains(rejected[1], "does not hold the approver role")
	s.Contains(rejected[2], "is the leaver")
}

func (s *deprovisionSuite) TestRequesterMayNotApprove() {
	t := s.termination()
	t.Reason, t.RequestedBy = ReasonForCause, "alice@example.test"
	s.at(time.Minute, func() {
		st := s.status()
		s.signal(SignalApprove, Approve{Approver: "alice@example.test", Decision: "approve", PlanDigest: st.PlanDigest})
		s.signal(SignalApprove, Approve{Approver: "bob@example.test", Decision: "approve", PlanDigest: st.PlanDigest})
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Contains(lastLog(res.Status, UpdateApprove).Detail, "approved")
	s.Equal("bob@example.test", res.Status.Approvals[0].Approver)
	s.Contains(s.lastRefused(), "requested this deprovisioning")
}

func (s *deprovisionSuite) TestRejectedPlanKeepsAccessContained() {
	t := s.termination()
	t.Privileged = true
	s.at(time.Minute, func() {
		s.signal(SignalApprove, Approve{Approver: "bob@example.test", Decision: "reject", PlanDigest: s.status().PlanDigest, Reason: "wrong person"})
	})
	res := s.run(t)
	s.Equal(PhaseRejected, res.Phase)
	s.Equal(1, s.okta.count("suspend"))
	s.Equal(0, s.okta.count("remove_groups"))
	s.Equal(0, s.okta.count("delete"))
}

func (s *deprovisionSuite) TestRejectedPlanStillReverifies() {
	t := s.termination()
	t.Privileged = true
	s.at(time.Minute, func() {
		s.signal(SignalApprove, Approve{Approver: "bob@example.test", Decision: "reject", PlanDigest: s.status().PlanDigest, Reason: "wrong person"})
	})
	s.at(30*time.Minute, func() {
		s.Equal(PhaseRejected, s.status().Phase, "the run shows the decision while it keeps watching")
		s.okta.setHolds("suspend", false) // an admin re-enables the user
	})
	res := s.run(t)
	s.Equal(PhaseRejected, res.Phase)
	s.Equal(2, s.okta.count("suspend"), "the re-verification an hour in re-contained the drift")
	s.Require().Len(res.Status.Drift, 1)
	s.Contains(res.Status.Drift[0], "okta/suspend drifted")
	s.Equal(0, s.okta.count("remove_groups"), "nothing removed")
}

func (s *deprovisionSuite) TestRescindAfterRejectionRestores() {
	t := s.termination()
	t.Privileged = true
	s.at(time.Minute, func() {
		s.signal(SignalApprove, Approve{Approver: "bob@example.test", Decision: "reject", PlanDigest: s.status().PlanDigest, Reason: "wrong person"})
	})
	s.at(10*time.Minute, func() { s.signal(SignalRescind, Rescind{By: "hr@example.test", Reason: "resignation withdrawn"}) })
	res := s.run(t)
	s.Equal(PhaseRescinded, res.Phase)
	s.Equal(1, s.okta.count("unsuspend"), "nothing was removed, so access is restored")
	s.Equal(1, s.aws.count("unsuspend"))
	s.Equal(0, s.okta.count("remove_groups"))
}

func (s *deprovisionSuite) TestApprovalTimeoutNotifiesAndStops() {
	t := s.termination()
	t.Privileged = true
	res := s.run(t)
	s.Equal(PhaseApprovalExpired, res.Phase)
	s.Equal(0, s.okta.count("remove_groups"))
	kinds := map[string]bool{}
	for _, n := range s.sent {
		kinds[n.Kind] = true
	}
	s.True(kinds["approval_expired"], "the approval timeout is announced before the run closes")
}

func (s *deprovisionSuite) TestLegalHoldLetsContainmentRunAndHoldsRemoval() {
	t := s.termination()
	t.EffectiveAt = s.start.Add(time.Hour)
	s.at(10*time.Minute, func() {
		s.signal(SignalLegalHold, Hold{By: "legal@example.test", CaseRef: "CASE-7", Reason: "litigation"})
	})
	s.at(5*24*time.Hour, func() {
		st := s.status()
		s.Equal(PhaseOnHold, st.Phase)
		s.NotNil(st.LegalHold)
		s.Equal(1, s.okta.count("suspend"), "containment ran under the hold")
		s.Equal(0, s.okta.count("remove_groups"), "removal waits for release")
		s.signal(SignalReleaseHold, Release{By: "legal@example.test", CaseRef: "CASE-99"})
	})
	s.at(6*24*time.Hour, func() {
		s.Equal(0, s.okta.count("remove_groups"), "a release naming another case is refused")
		s.signal(SignalReleaseHold, Release{By: "legal@example.test", CaseRef: "CASE-7"})
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, s.okta.count("remove_groups"))
	s.Require().Len(res.Status.Holds, 1)
	s.Equal("legal@example.test", res.Status.Holds[0].ReleasedBy)
	s.Equal(s.start.Add(6*24*time.Hour), res.Status.Holds[0].ReleasedAt)
	s.True(res.Status.Deadlines[1].Breached, "the credentials SLA was missed while held, and it says so")
}

func (s *deprovisionSuite) TestHoldFromTheHREventBlocksDeletion() {
	t := s.termination()
	t.LegalHold = &Hold{By: "hr-system", CaseRef: "CASE-1"}
	s.at(40*24*time.Hour, func() {
		s.Equal(0, s.okta.count("remove_groups"))
		s.signal(SignalReleaseHold, Release{By: "legal@example.test", CaseRef: "CASE-1"})
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, s.okta.count("delete"))
}

func (s *deprovisionSuite) TestExceptionWaitsForWaiverOthersGoOn() {
	s.aws.failNext("suspend", 100, control.ErrUnauthorized)
	expires := s.start.Add(2 * time.Hour)
	s.at(10*time.Minute, func() {
		st := s.status()
		c := controlByID(st, "aws/suspend")
		s.Equal(StateException, c.State)
		s.Equal(control.Failed, c.Outcome)
		s.Equal("req-fail", c.Receipt.RequestID)
		s.Equal(1, c.Attempts, "unauthorized is not retried blindly")
		s.Equal(StateDone, controlByID(st, "okta/suspend").State, "other controls keep going")
		s.signal(SignalWaive, Waive{By: "mallory@example.test", Control: "aws/suspend", Reason: "x", ExpiresAt: expires})
		s.signal(SignalWaive, Waive{By: "alice@example.test", Control: "aws/suspend", Reason: "x", ExpiresAt: s.start})
		s.signal(SignalWaive, Waive{By: "alice@example.test", Control: "aws/nope", Reason: "x", ExpiresAt: expires})
		s.signal(SignalWaive, Waive{By: "alice@example.test", Control: "aws/suspend", Reason: "account is break-glass, ticket SEC-12", ExpiresAt: expires})
	})
	s.at(time.Hour, func() {
		st := s.status()
		s.Equal(StateWaived, controlByID(st, "aws/suspend").State)
		s.aws.failNext("suspend", 0, nil) // the system is fixed before the waiver expires
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.True(res.SLABreached, "a waived control does not meet the containment SLA")
	c := controlByID(res.Status, "aws/suspend")
	s.Equal(StateDone, c.State, "the expired waiver re-opened the control, which then held")
	s.Equal(1, s.aws.count("suspend"))
	rejected := s.refused(UpdateWaive)
	s.Require().Len(rejected, 3)
	s.Contains(rejected[0], "security role")
	s.Contains(rejected[1], "already expired")
	s.Contains(rejected[2], "unknown control")
	s.Contains(lastLog(res.Status, "waiver_expired").Detail, "re-opened")
	kinds := map[string]bool{}
	for _, n := range s.sent {
		kinds[n.Kind] = true
	}
	s.True(kinds["exception"])
	s.True(kinds["sla_breach"])
}

func (s *deprovisionSuite) TestExceptionRetriedBySignal() {
	s.okta.failNext("deactivate", 100, control.ErrPermanent)
	s.at(30*time.Minute, func() {
		s.Equal(StateException, controlByID(s.status(), "okta/deactivate").State)
		s.signal(SignalRetry, Retry{By: "alice@example.test", Control: "okta/suspend"}) // not in exception: refused
		s.okta.failNext("deactivate", 0, nil)
		s.signal(SignalRetry, Retry{By: "alice@example.test", Control: "okta/deactivate"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(StateDone, controlByID(res.Status, "okta/deactivate").State)
	s.Equal(1, s.okta.count("deactivate"))
	s.Contains(s.lastRefused(), "not in exception")
	s.False(res.Status.Deadlines[0].Breached, "containment was on time")
}

func (s *deprovisionSuite) TestTransientFailuresAreRetriedWithoutException() {
	s.okta.failNext("suspend", 2, control.ErrTransient)
	s.aws.failNext("suspend", 2, control.ErrRateLimited)
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(StateDone, controlByID(res.Status, "okta/suspend").State)
	s.Equal(int32(3), controlByID(res.Status, "okta/suspend").Receipt.Attempt)
	s.Equal(StateDone, controlByID(res.Status, "aws/suspend").State)
	s.Empty(s.sent)
}

func (s *deprovisionSuite) TestDriftIsReContainedAndFlagged() {
	s.at(30*time.Minute, func() { s.okta.setHolds("suspend", false) }) // an import re-enabled the user
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(2, s.okta.count("suspend"), "re-contained once")
	s.Equal(1, s.aws.count("suspend"))
	s.Require().Len(res.Status.Drift, 1)
	s.Contains(res.Status.Drift[0], "okta/suspend drifted")
	s.True(controlByID(res.Status, "okta/suspend").Receipt.Drift)
	s.Equal("drift", s.sent[0].Kind)
}

func (s *deprovisionSuite) TestRescindAfterContainmentRestores() {
	t := s.termination()
	t.Privileged = true
	s.at(time.Hour, func() {
		s.signal(SignalRescind, Rescind{By: "hr@example.test", Reason: "mistake"})
	})
	res := s.run(t)
	s.Equal(PhaseRescinded, res.Phase)
	s.Equal(1, s.okta.count("suspend"))
	s.Equal(1, s.okta.count("unsuspend"))
	s.Equal(0, s.okta.count("remove_groups"))
	s.Equal(StateDone, controlByID(res.Status, "okta/restore/unsuspend").State)
}

func (s *deprovisionSuite) TestRescindAfterRemovalStartedIsRefused() {
	s.at(2*time.Hour, func() {
		s.signal(SignalRescind, Rescind{By: "hr@example.test", Reason: "too late"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(0, s.okta.count("unsuspend"))
	s.Contains(s.lastRefused(), "too late to rescind")
}

func (s *deprovisionSuite) TestRoleChangeRemovesOnlyUngrantedGroups() {
	t := s.termination()
	t.Kind, t.NewRole = KindRoleChange, "sales-engineer"
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal([]string{"remove_groups"}, s.okta.enforcedNames(), "nothing is disabled")
	s.Equal([]string{"all-staff", "sales"}, s.okta.params["remove_groups"].KeepGroups)
	s.Empty(s.aws.params["remove_groups"].KeepGroups, "a target the role grants nothing in keeps nothing")
}

func (s *deprovisionSuite) TestBadDecisionsAreRefused() {
	s.at(time.Minute, func() {
		s.decide(UpdateRetry, "alice@example.test", "", map[string]any{"control": "okta/suspend", "extra": 1})
		s.decide(UpdateRetry, "alice@example.test", "", Retry{Control: "nope/nope"})
		s.decide(UpdateApprove, "alice@example.test", "", ApproveRequest{Decision: "maybe"})
		s.decide(UpdateReleaseHold, "hr@example.test", "", Release{CaseRef: "none"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	rejected := s.refused(UpdateRetry)
	s.Require().Len(rejected, 2)
	s.Contains(rejected[0], "unknown field")
	s.Contains(rejected[1], "unknown control")
	s.Contains(s.refused(UpdateApprove)[0], "not approve or reject")
	s.Contains(s.refused(UpdateReleaseHold)[0], "no legal hold")
	for _, l := range res.Status.Log {
		s.True(l.Accepted, "a refused decision leaves no trace in the run: %+v", l)
	}
}

func (s *deprovisionSuite) TestQuarantineWaitsForSecurity() {
	t := s.termination()
	t.Quarantined = true
	s.at(time.Hour, func() {
		st := s.status()
		s.Equal(PhaseQuarantined, st.Phase)
		s.Equal(0, s.okta.count("suspend"))
		s.signal(SignalApprove, Approve{Approver: "mallory@example.test", Decision: "approve", PlanDigest: QuarantineDigest})
		s.signal(SignalApprove, Approve{Approver: "alice@example.test", Decision: "approve", PlanDigest: QuarantineDigest})
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(s.start.Add(time.Hour), res.Status.ContainedAt)
	s.Contains(s.lastRefused(), "security role")
}

func (s *deprovisionSuite) TestNoAccountIsRecordedNotAnError() {
	s.aws.missing = true
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Empty(s.aws.enforcedNames())
	s.Equal("no_account", res.Status.Accounts[1].State)
	s.Equal(1, s.okta.count("suspend"))
}

func (s *deprovisionSuite) TestSLABreachWhenContainmentIsLate() {
	s.okta.failNext("suspend", 100, control.ErrPermanent)
	s.at(20*time.Minute, func() {
		st := s.status()
		s.True(st.SLABreached)
		s.True(st.Deadlines[0].Breached)
		s.okta.failNext("suspend", 0, nil)
		s.signal(SignalRetry, Retry{By: "alice@example.test", Control: "okta/suspend"})
	})
	res := s.run(s.termination())
	s.True(res.SLABreached)
	s.Equal(s.start.Add(20*time.Minute), res.Status.Deadlines[0].MetAt, "met late, and when is recorded")
}

func TestTerminationValidate(t *testing.T) {
	good := Termination{EmployeeID: "E1", Email: "a@b", Kind: KindTermination, EffectiveAt: time.Unix(1, 0)}
	require.NoError(t, good.Validate())
	for name, mut := range map[string]func(*Termination){
		"no employee": func(t *Termination) { t.EmployeeID = "" },
		"no email":    func(t *Termination) { t.Email = "" },
		"no time":     func(t *Termination) { t.EffectiveAt = time.Time{} },
		"bad kind":    func(t *Termination) { t.Kind = "fired" },
		"bad reason":  func(t *Termination) { t.Reason = "whim" },
		"role no new": func(t *Termination) { t.Kind = KindRoleChange },
	} {
		t.Run(name, func(t *testing.T) {
			bad := good
			mut(&bad)
			require.Error(t, bad.Validate())
		})
	}
}

// An identity provider's event that asked only to contain: access is
// contained at once, and nothing is removed until a person approves, though
// policy asks no approval for a voluntary, unprivileged leaver.
func (s *deprovisionSuite) TestContainOnlyWaitsForAPersonBeforeRemoving() {
	t := s.termination()
	t.ContainOnly = true
	s.at(time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.True(st.ApprovalNeeded)
		s.Equal(1, s.okta.count("suspend"), "contained at once")
		s.Equal(0, s.okta.count("remove_groups"), "nothing removed before a person decides")
		s.signal(SignalApprove, Approve{Approver: "alice@example.test", Decision: "approve", PlanDigest: st.PlanDigest})
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, s.okta.count("remove_groups"))

	// The same leaver without it goes on without anyone's approval.
	s.SetupTest()
	res = s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Empty(res.Status.Approvals)
}
