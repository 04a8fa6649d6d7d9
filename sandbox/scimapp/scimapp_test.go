package scimapp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/scimapp"
)

const token = "s3cret-token"

type harness struct {
	app *scimapp.App
	srv *httptest.Server
}

func start(t *testing.T, opts scimapp.Options) harness {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "crm"
	}
	opts.Bearer = token
	if opts.People == nil {
		opts.People = demo.People(5)
	}
	app, err := scimapp.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	return harness{app: app, srv: srv}
}

// call sends one SCIM request and returns status, headers and decoded JSON body.
func (h harness) call(t *testing.T, method, path, body string) (int, http.Header, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, h.srv.URL+path, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	if len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		require.NoError(t, json.Unmarshal(raw, &m), string(raw))
	}
	return resp.StatusCode, resp.Header, m
}

func TestAuthentication(t *testing.T) {
	h := start(t, scimapp.Options{})
	for name, auth := range map[string]string{"missing": "", "wrong": "Bearer nope", "basic": "Basic " + token} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+"/scim/v2/Users", nil)
			require.NoError(t, err)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := h.srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
			var body map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, "401", body["status"])
			assert.Contains(t, body["schemas"], "urn:ietf:params:scim:api:messages:2.0:Error")
		})
	}
}

func TestServiceProviderConfigAdvertisesPatch(t *testing.T) {
	for _, patch := range []bool{true, false} {
		h := start(t, scimapp.Options{PatchSupported: patch})
		status, hdr, body := h.call(t, http.MethodGet, "/scim/v2/ServiceProviderConfig", "")
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "application/scim+json", hdr.Get("Content-Type"))
		assert.Equal(t, map[string]any{"supported": patch}, body["patch"])
		assert.Equal(t, true, body["filter"].(map[string]any)["supported"])
	}
}

func TestFilters(t *testing.T) {
	h := start(t, scimapp.Options{})
	ada := demo.People(1)[0]
	// A userName with a quote and a backslash, to check literal escaping.
	status, _, _ := h.call(t, http.MethodPost, "/scim/v2/Users",
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"o\"brien\\x@example.test","emails":[{"value":"ob@example.test"}]}`)
	require.Equal(t, http.StatusCreated, status)

	tests := []struct {
		filter string
		want   []string // userNames
	}{
		{`userName eq "` + ada.Email + `"`, []string{ada.Email}},
		{`userName eq "` + strings.ToUpper(ada.Email) + `"`, []string{ada.Email}},
		{`emails.value eq "` + ada.Email + `"`, []string{ada.Email}},
		{`emails[value eq "` + ada.Email + `"]`, []string{ada.Email}},
		{`externalId eq "E1002"`, []string{demo.People(2)[1].Email}},
		{`userName eq "o\"brien\\x@example.test"`, []string{`o"brien\x@example.test`}},
		{`emails.value eq "ob@example.test"`, []string{`o"brien\x@example.test`}},
		{`userName eq "nobody@example.test"`, nil},
		{`userName eq "o"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			status, _, body := h.call(t, http.MethodGet, "/scim/v2/Users?filter="+url.QueryEscape(tt.filter), "")
			require.Equal(t, http.StatusOK, status, body)
			var got []string
			for _, r := range body["Resources"].([]any) {
				got = append(got, r.(map[string]any)["userName"].(string))
			}
			assert.Equal(t, tt.want, got)
			assert.EqualValues(t, len(tt.want), body["totalResults"])
		})
	}

	t.Run("invalid filter", func(t *testing.T) {
		status, _, body := h.call(t, http.MethodGet, "/scim/v2/Users?filter="+url.QueryEscape(`nope eq "x"`), "")
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "invalidFilter", body["scimType"])
	})
}

func TestPatchForms(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantActive bool
	}{
		{"rfc", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`, 200, false},
		{"okta", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`, 200, false},
		{"capitalised op", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":false}]}`, 200, false},
		{"string False", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`, 400, true},
		{"no schemas", `{"Operations":[{"op":"replace","path":"active","value":false}]}`, 400, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, scimapp.Options{PatchSupported: true})
			ada := demo.People(1)[0]
			u, ok := h.app.User(ada.Email)
			require.True(t, ok)
			status, _, _ := h.call(t, http.MethodPatch, "/scim/v2/Users/"+u.ID, tt.body)
			assert.Equal(t, tt.wantStatus, status)
			u, _ = h.app.User(ada.Email)
			assert.Equal(t, tt.wantActive, u.Active)
			if !tt.wantActive {
				tr := h.app.Transitions(u.ID)
				require.Len(t, tr, 1)
				assert.Equal(t, "deactivate", tr[0].Action)
			}
		})
	}
}

func TestPatchUnsupported(t *testing.T) {
	h := start(t, scimapp.Options{PatchSupported: false})
	u, _ := h.app.User(demo.People(1)[0].Email)
	status, _, body := h.call(t, http.MethodPatch, "/scim/v2/Users/"+u.ID,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	assert.Equal(t, http.StatusNotImplemented, status)
	assert.Equal(t, "501", body["status"])
	u, _ = h.app.User(u.UserName)
	assert.True(t, u.Active)
}

func TestReplaceAndDelete(t *testing.T) {
	h := start(t, scimapp.Options{})
	ada := demo.People(1)[0]
	u, _ := h.app.User(ada.Email)

	status, _, body := h.call(t, http.MethodGet, "/scim/v2/Users/"+u.ID, "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, ada.EmployeeID, body["externalId"])
	body["active"] = false
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	status, _, body = h.call(t, http.MethodPut, "/scim/v2/Users/"+u.ID, string(raw))
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, false, body["active"])

	got, _ := h.app.User(ada.Email)
	assert.False(t, got.Active)
	assert.Equal(t, ada.EmployeeID, got.ExternalID, "PUT kept the externalId it was sent")

	status, _, _ = h.call(t, http.MethodDelete, "/scim/v2/Users/"+u.ID, "")
	assert.Equal(t, http.StatusNoContent, status)
	status, _, body = h.call(t, http.MethodGet, "/scim/v2/Users/"+u.ID, "")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "404", body["status"])
	_, ok := h.app.User(ada.Email)
	assert.False(t, ok)

	var actions []string
	for _, tr := range h.app.Transitions(u.ID) {
		actions = append(actions, tr.Action)
	}
	assert.Equal(t, []string{"replace", "deactivate", "delete"}, actions)
}

func TestRateLimit(t *testing.T) {
	h := start(t, scimapp.Options{RequestsPerSecond: 2})
	var statuses []int
	var retry string
	for range 3 {
		status, hdr, _ := h.call(t, http.MethodGet, "/scim/v2/Users?count=1", "")
		statuses = append(statuses, status)
		retry = hdr.Get("Retry-After")
	}
	assert.Equal(t, []int{200, 200, 429}, statuses)
	assert.Equal(t, "1", retry)
}

func TestFaultsAndAdmin(t *testing.T) {
	h := start(t, scimapp.Options{Faults: fault.New()})
	resp, err := h.srv.Client().Post(h.srv.URL+"/_sandbox/faults", "application/json",
		strings.NewReader(`{"pathPrefix":"/scim/v2/Users","status":503,"count":1}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	status, _, body := h.call(t, http.MethodGet, "/scim/v2/Users", "")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "503", body["status"])
	status, _, _ = h.call(t, http.MethodGet, "/scim/v2/Users", "")
	assert.Equal(t, http.StatusOK, status, "the rule fired once")

	ada := demo.People(1)[0]
	resp, err = h.srv.Client().Get(h.srv.URL + "/_sandbox/users/" + ada.Email)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var u struct {
		scimapp.User
		Transitions []scimapp.Transition `json:"transitions"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&u))
	assert.Equal(t, ada.Email, u.UserName)
	assert.True(t, u.Active)
	assert.Empty(t, u.Transitions)
}

// TestNotFoundAndPagingShapes pins what clients rely on to tell "no such
// user" from "no such route", and to check paging: the app's own SCIM error
// (error schema, status "404") for a missing user, a plain 404 outside the
// SCIM root, and list responses that report startIndex, itemsPerPage and
// totalResults for the page asked.
func TestNotFoundAndPagingShapes(t *testing.T) {
	h := start(t, scimapp.Options{People: demo.People(5)})
	status, hdr, body := h.call(t, http.MethodGet, "/scim/v2/Users/nope", "")
	require.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "application/scim+json", hdr.Get("Content-Type"))
	assert.Equal(t, "404", body["status"])
	assert.Equal(t, []any{"urn:ietf:params:scim:api:messages:2.0:Error"}, body["schemas"])

	status, hdr, body = h.call(t, http.MethodGet, "/scim/Users/nope", "")
	assert.Equal(t, http.StatusNotFound, status, "outside /scim/v2 there is no SCIM API")
	assert.NotContains(t, hdr.Get("Content-Type"), "scim")
	assert.Nil(t, body)

	status, _, body = h.call(t, http.MethodGet, "/scim/v2/Users?startIndex=3&count=2", "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, float64(3), body["startIndex"])
	assert.Equal(t, float64(5), body["totalResults"])
	assert.Len(t, body["Resources"], 2)
	assert.Contains(t, body["schemas"], "urn:ietf:params:scim:api:messages:2.0:ListResponse")
	// elimity reports the count asked as itemsPerPage (RFC 7644 says the
	// number returned); on a full page the two agree.
	assert.Equal(t, float64(2), body["itemsPerPage"])
}
