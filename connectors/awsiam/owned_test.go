package awsiam_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/secretstore"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	iamsim "github.com/offboard/offboard/sandbox/iam"
	"github.com/offboard/offboard/sandbox/secrets"
)

const rotation = "0f0e0d0c-0b0a-4000-8000-000000000015"

// ownedEnv is the IAM simulator and the Secrets Manager simulator of one
// account, a connector on both, and the secret store on the latter.
type ownedEnv struct {
	*env
	secrets *secrets.Sim
	store   *secretstore.Store
}

func newOwnedEnv(t *testing.T) *ownedEnv {
	t.Helper()
	sm := secrets.New(secrets.Options{AccessKeyID: testKey, SecretAccessKey: testSecret, RequestsPerSecond: 100000, People: people})
	smSrv := httptest.NewServer(sm.Handler())
	t.Cleanup(smSrv.Close)
	e := newEnv(t, func(_ *iamsim.Options, c *awsiam.Config) { c.SecretsEndpoint = smSrv.URL })
	store, err := secretstore.New(secretstore.Config{Endpoint: smSrv.URL, Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
	require.NoError(t, err)
	return &ownedEnv{env: e, secrets: sm, store: store}
}

func (e *ownedEnv) discover(t *testing.T, p demo.Person) []control.Owned {
	t.Helper()
	owned, err := e.client.Discover(t.Context(), acct(p))
	require.NoError(t, err)
	return owned
}

func (e *ownedEnv) serviceUser(t *testing.T) control.Owned {
	t.Helper()
	for _, o := range e.discover(t, demo.ServiceOwner(people)) {
		if o.Kind == control.KindServiceUser {
			o.Secret = demo.RotationSecret(target, o.Name) // as the activity sets it from config.NonHuman
			return o
		}
	}
	t.Fatal("no service user discovered")
	return control.Owned{}
}

// flakyStore fails the next calls it is told to, then is the real store.
type flakyStore struct {
	control.SecretStore
	failPut, failPromote int
}

var errStoreDown = &control.Error{Kind: control.ErrTransient, Op: "secretstore: test", Err: errors.New("store unavailable")}

func (f *flakyStore) PutPending(ctx context.Context, secret, token string, value []byte) error {
	if f.failPut > 0 {
		f.failPut--
		return errStoreDown
	}
	return f.SecretStore.PutPending(ctx, secret, token, value)
}

func (f *flakyStore) Promote(ctx context.Context, secret, token string) error {
	if f.failPromote > 0 {
		f.failPromote--
		return errStoreDown
	}
	return f.SecretStore.Promote(ctx, secret, token)
}

func TestOwnedSteps(t *testing.T) {
	e := newEnv(t)
	steps := func(kind string, a control.Action) []control.Step { return e.client.OwnedSteps(kind, a) }
	assert.Equal(t, []control.Step{{Name: "retag_owner"}}, steps(control.KindServiceUser, control.Reown))
	assert.Equal(t, []control.Step{{Name: "rotate_access_keys"}, {Name: "deactivate_old_access_keys", After: control.Grace},
		{Name: "delete_old_access_keys", After: control.Purge}}, steps(control.KindServiceUser, control.Rotate))
	assert.Equal(t, []control.Step{{Name: "deactivate_access_keys"}, {Name: "delete_login_profile"}}, steps(control.KindServiceUser, control.Decommission))
	assert.Equal(t, []control.Step{{Name: "retag_owner"}}, steps(control.KindSecret, control.Reown))
	assert.Equal(t, []control.Step{{Name: "rotate_secret"}}, steps(control.KindSecret, control.Rotate))
	assert.Equal(t, []control.Step{{Name: "schedule_deletion"}}, steps(control.KindSecret, control.Decommission))
	assert.Equal(t, []control.Step{{Name: "rotate_password"}}, steps(control.KindBreakGlass, control.Rotate))
	assert.Nil(t, steps(control.KindBreakGlass, control.Decommission))
	assert.Nil(t, steps(control.KindAPIToken, control.Rotate))
}

func TestDiscover(t *testing.T) {
	e := newOwnedEnv(t)
	owned := e.discover(t, demo.ServiceOwner(people))
	require.Len(t, owned, 2)
	user, secret := owned[0], owned[1]
	assert.Equal(t, control.Owned{Target: target, Kind: control.KindServiceUser, ID: demo.ServiceUserName, Name: demo.ServiceUserName,
		Credentials: []control.Credential{{Kind: "access key", ID: mustUserKeys(t, e.sim, demo.ServiceUserName)[0].ID, Status: "Active"}}}, user)
	assert.Equal(t, control.KindSecret, secret.Kind)
	assert.Equal(t, demo.OwnedSecretName, secret.Name)
	assert.True(t, strings.HasPrefix(secret.ID, "arn:aws:secretsmanager:us-east-1:123456789012:secret:deploy-bot/api-"), secret.ID)

	// Someone who owns nothing: an empty list, no error.
	assert.Empty(t, e.discover(t, people[2]))

	// The owner tag may name the login, in any case; a tag value is compared whole.
	ctx := t.Context()
	_, err := e.sdk().TagUser(ctx, &iam.TagUserInput{UserName: aws.String(demo.BreakGlassAWS), Tags: tagOwner(strings.ToUpper(people[2].Login))})
	require.NoError(t, err)
	_, err = e.sdk().TagUser(ctx, &iam.TagUserInput{UserName: aws.String(people[3].Login), Tags: tagOwner(people[2].Email + ".old")})
	require.NoError(t, err)
	got := e.discover(t, people[2])
	require.Len(t, got, 1)
	assert.Equal(t, demo.BreakGlassAWS, got[0].ID)

	// A narrower path: only service users are looked at.
	narrow, err := awsiam.New(ctx, awsiam.Config{Name: target, Endpoint: e.srv.URL, SecretsEndpoint: e.cfgSecrets(t),
		ServicePathPrefix: "/service/", Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
	require.NoError(t, err)
	got, err = narrow.Discover(ctx, acct(people[2]))
	require.NoError(t, err)
	assert.Empty(t, got)
}

func (e *ownedEnv) cfgSecrets(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(e.secrets.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func tagOwner(v string) []types.Tag {
	return []types.Tag{{Key: aws.String("owner"), Value: aws.String(v)}}
}

func mustUserKeys(t *testing.T, sim *iamsim.Sim, name string) []iamsim.Credential {
	t.Helper()
	u, ok := sim.User(name)
	require.True(t, ok)
	return u.AccessKeys
}

func TestDiscoverRefusesWhatItCannotReadWhole(t *testing.T) {
	e := newEnv(t) // an IAM endpoint and no Secrets Manager endpoint
	_, err := e.client.Discover(t.Context(), acct(demo.ServiceOwner(people)))
	assert.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "Secrets Manager endpoint")

	cases := map[string]http.HandlerFunc{
		"ListSecrets serves its NextToken again": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			_, _ = io.WriteString(w, `{"SecretList":[],"NextToken":"again"}`)
		},
		// The SDK read these as an empty list: "owns no secrets".
		"ListSecrets answers {}":                jsonAnswer(`{}`),
		"ListSecrets answers an empty body":     jsonAnswer(``),
		"ListSecrets answers a null SecretList": jsonAnswer(`{"SecretList":null}`),
		"a proxy's 404": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "<html><body><h1>404 Not Found</h1></body></html>")
		},
		"a 404 with Secrets Manager's not-found body for a list": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}`)
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			c, err := awsiam.New(t.Context(), awsiam.Config{Name: target, Endpoint: e.srv.URL, SecretsEndpoint: srv.URL,
				Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
			require.NoError(t, err)
			owned, err := c.Discover(t.Context(), acct(demo.ServiceOwner(people)))
			require.Error(t, err, "never a shorter list")
			assert.Nil(t, owned)
			assert.False(t, errors.Is(err, control.ErrNotFound))
		})
	}

	t.Run("ListUsers cut short: IsTruncated without a Marker", func(t *testing.T) {
		base := e.sim.Handler()
		marker := regexp.MustCompile(`<Marker>[^<]*</Marker>`)
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if form, _ := url.ParseQuery(string(body)); form.Get("Action") != "ListUsers" {
				base.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			base.ServeHTTP(rec, r)
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(marker.ReplaceAll(rec.Body.Bytes(), nil))
		}))
		defer proxy.Close()
		c, err := awsiam.New(t.Context(), awsiam.Config{Name: target, Endpoint: proxy.URL, SecretsEndpoint: "http://127.0.0.1:1",
			Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
		require.NoError(t, err)
		_, err = c.Discover(t.Context(), acct(demo.ServiceOwner(people)))
		assert.ErrorIs(t, err, control.ErrUnexpected)
		assert.Contains(t, err.Error(), "cannot be trusted to be whole")
	})

	t.Run("ListUsers answers a proxy's 404", func(t *testing.T) {
		base := e.sim.Handler()
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if form, _ := url.ParseQuery(string(body)); form.Get("Action") == "ListUsers" {
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, "<html>Not Found</html>")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			base.ServeHTTP(w, r)
		}))
		defer proxy.Close()
		c, err := awsiam.New(t.Context(), awsiam.Config{Name: target, Endpoint: proxy.URL, SecretsEndpoint: "http://127.0.0.1:1",
			Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
		require.NoError(t, err)
		_, err = c.Discover(t.Context(), acct(demo.ServiceOwner(people)))
		assert.ErrorIs(t, err, control.ErrUnexpected)
	})
}

// step runs the activity's dance: observe, enforce if needed, observe.
func (e *ownedEnv) step(t *testing.T, name string, o control.Owned, p control.OwnedParams) control.Observation {
	t.Helper()
	ctx := t.Context()
	obs, err := e.client.ObserveOwned(ctx, name, o, p)
	require.NoError(t, err)
	if !obs.Holds {
		_, err = e.client.EnforceOwned(ctx, name, o, p)
		require.NoError(t, err)
		obs, err = e.client.ObserveOwned(ctx, name, o, p)
		require.NoError(t, err)
	}
	require.True(t, obs.Holds, obs.Detail)
	return obs
}

func (e *ownedEnv) storedKey(t *testing.T, secret string) (id, value string) {
	t.Helper()
	raw, ok, err := e.store.Pending(t.Context(), secret, rotation)
	require.NoError(t, err)
	require.True(t, ok)
	var v struct{ AccessKeyID, SecretAccessKey string }
	require.NoError(t, json.Unmarshal(raw, &v))
	return v.AccessKeyID, v.SecretAccessKey
}

func TestRotateAccessKeys(t *testing.T) {
	e := newOwnedEnv(t)
	o := e.serviceUser(t)
	old := o.Credentials[0].ID
	p := control.OwnedParams{Token: rotation, Since: time.Now(), Store: e.store}

	obs := e.step(t, awsiam.RotateAccessKeys, o, p)
	id, value := e.storedKey(t, o.Secret)
	want, ok := e.sim.AccessKeySecret(demo.ServiceUserName, id)
	require.True(t, ok)
	assert.Equal(t, want, value, "the store holds the key's working secret")
	assert.Contains(t, obs.Detail, "…"+id[len(id)-4:]+" active")
	assert.Contains(t, obs.Detail, rotation[:8])
	assert.NotContains(t, obs.Detail, value)
	cur, err := e.store.Current(t.Context(), o.Secret)
	require.NoError(t, err)
	assert.Equal(t, rotation, cur)
	keys := mustUserKeys(t, e.sim, demo.ServiceUserName)
	assert.Equal(t, []iamsim.Credential{{ID: old, Status: "Active"}, {ID: id, Status: "Active"}}, keys, "the old key works until its grace ends")

	// Enforcing again changes nothing: the stored version is reused.
	_, err = e.client.EnforceOwned(t.Context(), awsiam.RotateAccessKeys, o, p)
	require.NoError(t, err)
	assert.Equal(t, keys, mustUserKeys(t, e.sim, demo.ServiceUserName))

	e.step(t, awsiam.DeactivateOldAccessKeys, o, p)
	assert.Equal(t, []iamsim.Credential{{ID: old, Status: "Inactive"}, {ID: id, Status: "Active"}}, mustUserKeys(t, e.sim, demo.ServiceUserName))
	e.step(t, awsiam.DeleteOldAccessKeys, o, p)
	assert.Equal(t, []iamsim.Credential{{ID: id, Status: "Active"}}, mustUserKeys(t, e.sim, demo.ServiceUserName))
}

func TestRotateAccessKeysStoreWriteFails(t *testing.T) {
	e := newOwnedEnv(t)
	o := e.serviceUser(t)
	old := o.Credentials[0].ID
	store := &flakyStore{SecretStore: e.store, failPut: 1}
	p := control.OwnedParams{Token: rotation, Since: time.Now(), Store: store}

	_, err := e.client.EnforceOwned(t.Context(), awsiam.RotateAccessKeys, o, p)
	require.Error(t, err)
	assert.ErrorIs(t, err, control.ErrTransient, "the store's failure, for the activity to make an exception of")
	assert.Equal(t, []iamsim.Credential{{ID: old, Status: "Active"}}, mustUserKeys(t, e.sim, demo.ServiceUserName), "old key untouched, the unstored one taken back")
	_, ok, err := e.store.Pending(t.Context(), o.Secret, rotation)
	require.NoError(t, err)
	assert.False(t, ok)

	// Again with a working store: exactly one new key.
	_, err = e.client.EnforceOwned(t.Context(), awsiam.RotateAccessKeys, o, p)
	require.NoError(t, err)
	keys := mustUserKeys(t, e.sim, demo.ServiceUserName)
	require.Len(t, keys, 2)
	id, _ := e.storedKey(t, o.Secret)
	assert.Equal(t, []iamsim.Credential{{ID: old, Status: "Active"}, {ID: id, Status: "Active"}}, keys)
}

func TestRotateAccessKeysAfterACrash(t *testing.T) {
	t.Run("between create and store", func(t *testing.T) {
		e := newOwnedEnv(t)
		o := e.serviceUser(t)
		old := o.Credentials[0].ID
		// The first attempt created a key and died before PutPending: its secret is lost.
		lost, err := e.sdk().CreateAccessKey(t.Context(), &iam.CreateAccessKeyInput{UserName: aws.String(demo.ServiceUserName)})
		require.NoError(t, err)
		p := control.OwnedParams{Token: rotation, Since: time.Now(), Store: e.store}
		e.step(t, awsiam.RotateAccessKeys, o, p)
		id, _ := e.storedKey(t, o.Secret)
		assert.NotEqual(t, aws.ToString(lost.AccessKey.AccessKeyId), id)
		assert.Equal(t, []iamsim.Credential{{ID: old, Status: "Active"}, {ID: id, Status: "Active"}}, mustUserKeys(t, e.sim, demo.ServiceUserName),
			"the lost key deleted, exactly one new key, the old one still valid")
	})
	t.Run("between store and promote", func(t *testing.T) {
		e := newOwnedEnv(t)
		o := e.serviceUser(t)
		store := &flakyStore{SecretStore: e.store, failPromote: 1}
		p := control.OwnedParams{Token: rotation, Since: time.Now(), Store: store}
		_, err := e.client.EnforceOwned(t.Context(), awsiam.RotateAccessKeys, o, p)
		require.Error(t, err)
		obs, err := e.client.ObserveOwned(t.Context(), awsiam.RotateAccessKeys, o, p)
		require.NoError(t, err)
		assert.False(t, obs.Holds, "stored but not current: %s", obs.Detail)
		keys := mustUserKeys(t, e.sim, demo.ServiceUserName)
		require.Len(t, keys, 2)
		e.step(t, awsiam.RotateAccessKeys, o, p)
		assert.Equal(t, keys, mustUserKeys(t, e.sim, demo.ServiceUserName), "the stored key is promoted, no other made")
	})
}

func TestRotateAccessKeysRefuses(t *testing.T) {
	e := newOwnedEnv(t)
	ctx := t.Context()
	_, err := e.sdk().CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(demo.ServiceUserName)})
	require.NoError(t, err)
	o := e.serviceUser(t) // discovered holding two keys
	require.Len(t, o.Credentials, 2)
	p := control.OwnedParams{Token: rotation, Since: time.Now(), Store: e.store}

	_, err = e.client.EnforceOwned(ctx, awsiam.RotateAccessKeys, o, p)
	assert.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "two access keys")
	assert.Len(t, mustUserKeys(t, e.sim, demo.ServiceUserName), 2)

	_, err = e.client.EnforceOwned(ctx, awsiam.DeactivateOldAccessKeys, o, p)
	assert.ErrorIs(t, err, control.ErrPermanent, "no new key in place: the old ones stay")
	assert.Equal(t, 2, countStatus(mustUserKeys(t, e.sim, demo.ServiceUserName), "Active"))
	_, err = e.client.EnforceOwned(ctx, awsiam.DeleteOldAccessKeys, o, p)
	assert.ErrorIs(t, err, control.ErrPermanent, "an active old key is not deleted")
	assert.Len(t, mustUserKeys(t, e.sim, demo.ServiceUserName), 2)

	_, err = e.client.EnforceOwned(ctx, awsiam.RotateAccessKeys, o, control.OwnedParams{Token: rotation})
	assert.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "no secret store configured")

	// A key discovery did not see, older than the rotation: not ours to delete.
	one := e.serviceUser(t)
	one.Credentials = one.Credentials[:1]
	_, err = e.client.EnforceOwned(ctx, awsiam.RotateAccessKeys, one, control.OwnedParams{Token: rotation, Since: time.Now().Add(time.Hour), Store: e.store})
	assert.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "predates this rotation")
	assert.Len(t, mustUserKeys(t, e.sim, demo.ServiceUserName), 2)
}

func TestServiceUserReownAndDecommission(t *testing.T) {
	e := newOwnedEnv(t)
	o := e.serviceUser(t)
	p := control.OwnedParams{NewOwner: "team-platform@example.test"}
	obs := e.step(t, awsiam.RetagOwner, o, p)
	assert.Contains(t, obs.Detail, "team-platform@example.test")
	u, _ := e.sim.User(demo.ServiceUserName)
	assert.Equal(t, "team-platform@example.test", u.Tags["owner"])
	_, err := e.client.EnforceOwned(t.Context(), awsiam.RetagOwner, o, control.OwnedParams{})
	assert.ErrorIs(t, err, control.ErrPermanent, "no one to hand it to")

	for _, s := range e.client.OwnedSteps(control.KindServiceUser, control.Decommission) {
		e.step(t, s.Name, o, control.OwnedParams{})
	}
	assert.Equal(t, 0, countStatus(mustUserKeys(t, e.sim, demo.ServiceUserName), "Active"))
}

func TestSecretSteps(t *testing.T) {
	e := newOwnedEnv(t)
	ctx := t.Context()
	var o control.Owned
	for _, x := range e.discover(t, demo.ServiceOwner(people)) {
		if x.Kind == control.KindSecret {
			o = x
		}
	}
	require.NotEmpty(t, o.ID)

	e.step(t, awsiam.RetagOwner, o, control.OwnedParams{NewOwner: "team-platform@example.test"})
	s, _ := e.secrets.Secret(demo.OwnedSecretName)
	assert.Equal(t, "team-platform@example.test", s.Tags["owner"])

	before, _ := s.CurrentValue()
	p := control.OwnedParams{Token: rotation, Since: time.Now()}
	obs, err := e.client.ObserveOwned(ctx, awsiam.RotateSecret, o, p)
	require.NoError(t, err)
	assert.False(t, obs.Holds, "rotated before this run only")
	obs = e.step(t, awsiam.RotateSecret, o, p)
	assert.Contains(t, obs.Detail, rotation[:8])
	s, _ = e.secrets.Secret(demo.OwnedSecretName)
	after, _ := s.CurrentValue()
	assert.NotEqual(t, before, after)
	assert.NotContains(t, obs.Detail, string(after))
	later, err := e.client.ObserveOwned(ctx, awsiam.RotateSecret, o, control.OwnedParams{Token: rotation, Since: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.False(t, later.Holds, "a rotation before Since is not this run's")

	obs = e.step(t, awsiam.ScheduleDeletion, o, control.OwnedParams{})
	assert.Contains(t, obs.Detail, "restorable for 30 days")
	s, _ = e.secrets.Secret(demo.OwnedSecretName)
	require.NotNil(t, s.Deleted)
	_, err = e.client.EnforceOwned(ctx, awsiam.ScheduleDeletion, o, control.OwnedParams{})
	require.NoError(t, err, "already scheduled is done")

	// A secret without a rotation function cannot be rotated: said, not faked.
	bg, _ := e.secrets.Secret(demo.BreakGlassSecrets["ldap"])
	norot := control.Owned{Target: target, Kind: control.KindSecret, ID: bg.ARN, Name: bg.Name}
	_, err = e.client.EnforceOwned(ctx, awsiam.RotateSecret, norot, p)
	assert.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "no rotation configured")
	obs, err = e.client.ObserveOwned(ctx, awsiam.RotateSecret, norot, p)
	require.NoError(t, err)
	assert.False(t, obs.Holds)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestRotateBreakGlassPassword(t *testing.T) {
	e := newOwnedEnv(t)
	ctx := t.Context()
	o := control.Owned{Target: target, Kind: control.KindBreakGlass, ID: demo.BreakGlassAWS, Name: demo.BreakGlassAWS, Secret: demo.BreakGlassSecrets["awsiam"]}
	seeded, _ := e.sim.User(demo.BreakGlassAWS)
	oldVersion, err := e.store.Current(ctx, o.Secret)
	require.NoError(t, err)

	// The store refuses the write: the password is not changed.
	p := control.OwnedParams{Token: rotation, Since: time.Now(), Store: &flakyStore{SecretStore: e.store, failPut: 1}}
	_, err = e.client.EnforceOwned(ctx, awsiam.RotatePassword, o, p)
	assert.ErrorIs(t, err, control.ErrTransient)
	u, _ := e.sim.User(demo.BreakGlassAWS)
	assert.Equal(t, seeded.PasswordSHA256, u.PasswordSHA256)
	cur, _ := e.store.Current(ctx, o.Secret)
	assert.Equal(t, oldVersion, cur)

	// Stored, then IAM fails: the retry sets the stored password, no other.
	e.sim.Faults().Add(fault.Rule{Status: 503, Count: 1})
	p.Store = e.store
	_, err = e.client.EnforceOwned(ctx, awsiam.RotatePassword, o, p)
	assert.ErrorIs(t, err, control.ErrTransient)
	obs := e.step(t, awsiam.RotatePassword, o, p)
	assert.True(t, obs.Readable)
	assert.Contains(t, obs.Detail, "cannot read a password back")
	raw, ok, err := e.store.Pending(ctx, o.Secret, rotation)
	require.NoError(t, err)
	require.True(t, ok)
	var v struct{ Username, Password string }
	require.NoError(t, json.Unmarshal(raw, &v))
	assert.Equal(t, demo.BreakGlassAWS, v.Username)
	assert.Len(t, v.Password, 32)
	u, _ = e.sim.User(demo.BreakGlassAWS)
	assert.Equal(t, digest(v.Password), u.PasswordSHA256, "IAM has the stored password")
	assert.NotContains(t, obs.Detail, v.Password)
	s, _ := e.secrets.Secret(o.Secret)
	assert.Len(t, s.Versions, 2, "one new version, the old kept as AWSPREVIOUS")
}

func TestOwnedIdentityGoneOrKeyless(t *testing.T) {
	e := newOwnedEnv(t)
	ctx := t.Context()
	o := e.serviceUser(t)
	for _, id := range []string{o.Credentials[0].ID} {
		_, err := e.sdk().DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(o.ID), AccessKeyId: aws.String(id)})
		require.NoError(t, err)
	}
	keyless := e.serviceUser(t)
	require.Empty(t, keyless.Credentials)
	p := control.OwnedParams{Token: rotation, Since: time.Now(), Store: e.store}
	obs, err := e.client.ObserveOwned(ctx, awsiam.RotateAccessKeys, keyless, p)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	_, err = e.client.EnforceOwned(ctx, awsiam.RotateAccessKeys, keyless, p)
	assert.ErrorIs(t, err, control.ErrPermanent, "no first key handed out")
	assert.Empty(t, mustUserKeys(t, e.sim, demo.ServiceUserName))

	_, err = e.sdk().DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(o.ID)})
	require.NoError(t, err)
	obs, err = e.client.ObserveOwned(ctx, awsiam.RetagOwner, o, control.OwnedParams{NewOwner: "team@example.test"})
	require.NoError(t, err)
	assert.True(t, obs.Gone)
	assert.True(t, obs.Holds)
}

func TestSecretGoneAndStoreNotFound(t *testing.T) {
	e := newOwnedEnv(t)
	ctx := t.Context()
	s, _ := e.secrets.Secret(demo.OwnedSecretName)
	o := control.Owned{Target: target, Kind: control.KindSecret, ID: s.ARN, Name: s.Name}
	c := secretsClient(t, e)
	_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(s.ARN), ForceDeleteWithoutRecovery: aws.Bool(true)})
	require.NoError(t, err)
	_, err = e.client.EnforceOwned(ctx, awsiam.RetagOwner, o, control.OwnedParams{NewOwner: "team@example.test"})
	assert.ErrorIs(t, err, control.ErrNotFound, "Secrets Manager's own answer for the secret")
	obs, err := e.client.ObserveOwned(ctx, awsiam.RetagOwner, o, control.OwnedParams{NewOwner: "team@example.test"})
	require.NoError(t, err)
	assert.True(t, obs.Gone)

	// A break-glass secret missing from the store is no proof the account is gone.
	bg := control.Owned{Target: target, Kind: control.KindBreakGlass, ID: demo.BreakGlassAWS, Name: demo.BreakGlassAWS, Secret: "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-abcdef"}
	_, err = e.client.EnforceOwned(ctx, awsiam.RotatePassword, bg, control.OwnedParams{Token: rotation, Since: time.Now(), Store: e.store})
	assert.ErrorIs(t, err, control.ErrPermanent)
	assert.False(t, errors.Is(err, control.ErrNotFound))
	u, _ := e.sim.User(demo.BreakGlassAWS)
	assert.Empty(t, e.sim.Transitions(demo.BreakGlassAWS), "the password was not changed: %+v", u)
}

func secretsClient(t *testing.T, e *ownedEnv) *secretsmanager.Client {
	t.Helper()
	srv := httptest.NewServer(e.secrets.Handler())
	t.Cleanup(srv.Close)
	return secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, ""), HTTPClient: buffered{}})
}

func jsonAnswer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, body)
	}
}
