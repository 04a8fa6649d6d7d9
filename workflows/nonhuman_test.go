package workflows

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// fakeOwner is a fake target that also owns non-human identities: each
// step of each identity is a flag, set when enforced.
type fakeOwner struct {
	*fakeTarget
	owned        []control.Owned
	accountHolds []string
	resolveFail  int
	discoverFail int
	cannot       map[string]bool // kinds it has no steps for
	stepHolds    map[string]bool // identity id + "/" + step → holds
	stepCount    map[string]int  // identity id + "/" + step → enforced
	stepParams   map[string]control.OwnedParams
}

func newFakeOwner(name string) *fakeOwner {
	return &fakeOwner{fakeTarget: newFake(name), cannot: map[string]bool{}, stepHolds: map[string]bool{},
		stepCount: map[string]int{}, stepParams: map[string]control.OwnedParams{}}
}

func (f *fakeOwner) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	f.mu.Lock()
	if f.resolveFail > 0 {
		f.resolveFail--
		f.mu.Unlock()
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: f.name + ": resolve", HTTPStatus: 400}
	}
	f.mu.Unlock()
	acct, err := f.fakeTarget.Resolve(ctx, p)
	acct.Holds = f.accountHolds
	return acct, err
}

func (f *fakeOwner) Discover(context.Context, control.Account) ([]control.Owned, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.discoverFail > 0 {
		f.discoverFail--
		return nil, &control.Error{Kind: control.ErrUnexpected, Op: f.name + ": list owned", HTTPStatus: 404}
	}
	return f.owned, nil
}

func (f *fakeOwner) OwnedSteps(kind string, action control.Action) []control.Step {
	if f.cannot[kind] {
		return nil
	}
	switch action {
	case control.Rotate:
		if kind == control.KindBreakGlass {
			return []control.Step{{Name: "set_password"}}
		}
		return []control.Step{{Name: "create_new"}, {Name: "deactivate_old", After: control.Grace}, {Name: "delete_old", After: control.Purge}}
	case control.Reown:
		return []control.Step{{Name: "reown"}}
	case control.Decommission:
		return []control.Step{{Name: "revoke"}}
	}
	return nil
}

func (f *fakeOwner) ObserveOwned(_ context.Context, name string, o control.Owned, _ control.OwnedParams) (control.Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.stepHolds[o.ID+"/"+name]
	return control.Observation{Holds: h, Readable: true, Detail: name + " checked"}, nil
}

func (f *fakeOwner) EnforceOwned(_ context.Context, name string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stepCount[o.ID+"/"+name]++
	f.stepParams[o.ID+"/"+name] = p
	f.stepHolds[o.ID+"/"+name] = true
	return control.Response{HTTPStatus: 200, RequestID: "req-" + name}, nil
}

func (f *fakeOwner) steps(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stepCount[key]
}

// withOwner makes aws a fakeOwner owning a service user, an application and
// an API token.
func (s *deprovisionSuite) withOwner() *fakeOwner {
	o := newFakeOwner("aws")
	o.owned = []control.Owned{
		{Kind: control.KindServiceUser, ID: "123:deploy-bot", Name: "deploy-bot", Credentials: []control.Credential{{Kind: "access key", ID: "AKIAOLD00001234", Status: "Active"}}},
		{Kind: control.KindApplication, ID: "app-1", Name: "billing-sync"},
		{Kind: control.KindAPIToken, ID: "tok-1", Name: "ci-deploy"},
	}
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartTime(s.start)
	acts := activities.New(s.cfg, []control.Target{s.okta, o})
	RegisterWorkflows(s.env)
	s.env.RegisterActivity(acts)
	s.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, n activities.Notification) (bool, error) {
			s.sentMu.Lock()
			defer s.sentMu.Unlock()
			s.sent = append(s.sent, n)
			return true, nil
		})
	return o
}

func (s *deprovisionSuite) approveCurrent() {
	s.signal(SignalApprove, Approve{Approver: "alice@example.test", Decision: "approve", PlanDigest: s.status().PlanDigest})
}

func (s *deprovisionSuite) TestNonHumanPlanApprovalAndSteps() {
	o := s.withOwner()
	t := s.termination()
	t.Manager = "grace@example.test"
	s.at(time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase, "non-human changes wait for an approval by default")
		s.Equal(1, s.okta.count("suspend"), "containment did not wait for discovery")
		s.Require().Len(st.NonHuman, 3)
		s.Equal(control.Rotate, st.NonHuman[0].Action)
		s.Equal("grace@example.test", st.NonHuman[1].NewOwner)
		var lines []string
		for _, p := range st.Plan {
			if p.Phase == control.NonHuman {
				lines = append(lines, p.Removes...)
			}
		}
		s.Equal([]string{
			"service user deploy-bot (aws): access key …1234 (Active) → rotate: create_new",
			"service user deploy-bot (aws): access key …1234 (Active) → rotate: deactivate_old, after the grace period",
			"service user deploy-bot (aws): access key …1234 (Active) → rotate: delete_old, after the purge period",
			"application billing-sync (aws) → reown to grace@example.test: reown",
			"api token ci-deploy (aws) → decommission: revoke",
		}, lines, "the approver sees every identity and what will happen to it")
		s.Zero(o.steps("123:deploy-bot/create_new"), "nothing non-human before the approval")
		s.approveCurrent()
	})
	s.at(time.Hour, func() {
		s.Equal(1, o.steps("123:deploy-bot/create_new"))
		s.Equal(1, o.steps("app-1/reown"))
		s.Equal(1, o.steps("tok-1/revoke"))
		s.Zero(o.steps("123:deploy-bot/deactivate_old"), "the old key works through the grace period")
	})
	s.at(24*time.Hour+2*time.Minute, func() {
		s.Equal(1, o.steps("123:deploy-bot/deactivate_old"))
		s.Zero(o.steps("123:deploy-bot/delete_old"))
	})
	s.at(8*24*time.Hour+time.Hour, func() {
		s.Equal(1, o.steps("123:deploy-bot/delete_old"), "deleted after the purge period")
	})
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	for _, it := range res.Status.NonHuman {
		for _, id := range it.Controls {
			c := controlByID(res.Status, id)
			s.Equal(StateDone, c.State, id)
			s.Equal(control.Observed, c.Receipt.Outcome, id)
			s.Equal(control.NonHuman, c.Receipt.Phase, id)
		}
	}
	s.Equal(StateDone, controlByID(res.Status, "aws/owned/service-user/123:deploy-bot/create_new").State)

	p := o.stepParams["123:deploy-bot/create_new"]
	s.Regexp(regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`), p.Token)
	s.Equal(p.Token, o.stepParams["123:deploy-bot/deactivate_old"].Token, "one rotation, one token, every step")
	s.Equal(rotationToken("default-test-workflow-id", control.Owned{Target: "aws", Kind: control.KindServiceUser, ID: "123:deploy-bot"}), p.Token)
	s.False(p.Since.IsZero())
	s.Equal("u-E1001", p.Leaver.ID, "the leaver's own account goes with each step")
	s.Equal("grace@example.test", o.stepParams["app-1/reown"].NewOwner)
	s.Empty(o.stepParams["app-1/reown"].Token, "only rotations carry a token")

	var revoked []activities.Notification
	for _, n := range s.sent {
		if n.Kind == "api_token_revoked" {
			revoked = append(revoked, n)
		}
	}
	s.Require().Len(revoked, 1, "the owner is told the token is gone")
	s.Contains(revoked[0].Text, "grace@example.test")
	s.Contains(res.Status.NonHumanSearched, "aws: 3 found")
	s.Contains(res.Status.NonHumanSearched, "okta: cannot list non-human identities")
}

func (s *deprovisionSuite) TestBreakGlassRotatesRightAfterContainment() {
	s.cfg.BreakGlass = []config.BreakGlass{
		{Name: "aws-emergency", Target: "aws", Account: "breakglass-aws", Secret: "breakglass/aws", KnownBy: config.KnownBy{Groups: []string{"admins"}}},
		{Name: "not-theirs", Target: "aws", Account: "other", Secret: "bg/other", KnownBy: config.KnownBy{Groups: []string{"dba"}, Roles: []string{"DBA"}}},
	}
	o := s.withOwner()
	o.accountHolds = []string{"group all-staff", "group Admins"}
	s.at(time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Equal(1, o.steps("breakglass-aws/set_password"), "rotated without waiting for the approval")
		s.Zero(o.steps("app-1/reown"))
		s.Require().Len(st.NonHuman, 4, "three owned and the one break-glass account they could know")
		s.True(st.NonHuman[0].BreakGlass)
		s.Equal("breakglass/aws", st.NonHuman[0].Owned.Secret)
		s.signal(SignalApprove, Approve{Approver: "alice@example.test", Decision: "reject", PlanDigest: st.PlanDigest})
	})
	res := s.run(s.termination())
	s.Equal(PhaseRejected, res.Phase)
	s.Equal(StateDone, controlByID(res.Status, "aws/owned/break-glass-account/breakglass-aws/set_password").State)
	s.Zero(o.steps("app-1/reown"), "rejected: nothing that needed the approval ran")
	s.Zero(o.steps("other/set_password"), "nobody in dba left")
}

func (s *deprovisionSuite) TestBreakGlassMatchesHRRolesAndAdminRights() {
	s.cfg.BreakGlass = []config.BreakGlass{
		{Name: "by-hr-role", Target: "aws", Account: "bg-1", Secret: "s1", KnownBy: config.KnownBy{Roles: []string{"on-call"}}},
		{Name: "by-admin-right", Target: "aws", Account: "bg-2", Secret: "s2", KnownBy: config.KnownBy{Roles: []string{"Global Administrator"}}},
		{Name: "no-match", Target: "aws", Account: "bg-3", Secret: "s3", KnownBy: config.KnownBy{Roles: []string{"Admin"}, Groups: []string{"Global Administrator"}}},
	}
	s.cfg.NonHuman.RequireApproval = false
	o := s.withOwner()
	o.owned = nil
	o.privileges = []string{"directory role Global Administrator"}
	t := s.termination()
	t.Roles = []string{"On-Call"}
	t.Privileged = true
	s.at(time.Minute, func() { s.approveCurrent() }) // privileged: policy asks
	res := s.run(t)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, o.steps("bg-1/set_password"))
	s.Equal(1, o.steps("bg-2/set_password"))
	s.Zero(o.steps("bg-3/set_password"), "a role is matched as whole words; a group only among groups")
}

func (s *deprovisionSuite) TestRescindBeforeApprovalRunsNothingNonHuman() {
	o := s.withOwner()
	s.at(time.Minute, func() {
		s.signal(SignalRescind, Rescind{By: "hr@example.test", Reason: "withdrawn"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseRescinded, res.Phase)
	s.Empty(o.stepCount)
}

func (s *deprovisionSuite) TestNonHumanNobodyCanActOnWaitsForAPerson() {
	s.cfg.NonHuman.Team = ""
	o := s.withOwner()
	o.cannot[control.KindAPIToken] = true
	t := s.termination() // no manager, and no team configured
	s.at(time.Minute, func() { s.approveCurrent() })
	s.at(time.Hour, func() {
		st := s.status()
		reown := controlByID(st, "aws/owned/application/app-1/reown")
		s.Equal(StateException, reown.State)
		s.Contains(reown.Error, "no one to hand it to")
		token := controlByID(st, "aws/owned/api-token/tok-1/unsupported")
		s.Equal(StateException, token.State)
		s.Contains(token.Error, "aws cannot decommission a api token")
		s.Zero(o.steps("app-1/reown"))
		for _, g := range st.PendingGates {
			s.NotContains(gateWaitsFor(g, ""), "tok-1", "the Web UI names the kind and step, not the identity")
		}
		for _, id := range []string{"aws/owned/application/app-1/reown", "aws/owned/api-token/tok-1/unsupported"} {
			s.signal(SignalWaive, Waive{By: "alice@example.test", Control: id, Reason: "handed over by hand, SEC-9", ExpiresAt: s.start.Add(60 * 24 * time.Hour)})
		}
	})
	s.at(40*24*time.Hour, func() {
		st := s.status()
		s.Equal(StateWaived, controlByID(st, "aws/owned/application/app-1/reown").State, "a person handed it over and said so")
		s.Equal(1, s.okta.count("delete"), "the rest of the run went on")
		s.Zero(o.steps("app-1/reown"))
		s.env.CancelWorkflow() // the waiver would re-open it at its expiry, as every waiver does
	})
	s.env.ExecuteWorkflow(Deprovision, t)
	s.True(s.env.IsWorkflowCompleted())
}

func (s *deprovisionSuite) TestLegalHoldStopsDestructiveNonHumanSteps() {
	o := s.withOwner()
	s.at(time.Minute, func() { s.approveCurrent() })
	s.at(time.Hour, func() {
		s.Equal(1, o.steps("123:deploy-bot/create_new"))
		s.signal(SignalLegalHold, Hold{By: "legal@example.test", CaseRef: "CASE-1"})
	})
	s.at(3*24*time.Hour, func() {
		s.Zero(o.steps("123:deploy-bot/deactivate_old"), "the grace passed, but the hold stops the old key's deactivation")
		s.signal(SignalReleaseHold, Release{By: "legal@example.test", CaseRef: "CASE-1"})
	})
	s.at(3*24*time.Hour+time.Minute, func() {
		s.Equal(1, o.steps("123:deploy-bot/deactivate_old"))
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
}

func (s *deprovisionSuite) TestFailedDiscoveryHoldsTheApproval() {
	s.cfg.NonHuman.RequireApproval = true
	o := s.withOwner()
	o.discoverFail = 1
	s.at(time.Minute, func() {
		st := s.status()
		c := controlByID(st, "aws/owned/discover")
		s.Equal(StateException, c.State, "a foreign 404 is no empty list")
		s.NotEqual(PhaseAwaitingApproval, st.Phase, "no approval of a plan that may lack identities")
		s.Empty(st.NonHuman)
		s.signal(SignalRetry, Retry{By: "alice@example.test", Control: "aws/owned/discover"})
	})
	s.at(2*time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Len(st.NonHuman, 3)
		s.approveCurrent()
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, o.steps("123:deploy-bot/delete_old"))
}

func (s *deprovisionSuite) TestNonHumanControlNamesCarryNoIdentity() {
	s.Equal("aws · service-user · create_new", controlIDName("aws/owned/service-user/123:deploy-bot/create_new"))
	s.Equal("ad · managed-account · reown", controlIDName("ad/owned/managed-account/CN=svc,OU=x,DC=corp/reown"))
	s.Equal("aws · non-human discover", controlIDName("aws/owned/discover"))
	s.Equal("okta · suspend", controlIDName("okta/suspend"))
	s.False(strings.Contains(gateWaitsFor(Gate{Kind: "exception:okta/owned/break-glass-account/bg@example.test/set_password"}, ""), "@"))
}

func TestHasWords(t *testing.T) {
	for _, c := range []struct {
		s, phrase string
		want      bool
	}{
		{"okta admin role SUPER_ADMIN (through a group)", "super_admin", true},
		{"okta role GROUP_ADMIN", "ADMIN", false},
		{"directory role Global Administrator", "Global Administrator", true},
		{"directory role Global Administrator", "Administrator", true},
		{"directory role Global Administrator", "Admin", false},
		{"ad: member of Domain Admins", "domain admins", true},
		{"ad: member of Domain Admins", "", false},
	} {
		require.Equal(t, c.want, hasWords(c.s, c.phrase), "%q in %q", c.phrase, c.s)
	}
}

func (s *deprovisionSuite) TestTerminationSupersedingARoleChangeDiscovers() {
	s.cfg.Policy.Approval.ForCause = true
	o := s.withOwner()
	rc := s.termination()
	rc.EventID, rc.Kind, rc.NewRole, rc.Reason = "evt-role", KindRoleChange, "sales-engineer", ReasonForCause
	s.at(10*time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Empty(st.NonHuman, "a role change leaves what the person owns alone")
		term := s.termination()
		term.EventID, term.EffectiveAt = "evt-leave", s.start.Add(20*time.Minute)
		s.signal(SignalHREvent, HREvent{Termination: term})
	})
	s.at(30*time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Len(st.NonHuman, 3, "the termination discovered what the leaver owns")
		s.approveCurrent()
	})
	res := s.run(rc)
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, o.steps("tok-1/revoke"))
	s.Equal(1, o.steps("123:deploy-bot/delete_old"))
}

func (s *deprovisionSuite) TestDiscoveryNeverGoesBeforeContainment() {
	s.withOwner()
	var started []string
	s.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		started = append(started, info.ActivityType.Name)
	})
	s.at(time.Minute, func() { s.env.CancelWorkflow() })
	s.env.ExecuteWorkflow(Deprovision, s.termination())
	first := func(name string) int { return slices.Index(started, name) }
	s.Require().GreaterOrEqual(first("DiscoverOwned"), 0, "%v", started)
	s.Less(first("ApplyControl"), first("DiscoverOwned"), "containment's activities are scheduled first: %v", started)
}

func (s *deprovisionSuite) TestAnAccountFoundLateIsSearchedToo() {
	o := s.withOwner()
	o.resolveFail = 1
	s.at(time.Minute, func() {
		st := s.status()
		s.Equal(StateException, controlByID(st, "aws/resolve").State)
		s.Empty(st.NonHuman)
		s.signal(SignalRetry, Retry{By: "alice@example.test", Control: "aws/resolve"})
	})
	s.at(2*time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase, "what the late account owns needs the approval")
		s.Len(st.NonHuman, 3)
		s.approveCurrent()
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, o.steps("tok-1/revoke"))
}

func (s *deprovisionSuite) TestTwoRotationsIntoOneSecretAreRefusedAtPlanTime() {
	s.cfg.NonHuman.SecretName = "vault/{target}/{name}" // no {kind}: an app and its service principal collide
	s.cfg.NonHuman.Actions = map[string]control.Action{control.KindApplication: control.Rotate, control.KindServicePrincipal: control.Rotate}
	s.cfg.NonHuman.RequireApproval = false
	o := s.withOwner()
	o.owned = []control.Owned{
		{Kind: control.KindApplication, ID: "app-1", Name: "billing-sync"},
		{Kind: control.KindServicePrincipal, ID: "sp-1", Name: "billing-sync"},
	}
	s.at(time.Hour, func() {
		st := s.status()
		s.Require().Len(st.NonHuman, 2)
		s.Equal("vault/aws/billing-sync", st.NonHuman[1].Owned.Secret)
		s.Empty(st.NonHuman[0].Problem, "the first writer keeps its rotation")
		s.Contains(st.NonHuman[1].Problem, "would write secret vault/aws/billing-sync, which the rotation of application billing-sync (aws) writes too")
		c := controlByID(st, "aws/owned/service-principal/sp-1/secret-in-use")
		s.Equal(StateException, c.State, "said plainly, and waits for a person")
		s.Contains(c.Error, "a secret of its own")
		s.Equal(1, o.steps("app-1/create_new"))
		s.Zero(o.steps("sp-1/create_new"), "the second rotation never ran")
		var plan []string
		for _, p := range st.Plan {
			plan = append(plan, p.Removes...)
		}
		s.Contains(strings.Join(plan, "\n"), "service principal billing-sync (aws) → rotate: secret-in-use (its rotation would write secret vault/aws/billing-sync")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Deprovision, s.termination())
}

func (s *deprovisionSuite) TestABreakGlassSecretADiscoveredRotationWritesIsRefused() {
	s.cfg.BreakGlass = []config.BreakGlass{
		{Name: "aws-emergency", Target: "aws", Account: "breakglass-aws", Secret: "offboard/aws/service-user/deploy-bot", KnownBy: config.KnownBy{Groups: []string{"admins"}}},
	}
	s.cfg.NonHuman.RequireApproval = false
	o := s.withOwner()
	o.accountHolds = []string{"group admins"}
	s.at(time.Hour, func() {
		st := s.status()
		s.Require().Len(st.NonHuman, 4)
		var refused []string
		for _, it := range st.NonHuman {
			if strings.Contains(it.Problem, "would write secret offboard/aws/service-user/deploy-bot") {
				refused = append(refused, it.Owned.ID)
			}
		}
		s.Len(refused, 1, "one of the two writers is refused, and only one")
		ran := o.steps("breakglass-aws/set_password") + o.steps("123:deploy-bot/create_new")
		s.Equal(1, ran, "exactly one rotation wrote the secret")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Deprovision, s.termination())
}
