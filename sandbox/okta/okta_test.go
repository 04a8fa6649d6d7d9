package okta

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
)

const token = "test-token"

type env struct {
	t   *testing.T
	sim *Sim
	srv *httptest.Server
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.Token == "" {
		opts.Token = token
	}
	if opts.People == nil {
		opts.People = demo.People(20)
	}
	sim := New(opts)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, sim: sim, srv: srv}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) oktaError(t *testing.T) oktaError {
	t.Helper()
	var e oktaError
	require.NoError(t, json.Unmarshal(r.body, &e), string(r.body))
	return e
}

func (e *env) do(method, path, tok string) result {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, nil)
	require.NoError(e.t, err)
	if tok != "" {
		req.Header.Set("Authorization", "SSWS "+tok)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return result{status: resp.StatusCode, header: resp.Header, body: body}
}

func (e *env) api(method, path string) result { return e.do(method, path, token) }

func actions(ts []Transition) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.Action)
	}
	return out
}

func TestSeed(t *testing.T) {
	e := newEnv(t, Options{})
	p := demo.People(20)[9] // every tenth person is privileged
	u, ok := e.sim.User(p.Email)
	require.True(t, ok)
	assert.Equal(t, StatusActive, u.Status)
	assert.Equal(t, p.Email, u.Login)
	assert.Equal(t, []string{"Everyone", "admins", "all-staff", p.Department}, u.Groups)
	assert.Equal(t, 2, u.Sessions)
	assert.Equal(t, 1, u.Grants)
	assert.True(t, strings.HasPrefix(u.ID, "00u") && len(u.ID) == 20, u.ID)

	byID, ok := e.sim.User(u.ID)
	require.True(t, ok)
	assert.Equal(t, u, byID)

	again := New(Options{Token: token, People: demo.People(20)})
	u2, _ := again.User(p.Email)
	assert.Equal(t, u.ID, u2.ID, "ids are stable across simulators")
}

func TestLifecycleTransitions(t *testing.T) {
	e := newEnv(t, Options{})
	u, _ := e.sim.User(demo.People(1)[0].Email)
	base := "/api/v1/users/" + u.ID

	steps := []struct {
		method, path string
		status       int
		wantStatus   string
		wantGone     bool
	}{
		{"POST", base + "/lifecycle/suspend", 200, StatusSuspended, false},
		{"POST", base + "/lifecycle/suspend", 400, StatusSuspended, false}, // double apply is visible
		{"POST", base + "/lifecycle/unsuspend", 200, StatusActive, false},
		{"POST", base + "/lifecycle/unsuspend", 400, StatusActive, false},
		{"POST", base + "/lifecycle/suspend", 200, StatusSuspended, false},
		{"POST", base + "/lifecycle/deactivate?sendEmail=false", 200, StatusDeprovisioned, false},
		{"POST", base + "/lifecycle/deactivate", 400, StatusDeprovisioned, false},
		{"POST", base + "/lifecycle/suspend", 400, StatusDeprovisioned, false},
		{"DELETE", base, 204, "", true},
		{"DELETE", base, 404, "", true},
	}
	for i, s := range steps {
		r := e.api(s.method, s.path)
		require.Equal(t, s.status, r.status, "step %d %s %s: %s", i, s.method, s.path, r.body)
		if s.status == 400 {
			oe := r.oktaError(t)
			assert.Equal(t, "E0000001", oe.ErrorCode)
			assert.Contains(t, oe.ErrorSummary, "Api validation failed")
			assert.Len(t, oe.ErrorCauses, 1)
		}
		got, ok := e.sim.User(u.ID)
		assert.Equal(t, s.wantGone, !ok, "step %d", i)
		if ok {
			assert.Equal(t, s.wantStatus, got.Status, "step %d", i)
		}
	}
	assert.Equal(t, []string{"suspend", "unsuspend", "suspend", "deactivate", "delete"}, actions(e.sim.Transitions(u.ID)))
	r := e.api("GET", base)
	assert.Equal(t, 404, r.status)
	assert.Equal(t, "E0000007", r.oktaError(t).ErrorCode)
}

func TestDeleteIsTwoStep(t *testing.T) {
	e := newEnv(t, Options{})
	u, _ := e.sim.User(demo.People(2)[1].Email)
	r := e.api("DELETE", "/api/v1/users/"+u.ID)
	require.Equal(t, 204, r.status)
	got, ok := e.sim.User(u.ID)
	require.True(t, ok, "the first DELETE only deactivates")
	assert.Equal(t, StatusDeprovisioned, got.Status)
	assert.Equal(t, 0, got.Sessions)
	assert.Contains(t, got.Groups, "all-staff", "deactivation keeps group memberships")

	require.Equal(t, 204, e.api("DELETE", "/api/v1/users/"+u.ID).status)
	_, ok = e.sim.User(u.ID)
	assert.False(t, ok)
	assert.Equal(t, []string{"deactivate", "delete"}, actions(e.sim.Transitions(u.ID)))
}

func TestSessionsGrantsGroups(t *testing.T) {
	e := newEnv(t, Options{})
	u, _ := e.sim.User(demo.People(1)[0].Email)
	base := "/api/v1/users/" + u.ID

	require.Equal(t, 204, e.api("DELETE", base+"/sessions?oauthTokens=true").status)
	require.Equal(t, 204, e.api("DELETE", base+"/sessions?oauthTokens=true").status)

	r := e.api("GET", base+"/grants")
	require.Equal(t, 200, r.status)
	var grants []map[string]any
	require.NoError(t, json.Unmarshal(r.body, &grants))
	require.Len(t, grants, 1)
	assert.Equal(t, u.ID, grants[0]["userId"])
	assert.Equal(t, "ACTIVE", grants[0]["status"])
	require.Equal(t, 204, e.api("DELETE", base+"/grants").status)
	r = e.api("GET", base+"/grants")
	assert.JSONEq(t, "[]", string(r.body))

	r = e.api("GET", base+"/groups")
	require.Equal(t, 200, r.status)
	var groups []struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
	}
	require.NoError(t, json.Unmarshal(r.body, &groups))
	require.Len(t, groups, 3)
	for _, g := range groups {
		status := e.api("DELETE", "/api/v1/groups/"+g.ID+"/users/"+u.ID).status
		if g.Type == "BUILT_IN" {
			assert.Equal(t, 403, status, "Okta refuses to touch Everyone")
		} else {
			assert.Equal(t, 204, status)
		}
	}
	// Removing a non-member again is a harmless 204.
	assert.Equal(t, 204, e.api("DELETE", "/api/v1/groups/"+groups[0].ID+"/users/"+u.ID).status)

	got, _ := e.sim.User(u.ID)
	assert.Equal(t, []string{"Everyone"}, got.Groups)
	assert.Zero(t, got.Sessions)
	assert.Zero(t, got.Grants)
	assert.Equal(t, []string{"clear_sessions", "revoke_grant", "remove_group", "remove_group"}, actions(e.sim.Transitions(u.ID)))
}

func TestSearchAndFilter(t *testing.T) {
	e := newEnv(t, Options{})
	people := demo.People(20)
	target, _ := e.sim.User(people[3].Email)
	require.Equal(t, 204, e.api("DELETE", "/api/v1/users/"+target.ID).status) // now DEPROVISIONED

	list := func(q url.Values) []string {
		t.Helper()
		r := e.api("GET", "/api/v1/users?"+q.Encode())
		require.Equal(t, 200, r.status, string(r.body))
		var users []struct {
			ID      string            `json:"id"`
			Profile map[string]string `json:"profile"`
		}
		require.NoError(t, json.Unmarshal(r.body, &users))
		var ids []string
		for _, u := range users {
			ids = append(ids, u.ID)
		}
		return ids
	}
	upper := strings.ToUpper(people[3].Email)
	assert.Equal(t, []string{target.ID}, list(url.Values{"search": {`profile.email eq "` + upper + `"`}}), "search finds every status, case-insensitively")
	assert.Equal(t, []string{target.ID}, list(url.Values{"search": {`profile.email eq "nobody@x" or profile.login eq "` + people[3].Email + `"`}}))
	assert.Empty(t, list(url.Values{"filter": {`profile.login eq "` + people[3].Email + `"`}}), "filter hides DEPROVISIONED")
	assert.Equal(t, []string{target.ID}, list(url.Values{"filter": {`status eq "DEPROVISIONED"`}}))
	assert.Len(t, list(url.Values{}), 19)
	assert.Len(t, list(url.Values{"search": {`profile.department eq "sales" and status eq "ACTIVE"`}}), 4)

	r := e.api("GET", "/api/v1/users?search="+url.QueryEscape(`profile.email eq`))
	assert.Equal(t, 400, r.status)
	assert.Equal(t, "E0000031", r.oktaError(t).ErrorCode)
}

func TestPagination(t *testing.T) {
	e := newEnv(t, Options{})
	seen := map[string]bool{}
	next := "/api/v1/users?limit=7"
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, 5)
		r := e.api("GET", next)
		require.Equal(t, 200, r.status)
		var users []struct{ ID string }
		require.NoError(t, json.Unmarshal(r.body, &users))
		for _, u := range users {
			assert.False(t, seen[u.ID], "no user twice")
			seen[u.ID] = true
		}
		next = ""
		for _, l := range r.header.Values("Link") {
			if strings.Contains(l, `rel="next"`) {
				u, err := url.Parse(strings.Trim(strings.Split(l, ";")[0], "<>"))
				require.NoError(t, err)
				next = u.RequestURI()
			}
		}
	}
	assert.Len(t, seen, 20)
}

func TestAuthAndHeaders(t *testing.T) {
	e := newEnv(t, Options{})
	u, _ := e.sim.User(demo.People(1)[0].Email)
	for _, tc := range []struct {
		name, tok, path string
		status          int
		code            string
	}{
		{"ok", token, "/api/v1/users/" + u.ID, 200, ""},
		{"no token", "", "/api/v1/users/" + u.ID, 401, "E0000011"},
		{"wrong token", "nope", "/api/v1/users/" + u.ID, 401, "E0000011"},
		{"missing user", token, "/api/v1/users/00uNOPE", 404, "E0000007"},
		{"unknown endpoint", token, "/api/v1/nothing", 404, "E0000007"},
		{"roles of a missing user", token, "/api/v1/users/00uNOPE/roles", 404, "E0000007"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", tc.path, tc.tok)
			require.Equal(t, tc.status, r.status)
			assert.Len(t, r.header.Get("X-Okta-Request-Id"), 27)
			assert.Equal(t, "600", r.header.Get("X-Rate-Limit-Limit"))
			assert.NotEmpty(t, r.header.Get("X-Rate-Limit-Remaining"))
			assert.NotEmpty(t, r.header.Get("X-Rate-Limit-Reset"))
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			if tc.code != "" {
				oe := r.oktaError(t)
				assert.Equal(t, tc.code, oe.ErrorCode)
				assert.Equal(t, tc.code, oe.ErrorLink)
				assert.True(t, strings.HasPrefix(oe.ErrorID, "oae"))
				assert.NotNil(t, oe.ErrorCauses)
			}
			// Okta says what was not found: a User, or an Endpoint. Clients
			// tell "no such user" from "no such route" by it.
			switch tc.name {
			case "missing user", "roles of a missing user":
				assert.Equal(t, "Not found: Resource not found: 00uNOPE (User)", r.oktaError(t).ErrorSummary)
			case "unknown endpoint":
				assert.Equal(t, "Not found: Resource not found: /api/v1/nothing (Endpoint)", r.oktaError(t).ErrorSummary)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, Options{RateLimitPerMinute: 3})
	u, _ := e.sim.User(demo.People(1)[0].Email)
	path := "/api/v1/users/" + u.ID
	before := time.Now().Unix()
	for i := range 3 {
		r := e.api("GET", path)
		require.Equal(t, 200, r.status)
		assert.Equal(t, "3", r.header.Get("X-Rate-Limit-Limit"))
		assert.Equal(t, strconv.Itoa(2-i), r.header.Get("X-Rate-Limit-Remaining"))
	}
	r := e.api("GET", path)
	require.Equal(t, 429, r.status)
	assert.Equal(t, "E0000047", r.oktaError(t).ErrorCode)
	assert.Equal(t, "0", r.header.Get("X-Rate-Limit-Remaining"))
	reset, err := strconv.ParseInt(r.header.Get("X-Rate-Limit-Reset"), 10, 64)
	require.NoError(t, err)
	assert.InDelta(t, before+60, reset, 2)

	// Buckets are per endpoint: another user's id shares it, the grants list does not.
	assert.Equal(t, 429, e.api("GET", "/api/v1/users/00uOTHER").status)
	assert.Equal(t, 200, e.api("GET", path+"/grants").status)
	// Admin endpoints are never limited.
	assert.Equal(t, 200, e.do("GET", "/_sandbox/users/"+u.ID, "").status)
}

func TestInjectedFaults(t *testing.T) {
	faults := fault.New()
	e := newEnv(t, Options{Faults: faults})
	u, _ := e.sim.User(demo.People(1)[0].Email)
	faults.Add(fault.Rule{PathPrefix: "/api/v1/users/" + u.ID + "/lifecycle", Status: 503, Count: 1})
	faults.Add(fault.Rule{PathPrefix: "/api/v1/users/" + u.ID + "/grants", Status: 429, RetryAfter: 30 * time.Second, Count: 1})

	r := e.api("POST", "/api/v1/users/"+u.ID+"/lifecycle/suspend")
	require.Equal(t, 503, r.status)
	assert.Equal(t, "E0000009", r.oktaError(t).ErrorCode)
	assert.NotEmpty(t, r.header.Get("X-Rate-Limit-Reset"))
	got, _ := e.sim.User(u.ID)
	assert.Equal(t, StatusActive, got.Status, "a faulted call changes nothing")

	r = e.api("GET", "/api/v1/users/"+u.ID+"/grants")
	require.Equal(t, 429, r.status)
	reset, _ := strconv.ParseInt(r.header.Get("X-Rate-Limit-Reset"), 10, 64)
	assert.InDelta(t, time.Now().Add(30*time.Second).Unix(), reset, 2)

	assert.Equal(t, 200, e.api("POST", "/api/v1/users/"+u.ID+"/lifecycle/suspend").status, "count-limited rules stop firing")

	// Over HTTP too.
	req, _ := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+"/_sandbox/faults", strings.NewReader(`{"pathPrefix":"/api/v1/groups","status":500}`))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 500, e.api("GET", "/api/v1/groups").status)
}

func TestAdminEndpoints(t *testing.T) {
	e := newEnv(t, Options{People: []demo.Person{}})
	p := demo.Person{EmployeeID: "E9", First: "Test", Last: "Person", Login: "test.person9", Email: "test.person9@example.test", Department: "sales"}
	body, _ := json.Marshal(p)
	post := func() *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+"/_sandbox/users", strings.NewReader(string(body)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, 201, post().StatusCode)
	require.Equal(t, 409, post().StatusCode)

	u, ok := e.sim.User(p.Email)
	require.True(t, ok)
	require.Equal(t, 200, e.api("POST", "/api/v1/users/"+u.ID+"/lifecycle/suspend").status)

	r := e.do("GET", "/_sandbox/users/"+p.Email, "")
	require.Equal(t, 200, r.status)
	var view adminView
	require.NoError(t, json.Unmarshal(r.body, &view))
	assert.Equal(t, StatusSuspended, view.Status)
	assert.Equal(t, []string{"suspend"}, actions(view.Transitions))

	require.Equal(t, 204, e.do("POST", "/_sandbox/reset", "").status)
	_, ok = e.sim.User(p.Email)
	assert.False(t, ok, "reset goes back to the seeded people only")
	assert.Equal(t, 404, e.do("GET", "/_sandbox/users/"+p.Email, "").status)
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, Options{People: demo.People(100), RateLimitPerMinute: 100000})
	var wg sync.WaitGroup
	for _, p := range demo.People(100) {
		wg.Go(func() {
			u, _ := e.sim.User(p.Email)
			r := e.api("POST", "/api/v1/users/"+u.ID+"/lifecycle/suspend")
			assert.Equal(t, 200, r.status)
			e.api("GET", "/api/v1/users?search="+url.QueryEscape(fmt.Sprintf(`profile.email eq %q`, p.Email)))
			assert.Equal(t, 204, e.api("DELETE", "/api/v1/users/"+u.ID+"/sessions").status)
		})
	}
	wg.Wait()
	for _, p := range demo.People(100) {
		u, _ := e.sim.User(p.Email)
		assert.Equal(t, StatusSuspended, u.Status)
		assert.Equal(t, []string{"suspend", "clear_sessions"}, actions(e.sim.Transitions(u.ID)))
	}
}

func TestParseExpr(t *testing.T) {
	u := &user{id: "00u1", status: "ACTIVE", login: "a@x.test", email: "a@x.test", first: "Ada", department: "eng"}
	for _, tc := range []struct {
		expr string
		want bool
		bad  bool
	}{
		{`profile.email eq "A@X.test"`, true, false},
		{`profile.email eq "b@x.test"`, false, false},
		{`profile.email eq "b@x.test" or profile.login eq "a@x.test"`, true, false},
		{`(status eq "ACTIVE" or status eq "SUSPENDED") and profile.department eq "eng"`, true, false},
		{`status eq "ACTIVE" and profile.department eq "sales"`, false, false},
		{`profile.firstName sw "ad"`, true, false},
		{`profile.email pr`, true, false},
		{`profile.email eq "quote\"inside"`, false, false},
		{`profile.email eq`, false, true},
		{`profile.email eq "unterminated`, false, true},
		{`nonsense eq "x"`, false, true},
		{`profile.email like "x"`, false, true},
		{`(status eq "ACTIVE"`, false, true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			e, err := parseExpr(tc.expr)
			if tc.bad {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, e.matches(u))
		})
	}
}

// TestMeAndRoles: /users/me is the token's owner; /users/{id}/roles lists
// admin roles as Okta does, the admins group's members holding SUPER_ADMIN
// through it, so removing the group takes the role away.
func TestMeAndRoles(t *testing.T) {
	e := newEnv(t, Options{})
	me := e.api("GET", "/api/v1/users/me")
	require.Equal(t, 200, me.status)
	var owner map[string]any
	require.NoError(t, json.Unmarshal(me.body, &owner))
	assert.Equal(t, "ACTIVE", owner["status"])
	assert.Equal(t, "offboard-api@sandbox.okta.test", owner["profile"].(map[string]any)["login"])
	id := owner["id"].(string)
	assert.Regexp(t, `^00u\w{17}$`, id)

	roles := func(path string) []map[string]any {
		r := e.api("GET", path)
		require.Equal(t, 200, r.status, string(r.body))
		var out []map[string]any
		require.NoError(t, json.Unmarshal(r.body, &out))
		return out
	}
	for _, path := range []string{"/api/v1/users/me/roles", "/api/v1/users/" + id + "/roles"} {
		got := roles(path)
		require.Len(t, got, 1, path)
		assert.Equal(t, "SUPER_ADMIN", got[0]["type"])
		assert.Equal(t, "USER", got[0]["assignmentType"])
		assert.Equal(t, "ACTIVE", got[0]["status"])
	}

	people := demo.People(20)
	admin, _ := e.sim.User(people[9].Email)
	got := roles("/api/v1/users/" + admin.ID + "/roles")
	require.Len(t, got, 1)
	assert.Equal(t, "SUPER_ADMIN", got[0]["type"])
	assert.Equal(t, "GROUP", got[0]["assignmentType"])
	assert.Equal(t, "Super Organization Administrator", got[0]["label"])
	plain, _ := e.sim.User(people[1].Email)
	assert.Empty(t, roles("/api/v1/users/"+plain.ID+"/roles"))

	gid := e.sim.groupNames["admins"]
	require.Equal(t, 204, e.api("DELETE", "/api/v1/groups/"+gid+"/users/"+admin.ID).status)
	assert.Empty(t, roles("/api/v1/users/"+admin.ID+"/roles"))
}
