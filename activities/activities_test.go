package activities

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	oktasim "github.com/offboard/offboard/sandbox/okta"
)

// oktaFixture is the real Okta connector against the simulator.
type oktaFixture struct {
	sim    *oktasim.Sim
	acts   *Activities
	env    *testsuite.TestActivityEnvironment
	person demo.Person
}

func newOktaFixture(t *testing.T, token string) *oktaFixture {
	t.Helper()
	people := demo.People(3)
	sim := oktasim.New(oktasim.Options{Token: "good-token", People: people})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	tgt, err := okta.New(t.Context(), okta.Config{Name: "okta", OrgURL: srv.URL, Token: token, AllowHTTP: true})
	require.NoError(t, err)
	cfg, err := config.Default()
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := New(cfg, []control.Target{tgt})
	env.RegisterActivity(acts)
	return &oktaFixture{sim: sim, acts: acts, env: env, person: people[0]}
}

func (f *oktaFixture) input(t *testing.T, name string) ControlInput {
	t.Helper()
	u, ok := f.sim.User(f.person.Email)
	require.True(t, ok)
	return ControlInput{ControlID: "okta/" + name, Target: "okta", Control: name, Phase: control.Containment,
		Account: control.Account{Target: "okta", ID: u.ID, Login: u.Login}}
}

func (f *oktaFixture) apply(in ControlInput) (control.Receipt, error) {
	v, err := f.env.ExecuteActivity(f.acts.ApplyControl, in)
	var r control.Receipt
	if err == nil {
		err = v.Get(&r)
	}
	return r, err
}

func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want an ApplicationError at the top level, got %T: %v", err, err)
	return appErr
}

func TestApplyControlObservesActsObserves(t *testing.T) {
	f := newOktaFixture(t, "good-token")
	in := f.input(t, "suspend")

	r, err := f.apply(in)
	require.NoError(t, err)
	require.Equal(t, control.Observed, r.Outcome)
	require.False(t, r.AlreadyHeld)
	require.Len(t, r.Calls, 3, "observe, enforce, observe")
	require.NotEmpty(t, r.RequestID)
	require.Equal(t, 200, r.HTTPStatus)
	require.Regexp(t, `^sha256:[0-9a-f]{64}$`, r.Digest)

	again, err := f.apply(in)
	require.NoError(t, err)
	require.True(t, again.AlreadyHeld, "a repeat only observes")
	require.Len(t, again.Calls, 1)
	u, _ := f.sim.User(f.person.Email)
	require.Len(t, f.sim.Transitions(u.ID), 1, "suspended once")
}

func TestApplyControlNotReadableIsAcknowledged(t *testing.T) {
	f := newOktaFixture(t, "good-token")
	r, err := f.apply(f.input(t, "clear_sessions"))
	require.NoError(t, err)
	require.Equal(t, control.Acknowledged, r.Outcome)
}

func TestApplyControlClassifiesErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		token        string
		rule         *fault.Rule
		wantType     string
		nonRetryable bool
		minDelay     time.Duration
	}{
		"429 waits for X-Rate-Limit-Reset": {rule: &fault.Rule{Status: 429, RetryAfter: 7 * time.Second}, wantType: ErrTypeRateLimited, minDelay: 5 * time.Second},
		"503 is transient":                 {rule: &fault.Rule{Status: 503}, wantType: ErrTypeTransient},
		"401 is not retried":               {token: "wrong-token", wantType: ErrTypeUnauthorized, nonRetryable: true},
		"403 is not retried":               {rule: &fault.Rule{Status: 403}, wantType: ErrTypeUnauthorized, nonRetryable: true},
		"400 is permanent":                 {rule: &fault.Rule{Method: "POST", Status: 400}, wantType: ErrTypePermanent, nonRetryable: true},
	} {
		t.Run(name, func(t *testing.T) {
			token := tc.token
			if token == "" {
				token = "good-token"
			}
			f := newOktaFixture(t, token)
			if tc.rule != nil {
				f.sim.Faults().Add(*tc.rule)
			}
			_, err := f.apply(f.input(t, "suspend"))
			require.Error(t, err)
			appErr := appError(t, err)
			require.Equal(t, tc.wantType, appErr.Type())
			require.Equal(t, tc.nonRetryable, appErr.NonRetryable())
			require.GreaterOrEqual(t, appErr.NextRetryDelay(), tc.minDelay)
			require.NotContains(t, appErr.Error(), "good-token", "secrets never in errors")
			var d FailureDetail
			require.NoError(t, appErr.Details(&d))
			if tc.token == "" {
				require.Equal(t, tc.rule.Status, d.HTTPStatus, "the failing call's status reaches the receipt")
			}
		})
	}
}

func TestApplyControlGoneAccountIsObserved(t *testing.T) {
	f := newOktaFixture(t, "good-token")
	in := f.input(t, "suspend")
	in.Account.ID = "00uDoesNotExist"
	r, err := f.apply(in)
	require.NoError(t, err)
	require.Equal(t, control.Observed, r.Outcome)
	require.True(t, r.Gone, "Okta's own E0000007 for the user, confirmed by a second lookup = gone")
	require.Contains(t, r.Detail, "a second lookup agrees")
	require.Len(t, r.Calls, 2, "observe, confirm-gone")
	require.Equal(t, "confirm-gone", r.Calls[1].Step)
	require.Equal(t, 404, r.HTTPStatus)
}

// TestApplyControlRouteNotFoundIsNotGone: a 404 from a route the server
// lacks, for a user that exists, was once recorded "already gone"; it is an
// exception naming the endpoint.
func TestApplyControlRouteNotFoundIsNotGone(t *testing.T) {
	f := newOktaFixture(t, "good-token")
	f.sim.Faults().Add(fault.Rule{PathPrefix: "/api/v1/users/", Status: 404, Method: "DELETE"})
	for _, name := range []string{"clear_sessions", "revoke_grants"} {
		_, err := f.apply(f.input(t, name))
		appErr := appError(t, err)
		require.Equal(t, ErrTypePermanent, appErr.Type(), name)
		require.True(t, appErr.NonRetryable())
		require.Contains(t, appErr.Error(), "DELETE /api/v1/users/", "the endpoint is named")
		require.Contains(t, appErr.Error(), "exists")
	}
	u, _ := f.sim.User(f.person.Email)
	require.Equal(t, 2, u.Sessions, "nothing was cleared, and nothing said so")
}

func TestResolveAccountNoAccount(t *testing.T) {
	f := newOktaFixture(t, "good-token")
	v, err := f.env.ExecuteActivity(f.acts.ResolveAccount, ResolveInput{Target: "okta", Person: control.Person{EmployeeID: "E9", Email: "nobody@example.test"}})
	require.NoError(t, err)
	var res Resolution
	require.NoError(t, v.Get(&res))
	require.True(t, res.NoAccount)
	require.Len(t, res.Searched, 2, "filter and direct GET, each with its answer")
	require.Contains(t, res.Searched[0], "filter=profile.email eq")
	require.Contains(t, res.Searched[1], "GET /api/v1/users/nobody@example.test: HTTP 404, E0000007")

	v, err = f.env.ExecuteActivity(f.acts.ResolveAccount, ResolveInput{Target: "okta", Person: control.Person{EmployeeID: f.person.EmployeeID, Email: f.person.Email}})
	require.NoError(t, err)
	var found Resolution
	require.NoError(t, v.Get(&found))
	require.False(t, found.NoAccount)
	require.Equal(t, f.person.Email, found.Account.Login)
}

// notFoundTarget answers every Resolve with a not-found and no record of
// what it searched.
type notFoundTarget struct{ control.Target }

func (notFoundTarget) Name() string { return "bare" }
func (notFoundTarget) Resolve(context.Context, control.Person) (control.Account, error) {
	return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: "bare: resolve"}
}

func TestResolveAccountNotFoundWithoutSearchedIsAnException(t *testing.T) {
	cfg, err := config.Default()
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := New(cfg, []control.Target{notFoundTarget{}})
	env.RegisterActivity(acts)
	_, err = env.ExecuteActivity(acts.ResolveAccount, ResolveInput{Target: "bare", Person: control.Person{EmployeeID: "E9", Email: "x@example.test"}})
	appErr := appError(t, err)
	require.Equal(t, ErrTypePermanent, appErr.Type())
	require.True(t, appErr.NonRetryable())
	require.Contains(t, appErr.Error(), "does not say what it searched")
}

func TestResolveAccountReportsAdminRoles(t *testing.T) {
	people := demo.People(10)
	sim := oktasim.New(oktasim.Options{Token: "good-token", People: people})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	tgt, err := okta.New(t.Context(), okta.Config{Name: "okta", OrgURL: srv.URL, Token: "good-token", AllowHTTP: true})
	require.NoError(t, err)
	cfg, err := config.Default()
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := New(cfg, []control.Target{tgt})
	env.RegisterActivity(acts)
	for _, tc := range []struct {
		p    demo.Person
		want []string
	}{
		{people[9], []string{"okta admin role SUPER_ADMIN (through a group)"}}, // HR says privileged, and Okta agrees
		{people[1], nil},
	} {
		v, err := env.ExecuteActivity(acts.ResolveAccount, ResolveInput{Target: "okta", Person: control.Person{EmployeeID: tc.p.EmployeeID, Email: tc.p.Email}})
		require.NoError(t, err)
		var res Resolution
		require.NoError(t, v.Get(&res))
		require.Equal(t, tc.want, res.Account.Privileges, tc.p.Email)
	}
}

func TestUnknownTargetIsNotRetried(t *testing.T) {
	f := newOktaFixture(t, "good-token")
	in := f.input(t, "suspend")
	in.Target = "github"
	_, err := f.apply(in)
	appErr := appError(t, err)
	require.Equal(t, ErrTypeUnknown, appErr.Type())
	require.True(t, appErr.NonRetryable())
}

func TestNotifyPostsToWebhookWithoutLeakingIt(t *testing.T) {
	var got string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1024)
		n, _ := r.Body.Read(buf)
		got = string(buf[:n])
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer hook.Close()
	t.Setenv("OFFBOARD_TEST_HOOK", hook.URL+"/T000/secret-path")
	cfg, err := config.Default()
	require.NoError(t, err)
	cfg.Notify.WebhookURL = config.Secret{Env: "OFFBOARD_TEST_HOOK"}
	acts := New(cfg, nil)
	sent, err := acts.Notify(context.Background(), Notification{Kind: "sla_breach", WorkflowID: "deprovision-E1", EmployeeID: "E1", Text: "containment late"})
	require.NoError(t, err)
	require.True(t, sent)
	require.Contains(t, got, "sla_breach E1")

	t.Setenv("OFFBOARD_TEST_HOOK", hook.URL+"/fail")
	_, err = acts.Notify(context.Background(), Notification{Kind: "x"})
	appErr := appError(t, err)
	require.Equal(t, ErrTypeTransient, appErr.Type())
	require.NotContains(t, appErr.Error(), "/fail", "the webhook URL is a secret")
}
