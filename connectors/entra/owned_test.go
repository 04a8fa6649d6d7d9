package entra_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/connectors/entra"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/graph"
)

// memStore is an in-memory SecretStore following Secrets Manager's rules:
// a version id (token) holds one value forever, Promote needs the version.
type memStore struct {
	mu       sync.Mutex
	versions map[string]map[string][]byte // secret → token → value
	current  map[string]string
	failPut  error // PutPending fails with it
	failProm error // Promote fails with it
}

func newStore() *memStore {
	return &memStore{versions: map[string]map[string][]byte{}, current: map[string]string{}}
}

func (s *memStore) PutPending(_ context.Context, secret, token string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPut != nil {
		return s.failPut
	}
	if s.versions[secret] == nil {
		s.versions[secret] = map[string][]byte{}
	}
	if old, ok := s.versions[secret][token]; ok && !bytes.Equal(old, value) {
		return errors.New("ResourceExistsException: a version with this token has another value")
	}
	s.versions[secret][token] = bytes.Clone(value)
	return nil
}

func (s *memStore) Pending(_ context.Context, secret, token string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.versions[secret][token]
	return bytes.Clone(v), ok, nil
}

func (s *memStore) Promote(_ context.Context, secret, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failProm != nil {
		return s.failProm
	}
	if _, ok := s.versions[secret][token]; !ok {
		return errors.New("no such version")
	}
	s.current[secret] = token
	return nil
}

func (s *memStore) Current(_ context.Context, secret string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[secret], nil
}

// value is the current version's value.
func (s *memStore) value(secret string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.versions[secret][s.current[secret]])
}

const token = "3f2c1a2b-0000-4000-8000-000000000001"

type ownedEnv struct {
	sim    *graph.Sim
	srv    *httptest.Server
	client *entra.Client
	leaver control.Account
	app    control.Owned
	sp     control.Owned
}

func ownedSetup(t *testing.T) ownedEnv {
	t.Helper()
	sim := graph.New(graph.Options{People: people, RequestsPerSecond: 10000})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	c, err := entra.New(entra.Config{Name: "entra", BaseURL: srv.URL, HTTPClient: srv.Client()})
	require.NoError(t, err)
	e := ownedEnv{sim: sim, srv: srv, client: c}
	e.leaver, err = c.Resolve(t.Context(), control.Person{Email: demo.ServiceOwner(people).Email})
	require.NoError(t, err)
	owned, err := c.Discover(t.Context(), e.leaver)
	require.NoError(t, err)
	require.Len(t, owned, 2)
	e.app, e.sp = owned[0], owned[1]
	e.app.Secret = demo.RotationSecret("entra", demo.ApplicationName)
	e.sp.Secret = e.app.Secret
	return e
}

func (e ownedEnv) params(store control.SecretStore) control.OwnedParams {
	return control.OwnedParams{NewOwner: people[0].Email, Leaver: e.leaver, Token: token, Since: time.Now().Add(-time.Second), Store: store}
}

// step runs observe → enforce → observe and returns both observations.
func (e ownedEnv) step(t *testing.T, name string, o control.Owned, p control.OwnedParams) (before, after control.Observation) {
	t.Helper()
	before, err := e.client.ObserveOwned(t.Context(), name, o, p)
	require.NoError(t, err)
	_, err = e.client.EnforceOwned(t.Context(), name, o, p)
	require.NoError(t, err)
	after, err = e.client.ObserveOwned(t.Context(), name, o, p)
	require.NoError(t, err)
	assert.True(t, after.Readable)
	assert.True(t, after.Holds, after.Detail)
	assert.NotEmpty(t, after.Call.RequestID)
	return before, after
}

func TestDiscoverOwned(t *testing.T) {
	e := ownedSetup(t)
	appID, spID := graph.ApplicationIDs(demo.ApplicationName)
	seeded, ok := e.sim.Application(appID)
	require.True(t, ok)

	assert.Equal(t, control.Owned{Target: "entra", Kind: control.KindApplication, ID: appID, Name: demo.ApplicationName,
		Credentials: []control.Credential{
			{Kind: "client secret", ID: seeded.Passwords[0], Status: "expires 2029-01-15"},
			{Kind: "certificate", ID: seeded.Certificates[0], Status: "expires 2028-01-15"},
		}, Secret: e.app.Secret}, e.app)
	assert.Equal(t, control.Owned{Target: "entra", Kind: control.KindServicePrincipal, ID: spID, Name: demo.ApplicationName, Secret: e.sp.Secret}, e.sp)

	// Someone who owns nothing: an empty list, read whole.
	other, err := e.client.Resolve(t.Context(), control.Person{Email: people[3].Email})
	require.NoError(t, err)
	none, err := e.client.Discover(t.Context(), other)
	require.NoError(t, err)
	assert.NotNil(t, none)
	assert.Empty(t, none)

	// More than a page (the simulator serves two a page): every one is found.
	e.sim.AddApplication("ledger-export", e.leaver.ID)
	e.sim.AddApplication("payroll-bridge", e.leaver.ID)
	all, err := e.client.Discover(t.Context(), e.leaver)
	require.NoError(t, err)
	var names []string
	for _, o := range all {
		names = append(names, o.Kind+" "+o.Name)
	}
	assert.Equal(t, []string{"application billing-sync", "service principal billing-sync", "application ledger-export",
		"service principal ledger-export", "application payroll-bridge", "service principal payroll-bridge"}, names)
}

// TestDiscoverHostile: a list Discover cannot trust whole is an error,
// never a short or empty list; make hostile counts these cases too.
func TestDiscoverHostile(t *testing.T) {
	tally := hostile.NewTally(t, "entra-owned")
	owned := `/v1.0/users/[^/]+/ownedObjects`
	for _, tc := range []struct {
		name  string
		rules func(base http.Handler) []hostile.Rule
	}{
		{"honest server", nil},
		{"paging ignores $skiptoken", func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Query(hostile.Path(owned), "$skiptoken"), Handler: hostile.DropQuery(base, "$skiptoken")}}
		}},
		{"foreign 404 on ownedObjects", one(hostile.Path(owned), hostile.ForeignJSON404())},
		{"Graph's not-found on ownedObjects of a user that exists", one(hostile.Path(owned), hostile.Body(404, "application/json", graphNotFound))},
		{"HTML 200 on ownedObjects", one(hostile.Path(owned), hostile.Body(200, "text/html", "<html>sign in</html>"))},
		{"$select ignored, credentials left out", func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Path(owned), Handler: hostile.Rewrite(base, withoutCredentials)}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := graph.New(graph.Options{People: people, RequestsPerSecond: 10000})
			sim.AddApplication("ledger-export", guidOf(t, sim, demo.ServiceOwner(people).Email)) // three pages
			base := sim.Handler()
			var rules []hostile.Rule
			if tc.rules != nil {
				rules = tc.rules(base)
			}
			srv := hostile.New(t, base, rules...)
			c, err := entra.New(entra.Config{Name: "entra", BaseURL: srv.URL})
			require.NoError(t, err)
			honest, err := entra.New(entra.Config{Name: "entra", BaseURL: hostile.New(t, base).URL})
			require.NoError(t, err)
			acct := control.Account{Target: "entra", ID: guidOf(t, sim, demo.ServiceOwner(people).Email)}
			truth, err := honest.Discover(t.Context(), acct)
			require.NoError(t, err)
			require.Len(t, truth, 4)

			got, err := c.Discover(t.Context(), acct)
			var v hostile.Verdict
			switch {
			case errors.Is(err, control.ErrNotFound):
				v = tally.Record(t, hostile.FalseClaim, "not found, but the user exists: "+err.Error())
			case err != nil:
				v = tally.Record(t, hostile.VisibleException, err.Error())
			case !assert.ObjectsAreEqual(truth, got):
				v = tally.Record(t, hostile.FalseClaim, fmt.Sprintf("listed %v, the user owns %v", got, truth))
			default:
				v = tally.Record(t, hostile.TrueObservation, fmt.Sprintf("%d owned objects", len(got)))
			}
			if tc.rules != nil {
				assert.Equal(t, hostile.VisibleException, v, "a hostile answer ends in an exception")
				assert.NotZero(t, srv.Hits(), "the hostile rule was hit")
			}
		})
	}
}

// withoutCredentials drops passwordCredentials from every object in a Graph answer.
func withoutCredentials(_ *http.Request, status int, _ http.Header, body []byte) (int, []byte) {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return status, body
	}
	delete(doc, "passwordCredentials")
	items, _ := doc["value"].([]any)
	for _, item := range items {
		delete(item.(map[string]any), "passwordCredentials")
	}
	out, _ := json.Marshal(doc)
	return status, out
}

// An application read without its credentials must not read as "none left".
func TestObserveCredentialsLeftOut(t *testing.T) {
	e := ownedSetup(t)
	srv := hostile.New(t, e.sim.Handler(), hostile.Rule{Match: hostile.Path(`/v1.0/applications/[^/]+`), Handler: hostile.Rewrite(e.sim.Handler(), withoutCredentials)})
	c, err := entra.New(entra.Config{Name: "entra", BaseURL: srv.URL})
	require.NoError(t, err)
	for _, name := range []string{"remove_credentials", "remove_old_client_secrets"} {
		obs, err := c.ObserveOwned(t.Context(), name, e.app, e.params(newStore()))
		require.ErrorIs(t, err, control.ErrUnexpected, "observed %+v", obs)
	}
	assert.NotZero(t, srv.Hits())
}

func guidOf(t *testing.T, sim *graph.Sim, upn string) string {
	u, ok := sim.User(upn)
	require.True(t, ok)
	return u.ID
}

func TestOwnedSteps(t *testing.T) {
	c, err := entra.New(entra.Config{BaseURL: "http://127.0.0.1:1"})
	require.NoError(t, err)
	names := func(kind string, a control.Action) []string {
		var out []string
		for _, s := range c.OwnedSteps(kind, a) {
			out = append(out, s.Name+"/"+string(s.After))
		}
		return out
	}
	assert.Equal(t, []string{"add_owner/", "remove_leaver_owner/"}, names(control.KindApplication, control.Reown))
	assert.Equal(t, []string{"add_client_secret/", "remove_old_client_secrets/grace"}, names(control.KindApplication, control.Rotate))
	assert.Equal(t, []string{"remove_credentials/", "disable_service_principal/"}, names(control.KindApplication, control.Decommission))
	assert.Equal(t, []string{"add_owner/", "remove_leaver_owner/"}, names(control.KindServicePrincipal, control.Reown))
	assert.Equal(t, []string{"disable_sign_in/"}, names(control.KindServicePrincipal, control.Decommission))
	assert.Equal(t, []string{"rotate_password/"}, names(control.KindBreakGlass, control.Rotate))
	assert.Nil(t, names(control.KindBreakGlass, control.Decommission))
	assert.Nil(t, names(control.KindServiceUser, control.Rotate))
}

func TestReown(t *testing.T) {
	for _, kind := range []string{control.KindApplication, control.KindServicePrincipal} {
		t.Run(kind, func(t *testing.T) {
			e := ownedSetup(t)
			o := e.app
			if kind == control.KindServicePrincipal {
				o = e.sp
			}
			p := e.params(nil)
			manager := guidOf(t, e.sim, people[0].Email)

			// Remove first would leave the app with no owner: refused, nothing changes.
			_, err := e.client.EnforceOwned(t.Context(), "remove_leaver_owner", o, p)
			require.ErrorIs(t, err, control.ErrPermanent)
			assert.Contains(t, err.Error(), "only owner")
			got, _ := e.sim.Application(o.ID)
			assert.Equal(t, []string{e.leaver.ID}, got.Owners)

			before, after := e.step(t, "add_owner", o, p)
			assert.False(t, before.Holds, before.Detail)
			assert.Contains(t, after.Detail, people[0].Email)
			before, after = e.step(t, "remove_leaver_owner", o, p)
			assert.False(t, before.Holds, before.Detail)
			assert.Equal(t, "owners: "+people[0].Email, after.Detail)
			got, _ = e.sim.Application(o.ID)
			assert.Equal(t, []string{manager}, got.Owners)

			// Both again: nothing changes.
			for _, name := range []string{"add_owner", "remove_leaver_owner"} {
				_, err := e.client.EnforceOwned(t.Context(), name, o, p)
				require.NoError(t, err)
			}
			got, _ = e.sim.Application(o.ID)
			assert.Equal(t, []string{manager}, got.Owners)
		})
	}
}

func TestReownRefusesAnOwnerWhoCannotOwn(t *testing.T) {
	e := ownedSetup(t)
	_, err := e.client.Enforce(t.Context(), "disable", control.Account{ID: guidOf(t, e.sim, people[2].Email)}, control.Params{})
	require.NoError(t, err)
	for _, tc := range []struct{ owner, want string }{
		{"nobody@example.test", `"nobody@example.test": 0 users`},
		{"platform-team", `"platform-team": 0 users`},
		{people[2].Email, "cannot sign in"},
		{demo.ServiceOwner(people).Email, "is the leaver"},
		{"", "no new owner named"},
	} {
		p := e.params(nil)
		p.NewOwner = tc.owner
		_, err := e.client.ObserveOwned(t.Context(), "add_owner", e.app, p)
		require.ErrorIs(t, err, control.ErrPermanent, tc.owner)
		assert.Contains(t, err.Error(), tc.want)
		_, err = e.client.EnforceOwned(t.Context(), "add_owner", e.app, p)
		require.ErrorIs(t, err, control.ErrPermanent, tc.owner)
	}
	got, _ := e.sim.Application(e.app.ID)
	assert.Equal(t, []string{e.leaver.ID}, got.Owners)
}

// secretOf reads the rotated client secret the store holds as current.
func secretOf(t *testing.T, s *memStore, secret string) (keyID, value string) {
	t.Helper()
	var r struct{ KeyID, ClientSecret, ClientID string }
	require.NoError(t, json.Unmarshal(s.value(secret), &r))
	require.NotEmpty(t, r.ClientSecret)
	require.NotEmpty(t, r.ClientID)
	return r.KeyID, r.ClientSecret
}

func TestRotateClientSecret(t *testing.T) {
	e := ownedSetup(t)
	store := newStore()
	p := e.params(store)
	oldKey := e.app.Credentials[0].ID

	before, after := e.step(t, "add_client_secret", e.app, p)
	assert.False(t, before.Holds, before.Detail)
	assert.Contains(t, after.Detail, "version 3f2c1a2b… (this rotation) is current")
	newKey, value := secretOf(t, store, e.app.Secret)
	assert.True(t, e.sim.SecretWorks(e.app.ID, newKey, []byte(value)), "the stored value is the secret on the app")
	got, _ := e.sim.Application(e.app.ID)
	assert.Equal(t, []string{oldKey, newKey}, got.Passwords, "the old secret works until its grace step")

	before, after = e.step(t, "remove_old_client_secrets", e.app, p)
	assert.False(t, before.Holds, before.Detail)
	assert.Contains(t, after.Detail, "certificates are not rotated here")
	got, _ = e.sim.Application(e.app.ID)
	assert.Equal(t, []string{newKey}, got.Passwords)
	assert.Len(t, got.Certificates, 1)

	// Everything again: no new secret, the current one kept.
	for _, name := range []string{"add_client_secret", "remove_old_client_secrets"} {
		_, err := e.client.EnforceOwned(t.Context(), name, e.app, p)
		require.NoError(t, err)
	}
	got, _ = e.sim.Application(e.app.ID)
	assert.Equal(t, []string{newKey}, got.Passwords)
	for _, said := range []string{before.Detail, after.Detail} {
		assert.NotContains(t, said, value)
	}
}

func TestRotateClientSecretOfAServicePrincipalWithoutOne(t *testing.T) {
	e := ownedSetup(t)
	store := newStore()
	for _, name := range []string{"add_client_secret", "remove_old_client_secrets"} {
		obs, err := e.client.ObserveOwned(t.Context(), name, e.sp, e.params(store))
		require.NoError(t, err)
		assert.True(t, obs.Holds)
		assert.Contains(t, obs.Detail, "nothing to rotate")
	}
	_, err := e.client.EnforceOwned(t.Context(), "add_client_secret", e.sp, e.params(store))
	require.NoError(t, err)
	got, _ := e.sim.Application(e.sp.ID)
	assert.Empty(t, got.Passwords, "no secret added to a service principal that had none")
}

func TestRemoveOldSecretsWaitsForTheNewOne(t *testing.T) {
	e := ownedSetup(t)
	_, err := e.client.EnforceOwned(t.Context(), "remove_old_client_secrets", e.app, e.params(newStore()))
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "not in place")
	got, _ := e.sim.Application(e.app.ID)
	assert.Equal(t, []string{e.app.Credentials[0].ID}, got.Passwords)
}

func TestRotateWithoutAStore(t *testing.T) {
	e := ownedSetup(t)
	bg := control.Owned{Target: "entra", Kind: control.KindBreakGlass, ID: demo.BreakGlassEntra, Secret: demo.BreakGlassSecrets["entra"]}
	for _, tc := range []struct {
		name string
		o    control.Owned
	}{{"add_client_secret", e.app}, {"remove_old_client_secrets", e.app}, {"rotate_password", bg}} {
		_, err := e.client.ObserveOwned(t.Context(), tc.name, tc.o, e.params(nil))
		require.ErrorIs(t, err, control.ErrPermanent)
		assert.Contains(t, err.Error(), "no secret store configured")
		_, err = e.client.EnforceOwned(t.Context(), tc.name, tc.o, e.params(nil))
		require.ErrorIs(t, err, control.ErrPermanent)
	}
	got, _ := e.sim.Application(e.app.ID)
	assert.Len(t, got.Passwords, 1)
	assert.Empty(t, e.sim.Transitions(demo.BreakGlassEntra))
}

// The store write fails after addPassword: Entra is put back as it was, the
// old secret untouched, and the error is returned. A retry with a working
// store adds exactly one new secret.
func TestRotateClientSecretStoreFailsAfterTheSystemCall(t *testing.T) {
	e := ownedSetup(t)
	store := newStore()
	store.failPut = errors.New("AccessDeniedException: not allowed to PutSecretValue")
	oldKey := e.app.Credentials[0].ID

	_, err := e.client.EnforceOwned(t.Context(), "add_client_secret", e.app, e.params(store))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AccessDeniedException")
	got, _ := e.sim.Application(e.app.ID)
	assert.Equal(t, []string{oldKey}, got.Passwords, "the added secret, whose value is lost, is taken off")
	obs, err := e.client.ObserveOwned(t.Context(), "add_client_secret", e.app, e.params(store))
	require.NoError(t, err)
	assert.False(t, obs.Holds)

	store.failPut = nil
	_, err = e.client.EnforceOwned(t.Context(), "add_client_secret", e.app, e.params(store))
	require.NoError(t, err)
	got, _ = e.sim.Application(e.app.ID)
	require.Len(t, got.Passwords, 2, "exactly one new secret")
	assert.Equal(t, oldKey, got.Passwords[0], "the old one still valid until its step")
	newKey, value := secretOf(t, store, e.app.Secret)
	assert.Equal(t, newKey, got.Passwords[1])
	assert.True(t, e.sim.SecretWorks(e.app.ID, newKey, []byte(value)))
}

// A crash after addPassword and before the store write (no chance to clean
// up): the secret carrying this rotation's token, whose value nobody has,
// is recognised and removed before a fresh one is added.
func TestRotateClientSecretAfterACrashBeforeTheStore(t *testing.T) {
	e := ownedSetup(t)
	body := `{"passwordCredential":{"displayName":"offboard rotation ` + token + `"}}`
	resp, err := http.Post(e.srv.URL+"/v1.0/applications/"+e.app.ID+"/addPassword", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	got, _ := e.sim.Application(e.app.ID)
	require.Len(t, got.Passwords, 2)
	lost := got.Passwords[1]

	store := newStore()
	e.step(t, "add_client_secret", e.app, e.params(store))
	got, _ = e.sim.Application(e.app.ID)
	require.Len(t, got.Passwords, 2, "exactly one new secret")
	assert.Equal(t, e.app.Credentials[0].ID, got.Passwords[0])
	assert.NotEqual(t, lost, got.Passwords[1], "the lost one is gone")
	newKey, value := secretOf(t, store, e.app.Secret)
	assert.True(t, e.sim.SecretWorks(e.app.ID, newKey, []byte(value)))
}

// addPassword made a secret but its answer could not be read: the error
// holds neither the secret nor the body's digest, and the next attempt
// removes the secret nobody has before adding one.
func TestAddPasswordUnreadableAnswer(t *testing.T) {
	e := ownedSetup(t)
	var body []byte
	srv := hostile.New(t, e.sim.Handler(), hostile.Rule{Match: hostile.Path(`/v1.0/applications/[^/]+/addPassword`),
		Handler: hostile.Rewrite(e.sim.Handler(), func(_ *http.Request, status int, _ http.Header, b []byte) (int, []byte) {
			body = b
			return status, []byte("<html>saved</html>")
		})})
	c, err := entra.New(entra.Config{Name: "entra", BaseURL: srv.URL})
	require.NoError(t, err)
	store := newStore()
	_, err = c.EnforceOwned(t.Context(), "add_client_secret", e.app, e.params(store))
	require.Error(t, err)
	var made struct{ SecretText string }
	require.NoError(t, json.Unmarshal(body, &made))
	require.NotEmpty(t, made.SecretText)
	assert.NotContains(t, err.Error(), made.SecretText)
	assert.NotContains(t, err.Error(), control.Digest(body))
	var ce *control.Error
	require.ErrorAs(t, err, &ce)
	assert.Empty(t, ce.Digest)
	got, _ := e.sim.Application(e.app.ID)
	require.Len(t, got.Passwords, 2, "Graph made one")

	e.step(t, "add_client_secret", e.app, e.params(store))
	again, _ := e.sim.Application(e.app.ID)
	require.Len(t, again.Passwords, 2, "exactly one new secret")
	assert.NotEqual(t, got.Passwords[1], again.Passwords[1], "the one nobody has is gone")
	newKey, value := secretOf(t, store, e.app.Secret)
	assert.True(t, e.sim.SecretWorks(e.app.ID, newKey, []byte(value)))
}

// Promote fails after the value is stored as pending: the retry reuses the
// pending version and the secret already on Entra, adding nothing.
// The store's not-found is about the secret: never the identity's "gone".
func TestStoreNotFoundIsNotGone(t *testing.T) {
	e := ownedSetup(t)
	store := newStore()
	store.failPut = &control.Error{Kind: control.ErrNotFound, Op: "secretsmanager: put", Err: errors.New("ResourceNotFoundException")}
	bg := control.Owned{Target: "entra", Kind: control.KindBreakGlass, ID: demo.BreakGlassEntra, Secret: "breakglass/missing"}
	for _, o := range []control.Owned{e.app, bg} {
		name := "add_client_secret"
		if o.Kind == control.KindBreakGlass {
			name = "rotate_password"
		}
		_, err := e.client.EnforceOwned(t.Context(), name, o, e.params(store))
		require.ErrorIs(t, err, control.ErrPermanent)
		assert.False(t, errors.Is(err, control.ErrNotFound), err.Error())
	}
}

func TestRotateClientSecretPromoteFails(t *testing.T) {
	e := ownedSetup(t)
	store := newStore()
	store.failProm = errors.New("InternalServiceError")
	_, err := e.client.EnforceOwned(t.Context(), "add_client_secret", e.app, e.params(store))
	require.Error(t, err)
	got, _ := e.sim.Application(e.app.ID)
	require.Len(t, got.Passwords, 2)
	pending, ok, _ := store.Pending(t.Context(), e.app.Secret, token)
	require.True(t, ok)
	obs, err := e.client.ObserveOwned(t.Context(), "add_client_secret", e.app, e.params(store))
	require.NoError(t, err)
	assert.False(t, obs.Holds, "the new secret is on the app but not current in the store: %s", obs.Detail)

	store.failProm = nil
	e.step(t, "add_client_secret", e.app, e.params(store))
	again, _ := e.sim.Application(e.app.ID)
	assert.Equal(t, got.Passwords, again.Passwords, "nothing added on the retry")
	assert.Equal(t, pending, store.value(e.app.Secret))
}

func TestDecommission(t *testing.T) {
	e := ownedSetup(t)
	p := e.params(nil)
	before, after := e.step(t, "remove_credentials", e.app, p)
	assert.Equal(t, "1 client secrets and 1 certificates left", before.Detail)
	assert.Equal(t, "0 client secrets and 0 certificates left", after.Detail)
	before, _ = e.step(t, "disable_service_principal", e.app, p)
	assert.False(t, before.Holds)
	sp, _ := e.sim.Application(e.sp.ID)
	assert.False(t, sp.AccountEnabled)
	app, _ := e.sim.Application(e.app.ID)
	assert.Empty(t, app.Passwords)
	assert.Empty(t, app.Certificates)

	// A service principal on its own: sign-in off, read back.
	e = ownedSetup(t)
	before, after = e.step(t, "disable_sign_in", e.sp, p)
	assert.Equal(t, "accountEnabled=true", before.Detail)
	assert.Equal(t, "accountEnabled=false", after.Detail)
}

func TestRotateBreakGlassPassword(t *testing.T) {
	e := ownedSetup(t)
	store := newStore()
	bg := control.Owned{Target: "entra", Kind: control.KindBreakGlass, ID: demo.BreakGlassEntra, Secret: demo.BreakGlassSecrets["entra"]}
	p := e.params(store)
	p.Since = time.Now()

	before, after := e.step(t, "rotate_password", bg, p)
	assert.False(t, before.Holds, before.Detail)
	assert.Contains(t, after.Detail, "version 3f2c1a2b… (this rotation) is current")
	var v struct{ Username, Password string }
	require.NoError(t, json.Unmarshal(store.value(bg.Secret), &v))
	assert.Equal(t, demo.BreakGlassEntra, v.Username)
	assert.Len(t, v.Password, 32)
	assert.True(t, e.sim.PasswordWorks(bg.ID, []byte(v.Password)), "the stored password is the account's")
	for _, said := range []string{before.Detail, after.Detail} {
		assert.NotContains(t, said, v.Password)
	}
	u, _ := e.sim.User(bg.ID)
	assert.False(t, u.LastPasswordChange.Before(p.Since.Truncate(time.Second)))

	// A rotation that began after the change is not satisfied by it.
	later := p
	later.Since = time.Now().Add(time.Hour)
	obs, err := e.client.ObserveOwned(t.Context(), "rotate_password", bg, later)
	require.NoError(t, err)
	assert.False(t, obs.Holds, obs.Detail)
}

func TestRotateBreakGlassPasswordStoreFails(t *testing.T) {
	e := ownedSetup(t)
	bg := control.Owned{Target: "entra", Kind: control.KindBreakGlass, ID: demo.BreakGlassEntra, Secret: demo.BreakGlassSecrets["entra"]}
	store := newStore()
	store.failPut = errors.New("AccessDeniedException")
	p := e.params(store)
	_, err := e.client.EnforceOwned(t.Context(), "rotate_password", bg, p)
	require.Error(t, err)
	assert.Empty(t, e.sim.Transitions(bg.ID), "the password is not changed when the store cannot keep it")
	assert.True(t, e.sim.PasswordWorks(bg.ID, []byte("seeded break-glass password")))

	// Promote fails after the password is set: the retry sets the same value and promotes it.
	store.failPut, store.failProm = nil, errors.New("InternalServiceError")
	_, err = e.client.EnforceOwned(t.Context(), "rotate_password", bg, p)
	require.Error(t, err)
	pending, ok, _ := store.Pending(t.Context(), bg.Secret, token)
	require.True(t, ok)
	obs, err := e.client.ObserveOwned(t.Context(), "rotate_password", bg, p)
	require.NoError(t, err)
	assert.False(t, obs.Holds, "the password changed but the store's current version is not this rotation's: %s", obs.Detail)
	store.failProm = nil
	e.step(t, "rotate_password", bg, p)
	assert.Equal(t, pending, store.value(bg.Secret), "the pending value is reused")
	var v struct{ Password string }
	require.NoError(t, json.Unmarshal(pending, &v))
	assert.True(t, e.sim.PasswordWorks(bg.ID, []byte(v.Password)))
}

func TestOwnedGone(t *testing.T) {
	e := ownedSetup(t)
	o := e.app
	o.ID = "00000000-0000-4000-8000-00000000dead"
	for _, name := range []string{"remove_credentials", "add_owner", "disable_service_principal"} {
		obs, err := e.client.ObserveOwned(t.Context(), name, o, e.params(nil))
		require.NoError(t, err)
		assert.True(t, obs.Gone, name)
		assert.True(t, obs.Holds, name)
	}
}

// TestOwnedThroughActivities runs discovery and a rotation through the
// activities that turn the connector's answers into receipts: each step is
// observed after enforcing, and no receipt holds a secret.
func TestOwnedThroughActivities(t *testing.T) {
	e := ownedSetup(t)
	store := newStore()
	acts := activities.New(config.Config{}, []control.Target{e.client})
	acts.Secrets = store
	found, err := acts.DiscoverOwned(t.Context(), activities.DiscoverInput{Target: "entra", Account: e.leaver})
	require.NoError(t, err)
	require.True(t, found.Supported)
	require.Len(t, found.Owned, 2)
	app := found.Owned[0]
	assert.NotEmpty(t, app.Secret, "the activity names the secret-store entry")

	bg := control.Owned{Target: "entra", Kind: control.KindBreakGlass, ID: demo.BreakGlassEntra, Secret: demo.BreakGlassSecrets["entra"]}
	var receipts []control.Receipt
	for _, run := range []struct {
		o    control.Owned
		step string
	}{{app, "add_client_secret"}, {app, "remove_old_client_secrets"}, {bg, "rotate_password"}} {
		p := e.params(nil)
		p.Since = time.Now().Add(-time.Second)
		r, err := acts.ApplyOwned(t.Context(), activities.OwnedInput{ControlID: "entra/" + run.o.ID + "/" + run.step, Target: "entra",
			Step: run.step, Owned: run.o, Params: p})
		require.NoError(t, err, run.step)
		assert.Equal(t, control.Observed, r.Outcome, "%s: %s", run.step, r.Detail)
		receipts = append(receipts, r)
	}
	raw, err := json.Marshal(receipts)
	require.NoError(t, err)
	_, clientSecret := secretOf(t, store, app.Secret)
	var pw struct{ Password string }
	require.NoError(t, json.Unmarshal(store.value(bg.Secret), &pw))
	assert.NotContains(t, string(raw), clientSecret)
	assert.NotContains(t, string(raw), pw.Password)
}
