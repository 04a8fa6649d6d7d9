package secretstore_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/secretstore"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/secrets"
)

const (
	key    = "AKIDSTORETEST0000001"
	secret = "store-test-secret"
	tokenA = "aaaaaaaa-aaaa-4aaa-aaaa-aaaaaaaaaaaa"
	tokenB = "bbbbbbbb-bbbb-4bbb-bbbb-bbbbbbbbbbbb"
	value  = `{"username":"breakglass-aws","password":"Sup3r-S3cret-Value!"}`
)

func start(t *testing.T) (*secrets.Sim, *httptest.Server, *secretstore.Store) {
	t.Helper()
	sim := secrets.New(secrets.Options{AccessKeyID: key, SecretAccessKey: secret, RequestsPerSecond: 100000, People: demo.People(5)})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	st, err := secretstore.New(secretstore.Config{Endpoint: srv.URL, Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
	require.NoError(t, err)
	return sim, srv, st
}

func stages(t *testing.T, sim *secrets.Sim, name string) map[string][]string {
	t.Helper()
	s, ok := sim.Secret(name)
	require.True(t, ok)
	out := map[string][]string{}
	for _, v := range s.Versions {
		out[v.ID] = v.Stages
	}
	return out
}

func TestPendingThenPromote(t *testing.T) {
	sim, _, st := start(t)
	ctx, name := t.Context(), demo.BreakGlassSecrets["awsiam"]
	old, err := st.Current(ctx, name)
	require.NoError(t, err)
	require.NotEmpty(t, old)

	_, ok, err := st.Pending(ctx, name, tokenA)
	require.NoError(t, err)
	assert.False(t, ok, "no version yet")

	require.NoError(t, st.PutPending(ctx, name, tokenA, []byte(value)))
	require.NoError(t, st.PutPending(ctx, name, tokenA, []byte(value)), "the same token and value again is a no-op")
	got, ok, err := st.Pending(ctx, name, tokenA)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, value, string(got))
	cur, err := st.Current(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, old, cur, "pending is not current")

	// Another value under the same token: refused, the stored value kept, never echoed.
	err = st.PutPending(ctx, name, tokenA, []byte("another-secret-value"))
	require.Error(t, err)
	assert.ErrorIs(t, err, control.ErrPermanent)
	assert.NotContains(t, err.Error(), "another-secret-value")
	assert.Contains(t, err.Error(), "aaaaaaaa")
	got, _, _ = st.Pending(ctx, name, tokenA)
	assert.Equal(t, value, string(got))

	require.NoError(t, st.Promote(ctx, name, tokenA))
	require.NoError(t, st.Promote(ctx, name, tokenA), "promote again is a no-op")
	cur, err = st.Current(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, tokenA, cur)
	assert.Equal(t, map[string][]string{old: {"AWSPREVIOUS"}, tokenA: {"AWSCURRENT"}}, stages(t, sim, name))
	s, _ := sim.Secret(name)
	v, _ := s.CurrentValue()
	assert.Equal(t, value, string(v))
}

func TestPromoteAfterACrashBetweenItsSteps(t *testing.T) {
	sim, srv, st := start(t)
	ctx, name := t.Context(), demo.BreakGlassSecrets["okta"]
	old, err := st.Current(ctx, name)
	require.NoError(t, err)
	require.NoError(t, st.PutPending(ctx, name, tokenA, []byte(value)))
	sim.Faults().Add(fault.Rule{Status: 503, Count: 1})
	err = st.Promote(ctx, name, tokenA)
	assert.ErrorIs(t, err, control.ErrTransient)
	assert.Equal(t, map[string][]string{old: {"AWSCURRENT"}, tokenA: {"AWSPENDING"}}, stages(t, sim, name), "nothing moved")

	// A crash after AWSCURRENT moved, before AWSPENDING came off.
	c := sm.New(sm.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1, Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
	_, err = c.UpdateSecretVersionStage(ctx, &sm.UpdateSecretVersionStageInput{SecretId: aws.String(name), VersionStage: aws.String("AWSCURRENT"),
		MoveToVersionId: aws.String(tokenA), RemoveFromVersionId: aws.String(old)})
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{old: {"AWSPREVIOUS"}, tokenA: {"AWSPENDING", "AWSCURRENT"}}, stages(t, sim, name))
	require.NoError(t, st.Promote(ctx, name, tokenA))
	assert.Equal(t, map[string][]string{old: {"AWSPREVIOUS"}, tokenA: {"AWSCURRENT"}}, stages(t, sim, name))
}

func TestPutPendingCreatesTheRotationSecret(t *testing.T) {
	sim, _, st := start(t)
	ctx, name := t.Context(), demo.RotationSecret("aws", demo.ServiceUserName)
	cur, err := st.Current(ctx, name)
	assert.ErrorIs(t, err, control.ErrNotFound)
	assert.Empty(t, cur)
	require.NoError(t, st.PutPending(ctx, name, tokenA, []byte(value)))
	cur, err = st.Current(ctx, name)
	require.NoError(t, err)
	assert.Empty(t, cur, "a new secret has no current version until one is promoted")
	require.NoError(t, st.Promote(ctx, name, tokenA))
	require.NoError(t, st.PutPending(ctx, name, tokenB, []byte("second")))
	require.NoError(t, st.Promote(ctx, name, tokenB))
	assert.Equal(t, map[string][]string{tokenA: {"AWSPREVIOUS"}, tokenB: {"AWSCURRENT"}}, stages(t, sim, name))
	s, _ := sim.Secret(name)
	assert.Equal(t, "true", s.Tags["offboard:managed"])

	// An ARN that names nothing is not created under that name.
	err = st.PutPending(ctx, "arn:aws:secretsmanager:us-east-1:123456789012:secret:nothing-abcdef", tokenA, []byte(value))
	assert.ErrorIs(t, err, control.ErrNotFound)
}

func TestErrorsAreClassified(t *testing.T) {
	sim, srv, st := start(t)
	ctx, name := t.Context(), demo.BreakGlassSecrets["ldap"]

	sim.Faults().Add(fault.Rule{Status: 429, Count: 1})
	err := st.PutPending(ctx, name, tokenA, []byte(value))
	assert.ErrorIs(t, err, control.ErrRateLimited)
	assert.NotContains(t, err.Error(), "Sup3r")
	_, ok, _ := st.Pending(ctx, name, tokenA)
	assert.False(t, ok, "a refused write stored nothing")

	forged, err := secretstore.New(secretstore.Config{Endpoint: srv.URL, Credentials: credentials.NewStaticCredentialsProvider(key, "wrong", "")})
	require.NoError(t, err)
	_, err = forged.Current(ctx, name)
	assert.ErrorIs(t, err, control.ErrUnauthorized)

	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<html><body>Not Found</body></html>"))
	}))
	defer proxy.Close()
	wrong, err := secretstore.New(secretstore.Config{Endpoint: proxy.URL, Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
	require.NoError(t, err)
	_, ok, err = wrong.Pending(ctx, name, tokenA)
	assert.False(t, ok)
	assert.ErrorIs(t, err, control.ErrUnexpected, "a proxy's 404 is not Secrets Manager saying there is no version")
	var ce *control.Error
	require.True(t, errors.As(err, &ce))
	assert.Equal(t, 404, ce.HTTPStatus)
}

func TestNewReadsNamedCredentials(t *testing.T) {
	sim := secrets.New(secrets.Options{AccessKeyID: key, SecretAccessKey: secret, People: demo.People(5)})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	t.Setenv("OFFBOARD_TEST_SM_KEY", key)
	t.Setenv("OFFBOARD_TEST_SM_SECRET", secret)
	st, err := secretstore.New(secretstore.Config{Endpoint: srv.URL,
		AccessKeyID: config.Secret{Env: "OFFBOARD_TEST_SM_KEY"}, SecretAccessKey: config.Secret{Env: "OFFBOARD_TEST_SM_SECRET"}})
	require.NoError(t, err)
	cur, err := st.Current(t.Context(), demo.OwnedSecretName)
	require.NoError(t, err)
	assert.NotEmpty(t, cur)

	_, err = secretstore.New(secretstore.Config{AccessKeyID: config.Secret{Env: "OFFBOARD_TEST_SM_KEY"}, SecretAccessKey: config.Secret{Env: "OFFBOARD_TEST_SM_UNSET"}})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "secretAccessKey"), err.Error())
	_, err = secretstore.New(secretstore.Config{AccessKeyID: config.Secret{Env: "OFFBOARD_TEST_SM_KEY"}})
	require.Error(t, err, "a key id without its secret")
}
