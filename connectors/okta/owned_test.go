package okta_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/control/controltest"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
)

// memStore is the shared in-memory secret store (controltest.MemStore).
type memStore = controltest.MemStore

func newStore() *memStore { return controltest.NewMemStore() }

func TestOwnedSteps(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	for _, a := range []control.Action{control.Reown, control.Rotate, control.Decommission} {
		assert.Equal(t, []control.Step{{Name: okta.RevokeAPIToken}}, e.client.OwnedSteps(control.KindAPIToken, a), a)
	}
	assert.Equal(t, []control.Step{{Name: okta.RotatePassword}}, e.client.OwnedSteps(control.KindBreakGlass, control.Rotate))
	assert.Nil(t, e.client.OwnedSteps(control.KindBreakGlass, control.Decommission))
	assert.Nil(t, e.client.OwnedSteps(control.KindServiceUser, control.Rotate))
	_, err := e.client.ObserveOwned(t.Context(), okta.RotatePassword, control.Owned{Kind: control.KindAPIToken, ID: "00T1"}, control.OwnedParams{})
	assert.ErrorIs(t, err, control.ErrUnknownControl)
}

func TestDiscoverAPITokens(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	owner := e.account(t, demo.ServiceOwner(people))
	owned, err := e.client.Discover(t.Context(), owner)
	require.NoError(t, err)
	require.Len(t, owned, 1)
	o := owned[0]
	assert.Equal(t, control.KindAPIToken, o.Kind)
	assert.Equal(t, demo.APITokenName, o.Name)
	assert.Equal(t, "okta", o.Target)
	assert.True(t, strings.HasPrefix(o.ID, "00T"), o.ID)
	require.Len(t, o.Credentials, 1)
	assert.Equal(t, o.ID, o.Credentials[0].ID)
	assert.True(t, strings.HasPrefix(o.Credentials[0].Status, "expires "), o.Credentials[0].Status)

	nobody, err := e.client.Discover(t.Context(), e.account(t, people[5]))
	require.NoError(t, err)
	assert.NotNil(t, nobody)
	assert.Empty(t, nobody)

	_, err = e.client.Discover(t.Context(), control.Account{})
	assert.ErrorIs(t, err, control.ErrPermanent)
}

func TestRevokeAPIToken(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	owned, err := e.client.Discover(t.Context(), e.account(t, demo.ServiceOwner(people)))
	require.NoError(t, err)
	require.Len(t, owned, 1)
	o := owned[0]
	before := len(e.sim.APITokens())

	obs, err := e.client.ObserveOwned(t.Context(), okta.RevokeAPIToken, o, control.OwnedParams{})
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.True(t, obs.Readable)
	assert.Equal(t, 200, obs.Call.HTTPStatus)
	assert.Contains(t, obs.Detail, "active")

	resp, err := e.client.EnforceOwned(t.Context(), okta.RevokeAPIToken, o, control.OwnedParams{})
	require.NoError(t, err)
	assert.Equal(t, 204, resp.HTTPStatus)
	assert.NotEmpty(t, resp.RequestID)
	assert.Len(t, e.sim.APITokens(), before-1, "exactly the leaver's token is revoked")
	for _, tk := range e.sim.APITokens() {
		assert.NotEqual(t, o.ID, tk.ID)
	}

	obs, err = e.client.ObserveOwned(t.Context(), okta.RevokeAPIToken, o, control.OwnedParams{})
	require.NoError(t, err)
	assert.True(t, obs.Holds)
	assert.True(t, obs.Gone)
	assert.Equal(t, 404, obs.Call.HTTPStatus)

	// Again after a crash: the token's own not-found counts as done.
	resp, err = e.client.EnforceOwned(t.Context(), okta.RevokeAPIToken, o, control.OwnedParams{})
	require.NoError(t, err)
	assert.Equal(t, 404, resp.HTTPStatus)
	assert.Len(t, e.sim.APITokens(), before-1)
}

// The token the connector itself uses is never revoked: every later call would fail.
func TestRevokeOwnTokenRefused(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	var own oktasim.APIToken
	for _, tk := range e.sim.APITokens() {
		if tk.Name == "offboard" {
			own = tk
		}
	}
	require.NotEmpty(t, own.ID)
	o := control.Owned{Target: "okta", Kind: control.KindAPIToken, ID: own.ID, Name: own.Name}
	_, err := e.client.EnforceOwned(t.Context(), okta.RevokeAPIToken, o, control.OwnedParams{})
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "the one this connector uses")
	assert.Len(t, e.sim.APITokens(), 3, "nothing revoked")
}

// breakGlass is the registry's Okta break-glass account, with a fresh
// rotation's parameters.
func breakGlass(store control.SecretStore) (control.Owned, control.OwnedParams) {
	o := control.Owned{Target: "okta", Kind: control.KindBreakGlass, ID: demo.BreakGlassOkta, Secret: demo.BreakGlassSecrets["okta"]}
	p := control.OwnedParams{Token: "0b7c2f8e-6a1d-4c3e-9f50-2d8e1a7b4c61", Since: time.Now(), Store: store}
	return o, p
}

func TestRotateBreakGlassPassword(t *testing.T) {
	e := newEnv(t, oktasim.Options{BreakGlass: true})
	store := newStore()
	o, p := breakGlass(store)
	// The secret's version before the rotation.
	require.NoError(t, store.PutPending(t.Context(), o.Secret, "old-version", []byte("Old-Pass-1")))
	require.NoError(t, store.Promote(t.Context(), o.Secret, "old-version"))

	obs, err := e.client.ObserveOwned(t.Context(), okta.RotatePassword, o, p)
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.Contains(t, obs.Detail, "version old-vers… is current (this rotation's: false)")

	resp, err := e.client.EnforceOwned(t.Context(), okta.RotatePassword, o, p)
	require.NoError(t, err)
	assert.Equal(t, 200, resp.HTTPStatus)
	current := store.Value(o.Secret)
	require.NotEmpty(t, current)
	assert.True(t, e.sim.PasswordIs(o.ID, string(current)), "the stored value is the user's password")
	assert.Equal(t, p.Token, mustCurrent(t, store, o.Secret))

	obs, err = e.client.ObserveOwned(t.Context(), okta.RotatePassword, o, p)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	assert.True(t, obs.Readable)
	assert.NotContains(t, obs.Detail, string(current))
	assert.Contains(t, obs.Detail, "version 0b7c2f8e… is current (this rotation's: true)")

	// Repeating the step changes nothing: same value, one password set.
	_, err = e.client.EnforceOwned(t.Context(), okta.RotatePassword, o, p)
	require.NoError(t, err)
	assert.Equal(t, current, store.Value(o.Secret))
	assert.Equal(t, []string{"set_password"}, actions(e.sim.Transitions(o.ID)))

	// A password older than the rotation is not this rotation's.
	later := p
	later.Since = time.Now().Add(time.Hour)
	obs, err = e.client.ObserveOwned(t.Context(), okta.RotatePassword, o, later)
	require.NoError(t, err)
	assert.False(t, obs.Holds, obs.Detail)
}

func mustCurrent(t *testing.T, s control.SecretStore, secret string) string {
	t.Helper()
	v, err := s.Current(t.Context(), secret)
	require.NoError(t, err)
	return v
}

// A crash between the password set and the store's promote: the retry
// reuses the pending value (Okta refuses it as too recent, and the change
// since the rotation began proves it is ours) and promotes it.
func TestRotateBreakGlassCrashBeforePromote(t *testing.T) {
	e := newEnv(t, oktasim.Options{BreakGlass: true})
	store := newStore()
	o, p := breakGlass(store)
	store.FailPromote = 1

	_, err := e.client.EnforceOwned(t.Context(), okta.RotatePassword, o, p)
	require.Error(t, err)
	assert.ErrorIs(t, err, control.ErrTransient)
	pending, ok, _ := store.Pending(t.Context(), o.Secret, p.Token)
	require.True(t, ok)
	assert.NotContains(t, err.Error(), string(pending), "no secret in errors")
	assert.True(t, e.sim.PasswordIs(o.ID, string(pending)))
	assert.Empty(t, mustCurrent(t, store, o.Secret))
	obs, err := e.client.ObserveOwned(t.Context(), okta.RotatePassword, o, p)
	require.NoError(t, err)
	assert.False(t, obs.Holds, "not current in the store yet")

	_, err = e.client.EnforceOwned(t.Context(), okta.RotatePassword, o, p)
	require.NoError(t, err)
	assert.Equal(t, p.Token, mustCurrent(t, store, o.Secret))
	assert.Equal(t, pending, store.Value(o.Secret))
	assert.True(t, e.sim.PasswordIs(o.ID, string(pending)))
	assert.Equal(t, []string{"set_password"}, actions(e.sim.Transitions(o.ID)), "exactly one new password")
	obs, err = e.client.ObserveOwned(t.Context(), okta.RotatePassword, o, p)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
}

// A store that cannot take the new value: the user's password is not
// touched and the error says so.
func TestRotateBreakGlassStoreDown(t *testing.T) {
	e := newEnv(t, oktasim.Options{BreakGlass: true})
	store := newStore()
	o, p := breakGlass(store)
	changed, _ := e.sim.PasswordChanged(o.ID)
	store.FailPut = 1

	_, err := e.client.EnforceOwned(t.Context(), okta.RotatePassword, o, p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "secret store: store pending version 0b7c2f8e… of breakglass/okta")
	assert.Empty(t, e.sim.Transitions(o.ID), "the password was not set")
	after, _ := e.sim.PasswordChanged(o.ID)
	assert.Equal(t, changed, after)
	_, ok, _ := store.Pending(t.Context(), o.Secret, p.Token)
	assert.False(t, ok)

	p.Store = nil
	_, err = e.client.EnforceOwned(t.Context(), okta.RotatePassword, o, p)
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "no secret store configured")
	_, err = e.client.ObserveOwned(t.Context(), okta.RotatePassword, o, p)
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Empty(t, e.sim.Transitions(o.ID))
}

// TestDiscoverHostile: servers that answer the token list unlike Okta.
// None may read as "the leaver owns no token".
func TestDiscoverHostile(t *testing.T) {
	tokenPath := func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/v1/api-tokens") }
	cases := []struct {
		name string
		wrap func(sim http.Handler) http.Handler
		want error // nil: the honest answer, one token
	}{
		{"honest, one token a page", func(sim http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tokenPath(r) {
					q := r.URL.Query()
					q.Set("limit", "1")
					r.URL.RawQuery = q.Encode()
				}
				sim.ServeHTTP(w, r)
			})
		}, nil},
		{"paging ignores the cursor", func(sim http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tokenPath(r) {
					q := r.URL.Query()
					q.Set("limit", "1")
					q.Del("after")
					r.URL.RawQuery = q.Encode()
				}
				sim.ServeHTTP(w, r)
			})
		}, control.ErrUnexpected},
		{"a foreign 404 page", func(sim http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tokenPath(r) {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(404)
					_, _ = w.Write([]byte("<html>Not Found</html>"))
					return
				}
				sim.ServeHTTP(w, r)
			})
		}, control.ErrUnexpected},
		{"an org without the endpoint", func(sim http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tokenPath(r) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(404)
					_, _ = w.Write([]byte(`{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: /api/v1/api-tokens (Endpoint)"}`))
					return
				}
				sim.ServeHTTP(w, r)
			})
		}, control.ErrUnexpected},
		{"a page cut short", func(sim http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tokenPath(r) {
					rec := httptest.NewRecorder()
					sim.ServeHTTP(rec, r)
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
					return
				}
				sim.ServeHTTP(w, r)
			})
		}, control.ErrTransient}, // a read's answer that is not JSON: asked again, never a list
		{"an empty 200 with no body", func(sim http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tokenPath(r) {
					w.Header().Set("Content-Type", "text/plain")
					_, _ = w.Write([]byte("ok"))
					return
				}
				sim.ServeHTTP(w, r)
			})
		}, control.ErrTransient},
	}
	tally := hostile.NewTally(t, "okta non-human discovery")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim := oktasim.New(oktasim.Options{Token: token, People: people})
			srv := httptest.NewServer(tc.wrap(sim.Handler()))
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL, token)
			acct, err := c.Resolve(t.Context(), control.Person{Email: demo.ServiceOwner(people).Email})
			require.NoError(t, err)
			owned, err := c.Discover(t.Context(), acct)
			// The claim is the list; it is true only when it names the one token there is.
			tally.Record(t, hostile.Judge(err, err == nil, len(owned) == 1 && owned[0].Name == demo.APITokenName), fmt.Sprint(owned, err))
			if tc.want == nil {
				require.NoError(t, err)
				require.Len(t, owned, 1)
				assert.Equal(t, demo.APITokenName, owned[0].Name)
				return
			}
			require.ErrorIs(t, err, tc.want)
			assert.Nil(t, owned)
		})
	}
}

// TestRevokeObserveHostile: a 404 that is not Okta's own "no such token"
// never reads as revoked.
func TestRevokeObserveHostile(t *testing.T) {
	tally := hostile.NewTally(t, "okta api token revocation")
	for name, body := range map[string]string{
		"html":          "<html>Not Found</html>",
		"a user's 404":  `{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: x (User)"}`,
		"endpoint 404":  `{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: /api/v1/api-tokens/x (Endpoint)"}`,
		"no error code": `{"errorSummary":"Not found"}`,
	} {
		t.Run(name, func(t *testing.T) {
			sim := oktasim.New(oktasim.Options{Token: token, People: people})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/api/v1/api-tokens/") {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(404)
					_, _ = w.Write([]byte(body))
					return
				}
				sim.Handler().ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL, token)
			o := control.Owned{Target: "okta", Kind: control.KindAPIToken, ID: sim.APITokens()[0].ID}
			obs, err := c.ObserveOwned(t.Context(), okta.RevokeAPIToken, o, control.OwnedParams{})
			tally.Record(t, hostile.Judge(err, obs.Holds, len(sim.APITokens()) == 2), obs.Detail)
			require.ErrorIs(t, err, control.ErrUnexpected)
			assert.False(t, obs.Holds)
			_, err = c.EnforceOwned(t.Context(), okta.RevokeAPIToken, o, control.OwnedParams{})
			require.ErrorIs(t, err, control.ErrUnexpected)
			assert.Len(t, sim.APITokens(), 3, "nothing revoked")
		})
	}
}
