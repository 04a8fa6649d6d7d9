package okta

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/simstate/simstatetest"
)

// view answers each GET as a client sees it (status and body), with the
// server's address taken out so two servers compare.
func (e *env) view(paths ...string) map[string]string {
	e.t.Helper()
	out := make(map[string]string, len(paths))
	for _, p := range paths {
		tok := token
		if strings.HasPrefix(p, "/_sandbox/") {
			tok = ""
		}
		r := e.do("GET", p, tok)
		out[p] = http.StatusText(r.status) + " " + strings.ReplaceAll(string(r.body), e.srv.URL, "http://sim")
	}
	return out
}

func (e *env) post(path string, v any) result {
	e.t.Helper()
	body, err := json.Marshal(v)
	require.NoError(e.t, err)
	req, err := http.NewRequestWithContext(e.t.Context(), "POST", e.srv.URL+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out bytes.Buffer
	_, err = out.ReadFrom(resp.Body)
	require.NoError(e.t, err)
	return result{status: resp.StatusCode, header: resp.Header, body: out.Bytes()}
}

// groupID finds a group's id through the API.
func (e *env) groupID(name string) string {
	e.t.Helper()
	r := e.api("GET", "/api/v1/groups?q="+url.QueryEscape(name))
	require.Equal(e.t, 200, r.status)
	var groups []struct {
		ID      string `json:"id"`
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
	}
	require.NoError(e.t, json.Unmarshal(r.body, &groups))
	for _, g := range groups {
		if g.Profile.Name == name {
			return g.ID
		}
	}
	e.t.Fatalf("no group %s", name)
	return ""
}

// userIDs lists every user id the API returns, any status.
func (e *env) userIDs() []string {
	e.t.Helper()
	r := e.api("GET", "/api/v1/users?limit=200&search="+url.QueryEscape(`status pr`))
	require.Equal(e.t, 200, r.status, string(r.body))
	var users []struct{ ID string }
	require.NoError(e.t, json.Unmarshal(r.body, &users))
	var ids []string
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	return ids
}

// A directory saved and loaded into a simulator seeded with other people
// answers as the old one did: the suspended user, the removed membership,
// the cleared sessions and revoked grants, the deleted user's history, the
// person added later and the group that came with them.
func TestStateSurvivesARestart(t *testing.T) {
	old := newEnv(t, Options{})
	people := demo.People(20)
	ada, _ := old.sim.User(people[0].Email) // engineering
	alan, _ := old.sim.User(people[1].Email)
	grace, _ := old.sim.User(people[2].Email)
	admin, _ := old.sim.User(people[9].Email)
	eng := old.groupID("engineering")

	require.Equal(t, 200, old.api("POST", "/api/v1/users/"+ada.ID+"/lifecycle/suspend").status)
	require.Equal(t, 204, old.api("DELETE", "/api/v1/users/"+ada.ID+"/sessions?oauthTokens=true").status)
	require.Equal(t, 204, old.api("DELETE", "/api/v1/groups/"+eng+"/users/"+ada.ID).status)
	require.Equal(t, 204, old.api("DELETE", "/api/v1/users/"+alan.ID+"/grants").status)
	require.Equal(t, 204, old.api("DELETE", "/api/v1/users/"+grace.ID).status)
	require.Equal(t, 204, old.api("DELETE", "/api/v1/users/"+grace.ID).status)
	hedy := demo.Person{EmployeeID: "E9001", First: "Hedy", Last: "Lamarr", Login: "hedy.lamarr9001", Email: "hedy.lamarr9001@example.test", Department: "research"}
	require.Equal(t, 201, old.post("/_sandbox/users", hedy).status)
	research := old.groupID("research")

	paths := []string{
		"/api/v1/users?limit=200",
		"/api/v1/users?search=" + url.QueryEscape(`status eq "SUSPENDED"`),
		"/api/v1/users?search=" + url.QueryEscape(`profile.department eq "research"`),
		"/api/v1/users/" + ada.ID,
		"/api/v1/users/" + ada.ID + "/groups",
		"/api/v1/users/" + alan.ID + "/grants",
		"/api/v1/users/" + admin.ID + "/grants",
		"/api/v1/groups",
		"/api/v1/groups/" + eng,
		"/api/v1/groups/" + eng + "/users",
		"/api/v1/groups/" + research + "/users",
		"/_sandbox/users/" + ada.ID,
		"/_sandbox/users/" + alan.ID,
		"/_sandbox/users/" + grace.ID, // gone, but its transitions are kept
		"/_sandbox/users/" + hedy.Email,
	}
	before := old.view(paths...)
	var saved bytes.Buffer
	require.NoError(t, old.sim.SaveState(&saved))
	var again bytes.Buffer
	require.NoError(t, old.sim.SaveState(&again))
	assert.Equal(t, saved.String(), again.String(), "an unchanged directory saves to the same bytes")

	other := demo.People(21)[20]
	fresh := newEnv(t, Options{People: []demo.Person{other}})
	for _, p := range paths {
		assert.NotEqual(t, before[p], fresh.view(p)[p], "the new seed answers %s differently", p)
	}
	require.NoError(t, fresh.sim.LoadState(bytes.NewReader(saved.Bytes())))

	after := fresh.view(paths...)
	for _, p := range paths {
		assert.Equal(t, before[p], after[p], "GET %s", p)
	}
	var resaved bytes.Buffer
	require.NoError(t, fresh.sim.SaveState(&resaved))
	assert.Equal(t, saved.String(), resaved.String(), "nothing lost or added on the way")

	// What a client sees, spelled out.
	r := fresh.api("GET", "/api/v1/users/"+strings.ToUpper(ada.Login)) // the login index is rebuilt
	require.Equal(t, 200, r.status)
	var got struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(r.body, &got))
	assert.Equal(t, ada.ID, got.ID)
	assert.Equal(t, StatusSuspended, got.Status, "still suspended, not freshly seeded")
	u, _ := fresh.sim.User(ada.ID)
	assert.Equal(t, []string{"Everyone", "all-staff"}, u.Groups)
	assert.Zero(t, u.Sessions)
	assert.JSONEq(t, "[]", string(fresh.api("GET", "/api/v1/users/"+alan.ID+"/grants").body))
	assert.Equal(t, 404, fresh.api("GET", "/api/v1/users/"+grace.ID).status)
	assert.Equal(t, []string{"deactivate", "delete"}, actions(fresh.sim.Transitions(grace.ID)))
	assert.Equal(t, 404, fresh.api("GET", "/api/v1/users/"+other.Email).status, "the new seed is gone")

	// The directory goes on working: new users get their own ids, taken
	// logins are refused, group names still resolve, memberships change on
	// both sides.
	loaded := fresh.userIDs()
	require.Len(t, loaded, 20) // 20 seeded, grace deleted, hedy added
	assert.Equal(t, 409, fresh.post("/_sandbox/users", hedy).status, "hedy's login is taken")
	assert.Equal(t, 409, fresh.post("/_sandbox/users", demo.Person{Email: strings.ToUpper(ada.Login)}).status)
	ida := demo.Person{EmployeeID: "E9002", First: "Ida", Last: "Rhodes", Login: "ida.rhodes9002", Email: "ida.rhodes9002@example.test", Department: "research"}
	r = fresh.post("/_sandbox/users", ida)
	require.Equal(t, 201, r.status, string(r.body))
	var added adminView
	require.NoError(t, json.Unmarshal(r.body, &added))
	assert.NotContains(t, loaded, added.ID, "a new user gets a fresh id")
	assert.Len(t, fresh.userIDs(), 21)
	assert.Equal(t, research, fresh.groupID("research"), "no second research group")
	var researchers []struct{ ID string }
	require.NoError(t, json.Unmarshal(fresh.api("GET", "/api/v1/groups/"+research+"/users").body, &researchers))
	assert.Len(t, researchers, 2)

	require.Equal(t, 200, fresh.api("POST", "/api/v1/users/"+ada.ID+"/lifecycle/unsuspend").status)
	require.Equal(t, 204, fresh.api("PUT", "/api/v1/groups/"+eng+"/users/"+ada.ID).status)
	u, _ = fresh.sim.User(ada.ID)
	assert.Equal(t, StatusActive, u.Status)
	assert.Equal(t, []string{"Everyone", "all-staff", "engineering"}, u.Groups)
	assert.Equal(t, []string{"suspend", "clear_sessions", "remove_group", "unsuspend", "add_group"}, actions(fresh.sim.Transitions(ada.Email)))
	assert.Equal(t, 400, fresh.api("POST", "/api/v1/users/"+alan.ID+"/lifecycle/unsuspend").status, "alan is active")

	// Reset still goes back to this simulator's own seed.
	require.Equal(t, 204, fresh.do("POST", "/_sandbox/reset", "").status)
	assert.Equal(t, 200, fresh.api("GET", "/api/v1/users/"+other.Email).status)
	assert.Equal(t, 404, fresh.api("GET", "/api/v1/users/"+ada.ID).status)
}

func item(m map[string]any, list string, i int) map[string]any {
	return m[list].([]any)[i].(map[string]any)
}

// A document that is not version 1, not JSON or not consistent is refused
// with a reason, and the simulator answers exactly as before.
func TestLoadStateRejectsBadDocuments(t *testing.T) {
	var good bytes.Buffer
	require.NoError(t, New(Options{Token: token, People: demo.People(3)}).SaveState(&good))
	doc := good.Bytes()

	e := newEnv(t, Options{})
	ada, _ := e.sim.User(demo.People(1)[0].Email)
	require.Equal(t, 200, e.api("POST", "/api/v1/users/"+ada.ID+"/lifecycle/suspend").status)
	paths := []string{"/api/v1/users?limit=200", "/api/v1/users/" + ada.ID, "/api/v1/groups", "/_sandbox/users/" + ada.ID}
	before := e.view(paths...)
	var state bytes.Buffer
	require.NoError(t, e.sim.SaveState(&state))

	for _, tc := range []struct{ name, doc, want string }{
		{"unknown version", strings.Replace(string(doc), `"version": 1`, `"version": 2`, 1), "version 2, want 1"},
		{"no version", simstatetest.Edit(t, doc, func(m map[string]any) { delete(m, "version") }), "no version"},
		{"not JSON", string(doc[:len(doc)/2]), "not a state document"},
		{"trailing garbage", string(doc) + "}", "not a state document"},
		{"unknown field", simstatetest.Edit(t, doc, func(m map[string]any) { m["faults"] = []any{} }), `unknown field "faults"`},
		{"member not a user", simstatetest.Edit(t, doc, func(m map[string]any) {
			g := item(m, "groups", 0)
			g["members"] = append(g["members"].([]any), "00uNOBODY")
		}), "has member 00uNOBODY, which is not a user"},
		{"login twice", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(m, "users", 1)["login"] = strings.ToUpper(item(m, "users", 0)["login"].(string))
		}), "belongs to both"},
		{"user id twice", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(m, "users", 1)["id"] = item(m, "users", 0)["id"]
		}), "appears twice"},
		{"unknown status", simstatetest.Edit(t, doc, func(m map[string]any) { item(m, "users", 0)["status"] = "ZOMBIE" }), `unknown status "ZOMBIE"`},
		{"grant without id", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(item(m, "users", 0), "grants", 0)["id"] = ""
		}), "grant without an id"},
		{"group name twice", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(m, "groups", 1)["name"] = item(m, "groups", 0)["name"]
		}), "belongs to both"},
		{"no Everyone", simstatetest.Edit(t, doc, func(m map[string]any) {
			groups := m["groups"].([]any)
			m["groups"] = slices.DeleteFunc(groups, func(g any) bool { return g.(map[string]any)["name"] == everyone })
		}), "no BUILT_IN group Everyone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.sim.LoadState(strings.NewReader(tc.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "okta: load state: ")
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, e.view(paths...), "the API answers as before")
			var now bytes.Buffer
			require.NoError(t, e.sim.SaveState(&now))
			assert.Equal(t, state.String(), now.String(), "the state is as it was")
		})
	}

	// The document the bad ones were made from loads.
	require.NoError(t, e.sim.LoadState(bytes.NewReader(doc)))
	assert.Len(t, e.userIDs(), 3)
	u, _ := e.sim.User(ada.ID)
	assert.Equal(t, StatusActive, u.Status)
}

// Saving and loading while clients call the API is safe (run with -race):
// both hold the simulator's lock.
func TestStateConcurrentWithHandlers(t *testing.T) {
	e := newEnv(t, Options{People: demo.People(30), RateLimitPerMinute: 100000})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var b bytes.Buffer
			assert.NoError(t, e.sim.SaveState(&b))
			assert.NoError(t, e.sim.LoadState(&b))
		}
	})
	var clients sync.WaitGroup
	for _, p := range demo.People(30) {
		clients.Go(func() {
			u, _ := e.sim.User(p.Email)
			assert.Equal(t, 200, e.api("POST", "/api/v1/users/"+u.ID+"/lifecycle/suspend").status)
			assert.Equal(t, 204, e.api("DELETE", "/api/v1/users/"+u.ID+"/sessions").status)
			assert.Equal(t, 200, e.api("GET", "/api/v1/users/"+u.ID+"/groups").status)
		})
	}
	clients.Wait()
	close(stop)
	wg.Wait()
	// A load may have undone a suspension saved just before it; whatever
	// the directory holds now saves and loads unchanged.
	var b1, b2 bytes.Buffer
	require.NoError(t, e.sim.SaveState(&b1))
	require.NoError(t, e.sim.LoadState(bytes.NewReader(b1.Bytes())))
	require.NoError(t, e.sim.SaveState(&b2))
	assert.Equal(t, b1.String(), b2.String())
}
