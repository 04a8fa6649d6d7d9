package okta_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	oktasim "github.com/offboard/offboard/sandbox/okta"
)

const token = "00-sim-secret-token"

var people = demo.People(20)

type env struct {
	sim    *oktasim.Sim
	srv    *httptest.Server
	client *okta.Client
}

func newEnv(t *testing.T, opts oktasim.Options) *env {
	t.Helper()
	opts.Token = token
	if opts.People == nil {
		opts.People = people
	}
	sim := oktasim.New(opts)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return &env{sim: sim, srv: srv, client: newClient(t, srv.URL, token)}
}

func newClient(t *testing.T, url, tok string) *okta.Client {
	t.Helper()
	c, err := okta.New(t.Context(), okta.Config{Name: "okta", OrgURL: url, Token: tok, AllowHTTP: true})
	require.NoError(t, err)
	return c
}

func (e *env) account(t *testing.T, p demo.Person) control.Account {
	t.Helper()
	acct, err := e.client.Resolve(t.Context(), control.Person{EmployeeID: p.EmployeeID, Email: p.Email})
	require.NoError(t, err)
	return acct
}

func (e *env) user(t *testing.T, id string) oktasim.User {
	t.Helper()
	u, ok := e.sim.User(id)
	require.True(t, ok, "user %s exists", id)
	return u
}

func actions(ts []oktasim.Transition) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Action)
	}
	return out
}

func TestControls(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	assert.Equal(t, "okta", e.client.Kind())
	assert.Equal(t, "okta", e.client.Name())
	assert.Equal(t, []string{"suspend", "clear_sessions", "revoke_grants"}, e.client.Controls(control.Containment))
	assert.Equal(t, []string{"remove_groups", "deactivate"}, e.client.Controls(control.Removal))
	assert.Equal(t, []string{"remove_groups"}, e.client.Controls(control.RoleChange))
	assert.Equal(t, []string{"delete"}, e.client.Controls(control.Deletion))
	assert.Equal(t, []string{"unsuspend"}, e.client.Controls(control.Restore))
}

// TestTermination runs every control of a termination in order, each as
// observe → enforce → observe → enforce again, and checks the simulator.
func TestTermination(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	p := people[9] // privileged: in admins too
	acct := e.account(t, p)
	ctx := t.Context()

	steps := []struct {
		control  string
		readable bool
		check    func(t *testing.T, u oktasim.User, ok bool)
	}{
		{okta.Suspend, true, func(t *testing.T, u oktasim.User, _ bool) { assert.Equal(t, "SUSPENDED", u.Status) }},
		{okta.ClearSessions, false, func(t *testing.T, u oktasim.User, _ bool) { assert.Zero(t, u.Sessions) }},
		{okta.RevokeGrants, true, func(t *testing.T, u oktasim.User, _ bool) { assert.Zero(t, u.Grants) }},
		{okta.RemoveGroups, true, func(t *testing.T, u oktasim.User, _ bool) { assert.Equal(t, []string{"Everyone"}, u.Groups) }},
		{okta.Deactivate, true, func(t *testing.T, u oktasim.User, _ bool) { assert.Equal(t, "DEPROVISIONED", u.Status) }},
		{okta.Delete, true, func(t *testing.T, _ oktasim.User, ok bool) { assert.False(t, ok, "user deleted") }},
	}
	for _, s := range steps {
		t.Run(s.control, func(t *testing.T) {
			before, err := e.client.Observe(ctx, s.control, acct, control.Params{})
			require.NoError(t, err)
			assert.False(t, before.Holds, before.Detail)
			assert.Equal(t, s.readable, before.Readable)
			assert.Equal(t, 200, before.Call.HTTPStatus)
			assert.NotEmpty(t, before.Call.RequestID)
			assert.True(t, strings.HasPrefix(before.Call.Digest, "sha256:"))

			resp, err := e.client.Enforce(ctx, s.control, acct, control.Params{})
			require.NoError(t, err)
			assert.NotEmpty(t, resp.RequestID)
			assert.Less(t, resp.HTTPStatus, 300)
			n := len(e.sim.Transitions(acct.ID))

			after, err := e.client.Observe(ctx, s.control, acct, control.Params{})
			require.NoError(t, err)
			if s.readable {
				assert.True(t, after.Holds, after.Detail)
			} else {
				assert.False(t, after.Readable)
			}

			u, ok := e.sim.User(acct.ID)
			s.check(t, u, ok)

			if s.control == okta.Delete {
				assert.True(t, after.Gone)
				_, err := e.client.Enforce(ctx, s.control, acct, control.Params{})
				assert.ErrorIs(t, err, control.ErrNotFound, "enforce on a missing account")
				return
			}
			_, err = e.client.Enforce(ctx, s.control, acct, control.Params{})
			require.NoError(t, err, "a repeat is harmless")
			assert.Len(t, e.sim.Transitions(acct.ID), n, "a repeat changes nothing")
		})
	}
	assert.Equal(t, []string{"suspend", "clear_sessions", "revoke_grant", "remove_group", "remove_group", "remove_group", "deactivate", "delete"},
		actions(e.sim.Transitions(acct.ID)))

	// Every control of a deleted user holds, and says why.
	for _, name := range []string{okta.Suspend, okta.ClearSessions, okta.RevokeGrants, okta.RemoveGroups, okta.Deactivate, okta.Delete, okta.Unsuspend} {
		obs, err := e.client.Observe(ctx, name, acct, control.Params{})
		require.NoError(t, err, name)
		assert.True(t, obs.Holds && obs.Gone, name)
		assert.Equal(t, 404, obs.Call.HTTPStatus)
	}
}

func TestRoleChangeKeepsGroups(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	p := people[1] // sales
	acct := e.account(t, p)
	keep := control.Params{KeepGroups: []string{"all-staff"}}

	obs, err := e.client.Observe(t.Context(), okta.RemoveGroups, acct, keep)
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.Equal(t, "1 group left: sales; kept 1 group the new role grants: all-staff; Everyone stays (Okta's built-in group, not removable)", obs.Detail)

	_, err = e.client.Enforce(t.Context(), okta.RemoveGroups, acct, keep)
	require.NoError(t, err)
	u := e.user(t, acct.ID)
	assert.Equal(t, []string{"Everyone", "all-staff"}, u.Groups)
	assert.Equal(t, "ACTIVE", u.Status, "a role change disables nothing")

	obs, err = e.client.Observe(t.Context(), okta.RemoveGroups, acct, keep)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	// The receipt says what stays and why, never just "no groups left".
	assert.Equal(t, "no groups left to remove; kept 1 group the new role grants: all-staff; Everyone stays (Okta's built-in group, not removable)", obs.Detail)
	obs, err = e.client.Observe(t.Context(), okta.RemoveGroups, acct, control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Holds, "without KeepGroups all-staff must go too")
}

func TestRestore(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	acct := e.account(t, people[2])
	ctx := t.Context()

	obs, err := e.client.Observe(ctx, okta.Unsuspend, acct, control.Params{})
	require.NoError(t, err)
	assert.True(t, obs.Holds, "an active user needs no restore")

	_, err = e.client.Enforce(ctx, okta.Suspend, acct, control.Params{})
	require.NoError(t, err)
	obs, err = e.client.Observe(ctx, okta.Unsuspend, acct, control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Holds)

	for range 2 {
		_, err = e.client.Enforce(ctx, okta.Unsuspend, acct, control.Params{})
		require.NoError(t, err)
	}
	assert.Equal(t, "ACTIVE", e.user(t, acct.ID).Status)
	assert.Equal(t, []string{"suspend", "unsuspend"}, actions(e.sim.Transitions(acct.ID)))

	// A deprovisioned user cannot be unsuspended: that fails for good, with the status.
	_, err = e.client.Enforce(ctx, okta.Deactivate, acct, control.Params{})
	require.NoError(t, err)
	_, err = e.client.Enforce(ctx, okta.Unsuspend, acct, control.Params{})
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "DEPROVISIONED")
	assert.Contains(t, err.Error(), "E0000001")
}

func TestDeleteActiveUser(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	acct := e.account(t, people[4])
	_, err := e.client.Enforce(t.Context(), okta.Delete, acct, control.Params{})
	require.NoError(t, err)
	_, ok := e.sim.User(acct.ID)
	assert.False(t, ok, "Okta's two-step delete is done in one Enforce")
	assert.Equal(t, []string{"deactivate", "delete"}, actions(e.sim.Transitions(acct.ID)))
}

func TestSuspendNonActiveUser(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	acct := e.account(t, people[5])
	_, err := e.client.Enforce(t.Context(), okta.Deactivate, acct, control.Params{})
	require.NoError(t, err)
	// Okta refuses to suspend a DEPROVISIONED user, but the control holds.
	_, err = e.client.Enforce(t.Context(), okta.Suspend, acct, control.Params{})
	require.NoError(t, err)
	obs, err := e.client.Observe(t.Context(), okta.Suspend, acct, control.Params{})
	require.NoError(t, err)
	assert.True(t, obs.Holds)
	assert.Equal(t, "status=DEPROVISIONED", obs.Detail)
}

func TestResolve(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	p := people[3]
	want := e.user(t, p.Email)
	ctx := t.Context()

	for _, tc := range []struct {
		name   string
		person control.Person
	}{
		{"by email", control.Person{Email: p.Email}},
		{"by email, other case", control.Person{Email: strings.ToUpper(p.Email)}},
		{"by id hint", control.Person{Email: "ignored@example.test", Hints: map[string]string{"okta": want.ID}}},
		{"by login hint", control.Person{Hints: map[string]string{"okta": p.Email}}},
		{"other target's hint ignored", control.Person{Email: p.Email, Hints: map[string]string{"okta-other": "00uNOPE"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acct, err := e.client.Resolve(ctx, tc.person)
			require.NoError(t, err)
			assert.Contains(t, acct.Holds, "group all-staff") // holds_test.go checks Holds in full
			acct.Holds = nil
			assert.Equal(t, control.Account{Target: "okta", ID: want.ID, Login: p.Email}, acct)
		})
	}

	t.Run("deprovisioned user still found", func(t *testing.T) {
		q := people[6]
		acct := e.account(t, q)
		_, err := e.client.Enforce(ctx, okta.Deactivate, acct, control.Params{})
		require.NoError(t, err)
		again, err := e.client.Resolve(ctx, control.Person{Email: q.Email})
		require.NoError(t, err)
		assert.Equal(t, acct, again)
	})

	for _, tc := range []struct {
		name     string
		person   control.Person
		kind     error
		searched int // lookups the no-account error must list
	}{
		{"unknown email", control.Person{Email: "nobody@example.test"}, control.ErrNotFound, 2},
		{"unknown hint, unknown email", control.Person{Email: "nobody@example.test", Hints: map[string]string{"okta": "00uNOPE"}}, control.ErrNotFound, 3},
		{"unknown hint alone", control.Person{Hints: map[string]string{"okta": "00uNOPE"}}, control.ErrNotFound, 1},
		{"unknown hint, email finds someone", control.Person{Email: p.Email, Hints: map[string]string{"okta": "00uNOPE"}}, control.ErrPermanent, 0},
		{"nothing to go on", control.Person{EmployeeID: "E1"}, control.ErrPermanent, 0},
		{"quote in email", control.Person{Email: `a"b@example.test`}, control.ErrNotFound, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.Resolve(ctx, tc.person)
			require.ErrorIs(t, err, tc.kind)
			var cerr *control.Error
			require.ErrorAs(t, err, &cerr)
			assert.True(t, strings.HasPrefix(cerr.Op, "okta: resolve"), cerr.Op)
			if tc.kind == control.ErrNotFound {
				require.Len(t, cerr.Searched, tc.searched, "a no-account says what it searched")
				for _, s := range cerr.Searched {
					assert.Regexp(t, `^GET /api/v1/users.*HTTP (200|404)`, s)
				}
			}
		})
	}

	t.Run("no account names both lookups", func(t *testing.T) {
		_, err := e.client.Resolve(ctx, control.Person{Email: "nobody@example.test"})
		var cerr *control.Error
		require.ErrorAs(t, err, &cerr)
		assert.Contains(t, cerr.Searched[0], `filter=profile.email eq "nobody@example.test" or profile.login eq "nobody@example.test": HTTP 200, 0 users`)
		assert.Contains(t, cerr.Searched[1], "GET /api/v1/users/nobody@example.test: HTTP 404, E0000007")
	})
}

// TestResolveFindsAdminRoles: an admin in Okta is reported as such whatever
// HR says; members of the simulator's admins group hold SUPER_ADMIN through it.
func TestResolveFindsAdminRoles(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	admin := e.account(t, people[9])
	assert.Equal(t, []string{"okta admin role SUPER_ADMIN (through a group)"}, admin.Privileges)
	assert.Empty(t, e.account(t, people[1]).Privileges)

	// Removing the admins group takes the role away, and Resolve sees it.
	_, err := e.client.Enforce(t.Context(), okta.RemoveGroups, admin, control.Params{KeepGroups: []string{"all-staff"}})
	require.NoError(t, err)
	assert.Empty(t, e.account(t, people[9]).Privileges)
}

func TestUnknownControl(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	acct := e.account(t, people[0])
	_, err := e.client.Observe(t.Context(), "disable_mfa", acct, control.Params{})
	assert.ErrorIs(t, err, control.ErrUnknownControl)
	_, err = e.client.Enforce(t.Context(), "disable_mfa", acct, control.Params{})
	assert.ErrorIs(t, err, control.ErrUnknownControl)
}

// TestClassification injects failures into the simulator and checks each
// comes back as the right kind of *control.Error, with its request id and digest.
func TestClassification(t *testing.T) {
	faults := fault.New()
	e := newEnv(t, oktasim.Options{Faults: faults})
	acct := e.account(t, people[0])
	userPath := "/api/v1/users/" + acct.ID

	for _, tc := range []struct {
		name   string
		rule   fault.Rule
		call   func(ctx context.Context) error
		kind   error
		status int
		scope  string
	}{
		{"404", fault.Rule{PathPrefix: userPath, Status: 404}, observe(e, okta.Suspend, acct), control.ErrNotFound, 404, ""},
		{"429", fault.Rule{PathPrefix: userPath, Status: 429, RetryAfter: 30 * time.Second}, enforce(e, okta.Suspend, acct), control.ErrRateLimited, 429, ""},
		{"503", fault.Rule{PathPrefix: userPath, Status: 503}, enforce(e, okta.ClearSessions, acct), control.ErrTransient, 503, ""},
		{"500", fault.Rule{PathPrefix: userPath, Status: 500}, observe(e, okta.RevokeGrants, acct), control.ErrTransient, 500, ""},
		{"401", fault.Rule{PathPrefix: userPath, Status: 401}, enforce(e, okta.Suspend, acct), control.ErrUnauthorized, 401, "okta.users.manage"},
		{"403 on users", fault.Rule{PathPrefix: userPath, Status: 403}, observe(e, okta.Suspend, acct), control.ErrUnauthorized, 403, "okta.users.read"},
		{"403 on groups", fault.Rule{PathPrefix: "/api/v1/groups/", Status: 403}, enforce(e, okta.RemoveGroups, acct), control.ErrUnauthorized, 403, "okta.groups.manage"},
		{"400", fault.Rule{PathPrefix: userPath, Status: 400}, enforce(e, okta.RevokeGrants, acct), control.ErrPermanent, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults.Clear()
			faults.Add(tc.rule)
			t.Cleanup(faults.Clear)
			err := tc.call(t.Context())
			if errors.Is(tc.kind, control.ErrNotFound) {
				// Observe turns a 404 into Gone; Enforce reports it.
				require.NoError(t, err)
				obs, oerr := e.client.Observe(t.Context(), okta.Suspend, acct, control.Params{})
				require.NoError(t, oerr)
				assert.True(t, obs.Gone && obs.Holds)
				assert.Equal(t, 404, obs.Call.HTTPStatus)
				assert.NotEmpty(t, obs.Call.RequestID)
				err = enforce(e, okta.Suspend, acct)(t.Context())
			}
			require.ErrorIs(t, err, tc.kind)
			var cerr *control.Error
			require.ErrorAs(t, err, &cerr)
			assert.Equal(t, tc.status, cerr.HTTPStatus)
			assert.NotEmpty(t, cerr.RequestID)
			assert.True(t, strings.HasPrefix(cerr.Digest, "sha256:"))
			assert.True(t, strings.HasPrefix(cerr.Op, "okta: "), cerr.Op)
			assert.NotContains(t, err.Error(), token)
			if tc.scope != "" {
				assert.Contains(t, err.Error(), tc.scope)
			}
			if tc.status == 429 {
				assert.InDelta(t, 30, cerr.RetryAfter.Seconds(), 2)
			}
		})
	}
	assert.Equal(t, "ACTIVE", e.user(t, acct.ID).Status, "no faulted call went through")
}

func observe(e *env, name string, acct control.Account) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := e.client.Observe(ctx, name, acct, control.Params{})
		return err
	}
}

func enforce(e *env, name string, acct control.Account) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := e.client.Enforce(ctx, name, acct, control.Params{})
		return err
	}
}

func TestWrongToken(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	bad := newClient(t, e.srv.URL, "not-the-token")
	_, err := bad.Resolve(t.Context(), control.Person{Email: people[0].Email})
	require.ErrorIs(t, err, control.ErrUnauthorized)
	assert.Contains(t, err.Error(), "E0000011")
	assert.Contains(t, err.Error(), "okta.users.read")
	assert.NotContains(t, err.Error(), "not-the-token")
}

func TestSimulatorRateLimit(t *testing.T) {
	e := newEnv(t, oktasim.Options{RateLimitPerMinute: 2})
	acct := e.account(t, people[0])
	var err error
	for range 3 {
		if _, err = e.client.Observe(t.Context(), okta.Suspend, acct, control.Params{}); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, control.ErrRateLimited)
	var cerr *control.Error
	require.ErrorAs(t, err, &cerr)
	assert.Greater(t, cerr.RetryAfter, 50*time.Second)
	assert.LessOrEqual(t, cerr.RetryAfter, 61*time.Second)
	assert.Contains(t, err.Error(), "E0000047")
}

// TestRetryAfterFromHeaders pins the delay arithmetic: X-Rate-Limit-Reset
// minus the response Date, at least a second.
func TestRetryAfterFromHeaders(t *testing.T) {
	date := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		reset string
		date  bool
		want  time.Duration
		delta time.Duration
	}{
		{"reset minus date", strconv.FormatInt(date.Unix()+42, 10), true, 42 * time.Second, 0},
		{"reset already past", strconv.FormatInt(date.Unix()-5, 10), true, time.Second, 0},
		{"no date: reset minus now", strconv.FormatInt(time.Now().Unix()+20, 10), false, 20 * time.Second, 2 * time.Second},
		{"no reset", "", true, time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Date"] = nil
				if tc.date {
					w.Header().Set("Date", date.Format(http.TimeFormat))
				}
				w.Header().Set("X-Rate-Limit-Reset", tc.reset)
				w.Header().Set("X-Okta-Request-Id", "req-429")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(429)
				fmt.Fprint(w, `{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests.","errorLink":"E0000047","errorId":"oae1","errorCauses":[]}`)
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL, token)
			_, err := c.Enforce(t.Context(), okta.Suspend, control.Account{ID: "00u1"}, control.Params{})
			require.ErrorIs(t, err, control.ErrRateLimited)
			var cerr *control.Error
			require.ErrorAs(t, err, &cerr)
			assert.InDelta(t, tc.want.Seconds(), cerr.RetryAfter.Seconds(), tc.delta.Seconds())
			assert.Equal(t, "req-429", cerr.RequestID)
		})
	}
}

func TestGarbageBody(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
		kind                    error // a read's answer that is not JSON at all is asked again
	}{
		{"bad json", "application/json", `{"id": "00u1", "status": `, control.ErrTransient},
		{"html", "text/html", `<html>proxy login page</html>`, control.ErrTransient},
		{"no user", "application/json", `{}`, control.ErrPermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.Header().Set("X-Okta-Request-Id", "req-garbage")
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL, token)
			_, err := c.Observe(t.Context(), okta.Suspend, control.Account{ID: "00u1"}, control.Params{})
			require.ErrorIs(t, err, tc.kind)
			var cerr *control.Error
			require.ErrorAs(t, err, &cerr)
			assert.Equal(t, 200, cerr.HTTPStatus)
			assert.Equal(t, "req-garbage", cerr.RequestID)
			assert.Equal(t, control.Digest([]byte(tc.body)), cerr.Digest)
			assert.Contains(t, err.Error(), cerr.Digest)
		})
	}
}

func TestHangHitsDeadline(t *testing.T) {
	faults := fault.New()
	e := newEnv(t, oktasim.Options{Faults: faults})
	acct := e.account(t, people[0])
	faults.Add(fault.Rule{PathPrefix: "/api/v1/users/", Hang: true})

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.client.Enforce(ctx, okta.Suspend, acct, control.Params{})
	require.ErrorIs(t, err, control.ErrTransient)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	var cerr *control.Error
	require.ErrorAs(t, err, &cerr)
	assert.Zero(t, cerr.HTTPStatus)
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := newClient(t, url, token)
	_, err := c.Observe(t.Context(), okta.Suspend, control.Account{ID: "00u1"}, control.Params{})
	require.ErrorIs(t, err, control.ErrTransient)
}

// TestExplicitConfigWins: OKTA_CLIENT_* variables must not redirect calls,
// change the auth mode, or turn the SDK's cache and retries back on.
func TestExplicitConfigWins(t *testing.T) {
	t.Setenv("OKTA_CLIENT_ORGURL", "https://elsewhere.okta.com")
	t.Setenv("OKTA_CLIENT_TOKEN", "env-token")
	t.Setenv("OKTA_CLIENT_AUTHORIZATIONMODE", "Bearer")
	t.Setenv("OKTA_CLIENT_RATE_LIMIT_MAX_RETRIES", "5")
	t.Setenv("OKTA_CLIENT_CACHE_ENABLED", "true")
	t.Setenv("OKTA_CLIENT_REQUEST_TIMEOUT", "1")
	faults := fault.New()
	e := newEnv(t, oktasim.Options{Faults: faults})
	acct := e.account(t, people[0]) // reached the simulator with the SSWS token

	// Not cached: a second observe sees the change.
	obs, err := e.client.Observe(t.Context(), okta.Suspend, acct, control.Params{})
	require.NoError(t, err)
	require.False(t, obs.Holds)
	_, err = e.client.Enforce(t.Context(), okta.Suspend, acct, control.Params{})
	require.NoError(t, err)
	obs, err = e.client.Observe(t.Context(), okta.Suspend, acct, control.Params{})
	require.NoError(t, err)
	assert.True(t, obs.Holds)

	// Not retried: one 429 comes straight back.
	faults.Add(fault.Rule{PathPrefix: "/api/v1/users/", Status: 429, RetryAfter: time.Second, Count: 1})
	_, err = e.client.Observe(t.Context(), okta.Suspend, acct, control.Params{})
	assert.ErrorIs(t, err, control.ErrRateLimited)
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  okta.Config
		want string
	}{
		{"plain http", okta.Config{OrgURL: "http://acme.okta.com", Token: "secret-1"}, "AllowHTTP"},
		{"no token", okta.Config{OrgURL: "https://acme.okta.com"}, "no API token"},
		{"no url", okta.Config{Token: "secret-1"}, "not an absolute URL"},
		{"ftp", okta.Config{OrgURL: "ftp://acme.okta.com", Token: "secret-1"}, "not https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := okta.New(t.Context(), tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "secret-1")
		})
	}
}

// BenchmarkTermination runs a whole termination (resolve, then observe →
// enforce → observe for every containment, removal and deletion control)
// through the real SDK against the simulator.
func BenchmarkTermination(b *testing.B) {
	all := demo.People(demo.Size)
	sim := oktasim.New(oktasim.Options{Token: token, People: all, RateLimitPerMinute: 1 << 30})
	srv := httptest.NewServer(sim.Handler())
	b.Cleanup(srv.Close)
	c, err := okta.New(b.Context(), okta.Config{Name: "okta", OrgURL: srv.URL, Token: token, AllowHTTP: true})
	require.NoError(b, err)
	var controls []string
	for _, ph := range []control.Phase{control.Containment, control.Removal, control.Deletion} {
		controls = append(controls, c.Controls(ph)...)
	}
	b.ResetTimer()
	for i := range b.N {
		p := all[i%len(all)]
		if i > 0 && i%len(all) == 0 {
			b.StopTimer()
			sim.Reset()
			b.StartTimer()
		}
		acct, err := c.Resolve(b.Context(), control.Person{Email: p.Email})
		require.NoError(b, err)
		for _, name := range controls {
			for _, step := range []string{"observe", "enforce", "observe"} {
				if step == "enforce" {
					_, err = c.Enforce(b.Context(), name, acct, control.Params{})
				} else {
					_, err = c.Observe(b.Context(), name, acct, control.Params{})
				}
				require.NoError(b, err, "%s %s", step, name)
			}
		}
	}
}

// TestProbe: the self-check proves the org URL and the token, and names
// whichever is wrong.
func TestProbe(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	pr, err := e.client.Probe(t.Context())
	require.NoError(t, err)
	require.Len(t, pr.Checks, 2)
	assert.Equal(t, "GET /api/v1/users/me: 200, Okta user offboard-api@sandbox.okta.test (ACTIVE), the token's owner", pr.Checks[0])
	assert.Regexp(t, `^GET /api/v1/users/00u\w+/roles: okta admin role SUPER_ADMIN$`, pr.Checks[1])
	assert.Empty(t, pr.Missing)

	t.Run("token owner without an admin role", func(t *testing.T) {
		srv := hostile.New(t, e.sim.Handler(), hostile.Rule{Match: hostile.Path(`/api/v1/users/[^/]+/roles`), Handler: hostile.Body(200, "application/json", "[]")})
		pr, err := newClient(t, srv.URL, token).Probe(t.Context())
		require.NoError(t, err)
		assert.Len(t, pr.Checks, 1)
		assert.Equal(t, []string{"an Okta admin role for the token's owner (it has none: it cannot suspend or deactivate users)"}, pr.Missing)
	})
	t.Run("roles unreadable", func(t *testing.T) {
		srv := hostile.New(t, e.sim.Handler(), hostile.Rule{Match: hostile.Path(`/api/v1/users/[^/]+/roles`),
			Handler: hostile.Body(403, "application/json", `{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action","errorLink":"E0000006","errorId":"oaeX","errorCauses":[]}`)})
		pr, err := newClient(t, srv.URL, token).Probe(t.Context())
		require.NoError(t, err)
		require.Len(t, pr.Missing, 1)
		assert.Contains(t, pr.Missing[0], "okta.roles.read: okta admin roles unreadable")
		assert.Contains(t, pr.Missing[0], "HTTP 403")
	})

	t.Run("wrong token", func(t *testing.T) {
		_, err := newClient(t, e.srv.URL, "not-the-token").Probe(t.Context())
		require.ErrorIs(t, err, control.ErrUnauthorized)
		assert.Contains(t, err.Error(), "E0000011")
		assert.Contains(t, err.Error(), "token rejected")
		assert.NotContains(t, err.Error(), "not-the-token")
	})
	t.Run("wrong path", func(t *testing.T) {
		_, err := newClient(t, e.srv.URL+"/admin", token).Probe(t.Context())
		require.ErrorIs(t, err, control.ErrUnexpected)
		assert.Contains(t, err.Error(), "the org URL "+e.srv.URL+"/admin does not answer with Okta's API")
	})
	for _, tc := range []struct{ name, ctype, body string }{
		{"a proxy's HTML page", "text/html", "<html>sign in</html>"},
		{"JSON that is not an Okta user", "application/json", `{"status":"ok"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			_, err := newClient(t, srv.URL, token).Probe(t.Context())
			require.Error(t, err)
			assert.Contains(t, err.Error(), "does not answer with Okta's API")
		})
	}
}
