package secrets_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/secrets"
)

const (
	key    = "AKIDSECRETSTEST00001"
	secret = "secrets-sim-test-secret"
	tokenA = "aaaaaaaa-aaaa-4aaa-aaaa-aaaaaaaaaaaa"
	tokenB = "bbbbbbbb-bbbb-4bbb-bbbb-bbbbbbbbbbbb"
)

var people = demo.People(10)

func start(t *testing.T) (*secrets.Sim, *httptest.Server, *sm.Client) {
	t.Helper()
	sim := secrets.New(secrets.Options{AccessKeyID: key, SecretAccessKey: secret, RequestsPerSecond: 100000, People: people})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv, client(srv.URL, credentials.NewStaticCredentialsProvider(key, secret, ""))
}

func client(url string, creds aws.CredentialsProvider) *sm.Client {
	return sm.New(sm.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), RetryMaxAttempts: 1, Credentials: creds, HTTPClient: buffered{}})
}

// buffered gives the transport its own copy of each request body (aws-sdk-go-v2#2737).
type buffered struct{}

func (buffered) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		buf, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(buf))
	}
	return http.DefaultClient.Do(req)
}

func code(t *testing.T, err error) string {
	t.Helper()
	var apiErr smithy.APIError
	require.True(t, errors.As(err, &apiErr), "want an API error, got %v", err)
	return apiErr.ErrorCode()
}

func TestSeeded(t *testing.T) {
	_, _, c := start(t)
	ctx := t.Context()
	d, err := c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: aws.String(demo.OwnedSecretName)})
	require.NoError(t, err)
	assert.True(t, aws.ToBool(d.RotationEnabled))
	assert.Contains(t, d.Tags, types.Tag{Key: aws.String(demo.OwnerTag), Value: aws.String(demo.ServiceOwner(people).Email)})
	require.Len(t, d.VersionIdsToStages, 1)
	for _, name := range demo.BreakGlassSecrets {
		v, err := c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String(name)})
		require.NoError(t, err, name)
		assert.Contains(t, aws.ToString(v.SecretString), `"password"`)
		assert.Equal(t, []string{"AWSCURRENT"}, v.VersionStages)
		// by ARN too
		_, err = c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: v.ARN})
		require.NoError(t, err)
	}
	_, err = c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: aws.String("nope")})
	var nf *types.ResourceNotFoundException
	require.ErrorAs(t, err, &nf)
}

func TestPutSecretValueTokenIdempotency(t *testing.T) {
	sim, _, c := start(t)
	ctx, name := t.Context(), aws.String(demo.BreakGlassSecrets["awsiam"])
	before, _ := sim.Secret(*name)
	put := func(token, value string, stages ...string) (*sm.PutSecretValueOutput, error) {
		return c.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: name, ClientRequestToken: aws.String(token), SecretString: aws.String(value), VersionStages: stages})
	}
	out, err := put(tokenA, "v1", "AWSPENDING")
	require.NoError(t, err)
	assert.Equal(t, tokenA, aws.ToString(out.VersionId))
	assert.Equal(t, []string{"AWSPENDING"}, out.VersionStages)
	// Same token, same value: the same version, nothing new.
	again, err := put(tokenA, "v1", "AWSPENDING")
	require.NoError(t, err)
	assert.Equal(t, tokenA, aws.ToString(again.VersionId))
	// Same token, another value: refused, the stored value kept.
	_, err = put(tokenA, "v2", "AWSPENDING")
	var exists *types.ResourceExistsException
	require.ErrorAs(t, err, &exists)
	after, _ := sim.Secret(*name)
	require.Len(t, after.Versions, len(before.Versions)+1)
	v, err := c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: name, VersionId: aws.String(tokenA)})
	require.NoError(t, err)
	assert.Equal(t, "v1", aws.ToString(v.SecretString))
	// The current value did not move.
	cur, err := c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: name})
	require.NoError(t, err)
	assert.Equal(t, before.Versions[0].ID, aws.ToString(cur.VersionId))
	// A token too short is refused.
	_, err = put("short", "v3")
	assert.Equal(t, "ValidationException", code(t, err))
	// Stages default to AWSCURRENT, and the old current becomes AWSPREVIOUS.
	out, err = put(tokenB, "v4")
	require.NoError(t, err)
	assert.Equal(t, []string{"AWSCURRENT"}, out.VersionStages)
	d, err := c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: name})
	require.NoError(t, err)
	assert.Equal(t, []string{"AWSPREVIOUS"}, d.VersionIdsToStages[before.Versions[0].ID])
	assert.Equal(t, []string{"AWSPENDING"}, d.VersionIdsToStages[tokenA])
}

func TestUpdateSecretVersionStage(t *testing.T) {
	_, _, c := start(t)
	ctx, name := t.Context(), aws.String(demo.BreakGlassSecrets["okta"])
	d, err := c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: name})
	require.NoError(t, err)
	var old string
	for id := range d.VersionIdsToStages {
		old = id
	}
	_, err = c.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: name, ClientRequestToken: aws.String(tokenA), SecretString: aws.String("new"), VersionStages: []string{"AWSPENDING"}})
	require.NoError(t, err)
	move := func(stage, to, from string) error {
		in := &sm.UpdateSecretVersionStageInput{SecretId: name, VersionStage: aws.String(stage)}
		if to != "" {
			in.MoveToVersionId = aws.String(to)
		}
		if from != "" {
			in.RemoveFromVersionId = aws.String(from)
		}
		_, err := c.UpdateSecretVersionStage(ctx, in)
		return err
	}
	// AWSCURRENT is on another version: RemoveFromVersionId is required.
	assert.Equal(t, "InvalidParameterException", code(t, move("AWSCURRENT", tokenA, "")))
	assert.Equal(t, "InvalidParameterException", code(t, move("AWSCURRENT", tokenA, tokenB)))
	assert.Equal(t, "ResourceNotFoundException", code(t, move("AWSCURRENT", tokenB, old)))
	require.NoError(t, move("AWSCURRENT", tokenA, old))
	require.NoError(t, move("AWSPENDING", "", tokenA))
	assert.Equal(t, "InvalidParameterException", code(t, move("AWSCURRENT", "", tokenA)), "AWSCURRENT cannot just be removed")
	d, err = c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: name})
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{tokenA: {"AWSCURRENT"}, old: {"AWSPREVIOUS"}}, d.VersionIdsToStages)
	v, err := c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: name, VersionStage: aws.String("AWSPREVIOUS")})
	require.NoError(t, err)
	assert.Equal(t, old, aws.ToString(v.VersionId))
	_, err = c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: name, VersionStage: aws.String("AWSPENDING")})
	assert.Equal(t, "ResourceNotFoundException", code(t, err))
}

func TestListSecretsPagingAndFilters(t *testing.T) {
	_, _, c := start(t)
	ctx := t.Context()
	for i, n := range []string{"team/a", "team/b", "team/c", "team/d"} {
		_, err := c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String(n), SecretString: aws.String("x"),
			Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String([]string{"A@example.test", "a@example.test", "b@example.test", "c@example.test"}[i])}}})
		require.NoError(t, err)
	}
	_, err := c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("team/a")})
	var exists *types.ResourceExistsException
	require.ErrorAs(t, err, &exists)

	var names []string
	pages := 0
	p := sm.NewListSecretsPaginator(c, &sm.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeTagKey, Values: []string{"owner"}}}})
	for p.HasMorePages() {
		pg, err := p.NextPage(ctx)
		require.NoError(t, err)
		pages++
		for _, s := range pg.SecretList {
			names = append(names, aws.ToString(s.Name))
		}
	}
	assert.Equal(t, []string{demo.OwnedSecretName, "team/a", "team/b", "team/c", "team/d"}, names)
	assert.Equal(t, 2, pages, "pages of three")

	// tag-value is a case-sensitive prefix match.
	out, err := c.ListSecrets(ctx, &sm.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeTagValue, Values: []string{"a@"}}}})
	require.NoError(t, err)
	require.Len(t, out.SecretList, 1)
	assert.Equal(t, "team/b", aws.ToString(out.SecretList[0].Name))

	_, err = c.ListSecrets(ctx, &sm.ListSecretsInput{NextToken: aws.String("garbage")})
	assert.Equal(t, "InvalidNextTokenException", code(t, err))
}

func TestTagsDeleteAndRotate(t *testing.T) {
	sim, _, c := start(t)
	ctx, name := t.Context(), aws.String(demo.OwnedSecretName)
	_, err := c.TagResource(ctx, &sm.TagResourceInput{SecretId: name, Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("team-platform")}}})
	require.NoError(t, err)
	_, err = c.UntagResource(ctx, &sm.UntagResourceInput{SecretId: name, TagKeys: []string{"service"}})
	require.NoError(t, err)
	s, _ := sim.Secret(*name)
	assert.Equal(t, map[string]string{"owner": "team-platform"}, s.Tags)

	// A rotation function is configured: RotateSecret makes a new current version.
	before := time.Now().Add(-time.Second)
	old, _ := s.CurrentValue()
	r, err := c.RotateSecret(ctx, &sm.RotateSecretInput{SecretId: name, ClientRequestToken: aws.String(tokenA)})
	require.NoError(t, err)
	assert.Equal(t, tokenA, aws.ToString(r.VersionId))
	_, err = c.RotateSecret(ctx, &sm.RotateSecretInput{SecretId: name, ClientRequestToken: aws.String(tokenA)})
	require.NoError(t, err, "the same token again is the same rotation")
	d, err := c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: name})
	require.NoError(t, err)
	assert.True(t, d.LastRotatedDate.After(before))
	assert.Equal(t, []string{"AWSCURRENT"}, d.VersionIdsToStages[tokenA])
	assert.Len(t, d.VersionIdsToStages, 2)
	s, _ = sim.Secret(*name)
	now, _ := s.CurrentValue()
	assert.NotEqual(t, old, now)
	assert.Contains(t, string(now), `"apiKey"`)

	// No rotation function: refused.
	_, err = c.RotateSecret(ctx, &sm.RotateSecretInput{SecretId: aws.String(demo.BreakGlassSecrets["ldap"])})
	assert.Equal(t, "InvalidRequestException", code(t, err))

	// Scheduled deletion: DeletedDate, values refused, a second delete refused.
	_, err = c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: name, RecoveryWindowInDays: aws.Int64(3)})
	assert.Equal(t, "InvalidParameterException", code(t, err))
	del, err := c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: name, RecoveryWindowInDays: aws.Int64(30)})
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().AddDate(0, 0, 30), aws.ToTime(del.DeletionDate), time.Minute)
	d, err = c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: name})
	require.NoError(t, err)
	require.NotNil(t, d.DeletedDate)
	_, err = c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: name})
	assert.Equal(t, "InvalidRequestException", code(t, err))
	_, err = c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: name})
	assert.Equal(t, "InvalidRequestException", code(t, err))
	list, err := c.ListSecrets(ctx, &sm.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{*name}}}})
	require.NoError(t, err)
	assert.Empty(t, list.SecretList, "planned deletions are left out unless asked for")
}

func TestAuthenticationAndFaults(t *testing.T) {
	sim, srv, c := start(t)
	ctx := t.Context()
	forged := client(srv.URL, credentials.NewStaticCredentialsProvider(key, "wrong", ""))
	_, err := forged.ListSecrets(ctx, &sm.ListSecretsInput{})
	assert.Equal(t, "InvalidSignatureException", code(t, err))
	stranger := client(srv.URL, credentials.NewStaticCredentialsProvider("AKIDSOMEONEELSE00001", secret, ""))
	_, err = stranger.ListSecrets(ctx, &sm.ListSecretsInput{})
	assert.Equal(t, "UnrecognizedClientException", code(t, err))
	resp, err := http.Post(srv.URL, "application/x-amz-json-1.1", bytes.NewReader([]byte("{}")))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, string(body), `"__type":"MissingAuthenticationTokenException"`)

	sim.Faults().Add(fault.Rule{Status: 429, Count: 1})
	_, err = c.ListSecrets(ctx, &sm.ListSecretsInput{})
	assert.Equal(t, "ThrottlingException", code(t, err))
	_, err = c.ListSecrets(ctx, &sm.ListSecretsInput{})
	require.NoError(t, err)

	slow := secrets.New(secrets.Options{RequestsPerSecond: 1, People: people})
	ssrv := httptest.NewServer(slow.Handler())
	defer ssrv.Close()
	sc := client(ssrv.URL, credentials.NewStaticCredentialsProvider(key, secret, ""))
	_, err = sc.ListSecrets(ctx, &sm.ListSecretsInput{})
	require.NoError(t, err)
	_, err = sc.ListSecrets(ctx, &sm.ListSecretsInput{})
	assert.Equal(t, "ThrottlingException", code(t, err))
}

func TestStateRoundTrip(t *testing.T) {
	sim, _, c := start(t)
	ctx := t.Context()
	_, err := c.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: aws.String(demo.OwnedSecretName), ClientRequestToken: aws.String(tokenA),
		SecretString: aws.String("pending"), VersionStages: []string{"AWSPENDING"}})
	require.NoError(t, err)
	var saved bytes.Buffer
	require.NoError(t, sim.SaveState(&saved))
	other := secrets.New(secrets.Options{People: people[:1]})
	require.NoError(t, other.LoadState(bytes.NewReader(saved.Bytes())))
	var again bytes.Buffer
	require.NoError(t, other.SaveState(&again))
	assert.Equal(t, saved.String(), again.String())
	s, ok := other.Secret(demo.OwnedSecretName)
	require.True(t, ok)
	assert.Equal(t, "pending", string(s.Versions[1].Value))

	assert.Error(t, other.LoadState(bytes.NewReader([]byte(`{"version":1,"secrets":[{"name":"x","arn":"a","tags":[],"versions":[{"id":"1","string":"a","stages":["AWSCURRENT"]},{"id":"2","string":"b","stages":["AWSCURRENT"]}]}]}`))))
	_, ok = other.Secret(demo.OwnedSecretName)
	assert.True(t, ok, "a refused state leaves the old one")
}
