package okta

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
)

func (e *env) apiPost(path string, v any) result {
	e.t.Helper()
	body, err := json.Marshal(v)
	require.NoError(e.t, err)
	req, err := http.NewRequestWithContext(e.t.Context(), "POST", e.srv.URL+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "SSWS "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

type tokenView struct {
	ID, Name, UserID, ClientName, TokenWindow string
	ExpiresAt                                 time.Time
}

func TestAPITokens(t *testing.T) {
	e := newEnv(t, Options{})
	people := demo.People(20)
	owner, _ := e.sim.User(demo.ServiceOwner(people).Email)

	// Every token, one a page: the Link paging visits each once.
	var all []tokenView
	next := "/api/v1/api-tokens?limit=1"
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, 10)
		r := e.api("GET", next)
		require.Equal(t, 200, r.status, string(r.body))
		var pg []tokenView
		require.NoError(t, json.Unmarshal(r.body, &pg))
		require.Len(t, pg, 1)
		all = append(all, pg...)
		next = ""
		for _, l := range r.header.Values("Link") {
			if strings.HasSuffix(l, `rel="next"`) {
				next = strings.TrimPrefix(strings.TrimSuffix(strings.TrimSuffix(l, `; rel="next"`), ">"), "<"+e.srv.URL)
			}
		}
	}
	require.Len(t, all, 3) // offboard's own, terraform, ci-deploy
	var ci tokenView
	for _, tk := range all {
		if tk.Name == demo.APITokenName {
			ci = tk
		}
	}
	require.NotEmpty(t, ci.ID, "no %s token in %v", demo.APITokenName, all)
	assert.Equal(t, owner.ID, ci.UserID)
	assert.True(t, strings.HasPrefix(ci.ID, "00T"), ci.ID)
	assert.Equal(t, "P30D", ci.TokenWindow)
	assert.False(t, ci.ExpiresAt.IsZero())

	r := e.api("GET", "/api/v1/api-tokens/current")
	require.Equal(t, 200, r.status)
	var current tokenView
	require.NoError(t, json.Unmarshal(r.body, &current))
	assert.Equal(t, "offboard", current.Name, "the token the request used")

	r = e.api("GET", "/api/v1/api-tokens/"+ci.ID)
	require.Equal(t, 200, r.status)
	require.Equal(t, 204, e.api("DELETE", "/api/v1/api-tokens/"+ci.ID).status)
	for _, method := range []string{"GET", "DELETE"} {
		r = e.api(method, "/api/v1/api-tokens/"+ci.ID)
		require.Equal(t, 404, r.status, method)
		oe := r.oktaError(t)
		assert.Equal(t, "E0000007", oe.ErrorCode)
		assert.Equal(t, "Not found: Resource not found: "+ci.ID+" (ApiToken)", oe.ErrorSummary)
	}
	assert.Len(t, e.sim.APITokens(), 2)
	for _, p := range people {
		if p != demo.ServiceOwner(people) {
			u, _ := e.sim.User(p.Email)
			assert.False(t, slices.ContainsFunc(all, func(tk tokenView) bool { return tk.UserID == u.ID }), "%s owns no token", p.Login)
		}
	}

	// Deactivating a user revokes the tokens it created.
	again := newEnv(t, Options{})
	require.Equal(t, 200, again.api("POST", "/api/v1/users/"+owner.ID+"/lifecycle/deactivate").status)
	for _, tk := range again.sim.APITokens() {
		assert.NotEqual(t, owner.ID, tk.UserID, "token %s of a deactivated user", tk.Name)
	}
	assert.Len(t, again.sim.APITokens(), 2)
}

func TestSetPassword(t *testing.T) {
	e := newEnv(t, Options{BreakGlass: true})
	u, ok := e.sim.User(demo.BreakGlassOkta)
	require.True(t, ok, "break-glass user seeded")
	assert.Equal(t, StatusActive, u.Status)
	before, _ := e.sim.PasswordChanged(u.ID)

	set := func(pw string) result {
		return e.apiPost("/api/v1/users/"+u.ID, map[string]any{"credentials": map[string]any{"password": map[string]string{"value": pw}}})
	}
	r := set("Correct-Horse-9")
	require.Equal(t, 200, r.status, string(r.body))
	assert.NotContains(t, string(r.body), "Correct-Horse-9")
	var got struct{ PasswordChanged time.Time }
	require.NoError(t, json.Unmarshal(r.body, &got))
	assert.True(t, got.PasswordChanged.After(before), "passwordChanged %s, before %s", got.PasswordChanged, before)
	assert.True(t, e.sim.PasswordIs(demo.BreakGlassOkta, "Correct-Horse-9"))
	assert.False(t, e.sim.PasswordIs(demo.BreakGlassOkta, "Correct-Horse-8"))
	assert.Equal(t, []string{"set_password"}, actions(e.sim.Transitions(u.ID)))

	for name, tc := range map[string]struct {
		pw, cause string
	}{
		"the same again": {"Correct-Horse-9", "password: Password has been used too recently"},
		"too weak":       {"short1A", "password: Password requirements were not met"},
		"the username":   {"Breakglass.okta-1", "no parts of your username"},
	} {
		t.Run(name, func(t *testing.T) {
			r := set(tc.pw)
			require.Equal(t, 400, r.status)
			oe := r.oktaError(t)
			assert.Equal(t, "E0000001", oe.ErrorCode)
			require.Len(t, oe.ErrorCauses, 1)
			assert.Contains(t, oe.ErrorCauses[0]["errorSummary"], tc.cause)
			assert.True(t, e.sim.PasswordIs(u.ID, "Correct-Horse-9"), "a refused password changes nothing")
		})
	}
	r = e.apiPost("/api/v1/users/"+u.ID, map[string]any{"profile": map[string]any{"nickName": "x"}})
	assert.Equal(t, 400, r.status)
	r = e.apiPost("/api/v1/users/"+u.ID, map[string]any{"profile": map[string]any{"department": "security"}})
	require.Equal(t, 200, r.status)
	assert.Contains(t, string(r.body), `"department":"security"`)
	assert.True(t, e.sim.PasswordIs(u.ID, "Correct-Horse-9"), "a profile update leaves the password")

	// The break-glass user is opt-in: reconciliation would count it.
	plain := newEnv(t, Options{})
	_, ok = plain.sim.User(demo.BreakGlassOkta)
	assert.False(t, ok)
}

func TestAPITokensSurviveARestart(t *testing.T) {
	old := newEnv(t, Options{})
	toks := old.sim.APITokens()
	require.Equal(t, 204, old.api("DELETE", "/api/v1/api-tokens/"+toks[0].ID).status)
	ada, _ := old.sim.User(demo.People(20)[0].Email)
	require.Equal(t, 200, old.apiPost("/api/v1/users/"+ada.ID, map[string]any{"credentials": map[string]any{"password": map[string]string{"value": "Fresh-Pass-42"}}}).status)
	changed, _ := old.sim.PasswordChanged(ada.ID)
	var saved bytes.Buffer
	require.NoError(t, old.sim.SaveState(&saved))
	assert.NotContains(t, saved.String(), "Fresh-Pass-42")

	fresh := newEnv(t, Options{})
	require.NoError(t, fresh.sim.LoadState(bytes.NewReader(saved.Bytes())))
	assert.Equal(t, toks[1:], fresh.sim.APITokens())
	got, _ := fresh.sim.PasswordChanged(ada.ID)
	assert.True(t, changed.Equal(got), "passwordChanged %s, saved %s", got, changed)
}
