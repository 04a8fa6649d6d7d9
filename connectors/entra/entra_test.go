package entra_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/entra"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/graph"
)

// people: 0 engineering (E3+EMS), 2 finance (E3 + Power BI from the group), 9 privileged.
var people = demo.People(12)

type env struct {
	sim    *graph.Sim
	client *entra.Client
}

func setup(t *testing.T, rps int) env {
	t.Helper()
	sim := graph.New(graph.Options{People: people, RequestsPerSecond: rps})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	c, err := entra.New(entra.Config{Name: "entra", BaseURL: srv.URL, HTTPClient: srv.Client()})
	require.NoError(t, err)
	return env{sim: sim, client: c}
}

func (e env) account(t *testing.T, p demo.Person) control.Account {
	t.Helper()
	acct, err := e.client.Resolve(t.Context(), control.Person{EmployeeID: p.EmployeeID, Email: p.Email})
	require.NoError(t, err)
	return acct
}

func actions(sim *graph.Sim, id string) []string {
	var out []string
	for _, tr := range sim.Transitions(id) {
		out = append(out, tr.Action)
	}
	return out
}

func TestControlsObserveEnforceObserve(t *testing.T) {
	since := time.Now().Add(-time.Minute)
	tests := []struct {
		name    string
		person  demo.Person
		params  control.Params
		prepare []string // controls enforced first
		check   func(t *testing.T, u graph.User, ok bool)
		want    []string // transitions after enforcing twice
	}{
		{"disable", people[0], control.Params{}, nil,
			func(t *testing.T, u graph.User, ok bool) { assert.False(t, u.AccountEnabled) }, []string{"disable"}},
		{"enable", people[0], control.Params{}, []string{"disable"},
			func(t *testing.T, u graph.User, ok bool) { assert.True(t, u.AccountEnabled) }, []string{"disable", "enable"}},
		{"revoke_sessions", people[0], control.Params{Since: since}, nil,
			func(t *testing.T, u graph.User, ok bool) {
				assert.False(t, u.SignInSessionsValidFrom.Before(since.Truncate(time.Second)))
			}, []string{"revoke_sessions"}},
		{"remove_groups", people[9], control.Params{}, nil,
			func(t *testing.T, u graph.User, ok bool) {
				assert.Equal(t, []string{graph.DynamicGroup}, u.Groups, "only the dynamic group is left")
			}, []string{"remove_group", "remove_group", "remove_group"}},
		{"remove_directory_roles", people[9], control.Params{}, nil,
			func(t *testing.T, u graph.User, ok bool) {
				assert.Empty(t, u.Roles)
				assert.Len(t, u.Groups, 4, "groups are remove_groups' business")
			}, []string{"remove_role"}},
		{"remove_licenses", people[0], control.Params{}, nil,
			func(t *testing.T, u graph.User, ok bool) { assert.Empty(t, u.Licenses) },
			[]string{"remove_license", "remove_license"}},
		{"delete", people[1], control.Params{}, nil,
			func(t *testing.T, u graph.User, ok bool) { assert.False(t, ok) }, []string{"delete"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, 10000)
			ctx := t.Context()
			acct := e.account(t, tt.person)
			for _, name := range tt.prepare {
				_, err := e.client.Enforce(ctx, name, acct, tt.params)
				require.NoError(t, err)
			}

			before, err := e.client.Observe(ctx, tt.name, acct, tt.params)
			require.NoError(t, err)
			assert.False(t, before.Holds, before.Detail)
			assert.True(t, before.Readable)
			assert.Equal(t, 200, before.Call.HTTPStatus)
			assert.NotEmpty(t, before.Call.RequestID)
			assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, before.Call.Digest)

			resp, err := e.client.Enforce(ctx, tt.name, acct, tt.params)
			require.NoError(t, err)
			assert.NotEmpty(t, resp.RequestID)
			assert.Contains(t, []int{200, 204}, resp.HTTPStatus)

			after, err := e.client.Observe(ctx, tt.name, acct, tt.params)
			require.NoError(t, err)
			assert.True(t, after.Holds, after.Detail)
			u, ok := e.sim.User(acct.ID)
			tt.check(t, u, ok)

			// Enforcing again is harmless: nothing changes that was not already changed
			// (revoke_sessions is a fresh revocation each time, which is fine).
			if tt.name != "delete" {
				_, err = e.client.Enforce(ctx, tt.name, acct, tt.params)
				require.NoError(t, err)
				if tt.name == "revoke_sessions" {
					tt.want = append(tt.want, "revoke_sessions")
				}
			}
			assert.Equal(t, tt.want, actions(e.sim, acct.ID))
			again, err := e.client.Observe(ctx, tt.name, acct, tt.params)
			require.NoError(t, err)
			assert.True(t, again.Holds, again.Detail)
		})
	}
}

func TestRevokeSessionsWithoutSinceIsUnreadable(t *testing.T) {
	e := setup(t, 10000)
	acct := e.account(t, people[0])
	obs, err := e.client.Observe(t.Context(), "revoke_sessions", acct, control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Readable)
	assert.False(t, obs.Holds)
}

func TestGoneAccount(t *testing.T) {
	e := setup(t, 10000)
	ctx := t.Context()
	acct := e.account(t, people[0])
	_, err := e.client.Enforce(ctx, "delete", acct, control.Params{})
	require.NoError(t, err)
	for _, name := range []string{"disable", "revoke_sessions", "remove_groups", "remove_directory_roles", "remove_licenses", "delete"} {
		obs, err := e.client.Observe(ctx, name, acct, control.Params{Since: time.Now()})
		require.NoError(t, err, name)
		assert.True(t, obs.Holds && obs.Gone, name)
		_, err = e.client.Enforce(ctx, name, acct, control.Params{Since: time.Now()})
		assert.ErrorIs(t, err, control.ErrNotFound, name)
		var cerr *control.Error
		require.ErrorAs(t, err, &cerr)
		assert.Equal(t, 404, cerr.HTTPStatus)
		assert.NotEmpty(t, cerr.RequestID)
	}
}

func TestRemoveGroupsKeepsRoleGroupsAndSkipsDynamic(t *testing.T) {
	e := setup(t, 10000)
	ctx := t.Context()
	p := people[9] // all-staff, department, admins, dyn-all; also a directory role
	acct := e.account(t, p)
	params := control.Params{KeepGroups: []string{"All-Staff", p.Department}}

	obs, err := e.client.Observe(ctx, "remove_groups", acct, params)
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.Contains(t, obs.Detail, "1 groups left: admins")
	assert.Contains(t, obs.Detail, graph.DynamicGroup+" (dynamic)")

	_, err = e.client.Enforce(ctx, "remove_groups", acct, params)
	require.NoError(t, err)
	u, _ := e.sim.User(acct.ID)
	assert.ElementsMatch(t, []string{"all-staff", p.Department, graph.DynamicGroup}, u.Groups)
	assert.Equal(t, []string{"remove_group"}, actions(e.sim, acct.ID))

	obs, err = e.client.Observe(ctx, "remove_groups", acct, params)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
}

func TestRemoveDirectoryRoles(t *testing.T) {
	t.Run("global reader loses the role", func(t *testing.T) {
		e := setup(t, 10000)
		ctx := t.Context()
		acct := e.account(t, people[9]) // privileged: Global Reader
		u, _ := e.sim.User(acct.ID)
		require.Equal(t, []string{graph.GlobalReader}, u.Roles)

		obs, err := e.client.Observe(ctx, "remove_directory_roles", acct, control.Params{})
		require.NoError(t, err)
		assert.False(t, obs.Holds)
		assert.Equal(t, "1 directory roles left: "+graph.GlobalReader, obs.Detail)

		resp, err := e.client.Enforce(ctx, "remove_directory_roles", acct, control.Params{})
		require.NoError(t, err)
		assert.Equal(t, 204, resp.HTTPStatus, "the receipt is the removal's")
		assert.NotEmpty(t, resp.RequestID)

		obs, err = e.client.Observe(ctx, "remove_directory_roles", acct, control.Params{})
		require.NoError(t, err)
		assert.True(t, obs.Holds, obs.Detail)
		assert.Equal(t, "no directory roles left", obs.Detail)
		u, _ = e.sim.User(acct.ID)
		assert.Empty(t, u.Roles)
		assert.Equal(t, []string{"remove_role"}, actions(e.sim, acct.ID))
		assert.Equal(t, graph.GlobalReader, e.sim.Transitions(acct.ID)[0].Detail)
	})

	t.Run("no role, no call", func(t *testing.T) {
		e := setup(t, 10000)
		acct := e.account(t, people[0])
		obs, err := e.client.Observe(t.Context(), "remove_directory_roles", acct, control.Params{})
		require.NoError(t, err)
		assert.True(t, obs.Holds, obs.Detail)
		// Any DELETE would now fail: enforcing must not make one.
		e.sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/", Method: "DELETE", Status: 500})
		resp, err := e.client.Enforce(t.Context(), "remove_directory_roles", acct, control.Params{})
		require.NoError(t, err)
		assert.Equal(t, 200, resp.HTTPStatus, "only memberOf was read")
		assert.Empty(t, actions(e.sim, acct.ID))
	})

	t.Run("a removal that did not happen is not observed", func(t *testing.T) {
		e := setup(t, 10000)
		ctx := t.Context()
		acct := e.account(t, people[9])
		// Graph answers 404 (as when the user was no longer a member) but the role stays.
		e.sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/directoryRoles/", Method: "DELETE", Status: 404, Count: 1})
		_, err := e.client.Enforce(ctx, "remove_directory_roles", acct, control.Params{})
		require.NoError(t, err, "404 on removal means already removed")
		obs, err := e.client.Observe(ctx, "remove_directory_roles", acct, control.Params{})
		require.NoError(t, err)
		assert.False(t, obs.Holds, "the read-back, not the 404, decides")
		assert.Contains(t, obs.Detail, graph.GlobalReader)
	})

	t.Run("refused removal names the permission", func(t *testing.T) {
		e := setup(t, 10000)
		acct := e.account(t, people[9])
		e.sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/directoryRoles/", Method: "DELETE", Status: 403})
		_, err := e.client.Enforce(t.Context(), "remove_directory_roles", acct, control.Params{})
		require.ErrorIs(t, err, control.ErrUnauthorized)
		var cerr *control.Error
		require.ErrorAs(t, err, &cerr)
		assert.Equal(t, 403, cerr.HTTPStatus)
		assert.NotEmpty(t, cerr.RequestID)
		assert.Contains(t, cerr.Error(), "RoleManagement.ReadWrite.Directory")
		assert.Contains(t, cerr.Error(), "entra: remove_directory_roles "+acct.ID+": role "+graph.GlobalReader)
		u, _ := e.sim.User(acct.ID)
		assert.Equal(t, []string{graph.GlobalReader}, u.Roles)
	})

	t.Run("bad request is permanent", func(t *testing.T) {
		e := setup(t, 10000)
		acct := e.account(t, people[9])
		e.sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/directoryRoles/", Method: "DELETE", Status: 400})
		_, err := e.client.Enforce(t.Context(), "remove_directory_roles", acct, control.Params{})
		assert.ErrorIs(t, err, control.ErrPermanent)
	})

	t.Run("throttled removal waits as asked", func(t *testing.T) {
		e := setup(t, 10000)
		acct := e.account(t, people[9])
		e.sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/directoryRoles/", Method: "DELETE", Status: 429, RetryAfter: 4 * time.Second})
		_, err := e.client.Enforce(t.Context(), "remove_directory_roles", acct, control.Params{})
		require.ErrorIs(t, err, control.ErrRateLimited)
		var cerr *control.Error
		require.ErrorAs(t, err, &cerr)
		assert.Equal(t, 4*time.Second, cerr.RetryAfter)
	})
}

func TestRemoveLicensesLeavesGroupLicences(t *testing.T) {
	e := setup(t, 10000)
	ctx := t.Context()
	acct := e.account(t, people[2]) // finance: direct E3, Power BI from the group
	obs, err := e.client.Observe(ctx, "remove_licenses", acct, control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.Contains(t, obs.Detail, "1 direct licences: "+graph.SkuOffice365E3)
	assert.Contains(t, obs.Detail, "1 from group-based licensing")

	_, err = e.client.Enforce(ctx, "remove_licenses", acct, control.Params{})
	require.NoError(t, err)
	u, _ := e.sim.User(acct.ID)
	assert.Empty(t, u.Licenses)
	assert.Equal(t, []string{graph.SkuPowerBIPro}, u.GroupLicenses)

	obs, err = e.client.Observe(ctx, "remove_licenses", acct, control.Params{})
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
}

func TestResolve(t *testing.T) {
	quoted := demo.Person{EmployeeID: "E9999", First: "Flann", Last: "O'Brien", Login: "flann.o'brien", Email: "flann.o'brien@example.test", Department: "sales"}
	sim := graph.New(graph.Options{People: append(slices.Clone(people[:3]), quoted)})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	c, err := entra.New(entra.Config{Name: "entra-corp", BaseURL: srv.URL})
	require.NoError(t, err)
	ada, _ := sim.User(people[0].Email)

	tests := []struct {
		name   string
		person control.Person
		wantID string
		err    error
	}{
		{"by mail", control.Person{Email: people[0].Email}, ada.ID, nil},
		{"by hint object id", control.Person{Email: "someone.else@example.test", Hints: map[string]string{"entra-corp": ada.ID}}, ada.ID, nil},
		{"by hint upn", control.Person{Hints: map[string]string{"entra-corp": people[0].Email}}, ada.ID, nil},
		{"hint for another target ignored", control.Person{Email: people[0].Email, Hints: map[string]string{"okta": "00u1"}}, ada.ID, nil},
		{"quote in email", control.Person{Email: quoted.Email}, "", nil},
		{"not found", control.Person{Email: "nobody@example.test"}, "", control.ErrNotFound},
		{"hint not found", control.Person{Hints: map[string]string{"entra-corp": "00000000-0000-0000-0000-000000000000"}}, "", control.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct, err := c.Resolve(t.Context(), tt.person)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				var cerr *control.Error
				assert.ErrorAs(t, err, &cerr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "entra-corp", acct.Target)
			if tt.wantID != "" {
				assert.Equal(t, tt.wantID, acct.ID)
				assert.Equal(t, people[0].Email, acct.Login)
			} else {
				assert.Equal(t, quoted.Email, acct.Login)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name       string
		rule       fault.Rule
		control    string
		enforce    bool
		kind       error
		status     int
		retryAfter time.Duration
		contains   string
	}{
		{"404 on enforce", fault.Rule{Status: 404}, "disable", true, control.ErrNotFound, 404, 0, "Request_ResourceNotFound"},
		{"429 with Retry-After", fault.Rule{Status: 429, RetryAfter: 7 * time.Second}, "disable", false, control.ErrRateLimited, 429, 7 * time.Second, "TooManyRequests"},
		{"503 with Retry-After", fault.Rule{Status: 503, RetryAfter: 2 * time.Second}, "revoke_sessions", true, control.ErrRateLimited, 503, 2 * time.Second, "serviceNotAvailable"},
		{"503", fault.Rule{Status: 503}, "revoke_sessions", true, control.ErrTransient, 503, 0, "serviceNotAvailable"},
		{"500", fault.Rule{Status: 500}, "remove_groups", false, control.ErrTransient, 500, 0, "generalException"},
		{"401", fault.Rule{Status: 401}, "disable", false, control.ErrUnauthorized, 401, 0, "User.Read.All"},
		{"403 on disable", fault.Rule{Status: 403, Method: "PATCH"}, "disable", true, control.ErrUnauthorized, 403, 0, "User.EnableDisableAccount.All"},
		{"403 on revoke", fault.Rule{Status: 403, Method: "POST"}, "revoke_sessions", true, control.ErrUnauthorized, 403, 0, "User.RevokeSessions.All"},
		{"403 on group removal", fault.Rule{Status: 403, Method: "DELETE"}, "remove_groups", true, control.ErrUnauthorized, 403, 0, "GroupMember.ReadWrite.All"},
		{"403 on licences", fault.Rule{Status: 403, Method: "POST"}, "remove_licenses", true, control.ErrUnauthorized, 403, 0, "LicenseAssignment.ReadWrite.All"},
		{"403 on delete", fault.Rule{Status: 403, Method: "DELETE"}, "delete", true, control.ErrUnauthorized, 403, 0, "User.ReadWrite.All"},
		{"400", fault.Rule{Status: 400}, "disable", true, control.ErrPermanent, 400, 0, "BadRequest"},
		// A read's unreadable answer is asked again; a write's waits for a person.
		{"garbage 200 on a read", fault.Rule{Status: 200}, "disable", false, control.ErrTransient, 200, 0, "unreadable 200 response to a read (sha256:"},
		{"garbage 200 on a write", fault.Rule{Status: 200, Method: "PATCH"}, "disable", true, control.ErrPermanent, 200, 0, "unreadable 200 response (sha256:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, 10000)
			acct := e.account(t, people[0])
			tt.rule.PathPrefix = "/v1.0/"
			e.sim.Faults().Add(tt.rule)
			var err error
			if tt.enforce {
				_, err = e.client.Enforce(t.Context(), tt.control, acct, control.Params{Since: time.Now()})
			} else {
				_, err = e.client.Observe(t.Context(), tt.control, acct, control.Params{Since: time.Now()})
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.kind)
			var cerr *control.Error
			require.ErrorAs(t, err, &cerr)
			assert.Equal(t, tt.status, cerr.HTTPStatus)
			assert.Equal(t, tt.retryAfter, cerr.RetryAfter)
			assert.NotEmpty(t, cerr.RequestID)
			assert.NotEmpty(t, cerr.Digest)
			assert.Contains(t, cerr.Error(), tt.contains)
			assert.Contains(t, cerr.Error(), "entra: ")
		})
	}
}

func TestRateLimitedBySimulatorNotRetried(t *testing.T) {
	sim := graph.New(graph.Options{People: people, RequestsPerSecond: 1})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := entra.New(entra.Config{BaseURL: srv.URL})
	require.NoError(t, err)
	u, _ := sim.User(people[0].Email)
	acct := control.Account{Target: "entra", ID: u.ID}

	// The bucket holds one request a second: within a few calls one is throttled.
	for range 5 {
		before := requests.Load()
		_, err = c.Observe(t.Context(), "disable", acct, control.Params{})
		if err != nil {
			assert.Equal(t, int32(1), requests.Load()-before, "the SDK must not retry a 429 itself")
			break
		}
	}
	require.ErrorIs(t, err, control.ErrRateLimited)
	var cerr *control.Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, time.Second, cerr.RetryAfter)
	assert.Equal(t, 429, cerr.HTTPStatus)
}

func TestHangStopsAtDeadline(t *testing.T) {
	e := setup(t, 10000)
	acct := e.account(t, people[0])
	e.sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/users/", Hang: true})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.client.Enforce(ctx, "disable", acct, control.Params{})
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.ErrorIs(t, err, control.ErrTransient)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var cerr *control.Error
	require.ErrorAs(t, err, &cerr)
	assert.Zero(t, cerr.HTTPStatus)
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	c, err := entra.New(entra.Config{BaseURL: srv.URL})
	require.NoError(t, err)
	_, err = c.Enforce(t.Context(), "disable", control.Account{ID: "x"}, control.Params{})
	assert.ErrorIs(t, err, control.ErrTransient)
}

func TestUnknownControlAndPhases(t *testing.T) {
	e := setup(t, 10000)
	assert.Equal(t, "entra", e.client.Kind())
	assert.Equal(t, "entra", e.client.Name())
	assert.Equal(t, []string{"disable", "revoke_sessions"}, e.client.Controls(control.Containment))
	assert.Equal(t, []string{"remove_groups", "remove_directory_roles", "remove_licenses"}, e.client.Controls(control.Removal))
	assert.Equal(t, []string{"delete"}, e.client.Controls(control.Deletion))
	assert.Equal(t, []string{"remove_groups"}, e.client.Controls(control.RoleChange))
	assert.Equal(t, []string{"enable"}, e.client.Controls(control.Restore))
	_, err := e.client.Enforce(t.Context(), "suspend", control.Account{ID: "x"}, control.Params{})
	assert.ErrorIs(t, err, control.ErrUnknownControl)
	_, err = e.client.Observe(t.Context(), "suspend", control.Account{ID: "x"}, control.Params{})
	assert.True(t, errors.Is(err, control.ErrUnknownControl))
}

func TestProductionConfigNeedsCredentials(t *testing.T) {
	_, err := entra.New(entra.Config{TenantID: "t", ClientID: "c"})
	assert.Error(t, err)
	c, err := entra.New(entra.Config{TenantID: "00000000-0000-0000-0000-000000000001", ClientID: "c", ClientSecret: "s3cr3t"})
	require.NoError(t, err)
	assert.Equal(t, "entra", c.Name())
}

func TestRequestsLookLikeTheSDKs(t *testing.T) {
	sim := graph.New(graph.Options{People: people})
	var mu sync.Mutex
	seen := map[string]http.Header{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method] = r.Header.Clone()
		mu.Unlock()
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := entra.New(entra.Config{BaseURL: srv.URL})
	require.NoError(t, err)
	u, _ := sim.User(people[0].Email)
	_, err = c.Enforce(t.Context(), "disable", control.Account{ID: u.ID}, control.Params{})
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	patch := seen[http.MethodPatch]
	require.NotNil(t, patch)
	assert.Empty(t, patch.Get("Content-Encoding"), "tiny bodies are sent uncompressed (a gzip writer per request cost ~1 MB)")
	assert.NotEmpty(t, patch.Get("client-request-id"))
	assert.Empty(t, patch.Get("Authorization"), "the simulator is reached without credentials")
}

func TestResolveReadsDirectoryRoles(t *testing.T) {
	e := setup(t, 10000)
	admin := e.account(t, people[9])
	assert.Equal(t, []string{"entra directory role " + graph.GlobalReader}, admin.Privileges)
	assert.Empty(t, e.account(t, people[0]).Privileges)

	_, err := e.client.Resolve(t.Context(), control.Person{Email: "nobody@example.test"})
	var cerr *control.Error
	require.ErrorAs(t, err, &cerr)
	require.ErrorIs(t, err, control.ErrNotFound)
	assert.Len(t, cerr.Searched, 2, "the search and the direct GET: %v", cerr.Searched)
}

func TestProbe(t *testing.T) {
	sim := graph.New(graph.Options{People: people})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	c, err := entra.New(entra.Config{Name: "entra", BaseURL: srv.URL})
	require.NoError(t, err)
	p, err := c.Probe(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"GET /organization: 200, tenant " + graph.TenantID + " (Offboard Sandbox)", "GET /users?$top=1: 200, users readable"}, p.Checks)

	t.Run("users not readable", func(t *testing.T) {
		sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/users", Status: 403})
		t.Cleanup(sim.Faults().Clear)
		p, err := c.Probe(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"User.Read.All"}, p.Missing)
	})
	t.Run("token refused", func(t *testing.T) {
		sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/", Status: 401})
		t.Cleanup(sim.Faults().Clear)
		_, err := c.Probe(t.Context())
		require.ErrorIs(t, err, control.ErrUnauthorized)
		assert.Contains(t, err.Error(), "credentials were refused")
	})
	t.Run("wrong base URL", func(t *testing.T) {
		other := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(other.Close)
		c, err := entra.New(entra.Config{Name: "entra-x", BaseURL: other.URL})
		require.NoError(t, err)
		_, err = c.Probe(t.Context())
		require.ErrorIs(t, err, control.ErrUnexpected)
		assert.Contains(t, err.Error(), "did not answer as Microsoft Graph")
		assert.Contains(t, err.Error(), "entra entra-x")
	})
}
