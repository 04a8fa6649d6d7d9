package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/targets"
	"github.com/offboard/offboard/internal/workerapp"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/ldapdir"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	secretsim "github.com/offboard/offboard/sandbox/secrets"
	"github.com/offboard/offboard/workflows"
)

// Non-human identities (issue 15) end to end: a real dev server, the worker,
// the simulators and a Secrets Manager simulator. The grace period is 2s and
// the purge 3s, so a rotation plays out in seconds.

// nonHumanStack is the stack with Secrets Manager: secrets serves the aws
// target's discovery of secrets; store is where rotations write (the same
// simulator, or another one the test breaks).
type nonHumanStack struct {
	*stack
	store    *secretsim.Sim
	storeURL string
	ctx      context.Context
}

func newNonHumanStack(t *testing.T, separateStore bool) *nonHumanStack {
	s := &nonHumanStack{stack: newStack(t), ctx: t.Context()}
	// Okta and the directory with their break-glass (and managed) accounts seeded.
	s.okta = oktasim.New(oktasim.Options{Token: oktaToken, People: s.people, RateLimitPerMinute: 100000, BreakGlass: true})
	s.oktaURL = serve(t, s.okta.Handler())
	var err error
	s.ad, err = ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: ldapPassword, People: s.people, CertDir: t.TempDir(), NonHuman: true})
	require.NoError(t, err)
	adCtx, stopAD := context.WithCancel(context.Background())
	ad := s.ad
	go func() { _ = ad.Serve(adCtx) }()
	t.Cleanup(stopAD)
	s.store = s.secrets
	if separateStore {
		s.store = secretsim.New(secretsim.Options{AccessKeyID: awsKeyID, SecretAccessKey: awsSecret, RequestsPerSecond: 10000, Faults: fault.New()})
	}
	return s
}

// edit adds the non-human policy, the break-glass registry and the aws
// target's owner tag and Secrets Manager to the stack's configuration.
func (s *nonHumanStack) edit() func(string) string {
	if s.storeURL == "" {
		s.storeURL = s.smURL
		if s.store != s.secrets {
			s.storeURL = serve(s.t, s.store.Handler())
		}
	}
	return func(yaml string) string {
		yaml = strings.Replace(yaml, `accountID: "123456789012",`, `accountID: "123456789012", ownerTag: owner,`, 1)
		return yaml + fmt.Sprintf(`
nonHuman:
  requireApproval: true
  grace: 2s
  purge: 3s
  secretStore: {region: us-east-1, endpoint: %s, accessKeyID: {env: IT_AWS_KEY_ID}, secretAccessKey: {env: IT_AWS_SECRET}}
breakGlass:
  - {name: okta-breakglass, target: okta, account: %s, secret: %s, knownBy: {groups: [%s]}}
  - {name: entra-breakglass, target: entra, account: %s, secret: %s, knownBy: {groups: [%s]}}
  - {name: ad-breakglass, target: ad, account: %s, secret: %s, knownBy: {groups: [%s]}}
  - {name: aws-breakglass, target: aws, account: %s, secret: %s, knownBy: {groups: [%s]}}
`, s.storeURL,
			demo.BreakGlassOkta, demo.BreakGlassSecrets["okta"], demo.BreakGlassGroup,
			demo.BreakGlassEntra, demo.BreakGlassSecrets["entra"], demo.BreakGlassGroup,
			demo.BreakGlassAD, demo.BreakGlassSecrets["ldap"], demo.BreakGlassGroup,
			demo.BreakGlassAWS, demo.BreakGlassSecrets["awsiam"], demo.BreakGlassGroup)
	}
}

// worker runs a worker until stop is called (or the test ends).
func (s *nonHumanStack) worker() (stop func()) {
	s.t.Helper()
	_ = s.config(defaultPolicy()) // the secrets' environment
	cfg, err := config.Parse([]byte(s.edit()(s.configYAML(defaultPolicy()))), "integration.yaml")
	require.NoError(s.t, err)
	tgts, err := targets.Build(context.Background(), cfg)
	require.NoError(s.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- workerapp.RunWith(ctx, cfg, s.temporal.Client, tgts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(s.t, <-done)
		}
	}
	s.t.Cleanup(stop)
	return stop
}

func (s *nonHumanStack) approve(p demo.Person) workflows.Status {
	s.t.Helper()
	st := s.waitStatus(s.ctx, p.EmployeeID, "awaiting approval", func(st workflows.Status) bool { return st.Phase == workflows.PhaseAwaitingApproval })
	v := s.decide(s.ctx, p.EmployeeID, workflows.UpdateApprove, "alice@example.test", st.PlanDigest, workflows.ApproveRequest{Decision: "approve"})
	require.True(s.t, v.Accepted, "%+v", v)
	return st
}

// owned is the identity of kind in a status, and its control ids.
func owned(t *testing.T, st workflows.Status, kind string) workflows.OwnedStatus {
	t.Helper()
	i := slices.IndexFunc(st.NonHuman, func(o workflows.OwnedStatus) bool { return o.Owned.Kind == kind })
	require.GreaterOrEqual(t, i, 0, "no %s in %+v", kind, st.NonHuman)
	return st.NonHuman[i]
}

// storedKey is the access key id a secret's current version holds.
func storedKey(t *testing.T, sim *secretsim.Sim, secret string) string {
	t.Helper()
	sec, ok := sim.Secret(secret)
	require.True(t, ok, "secret %s", secret)
	v, ok := sec.CurrentValue()
	require.True(t, ok, "secret %s has a current version", secret)
	var k struct {
		AccessKeyID string `json:"AccessKeyId"`
	}
	require.NoError(t, json.Unmarshal(v, &k))
	return k.AccessKeyID
}

func (s *nonHumanStack) keys(user string) []string {
	u, ok := s.aws.User(user)
	require.True(s.t, ok)
	var out []string
	for _, k := range u.AccessKeys {
		out = append(out, k.ID+" "+k.Status)
	}
	return out
}

func TestNonHumanEveryKind(t *testing.T) {
	s := newNonHumanStack(t, false)
	s.worker()
	owner, manager := demo.ServiceOwner(s.people), s.people[2]
	started := s.terminate(s.ctx, owner, func(t *workflows.Termination) { t.Manager = manager.Email })
	bot := s.keys(demo.ServiceUserName)
	require.Len(t, bot, 1)

	st := s.approve(owner)
	var kinds []string
	for _, o := range st.NonHuman {
		kinds = append(kinds, o.Owned.Kind)
		require.False(t, o.BreakGlass, "%s is no admin", owner.EmployeeID)
	}
	require.ElementsMatch(t, []string{control.KindAPIToken, control.KindApplication, control.KindServicePrincipal,
		control.KindServiceUser, control.KindSecret, control.KindManagedAccount}, kinds, "one of each kind, in the plan the approver saw")
	for _, p := range st.Plan {
		if p.Phase == control.NonHuman {
			require.NotEmpty(t, p.Removes, p.Control)
			require.NotContains(t, strings.Join(p.Removes, " "), "SecretAccessKey")
		}
	}

	res := s.result(s.ctx, started)
	require.Equal(t, workflows.PhaseCompleted, res.Phase)
	for _, o := range res.Status.NonHuman {
		require.Empty(t, o.Problem, o.Owned.Say())
		for _, id := range o.Controls {
			c := controlState(res.Status, id)
			require.Equal(t, workflows.StateDone, c, id)
		}
	}
	for _, r := range res.Receipts {
		if r.Phase == control.NonHuman {
			require.Contains(t, []control.Outcome{control.Observed, control.Acknowledged}, r.Outcome, r.ControlID)
		}
	}
	// The service user's old key is gone and the one left is the one the
	// store holds as current: no key lost, none left active past its grace.
	su := owned(t, res.Status, control.KindServiceUser)
	after := s.keys(demo.ServiceUserName)
	require.Len(t, after, 1)
	require.NotEqual(t, bot[0], after[0])
	require.Equal(t, strings.Fields(after[0])[0], storedKey(t, s.secrets, su.Owned.Secret))
	require.True(t, strings.HasSuffix(after[0], " Active"))
	for _, tok := range s.okta.APITokens() {
		require.NotEqual(t, demo.APITokenName, tok.Name, "the API token was revoked")
	}
	require.Contains(t, owned(t, res.Status, control.KindApplication).NewOwner, manager.Email)
	s.recordHistory(s.ctx, "non-human", started)
}

func TestNonHumanBreakGlassRotatedForAnAdmin(t *testing.T) {
	s := newNonHumanStack(t, false)
	s.worker()
	admin := s.people[9]
	require.True(t, admin.Privileged)
	before := map[string]string{}
	for target, name := range demo.BreakGlassSecrets {
		sec, ok := s.secrets.Secret(name)
		require.True(t, ok, name)
		before[target] = sec.Versions[len(sec.Versions)-1].ID
	}
	started := s.terminate(s.ctx, admin, nil)
	// Rotated right after containment, before anyone approved.
	st := s.waitStatus(s.ctx, admin.EmployeeID, "break-glass rotated", func(st workflows.Status) bool {
		if st.Phase != workflows.PhaseAwaitingApproval || len(st.NonHuman) < 4 {
			return false
		}
		for _, o := range st.NonHuman {
			for _, id := range o.Controls {
				if o.BreakGlass && controlState(st, id) != workflows.StateDone {
					return false
				}
			}
		}
		return true
	})
	require.Equal(t, workflows.PhaseAwaitingApproval, st.Phase)
	for _, o := range st.NonHuman {
		for _, id := range o.Controls {
			for _, c := range st.Controls {
				if c.ID == id {
					require.False(t, c.Receipt.Gone, "%s: %s", id, c.Receipt.Detail)
				}
			}
		}
	}
	v := s.decide(s.ctx, admin.EmployeeID, workflows.UpdateApprove, "alice@example.test", st.PlanDigest, workflows.ApproveRequest{Decision: "approve"})
	require.True(t, v.Accepted, "%+v", v)
	res := s.result(s.ctx, started)
	require.Equal(t, workflows.PhaseCompleted, res.Phase)
	for target, name := range demo.BreakGlassSecrets {
		sec, _ := s.secrets.Secret(name)
		cur := ""
		for _, ver := range sec.Versions {
			if slices.Contains(ver.Stages, secretsim.Current) {
				cur = ver.ID
			}
		}
		require.NotEqual(t, before[target], cur, "%s: a new version is current", name)
	}
	for _, r := range res.Receipts {
		if r.Phase == control.NonHuman {
			for _, c := range r.Calls {
				require.NotContains(t, c.Detail, "assword=", r.ControlID)
			}
		}
	}
	s.recordHistory(s.ctx, "break-glass", started)
}

// TestNonHumanRotationSurvivesWorkerCrash stops the worker right after the
// new key is stored, lets the grace period pass while nobody runs, and
// starts another: the old key stays active until the grace step, then goes
// inactive; the key the store holds keeps working throughout.
func TestNonHumanRotationSurvivesWorkerCrash(t *testing.T) {
	s := newNonHumanStack(t, false)
	stop := s.worker()
	owner := demo.ServiceOwner(s.people)
	started := s.terminate(s.ctx, owner, func(t *workflows.Termination) { t.Manager = s.people[2].Email })
	old := strings.Fields(s.keys(demo.ServiceUserName)[0])[0]
	st := s.approve(owner)
	su := owned(t, st, control.KindServiceUser)
	require.Len(t, su.Controls, 3)
	rotate, deactivate := su.Controls[0], su.Controls[1]
	require.True(t, strings.HasSuffix(rotate, "/"+awsiam.RotateAccessKeys), rotate)

	s.waitStatus(s.ctx, owner.EmployeeID, "new key stored", func(st workflows.Status) bool { return controlState(st, rotate) == workflows.StateDone })
	stop()
	s.waitTimerFired(started, 2*time.Second) // the grace period ends with no worker
	keys := s.keys(demo.ServiceUserName)
	require.Len(t, keys, 2)
	require.Contains(t, keys, old+" Active", "nothing deactivated the old key while no worker ran")
	stored := storedKey(t, s.secrets, su.Owned.Secret)
	require.Contains(t, keys, stored+" Active")
	require.NotEqual(t, old, stored)

	s.worker()
	s.waitStatus(s.ctx, owner.EmployeeID, "old key deactivated", func(st workflows.Status) bool { return controlState(st, deactivate) == workflows.StateDone })
	require.Contains(t, s.keys(demo.ServiceUserName), old+" Inactive")
	res := s.result(s.ctx, started)
	require.Equal(t, workflows.PhaseCompleted, res.Phase)
	require.Equal(t, []string{stored + " Active"}, s.keys(demo.ServiceUserName), "the old key deleted after the purge; the stored one kept")
	require.Equal(t, stored, storedKey(t, s.secrets, su.Owned.Secret))
	s.recordHistory(s.ctx, "non-human-crash", started)
}

// TestNonHumanStoreWriteFails breaks the secret store: the rotation is an
// exception, the old key stays the only one and active; once the store is
// back, a retry finishes it.
func TestNonHumanStoreWriteFails(t *testing.T) {
	s := newNonHumanStack(t, true)
	s.store.Faults().Add(fault.Rule{Status: 500})
	s.worker()
	owner := demo.ServiceOwner(s.people)
	started := s.terminate(s.ctx, owner, func(t *workflows.Termination) { t.Manager = s.people[2].Email })
	before := s.keys(demo.ServiceUserName)
	st := s.approve(owner)
	rotate := owned(t, st, control.KindServiceUser).Controls[0]
	st = s.waitStatus(s.ctx, owner.EmployeeID, "rotation in exception", func(st workflows.Status) bool { return controlState(st, rotate) == workflows.StateException })
	require.Equal(t, before, s.keys(demo.ServiceUserName), "the old key untouched, no orphan key left behind")
	for _, c := range st.Controls {
		if c.ID == rotate {
			require.NotContains(t, c.Error, "SecretAccessKey")
		}
	}

	s.store.Faults().Clear()
	v := s.decide(s.ctx, owner.EmployeeID, workflows.UpdateRetry, "alice@example.test", "", workflows.Retry{Control: rotate})
	require.True(t, v.Accepted, "%+v", v)
	res := s.result(s.ctx, started)
	require.Equal(t, workflows.PhaseCompleted, res.Phase)
	su := owned(t, res.Status, control.KindServiceUser)
	require.Equal(t, []string{storedKey(t, s.store, su.Owned.Secret) + " Active"}, s.keys(demo.ServiceUserName))
	s.recordHistory(s.ctx, "non-human-store-fails", started)
}

// waitTimerFired waits, from the history alone (no worker needed), until a
// timer of duration d the run started has fired.
func (s *nonHumanStack) waitTimerFired(started runs.Started, d time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		timers := map[int64]bool{}
		it := s.temporal.Client.GetWorkflowHistory(s.ctx, started.WorkflowID, started.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(s.t, err)
			if a := e.GetTimerStartedEventAttributes(); a != nil && a.GetStartToFireTimeout().AsDuration() == d {
				timers[e.GetEventId()] = true
			}
			if a := e.GetTimerFiredEventAttributes(); a != nil && timers[a.GetStartedEventId()] {
				return
			}
		}
		time.Sleep(200 * time.Millisecond) // polling the server's history, not waiting for the workflow
	}
	s.t.Fatalf("no %s timer fired in 30s", d)
}

// TestNonHumanBreakGlassOneRotationAtATime: two admins leave at once; each
// run rotates the same break-glass accounts, one after the other (the
// account's child workflow id is held by one run at a time), and the
// password the vault holds as current is the one Okta's account has.
func TestNonHumanBreakGlassOneRotationAtATime(t *testing.T) {
	s := newNonHumanStack(t, false)
	s.worker()
	admins := []demo.Person{s.people[9], s.people[19]}
	var all []runs.Started
	for _, p := range admins {
		require.True(t, p.Privileged)
		all = append(all, s.terminate(s.ctx, p, nil))
	}
	for _, p := range admins {
		st := s.waitStatus(s.ctx, p.EmployeeID, "break-glass rotated", func(st workflows.Status) bool {
			done := 0
			for _, o := range st.NonHuman {
				if o.BreakGlass && controlState(st, o.Controls[0]) == workflows.StateDone {
					done++
				}
			}
			return st.Phase == workflows.PhaseAwaitingApproval && done == 4
		})
		v := s.decide(s.ctx, p.EmployeeID, workflows.UpdateApprove, "alice@example.test", st.PlanDigest, workflows.ApproveRequest{Decision: "approve"})
		require.True(t, v.Accepted, "%+v", v)
	}
	for _, started := range all {
		require.Equal(t, workflows.PhaseCompleted, s.result(s.ctx, started).Phase)
	}
	// Each account's steps ran as its own workflow id, never two at once.
	bg := control.Owned{Target: "okta", ID: demo.BreakGlassOkta}
	var spans [][2]time.Time
	it, err := s.temporal.Client.ListWorkflow(s.ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", workflows.BreakGlassWorkflowID(bg))})
	require.NoError(t, err)
	for _, e := range it.Executions {
		spans = append(spans, [2]time.Time{e.GetStartTime().AsTime(), e.GetCloseTime().AsTime()})
	}
	require.Len(t, spans, 2, "one rotation per leaver")
	slices.SortFunc(spans, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	require.False(t, spans[1][0].Before(spans[0][1]), "the second began after the first closed: %v", spans)
	sec, ok := s.secrets.Secret(demo.BreakGlassSecrets["okta"])
	require.True(t, ok)
	cur, ok := sec.CurrentValue()
	require.True(t, ok)
	require.True(t, s.okta.PasswordIs(demo.BreakGlassOkta, string(cur)), "the vault's current password is the account's")
}
