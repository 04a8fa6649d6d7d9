package graph_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/graph"
	"github.com/offboard/offboard/sandbox/simstate/simstatetest"
)

// newUnthrottled is a simulator the state tests can call as often as they like.
func newUnthrottled(t *testing.T, people []demo.Person) (*graph.Sim, *httptest.Server) {
	t.Helper()
	sim := graph.New(graph.Options{People: people, RequestsPerSecond: 1_000_000})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv
}

// allUserProperties selects every property the simulator serves for a user.
const allUserProperties = "id,userPrincipalName,mail,displayName,givenName,surname,jobTitle,department,accountEnabled," +
	"signInSessionsValidFromDateTime,assignedLicenses,licenseAssignmentStates,businessPhones,mobilePhone,officeLocation,preferredLanguage"

// view answers each GET as a client sees it: the status and every page of
// the body (following @odata.nextLink), with the server's address taken out
// so two servers compare. Error bodies carry request ids, so only their
// status is kept.
func view(t *testing.T, srv *httptest.Server, paths ...string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(paths))
	for _, p := range paths {
		var b strings.Builder
		for next := srv.URL + p; next != ""; {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, next, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			b.WriteString(http.StatusText(resp.StatusCode))
			next = ""
			if resp.StatusCode != http.StatusOK {
				break
			}
			b.WriteString(" " + strings.ReplaceAll(string(raw), srv.URL, "http://sim") + "\n")
			var page struct {
				Next string `json:"@odata.nextLink"`
			}
			if json.Unmarshal(raw, &page) == nil {
				next = page.Next
			}
		}
		out[p] = b.String()
	}
	return out
}

func memberOfNames(t *testing.T, srv *httptest.Server, id, cast string) []string {
	t.Helper()
	names := []string{}
	for next := srv.URL + "/v1.0/users/" + id + "/memberOf" + cast + "?$select=displayName"; next != ""; {
		resp, body := do(t, http.MethodGet, next, nil, nil)
		require.Equal(t, 200, resp.StatusCode, body)
		for _, v := range body["value"].([]any) {
			names = append(names, v.(map[string]any)["displayName"].(string))
		}
		next, _ = body["@odata.nextLink"].(string)
	}
	return names
}

func groupIDOf(t *testing.T, srv *httptest.Server, userID, name string) string {
	t.Helper()
	for next := srv.URL + "/v1.0/users/" + userID + "/memberOf/microsoft.graph.group"; next != ""; {
		_, body := do(t, http.MethodGet, next, nil, nil)
		for _, v := range body["value"].([]any) {
			if item := v.(map[string]any); item["displayName"] == name {
				return item["id"].(string)
			}
		}
		next, _ = body["@odata.nextLink"].(string)
	}
	t.Fatalf("%s is not in %s", userID, name)
	return ""
}

// A directory saved and loaded into a simulator seeded with other people
// answers as the old one did: the disabled account, the revoked sessions,
// the removed licence, group membership and directory role, the deleted
// user and its history.
func TestStateSurvivesARestart(t *testing.T) {
	old, srv := newUnthrottled(t, demo.People(20))
	people := demo.People(20)
	ada, _ := old.User(people[0].Email) // engineering: E3 and EMS
	alan, _ := old.User(people[1].Email)
	fin, _ := old.User(people[2].Email)   // finance: Power BI through the group
	admin, _ := old.User(people[9].Email) // Global Reader
	other := people[19]                   // Global Reader too
	api := srv.URL + "/v1.0"
	eng := groupIDOf(t, srv, ada.ID, "engineering")
	finance := groupIDOf(t, srv, fin.ID, graph.LicensedGroup)
	dyn := groupIDOf(t, srv, fin.ID, graph.DynamicGroup)

	resp, _ := do(t, http.MethodPatch, api+"/users/"+ada.ID, []byte(`{"accountEnabled":false}`), nil)
	require.Equal(t, 204, resp.StatusCode)
	resp, _ = do(t, http.MethodPost, api+"/users/"+ada.ID+"/revokeSignInSessions", nil, nil)
	require.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, http.MethodPost, api+"/users/"+ada.ID+"/assignLicense", []byte(`{"addLicenses":[],"removeLicenses":["`+graph.SkuEMSE3+`"]}`), nil)
	require.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, http.MethodDelete, api+"/groups/"+eng+"/members/"+ada.ID+"/$ref", nil, nil)
	require.Equal(t, 204, resp.StatusCode)
	resp, _ = do(t, http.MethodDelete, api+"/directoryRoles/"+graph.GlobalReaderTemplate+"/members/"+admin.ID+"/$ref", nil, nil)
	require.Equal(t, 204, resp.StatusCode)
	resp, _ = do(t, http.MethodDelete, api+"/users/"+alan.ID, nil, nil)
	require.Equal(t, 204, resp.StatusCode)

	sel := "?$select=" + allUserProperties
	paths := []string{
		"/v1.0/users" + sel,
		"/v1.0/users?$filter=" + url.QueryEscape("mail eq '"+ada.UPN+"'"),
		"/v1.0/users/" + ada.ID + sel,
		"/v1.0/users/" + fin.ID + sel,
		"/v1.0/users/" + alan.ID,
		"/v1.0/users/" + ada.ID + "/memberOf",
		"/v1.0/users/" + admin.ID + "/memberOf",
		"/v1.0/users/" + fin.ID + "/memberOf",
		"/v1.0/users/" + other.Email + "/memberOf/microsoft.graph.directoryRole",
		"/_sandbox/users/" + ada.UPN,
		"/_sandbox/users/" + admin.UPN,
	}
	before := view(t, srv, paths...)
	var saved bytes.Buffer
	require.NoError(t, old.SaveState(&saved))
	var again bytes.Buffer
	require.NoError(t, old.SaveState(&again))
	assert.Equal(t, saved.String(), again.String(), "an unchanged directory saves to the same bytes")

	newcomer := demo.People(21)[20]
	fresh, fsrv := newUnthrottled(t, []demo.Person{newcomer})
	for _, p := range paths {
		if p != "/v1.0/users/"+alan.ID { // 404 in both
			assert.NotEqual(t, before[p], view(t, fsrv, p)[p], "the new seed answers %s differently", p)
		}
	}
	require.NoError(t, fresh.LoadState(bytes.NewReader(saved.Bytes())))

	after := view(t, fsrv, paths...)
	for _, p := range paths {
		assert.Equal(t, before[p], after[p], "GET %s", p)
	}
	var resaved bytes.Buffer
	require.NoError(t, fresh.SaveState(&resaved))
	assert.Equal(t, saved.String(), resaved.String(), "nothing lost or added on the way")

	// What a client sees, spelled out.
	api = fsrv.URL + "/v1.0"
	resp, body := do(t, http.MethodGet, api+"/users/"+url.PathEscape(strings.ToUpper(ada.UPN))+"?$select=id,accountEnabled,signInSessionsValidFromDateTime", nil, nil)
	require.Equal(t, 200, resp.StatusCode, "the UPN index is rebuilt")
	assert.Equal(t, ada.ID, body["id"])
	assert.Equal(t, false, body["accountEnabled"], "still disabled, not freshly seeded")
	got, _ := fresh.User(ada.ID)
	revoked, _ := old.User(ada.ID)
	assert.Equal(t, revoked.SignInSessionsValidFrom.UTC(), got.SignInSessionsValidFrom.UTC(), "sessions still revoked at the same time")
	assert.Equal(t, []string{graph.SkuOffice365E3}, got.Licenses)
	assert.Equal(t, []string{"all-staff", graph.DynamicGroup}, memberOfNames(t, fsrv, ada.ID, ""))
	assert.Empty(t, memberOfNames(t, fsrv, admin.ID, "/microsoft.graph.directoryRole"), "the role stays removed")
	assert.Equal(t, []string{graph.GlobalReader}, memberOfNames(t, fsrv, other.Email, "/microsoft.graph.directoryRole"))
	resp, _ = do(t, http.MethodGet, api+"/users/"+alan.ID, nil, nil)
	assert.Equal(t, 404, resp.StatusCode, "still deleted")
	var deleted []string
	for _, tr := range fresh.Transitions(alan.UPN) { // found by the UPN kept after deletion
		deleted = append(deleted, tr.Action)
	}
	assert.Equal(t, []string{"delete"}, deleted)
	resp, _ = do(t, http.MethodGet, api+"/users/"+newcomer.Email, nil, nil)
	assert.Equal(t, 404, resp.StatusCode, "the new seed is gone")

	// The directory goes on working: roles by template id, groups by id,
	// the dynamic group and group-based licences as before.
	resp, _ = do(t, http.MethodDelete, api+"/directoryRoles/"+graph.GlobalReaderTemplate+"/members/"+other.Email+"/$ref", nil, nil)
	assert.Equal(t, 204, resp.StatusCode)
	resp, _ = do(t, http.MethodDelete, api+"/directoryRoles/"+graph.GlobalReaderTemplate+"/members/"+admin.ID+"/$ref", nil, nil)
	assert.Equal(t, 404, resp.StatusCode, "not a member any more")
	resp, _ = do(t, http.MethodDelete, api+"/groups/"+dyn+"/members/"+fin.ID+"/$ref", nil, nil)
	assert.Equal(t, 400, resp.StatusCode, "still a dynamic group")
	resp, body = do(t, http.MethodPost, api+"/users/"+fin.ID+"/assignLicense", []byte(`{"addLicenses":[],"removeLicenses":["`+graph.SkuPowerBIPro+`"]}`), nil)
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, body["error"].(map[string]any)["message"], "inherited", "the group still grants the licence")
	resp, _ = do(t, http.MethodDelete, api+"/groups/"+finance+"/members/"+fin.ID+"/$ref", nil, nil)
	assert.Equal(t, 204, resp.StatusCode)
	got, _ = fresh.User(fin.ID)
	assert.Empty(t, got.GroupLicenses)
	resp, _ = do(t, http.MethodPatch, api+"/users/"+ada.ID, []byte(`{"accountEnabled":true}`), nil)
	require.Equal(t, 204, resp.StatusCode)
	var actions []string
	for _, tr := range fresh.Transitions(ada.UPN) {
		actions = append(actions, tr.Action)
	}
	assert.Equal(t, []string{"disable", "revoke_sessions", "remove_license", "remove_group", "enable"}, actions)
}

func item(m map[string]any, list string, i int) map[string]any {
	return m[list].([]any)[i].(map[string]any)
}

func appendTo(m map[string]any, list string, v any) {
	m[list] = append(m[list].([]any), v)
}

// A document that is not version 1, not JSON or not consistent is refused
// with a reason, and the simulator answers exactly as before.
func TestLoadStateRejectsBadDocuments(t *testing.T) {
	// The bad documents are made from a good one with a deleted user.
	src, ssrv := newUnthrottled(t, demo.People(10))
	gone, _ := src.User(demo.People(10)[1].Email)
	resp, _ := do(t, http.MethodDelete, ssrv.URL+"/v1.0/users/"+gone.ID, nil, nil)
	require.Equal(t, 204, resp.StatusCode)
	var good bytes.Buffer
	require.NoError(t, src.SaveState(&good))
	doc := good.Bytes()

	sim, srv := newUnthrottled(t, demo.People(20))
	ada, _ := sim.User(demo.People(1)[0].Email)
	resp, _ = do(t, http.MethodPatch, srv.URL+"/v1.0/users/"+ada.ID, []byte(`{"accountEnabled":false}`), nil)
	require.Equal(t, 204, resp.StatusCode)
	paths := []string{"/v1.0/users?$select=" + allUserProperties, "/v1.0/users/" + ada.ID + "/memberOf", "/_sandbox/users/" + ada.UPN}
	before := view(t, srv, paths...)
	var state bytes.Buffer
	require.NoError(t, sim.SaveState(&state))

	for _, tc := range []struct{ name, doc, want string }{
		{"unknown version", strings.Replace(string(doc), `"version": 1`, `"version": 2`, 1), "version 2, want 1"},
		{"no version", simstatetest.Edit(t, doc, func(m map[string]any) { delete(m, "version") }), "no version"},
		{"not JSON", string(doc[:len(doc)/2]), "not a state document"},
		{"trailing garbage", string(doc) + "{}", "not a state document"},
		{"unknown field", simstatetest.Edit(t, doc, func(m map[string]any) { m["throttle"] = 5 }), `unknown field "throttle"`},
		{"group member not a user", simstatetest.Edit(t, doc, func(m map[string]any) {
			appendTo(item(m, "groups", 0), "members", "00000000-0000-5000-8000-000000000000")
		}), "has member 00000000-0000-5000-8000-000000000000, which is not a user"},
		{"role member deleted", simstatetest.Edit(t, doc, func(m map[string]any) {
			appendTo(item(m, "directoryRoles", 0), "members", gone.ID)
		}), "has member " + gone.ID + ", a deleted user"},
		{"live and deleted", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(m, "deletedUsers", 0)["id"] = item(m, "users", 0)["id"]
		}), "both live and deleted"},
		{"UPN twice", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(m, "users", 1)["userPrincipalName"] = strings.ToUpper(item(m, "users", 0)["userPrincipalName"].(string))
		}), "belongs to both"},
		{"upper-case id", simstatetest.Edit(t, doc, func(m map[string]any) {
			u := item(m, "users", 0)
			u["id"] = strings.ToUpper(u["id"].(string))
		}), "is not lower-case"},
		{"licence twice", simstatetest.Edit(t, doc, func(m map[string]any) {
			appendTo(item(m, "users", 0), "licenses", graph.SkuOffice365E3)
		}), "twice"},
		{"group id twice", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(m, "groups", 1)["id"] = strings.ToUpper(item(m, "groups", 0)["id"].(string))
		}), "has the id"},
		{"role without template", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(m, "directoryRoles", 0)["roleTemplateId"] = ""
		}), "has no roleTemplateId"},
		{"template names a group", simstatetest.Edit(t, doc, func(m map[string]any) {
			item(m, "directoryRoles", 0)["roleTemplateId"] = item(m, "groups", 0)["id"]
		}), "roleTemplateId has the id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sim.LoadState(strings.NewReader(tc.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "graph: load state: ")
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, view(t, srv, paths...), "the API answers as before")
			var now bytes.Buffer
			require.NoError(t, sim.SaveState(&now))
			assert.Equal(t, state.String(), now.String(), "the state is as it was")
		})
	}

	// The document the bad ones were made from loads.
	require.NoError(t, sim.LoadState(bytes.NewReader(doc)))
	got, ok := sim.User(ada.ID)
	require.True(t, ok)
	assert.True(t, got.AccountEnabled)
	_, ok = sim.User(demo.People(20)[15].Email)
	assert.False(t, ok)
}

// Saving and loading while clients call the API is safe (run with -race):
// both hold the simulator's lock.
func TestStateConcurrentWithHandlers(t *testing.T) {
	sim, srv := newUnthrottled(t, demo.People(30))
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
			assert.NoError(t, sim.SaveState(&b))
			assert.NoError(t, sim.LoadState(&b))
		}
	})
	var clients sync.WaitGroup
	for _, p := range demo.People(30) {
		clients.Go(func() {
			u := srv.URL + "/v1.0/users/" + url.PathEscape(p.Email)
			resp, _ := do(t, http.MethodPatch, u, []byte(`{"accountEnabled":false}`), nil)
			assert.Equal(t, 204, resp.StatusCode)
			resp, _ = do(t, http.MethodPost, u+"/revokeSignInSessions", nil, nil)
			assert.Equal(t, 200, resp.StatusCode)
			resp, _ = do(t, http.MethodGet, u+"/memberOf", nil, nil)
			assert.Equal(t, 200, resp.StatusCode)
		})
	}
	clients.Wait()
	close(stop)
	wg.Wait()
	// A load may have undone a change saved just before it; whatever the
	// directory holds now saves and loads unchanged.
	var b1, b2 bytes.Buffer
	require.NoError(t, sim.SaveState(&b1))
	require.NoError(t, sim.LoadState(bytes.NewReader(b1.Bytes())))
	require.NoError(t, sim.SaveState(&b2))
	assert.Equal(t, b1.String(), b2.String())
}
