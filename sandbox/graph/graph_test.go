package graph_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/graph"
)

func newServer(t *testing.T, rps int) (*graph.Sim, *httptest.Server) {
	t.Helper()
	sim := graph.New(graph.Options{People: demo.People(20), RequestsPerSecond: rps})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv
}

func do(t *testing.T, method, u string, body []byte, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "body: %s", raw)
	}
	return resp, out
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := w.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

func TestPatchAcceptsGzipBodies(t *testing.T) {
	sim, srv := newServer(t, 0)
	upn := demo.People(1)[0].Email
	tests := []struct {
		name    string
		body    []byte
		header  map[string]string
		status  int
		enabled bool
	}{
		{"gzip", gz(t, `{"@odata.type":"#microsoft.graph.user","accountEnabled":false}`),
			map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/json"}, 204, false},
		{"plain", []byte(`{"accountEnabled":true}`), map[string]string{"Content-Type": "application/json"}, 204, true},
		{"gzip header on plain body", []byte(`{"accountEnabled":false}`),
			map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/json"}, 400, true},
		{"unknown encoding", []byte(`{"accountEnabled":false}`), map[string]string{"Content-Encoding": "br"}, 415, true},
		{"unknown property", []byte(`{"favouriteColour":"blue"}`), nil, 400, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := do(t, http.MethodPatch, srv.URL+"/v1.0/users/"+url.PathEscape(upn), tt.body, tt.header)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.NotEmpty(t, resp.Header.Get("request-id"))
			u, ok := sim.User(upn)
			require.True(t, ok)
			assert.Equal(t, tt.enabled, u.AccountEnabled)
		})
	}
	var actions []string
	for _, tr := range sim.Transitions(upn) {
		actions = append(actions, tr.Action)
	}
	assert.Equal(t, []string{"disable", "enable"}, actions)
}

func TestMemberOfPagesWithNextLink(t *testing.T) {
	sim, srv := newServer(t, 0)
	p := demo.People(10)[9] // privileged: all-staff, dept, admins, dyn-all and a directory role
	u, ok := sim.User(p.Email)
	require.True(t, ok)

	next := srv.URL + "/v1.0/users/" + u.ID + "/memberOf?$select=id,displayName,groupTypes"
	var names, types []string
	pages := 0
	for next != "" {
		resp, body := do(t, http.MethodGet, next, nil, nil)
		require.Equal(t, 200, resp.StatusCode, body)
		assert.Contains(t, body["@odata.context"], "$metadata#directoryObjects(id,displayName,groupTypes)")
		values := body["value"].([]any)
		assert.LessOrEqual(t, len(values), 2)
		for _, v := range values {
			item := v.(map[string]any)
			names = append(names, item["displayName"].(string))
			types = append(types, item["@odata.type"].(string))
			assert.NotContains(t, item, "securityEnabled", "$select honoured")
		}
		next, _ = body["@odata.nextLink"].(string)
		pages++
	}
	want := append(demo.GroupsOf(p), graph.DynamicGroup, "Global Reader")
	assert.ElementsMatch(t, want, names)
	assert.Equal(t, 3, pages)
	assert.Contains(t, types, "#microsoft.graph.directoryRole")
}

func TestUsersFilterAndSelect(t *testing.T) {
	sim := graph.New(graph.Options{People: append(demo.People(3), demo.Person{
		EmployeeID: "E9", First: "Flann", Last: "O'Brien", Department: "sales", Email: "flann.o'brien@example.test",
	})})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	tests := []struct {
		name, filter, sel string
		status            int
		upns              []string
	}{
		{"mail or upn", "mail eq 'ada.lovelace1001@example.test' or userPrincipalName eq 'ada.lovelace1001@example.test'", "id,userPrincipalName", 200, []string{"ada.lovelace1001@example.test"}},
		{"case-insensitive", "userPrincipalName eq 'ADA.LOVELACE1001@EXAMPLE.TEST'", "", 200, []string{"ada.lovelace1001@example.test"}},
		{"quote", "mail eq 'flann.o''brien@example.test'", "id,userPrincipalName", 200, []string{"flann.o'brien@example.test"}},
		{"none", "mail eq 'nobody@example.test'", "", 200, nil},
		{"unterminated", "mail eq 'flann.o'brien@example.test'", "", 400, nil},
		{"unsupported", "startswith(mail,'a')", "", 400, nil},
		{"bad select", "mail eq 'x'", "id,colour", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"$filter": {tt.filter}}
			if tt.sel != "" {
				q.Set("$select", tt.sel)
			}
			resp, body := do(t, http.MethodGet, srv.URL+"/v1.0/users?"+q.Encode(), nil, nil)
			require.Equal(t, tt.status, resp.StatusCode, body)
			if tt.status != 200 {
				e := body["error"].(map[string]any)
				assert.NotEmpty(t, e["code"])
				assert.Equal(t, resp.Header.Get("request-id"), e["innerError"].(map[string]any)["request-id"])
				return
			}
			var upns []string
			for _, v := range body["value"].([]any) {
				item := v.(map[string]any)
				upns = append(upns, item["userPrincipalName"].(string))
				assert.NotContains(t, item, "accountEnabled", "not a default property and not selected")
			}
			assert.Equal(t, tt.upns, upns)
		})
	}
}

func TestGetUserByIDOrUPN(t *testing.T) {
	sim, srv := newServer(t, 0)
	u, _ := sim.User(demo.People(1)[0].Email)
	for _, key := range []string{u.ID, url.PathEscape(u.UPN)} {
		resp, body := do(t, http.MethodGet, srv.URL+"/v1.0/users/"+key+"?$select=id,accountEnabled,signInSessionsValidFromDateTime", nil, nil)
		require.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, u.ID, body["id"])
		assert.Equal(t, true, body["accountEnabled"])
		assert.Contains(t, body["@odata.context"], "$metadata#users(id,accountEnabled,signInSessionsValidFromDateTime)/$entity")
	}
	resp, body := do(t, http.MethodGet, srv.URL+"/v1.0/users/nobody@example.test", nil, map[string]string{"client-request-id": "abc"})
	assert.Equal(t, 404, resp.StatusCode)
	assert.Equal(t, "abc", resp.Header.Get("client-request-id"))
	assert.Equal(t, "Request_ResourceNotFound", body["error"].(map[string]any)["code"])
}

func TestRevokeAssignLicenseAndGroups(t *testing.T) {
	sim, srv := newServer(t, 0)
	p := demo.People(3)[2] // finance: direct E3 plus Power BI through the finance group
	u, _ := sim.User(p.Email)
	api := srv.URL + "/v1.0"

	before := time.Now().Truncate(time.Second)
	resp, body := do(t, http.MethodPost, api+"/users/"+u.ID+"/revokeSignInSessions", nil, nil)
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, true, body["value"])
	got, _ := sim.User(u.ID)
	assert.False(t, got.SignInSessionsValidFrom.Before(before))

	assert.Equal(t, []string{graph.SkuPowerBIPro}, got.GroupLicenses)
	resp, body = do(t, http.MethodPost, api+"/users/"+u.ID+"/assignLicense",
		gz(t, `{"addLicenses":[],"removeLicenses":["`+graph.SkuPowerBIPro+`"]}`), map[string]string{"Content-Encoding": "gzip"})
	assert.Equal(t, 400, resp.StatusCode, "inherited licence cannot be removed directly")
	assert.Contains(t, body["error"].(map[string]any)["message"], "inherited")

	resp, body = do(t, http.MethodPost, api+"/users/"+u.ID+"/assignLicense",
		gz(t, `{"addLicenses":[],"removeLicenses":["`+graph.SkuOffice365E3+`"]}`), map[string]string{"Content-Encoding": "gzip"})
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, u.ID, body["id"])
	got, _ = sim.User(u.ID)
	assert.Empty(t, got.Licenses)

	groupID := func(name string) string {
		for next := api + "/users/" + u.ID + "/memberOf/microsoft.graph.group?$top=999"; next != ""; {
			_, body := do(t, http.MethodGet, next, nil, nil)
			for _, v := range body["value"].([]any) {
				if item := v.(map[string]any); item["displayName"] == name {
					return item["id"].(string)
				}
			}
			next, _ = body["@odata.nextLink"].(string)
		}
		t.Fatalf("no group %s", name)
		return ""
	}
	dyn := groupID(graph.DynamicGroup)
	fin := groupID("finance")
	resp, _ = do(t, http.MethodDelete, api+"/groups/"+dyn+"/members/"+u.ID+"/$ref", nil, nil)
	assert.Equal(t, 400, resp.StatusCode, "dynamic group")
	resp, _ = do(t, http.MethodDelete, api+"/groups/"+fin+"/members/"+u.ID+"/$ref", nil, nil)
	assert.Equal(t, 204, resp.StatusCode)
	resp, _ = do(t, http.MethodDelete, api+"/groups/"+fin+"/members/"+u.ID+"/$ref", nil, nil)
	assert.Equal(t, 404, resp.StatusCode, "no longer a member")
	got, _ = sim.User(u.ID)
	assert.NotContains(t, got.Groups, "finance")
	assert.Empty(t, got.GroupLicenses, "group-based licence went with the group")

	resp, _ = do(t, http.MethodDelete, api+"/users/"+u.ID, nil, nil)
	assert.Equal(t, 204, resp.StatusCode)
	_, ok := sim.User(u.ID)
	assert.False(t, ok)
	var actions []string
	for _, tr := range sim.Transitions(p.Email) {
		actions = append(actions, tr.Action+":"+tr.Detail)
	}
	assert.Equal(t, []string{"revoke_sessions:", "remove_license:" + graph.SkuOffice365E3, "remove_group:finance", "delete:"}, actions)

	resp, body = do(t, http.MethodGet, srv.URL+"/_sandbox/users/"+p.Email, nil, nil)
	assert.Equal(t, 404, resp.StatusCode, body)
}

func TestThrottleAnd429Body(t *testing.T) {
	_, srv := newServer(t, 2)
	u := srv.URL + "/v1.0/users?$top=1"
	var last *http.Response
	var body map[string]any
	for range 5 {
		last, body = do(t, http.MethodGet, u, nil, nil)
		if last.StatusCode == 429 {
			break
		}
	}
	require.Equal(t, 429, last.StatusCode)
	assert.Equal(t, "1", last.Header.Get("Retry-After"))
	assert.Equal(t, "TooManyRequests", body["error"].(map[string]any)["code"])
}

func TestFaultsAndSandboxEndpoints(t *testing.T) {
	sim, srv := newServer(t, 0)
	p := demo.People(1)[0]
	sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/users/", Method: "GET", Status: 503, RetryAfter: 3 * time.Second, Count: 1})
	resp, body := do(t, http.MethodGet, srv.URL+"/v1.0/users/"+p.Email, nil, nil)
	assert.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, "3", resp.Header.Get("Retry-After"))
	assert.Equal(t, "serviceNotAvailable", body["error"].(map[string]any)["code"])

	// A fault with a 2xx status stands for a proxy answering with garbage.
	resp, _ = do(t, http.MethodPost, srv.URL+"/_sandbox/faults", []byte(`{"pathPrefix":"/v1.0/users","status":200,"count":1}`), nil)
	require.Equal(t, 204, resp.StatusCode)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1.0/users/"+p.Email, nil)
	raw, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	assert.Equal(t, 200, raw.StatusCode)
	assert.True(t, strings.HasPrefix(string(b), "<html>"))

	resp, body = do(t, http.MethodGet, srv.URL+"/_sandbox/users/"+p.Email, nil, nil)
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, p.Email, body["user"].(map[string]any)["userPrincipalName"])
}

func TestRemoveDirectoryRoleMember(t *testing.T) {
	sim, srv := newServer(t, 0)
	people := demo.People(10)
	admin, _ := sim.User(people[9].Email) // privileged: holds Global Reader
	staff, _ := sim.User(people[0].Email)
	api := srv.URL + "/v1.0"
	require.Equal(t, []string{graph.GlobalReader}, admin.Roles)
	require.Empty(t, staff.Roles)

	// The SDK casts with the namespace alias (graph.directoryRole); Graph takes both spellings.
	var roleID string
	for _, cast := range []string{"microsoft.graph.directoryRole", "graph.directoryRole"} {
		resp, body := do(t, http.MethodGet, api+"/users/"+admin.ID+"/memberOf/"+cast, nil, nil)
		require.Equal(t, 200, resp.StatusCode, body)
		assert.Contains(t, body["@odata.context"], "$metadata#directoryRoles")
		values := body["value"].([]any)
		require.Len(t, values, 1, "groups are not directory roles")
		role := values[0].(map[string]any)
		assert.Equal(t, "#microsoft.graph.directoryRole", role["@odata.type"])
		assert.Equal(t, graph.GlobalReader, role["displayName"])
		assert.Equal(t, graph.GlobalReaderTemplate, role["roleTemplateId"])
		roleID = role["id"].(string)
	}

	ref := func(role, user string) string { return api + "/directoryRoles/" + role + "/members/" + user + "/$ref" }
	notFound := func(t *testing.T, resp *http.Response, body map[string]any) {
		t.Helper()
		require.Equal(t, 404, resp.StatusCode, body)
		e := body["error"].(map[string]any)
		assert.Equal(t, "Request_ResourceNotFound", e["code"])
		assert.NotEmpty(t, e["message"])
		assert.Equal(t, resp.Header.Get("request-id"), e["innerError"].(map[string]any)["request-id"])
	}

	resp, body := do(t, http.MethodDelete, ref("00000000-0000-0000-0000-000000000000", admin.ID), nil, nil)
	notFound(t, resp, body)
	resp, body = do(t, http.MethodDelete, ref(roleID, staff.ID), nil, nil)
	notFound(t, resp, body) // not a member
	resp, body = do(t, http.MethodDelete, api+"/groups/"+roleID+"/members/"+admin.ID+"/$ref", nil, nil)
	notFound(t, resp, body) // a role is not a group
	resp, _ = do(t, http.MethodDelete, api+"/directoryRoles/"+roleID+"/members/"+admin.ID, nil, nil)
	assert.Equal(t, 400, resp.StatusCode, "without /$ref Graph would delete the user; here it is refused")
	got, _ := sim.User(admin.ID)
	require.Equal(t, []string{graph.GlobalReader}, got.Roles, "nothing removed so far")

	// Injected faults and throttling reach this endpoint like every other.
	sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/directoryRoles/", Method: "DELETE", Status: 403, Count: 1})
	resp, body = do(t, http.MethodDelete, ref(roleID, admin.ID), nil, nil)
	require.Equal(t, 403, resp.StatusCode)
	assert.Equal(t, "Authorization_RequestDenied", body["error"].(map[string]any)["code"])
	got, _ = sim.User(admin.ID)
	require.Equal(t, []string{graph.GlobalReader}, got.Roles, "a refused call changes nothing")

	resp, body = do(t, http.MethodDelete, ref(roleID, admin.ID), nil, nil)
	require.Equal(t, 204, resp.StatusCode, body)
	assert.Nil(t, body)
	got, _ = sim.User(admin.ID)
	assert.Empty(t, got.Roles)
	resp, body = do(t, http.MethodGet, api+"/users/"+admin.ID+"/memberOf/microsoft.graph.directoryRole", nil, nil)
	require.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, body["value"])
	resp, body = do(t, http.MethodDelete, ref(roleID, admin.ID), nil, nil)
	notFound(t, resp, body) // no longer a member

	// The role can also be named by its roleTemplateId.
	other, _ := sim.User(demo.People(20)[19].Email)
	require.Equal(t, []string{graph.GlobalReader}, other.Roles)
	resp, _ = do(t, http.MethodDelete, ref(graph.GlobalReaderTemplate, other.ID), nil, nil)
	require.Equal(t, 204, resp.StatusCode)
	got, _ = sim.User(other.ID)
	assert.Empty(t, got.Roles)

	var actions []string
	for _, tr := range sim.Transitions(admin.ID) {
		actions = append(actions, tr.Action+":"+tr.Detail)
	}
	assert.Equal(t, []string{"remove_role:" + graph.GlobalReader}, actions)
}

func TestRemoveDirectoryRoleMemberIsThrottled(t *testing.T) {
	sim, srv := newServer(t, 1)
	admin, _ := sim.User(demo.People(10)[9].Email)
	var last *http.Response
	var body map[string]any
	for range 5 {
		last, body = do(t, http.MethodDelete, srv.URL+"/v1.0/directoryRoles/"+graph.GlobalReaderTemplate+"/members/"+admin.ID+"/$ref", nil, nil)
		if last.StatusCode == 429 {
			break
		}
	}
	require.Equal(t, 429, last.StatusCode)
	assert.Equal(t, "1", last.Header.Get("Retry-After"))
	assert.Equal(t, "TooManyRequests", body["error"].(map[string]any)["code"])
}

func TestOtherMailsFilterAndState(t *testing.T) {
	sim := graph.New(graph.Options{People: demo.People(3)})
	p := demo.People(3)[1]
	require.True(t, sim.SetOtherMails(p.Email, "Alias@Example.test"))
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	get := func(filter string) []any {
		resp, err := http.Get(srv.URL + "/v1.0/users?$filter=" + url.QueryEscape(filter))
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct{ Value []any }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return body.Value
	}
	assert.Len(t, get("otherMails/any(m:m eq 'alias@example.test')"), 1)
	assert.Len(t, get("mail eq 'x@example.test' or otherMails/any(x:x eq 'alias@example.test')"), 1)
	assert.Empty(t, get("otherMails/any(m:m eq 'nobody@example.test')"))

	var buf bytes.Buffer
	require.NoError(t, sim.SaveState(&buf))
	again := graph.New(graph.Options{People: demo.People(3)})
	require.NoError(t, again.LoadState(&buf))
	srv2 := httptest.NewServer(again.Handler())
	t.Cleanup(srv2.Close)
	resp, err := http.Get(srv2.URL + "/v1.0/users?$filter=" + url.QueryEscape("otherMails/any(m:m eq 'alias@example.test')"))
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct{ Value []any }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Len(t, body.Value, 1, "otherMails survive a restart")
}

func TestOrganization(t *testing.T) {
	srv := httptest.NewServer(graph.New(graph.Options{}).Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/v1.0/organization")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct{ Value []struct{ ID string } }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Len(t, body.Value, 1)
	assert.Equal(t, graph.TenantID, body.Value[0].ID)
}
