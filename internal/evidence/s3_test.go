package evidence_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/evidence"
)

// putRecorder keeps the headers of every PUT of an object.
type putRecorder struct {
	mu   sync.Mutex
	puts map[string]http.Header
}

func (p *putRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Count(strings.Trim(r.URL.Path, "/"), "/") > 0 {
			p.mu.Lock()
			p.puts[r.URL.Path] = r.Header.Clone()
			p.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// gofakes3 runs in-process. It stores the Object Lock headers as object
// metadata and returns them on HEAD, but it does not enforce them: versioned
// buckets work, yet a locked object can still be deleted or overwritten, and
// it does not insist on a checksum for locked puts the way S3 does. So this
// test proves what we send on every put, not what S3 then refuses.
func newFakeS3(t *testing.T) (*s3.Client, *putRecorder) {
	t.Helper()
	rec := &putRecorder{puts: map[string]http.Header{}}
	faker := gofakes3.New(s3mem.New())
	srv := httptest.NewServer(rec.wrap(faker.Server()))
	t.Cleanup(srv.Close)
	c := s3.New(s3.Options{
		BaseEndpoint:     aws.String(srv.URL),
		Region:           "us-east-1",
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		RetryMaxAttempts: 1,
	})
	_, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("evidence"), ObjectLockEnabledForBucket: aws.Bool(true)})
	require.NoError(t, err)
	return c, rec
}

func TestS3StoreArchivesWithObjectLock(t *testing.T) {
	f := getFixture(t)
	c, rec := newFakeS3(t)
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
	require.Len(t, rec.puts, 4)
	for path, h := range rec.puts {
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
	before := len(rec.puts)
	rec.puts = map[string]http.Header{}
	_, err = evidence.Archive(t.Context(), f.client, f.completed.WorkflowID, f.completed.RunID, store, f.priv, f.keyID)
	require.NoError(t, err)
	assert.Empty(t, rec.puts, "of %d objects none was written again", before)

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
	c, _ := newFakeS3(t)
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
