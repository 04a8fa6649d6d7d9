package evidence_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/testenv/s3fake"
)

func TestOpenS3FromConfig(t *testing.T) {
	fake := s3fake.Start(t)
	fake.CreateBucket(t, "evidence", true)
	fake.CreateBucket(t, "plain", false)
	t.Setenv("EVIDENCE_S3_KEY_ID", "AKIDCONFIG")
	t.Setenv("EVIDENCE_S3_SECRET", "not-logged")
	s3cfg := func(bucket string) config.Evidence {
		return config.Evidence{Dir: t.TempDir(), S3: &config.EvidenceS3{Bucket: bucket, Prefix: "/offboard/", Region: "eu-central-1",
			Endpoint: fake.URL, PathStyle: true, Mode: config.ObjectLockGovernance, Retention: config.Duration(30 * 24 * time.Hour),
			AccessKeyID: config.Secret{Env: "EVIDENCE_S3_KEY_ID"}, SecretAccessKey: config.Secret{Env: "EVIDENCE_S3_SECRET"}}}
	}

	store, where, err := evidence.Open(t.Context(), s3cfg("evidence"))
	require.NoError(t, err)
	assert.Equal(t, "s3://evidence/offboard", where)
	s3, ok := store.(*evidence.S3)
	require.True(t, ok, "evidence.s3 set: the store is the bucket, not evidence.dir")
	require.NoError(t, s3.CheckLock(t.Context()))

	run := evidence.Run{WorkflowID: "offboard-E1001", RunID: "run-1"}
	before := time.Now()
	require.NoError(t, store.Put(t.Context(), run, evidence.ManifestFile, []byte(`{}`)))
	got, err := store.Get(t.Context(), run, evidence.ManifestFile)
	require.NoError(t, err)
	assert.Equal(t, `{}`, string(got))
	runs, err := store.Runs(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, []evidence.Run{run}, runs)
	h := fake.Puts()["/evidence/offboard/offboard-E1001/run-1/manifest.json"]
	require.NotNil(t, h, "the object lands under the configured prefix")
	assert.Equal(t, "GOVERNANCE", h.Get("X-Amz-Object-Lock-Mode"))
	until, err := time.Parse(time.RFC3339, h.Get("X-Amz-Object-Lock-Retain-Until-Date"))
	require.NoError(t, err)
	assert.WithinDuration(t, before.Add(30*24*time.Hour), until, time.Minute, "retained for evidence.s3.retention")
	assert.Contains(t, h.Get("Authorization"), "Credential=AKIDCONFIG/", "signed with the configured key")

	plain, _, err := evidence.Open(t.Context(), s3cfg("plain"))
	require.NoError(t, err)
	err = plain.(*evidence.S3).CheckLock(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bucket plain has no Object Lock")
	missing, _, err := evidence.Open(t.Context(), s3cfg("missing"))
	require.NoError(t, err)
	err = missing.(*evidence.S3).CheckLock(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bucket missing does not exist")

	t.Setenv("EVIDENCE_S3_SECRET", "")
	_, _, err = evidence.Open(t.Context(), s3cfg("evidence"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "evidence.s3.secretAccessKey")
	assert.NotContains(t, err.Error(), "not-logged")

	dir := config.Evidence{Dir: t.TempDir()}
	store, where, err = evidence.Open(t.Context(), dir)
	require.NoError(t, err)
	assert.Equal(t, evidence.Dir{Root: dir.Dir}, store)
	assert.Equal(t, dir.Dir, where)
}
