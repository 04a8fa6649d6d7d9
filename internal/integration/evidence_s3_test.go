package integration

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/targets"
	"github.com/offboard/offboard/internal/testenv/s3fake"
	"github.com/offboard/offboard/internal/workerapp"
	"github.com/offboard/offboard/workflows"
)

// TestEvidenceToS3 runs the worker as a configuration with evidence.s3 sets
// it up: it refuses a bucket without Object Lock, and with one it archives a
// closed run there, every object locked, and what is downloaded verifies.
func TestEvidenceToS3(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fake := s3fake.Start(t)
	fake.CreateBucket(t, "offboard-evidence", true)
	fake.CreateBucket(t, "no-lock", false)
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	priv, err := evidence.GenerateKey(keyFile)
	require.NoError(t, err)
	setenv(t, "IT_S3_KEY_ID", s3fake.AccessKeyID)
	setenv(t, "IT_S3_SECRET", s3fake.SecretAccessKey)
	s.config(defaultPolicy()) // sets the targets' secrets in the environment
	withBucket := func(bucket string) config.Config {
		yaml := s.configYAML(defaultPolicy()) + fmt.Sprintf(`
evidence:
  signingKey: {file: %s}
  s3:
    bucket: %s
    prefix: audit/offboard
    region: %s
    endpoint: %s
    pathStyle: true
    retention: 2555d
    accessKeyID: {env: IT_S3_KEY_ID}
    secretAccessKey: {env: IT_S3_SECRET}
`, keyFile, bucket, s3fake.Region, fake.URL)
		cfg, err := config.Parse([]byte(yaml), "s3.yaml")
		require.NoError(t, err)
		return cfg
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	cfg := withBucket("no-lock")
	tgts, err := targets.Build(ctx, cfg)
	require.NoError(t, err)
	err = workerapp.RunWith(ctx, cfg, s.temporal.Client, tgts, logger)
	require.Error(t, err, "a worker does not start on a bucket without Object Lock")
	assert.Contains(t, err.Error(), "evidence.s3")
	assert.Contains(t, err.Error(), "bucket no-lock has no Object Lock")

	cfg = withBucket("offboard-evidence")
	wctx, stopWorker := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- workerapp.RunWith(wctx, cfg, s.temporal.Client, tgts, logger) }()
	t.Cleanup(func() { stopWorker(); require.NoError(t, <-done) })

	p := s.people[3]
	started := s.terminate(ctx, p, nil)
	res := s.result(ctx, started)
	require.Equal(t, workflows.PhaseCompleted, res.Phase)

	store, where, err := evidence.Open(ctx, cfg.Evidence)
	require.NoError(t, err)
	assert.Equal(t, "s3://offboard-evidence/audit/offboard", where)
	run := evidence.Run{WorkflowID: started.WorkflowID, RunID: started.RunID}
	// The worker registered the archive schedule at start (or found it there).
	h := s.temporal.Client.ScheduleClient().GetHandle(ctx, evidence.ArchiverScheduleID)
	require.Eventually(t, func() bool {
		// Each trigger is one sweep; one whose run the worker is busy with is skipped.
		_ = h.Trigger(ctx, client.ScheduleTriggerOptions{})
		runs, err := store.Runs(ctx, started.WorkflowID)
		return err == nil && slices.Contains(runs, run)
	}, time.Minute, 500*time.Millisecond, "the sweep archived the closed run to the bucket")

	names, err := store.List(ctx, run)
	require.NoError(t, err)
	assert.Equal(t, []string{evidence.HistoryFile, evidence.ManifestFile, evidence.ReceiptsFile, evidence.ReportFile}, names)
	puts := fake.Puts()
	for _, name := range names {
		key := "/offboard-evidence/audit/offboard/" + started.WorkflowID + "/" + started.RunID + "/" + name
		require.Contains(t, puts, key)
		assert.Equal(t, config.ObjectLockCompliance, puts[key].Get("X-Amz-Object-Lock-Mode"), name)
		until, err := time.Parse(time.RFC3339, puts[key].Get("X-Amz-Object-Lock-Retain-Until-Date"))
		require.NoError(t, err, name)
		assert.True(t, until.After(time.Now().Add(2554*24*time.Hour)), "%s locked for evidence.s3.retention, until %s", name, until)
	}

	out := t.TempDir()
	require.NoError(t, evidence.Export(ctx, store, run, out))
	require.NoError(t, evidence.Verify(out, priv.Public().(ed25519.PublicKey)), "what an auditor downloads from the bucket verifies")
}
