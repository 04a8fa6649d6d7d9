package workflows

import (
	"context"
	"errors"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// finderTarget is a fakeTarget whose lookup answers before its rights are
// read (control.Finder), as Okta, Entra and IAM do.
type finderTarget struct {
	*fakeTarget
	holdings  []string
	rightsErr error // Rights fails with it, for good
	resolves  int   // Resolve calls: the first lookup must not use it
	finds     int
	rights    int
}

func (f *finderTarget) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	f.mu.Lock()
	f.resolves++
	f.mu.Unlock()
	acct, err := f.fakeTarget.Resolve(ctx, p)
	acct.Holds = f.holdings
	return acct, err
}

func (f *finderTarget) Find(ctx context.Context, p control.Person) (control.Account, error) {
	acct, err := f.fakeTarget.Resolve(ctx, p)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds++
	acct.Privileges = nil
	return acct, err
}

func (f *finderTarget) Rights(_ context.Context, acct control.Account) (control.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rights++
	if f.rightsErr != nil {
		return control.Account{}, f.rightsErr
	}
	acct.Privileges, acct.Holds = f.privileges, f.holdings
	return acct, nil
}

// newEnvWithFinder builds the environment with aws as a finderTarget.
func (s *deprovisionSuite) newEnvWithFinder() *finderTarget {
	f := &finderTarget{fakeTarget: s.aws}
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartTime(s.start)
	acts := activities.New(s.cfg, []control.Target{s.okta, f})
	RegisterWorkflows(s.env)
	s.env.RegisterActivity(acts)
	// The rights come in well after containment (on the test clock), so
	// what waits for them is seen to wait.
	s.env.OnActivity(acts.ReadRights, mock.Anything, mock.Anything).After(30 * time.Minute).Return(acts.ReadRights)
	return f
}

func (s *deprovisionSuite) TestRightsReadBesideContainmentStillDecideApprovalAndSLA() {
	s.cfg.Policy.Approval.Privileged = true
	f := s.newEnvWithFinder()
	s.aws.privileges = []string{"aws policy AdministratorAccess"}
	f.holdings = []string{"group admins", "access key …1234 (Active)"}
	s.at(time.Hour, func() {
		st := s.status()
		s.Equal(1, s.aws.count("suspend"), "contained")
		s.True(st.ApprovalNeeded, "admin rights read beside containment still make the run need an approval")
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Equal([]string{"aws policy AdministratorAccess"}, st.Accounts[1].Privileges)
		s.Equal(s.start.Add(5*time.Minute), deadline(st, "containment").Due, "the privileged SLA, counted from the same start")
		s.False(deadline(st, "containment").Breached, "contained before the rights came in, within the privileged SLA")
		var removes []string
		for _, it := range st.Plan {
			if it.Control == "aws/remove_groups" {
				removes = it.Removes
			}
		}
		s.Equal([]string{"group admins"}, removes, "the approver's plan shows what the account holds")
		s.Equal(0, s.aws.count("delete"), "nothing destructive before the approval")
		s.signal(SignalRescind, Rescind{By: "hr-bot", Reason: "test over"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseRescinded, res.Phase)
	s.Equal(0, f.resolves, "the first lookup finds only")
	s.Equal(1, f.finds)
	s.Equal(1, f.rights)
}

func (s *deprovisionSuite) TestRightsThatCannotBeReadAreAdminRightsAndAnIncompletePlan() {
	s.cfg.Policy.Approval.Privileged = true
	f := s.newEnvWithFinder()
	f.rightsErr = &control.Error{Kind: control.ErrUnauthorized, Op: "aws: read rights", Err: errors.New("403")}
	s.at(time.Hour, func() {
		st := s.status()
		s.Equal(1, s.aws.count("suspend"), "containment did not wait for the rights")
		s.True(st.Privileged, "rights unknown are treated as admin rights")
		s.True(st.ApprovalNeeded)
		s.Require().Len(st.Accounts[1].Privileges, 1)
		s.Contains(st.Accounts[1].Privileges[0], "admin rights unknown")
		for _, it := range st.Plan {
			if it.Control == "aws/remove_groups" {
				s.Require().Len(it.Removes, 1)
				s.Contains(it.Removes[0], "groups could not be read", "the plan says it is incomplete")
			}
		}
		s.signal(SignalRescind, Rescind{By: "hr-bot", Reason: "test over"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseRescinded, res.Phase)
}

func deadline(st Status, phase string) Deadline {
	for _, d := range st.Deadlines {
		if d.Phase == phase {
			return d
		}
	}
	return Deadline{}
}

// Containment done after the privileged SLA's due but before the rights that
// make the person privileged are in: the watcher starts late, and still
// records the breach, judged by when containment was done.
func (s *deprovisionSuite) TestContainmentLateBeforeRightsAreInIsABreach() {
	s.cfg.Policy.Retry.InitialInterval = config.Duration(3 * time.Minute)
	s.cfg.Policy.Retry.MaximumInterval = config.Duration(3 * time.Minute)
	s.newEnvWithFinder()
	s.aws.privileges = []string{"aws policy AdministratorAccess"}
	s.aws.failNext("suspend", 3, control.ErrTransient) // contained ~9 min in; the rights come at 30
	s.at(time.Hour, func() {
		st := s.status()
		d := deadline(st, "containment")
		s.Equal(s.start.Add(5*time.Minute), d.Due, "the privileged SLA")
		s.True(d.Breached, "contained after the due, though the watcher could only start at 30 min")
		s.True(st.SLABreached)
		s.True(d.MetAt.After(d.Due) && d.MetAt.Before(s.start.Add(30*time.Minute)), "met when containment was done: %s", d.MetAt)
		s.signal(SignalRescind, Rescind{By: "hr-bot", Reason: "test over"})
	})
	res := s.run(s.termination())
	s.True(res.SLABreached)
}
