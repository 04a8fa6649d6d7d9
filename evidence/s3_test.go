package evidence_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/testenv/s3fake"
)

func TestS3StoreArchivesWithObjectLock(t *testing.T) {
	f := getFixture(t)
	fake := s3fake.Start(t)
	fake.CreateBucket(t, "evidence", true)
	c := fake.Client()
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	store, err := evidence.NewS3(c, evidence.S3Options{Bucket: "evidence", Prefix: "offboard/evidence", Mode: types.ObjectLockModeCompliance,
		Retention: 7 * 365 * 24 * time.Hour, Now: func() time.Time { return now }})
	require.NoError(t, err)

	m, err := evidence.Archive(t.Context(), f.client, f.completed.WorkflowID, f.completed.RunID, store, f.priv, f.keyID)
	require.NoError(t, err)
	assert.Equal(t, "completed", m.CloseStatus)

	names, err := store.List(t.Context(), f.completed)
	require.NoError(t, err)
	assert.Equal(t, []string{"history.json", "manifest.json", "receipts.json", "report.html"}, names)

	retainUntil := now.Add(7 * 365 * 24 * time.Hour)
	puts := fake.Puts()
	require.Len(t, puts, 4)
	for path, h := range puts {
		assert.Equal(t, "COMPLIANCE", h.Get("X-Amz-Object-Lock-Mode"), path)
		assert.Equal(t, retainUntil.Format(time.RFC3339), h.Get("X-Amz-Object-Lock-Retain-Until-Date"), path)
		assert.NotEmpty(t, h.Get("X-Amz-Checksum-Sha256"), "%s: a locked put carries a checksum", path)
		assert.True(t, strings.HasPrefix(path, "/evidence/offboard/evidence/"+f.completed.WorkflowID+"/"), path)
	}
	for _, name := range names {
		key := "offboard/evidence/" + f.completed.WorkflowID + "/" + f.completed.RunID + "/" + name
		head, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String("evidence"), Key: aws.String(key)})
		require.NoError(t, err)
		assert.Equal(t, types.ObjectLockModeCompliance, head.ObjectLockMode, name)
		require.NotNil(t, head.ObjectLockRetainUntilDate, name)
		assert.True(t, head.ObjectLockRetainUntilDate.Equal(retainUntil), name)
	}

	// A second archive finds the manifest and writes nothing.
	fake.ResetPuts()
	_, err = evidence.Archive(t.Context(), f.client, f.completed.WorkflowID, f.completed.RunID, store, f.priv, f.keyID)
	require.NoError(t, err)
	assert.Empty(t, fake.Puts(), "none of the 4 objects was written again")

	runs, err := store.Runs(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, []evidence.Run{f.completed}, runs)

	// What an auditor downloads verifies.
	out := t.TempDir()
	require.NoError(t, evidence.Export(t.Context(), store, f.completed, out))
	require.NoError(t, evidence.Verify(out, f.pub))

	_, err = store.Get(t.Context(), f.terminated, evidence.ManifestFile)
	require.ErrorIs(t, err, evidence.ErrNotExist)
}

func TestNewS3RefusesNoLock(t *testing.T) {
	c := s3fake.Start(t).Client()
	for name, o := range map[string]evidence.S3Options{
		"no bucket":    {Mode: types.ObjectLockModeCompliance, Retention: time.Hour},
		"no mode":      {Bucket: "evidence", Retention: time.Hour},
		"bad mode":     {Bucket: "evidence", Mode: "LEGAL", Retention: time.Hour},
		"no retention": {Bucket: "evidence", Mode: types.ObjectLockModeGovernance},
	} {
		_, err := evidence.NewS3(c, o)
		assert.Error(t, err, name)
	}
}
