package evidence_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/workflows"
)

func runDir(t *testing.T, s evidence.Dir, r evidence.Run) string {
	t.Helper()
	dir, err := s.RunDir(r)
	require.NoError(t, err)
	return dir
}

func readManifest(t *testing.T, dir string) evidence.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, evidence.ManifestFile))
	require.NoError(t, err)
	var m evidence.Manifest
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func TestArchiveCompletedRun(t *testing.T) {
	f := getFixture(t)
	dir := runDir(t, f.archived, f.completed)

	names, err := f.archived.List(t.Context(), f.completed)
	require.NoError(t, err)
	assert.Equal(t, []string{"history.json", "manifest.json", "receipts.json", "report.html"}, names)

	m := readManifest(t, dir)
	assert.Equal(t, f.completed.WorkflowID, m.WorkflowID)
	assert.Equal(t, f.completed.RunID, m.RunID)
	assert.Equal(t, workflows.WorkflowType, m.WorkflowType)
	assert.Equal(t, "completed", m.CloseStatus)
	assert.Equal(t, f.keyID, m.KeyID)
	assert.Equal(t, "result", m.Facts.Source)
	assert.Equal(t, "E100", m.Facts.EmployeeID)
	assert.Equal(t, string(workflows.PhaseCompleted), m.Facts.Phase)
	assert.False(t, m.Facts.ContainedAt.IsZero())
	assert.Empty(t, m.Facts.OpenExceptions)
	assert.Nil(t, m.Facts.LegalHold)
	require.Len(t, m.Facts.Deadlines, 2)
	for _, d := range m.Facts.Deadlines {
		assert.False(t, d.Breached, d.Phase)
		assert.False(t, d.MetAt.IsZero(), d.Phase)
	}
	assert.True(t, !m.CloseTime.Before(m.StartTime))

	require.NoError(t, evidence.Verify(dir, f.pub))
}

// The receipts file is canonical JSON of exactly the workflow's receipts.
func TestReceiptsAreTheResultsReceipts(t *testing.T) {
	f := getFixture(t)
	raw, err := os.ReadFile(filepath.Join(runDir(t, f.archived, f.completed), evidence.ReceiptsFile))
	require.NoError(t, err)

	canon, err := evidence.CanonicalJSON(json.RawMessage(raw))
	require.NoError(t, err)
	assert.Equal(t, string(canon), string(raw), "receipts.json is canonical")
	assert.NotContains(t, string(raw), "\n")

	var doc struct {
		WorkflowID string            `json:"workflowId"`
		RunID      string            `json:"runId"`
		Source     string            `json:"source"`
		Receipts   []control.Receipt `json:"receipts"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	assert.Equal(t, f.completed.RunID, doc.RunID)
	assert.Equal(t, "result", doc.Source)
	require.NotEmpty(t, f.result.Receipts)
	assert.Equal(t, f.result.Receipts, doc.Receipts)
	ids := make([]string, 0, len(doc.Receipts))
	for _, r := range doc.Receipts {
		ids = append(ids, r.ControlID)
	}
	assert.ElementsMatch(t, []string{"fake/suspend", "fake/clear_sessions", "fake/remove_groups", "fake/delete"}, ids)
}

// history.json is what `temporal workflow show -o json` prints, and the SDK's
// JSON-file replayer loads it.
func TestHistoryIsTheCLIDialectAndReplays(t *testing.T) {
	f := getFixture(t)
	path := filepath.Join(runDir(t, f.archived, f.completed), evidence.HistoryFile)
	ours, err := os.ReadFile(path)
	require.NoError(t, err)

	r := worker.NewWorkflowReplayer()
	evidence.RegisterWorkflows(r)
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, path))

	out, err := exec.CommandContext(t.Context(), temporalCLI(), "workflow", "show", "--address", f.address,
		"--workflow-id", f.completed.WorkflowID, "--run-id", f.completed.RunID, "-o", "json").Output()
	require.NoError(t, err)
	cliHist, err := evidence.UnmarshalHistory(out)
	require.NoError(t, err)
	ourHist, err := evidence.UnmarshalHistory(ours)
	require.NoError(t, err)
	assert.True(t, proto.Equal(cliHist, ourHist), "same events as the CLI")
	assert.Equal(t, string(out), string(ours), "byte for byte what the CLI prints")
}

func TestArchiveTerminatedRunReconstructsFromHistory(t *testing.T) {
	f := getFixture(t)
	dir := runDir(t, f.archived, f.terminated)
	m := readManifest(t, dir)
	assert.Equal(t, "terminated", m.CloseStatus)
	assert.Equal(t, "history", m.Facts.Source)
	assert.Equal(t, "E200", m.Facts.EmployeeID)
	require.NotNil(t, m.Facts.LegalHold, "the hold was still in force when the run was terminated")
	assert.Equal(t, "CASE-7", m.Facts.LegalHold.CaseRef)
	assert.Equal(t, "legal@example.test", m.Facts.LegalHold.By)
	assert.False(t, m.Facts.ContainedAt.IsZero(), "containment finished before the approval gate")
	require.Len(t, m.Facts.Deadlines, 2, "rebuilt from the plan the run loaded")
	assert.Equal(t, "containment", m.Facts.Deadlines[0].Phase)
	assert.Equal(t, m.Facts.ContainedAt, m.Facts.Deadlines[0].MetAt)
	assert.False(t, m.Facts.Deadlines[0].Breached)
	assert.Equal(t, m.Facts.Deadlines[0].Due.Add(24*time.Hour-15*time.Minute), m.Facts.Deadlines[1].Due)
	assert.True(t, m.Facts.Deadlines[1].MetAt.IsZero(), "removal never ran")

	raw, err := os.ReadFile(filepath.Join(dir, evidence.ReceiptsFile))
	require.NoError(t, err)
	var doc struct {
		Receipts []control.Receipt `json:"receipts"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	var ids []string
	for _, r := range doc.Receipts {
		ids = append(ids, r.ControlID)
		assert.Contains(t, []control.Outcome{control.Observed, control.Acknowledged}, r.Outcome, r.ControlID)
	}
	assert.ElementsMatch(t, []string{"fake/suspend", "fake/clear_sessions"}, ids, "only containment ran")

	report, err := os.ReadFile(filepath.Join(dir, evidence.ReportFile))
	require.NoError(t, err)
	assert.Contains(t, string(report), "reconstructed from the history")
	assert.Contains(t, string(report), "operator stopped the run")

	require.NoError(t, evidence.Verify(dir, f.pub), "a terminated history replays too")
}

// Archive is idempotent: a second call changes nothing and returns the same manifest.
func TestArchiveTwiceChangesNothing(t *testing.T) {
	f := getFixture(t)
	dir := runDir(t, f.archived, f.completed)
	before := snapshot(t, dir)
	m, err := evidence.Archive(t.Context(), f.client, f.completed.WorkflowID, f.completed.RunID, f.archived, f.priv, f.keyID)
	require.NoError(t, err)
	assert.Equal(t, readManifest(t, dir).Signature, m.Signature)
	assert.Equal(t, before, snapshot(t, dir))
}

// A crash after some files but before the manifest: the next Archive finishes
// the job, and what it writes verifies.
func TestArchiveAfterCrashMidWrite(t *testing.T) {
	f := getFixture(t)
	store := evidence.Dir{Root: t.TempDir()}
	dir := runDir(t, store, f.completed)
	require.NoError(t, os.MkdirAll(dir, 0o755))

	// What a crash leaves: the history written, receipts half-written in a
	// temporary file, no report, no manifest.
	src := runDir(t, f.archived, f.completed)
	hist, err := os.ReadFile(filepath.Join(src, evidence.HistoryFile))
	require.NoError(t, err)
	require.NoError(t, store.Put(t.Context(), f.completed, evidence.HistoryFile, hist))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".receipts.json.tmp-123"), []byte(`{"work`), 0o644))
	_, err = evidence.ReadManifest(t.Context(), store, f.completed)
	require.ErrorIs(t, err, evidence.ErrNotExist)
	runs, err := store.Runs(t.Context(), "")
	require.NoError(t, err)
	assert.Empty(t, runs, "a run without a manifest is not listed")

	m, err := evidence.Archive(t.Context(), f.client, f.completed.WorkflowID, f.completed.RunID, store, f.priv, f.keyID)
	require.NoError(t, err)
	assert.Equal(t, "completed", m.CloseStatus)
	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	assert.Equal(t, []string{"history.json", "manifest.json", "receipts.json", "report.html"}, got, "the leftover temporary file is gone")
	require.NoError(t, evidence.Verify(dir, f.pub))
}

func TestArchiveRefusesAnOpenRun(t *testing.T) {
	f := getFixture(t)
	tm := termination("E300")
	tm.EffectiveAt = time.Now().Add(time.Hour) // waits on its timer
	run, err := f.start(t.Context(), tm)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.client.TerminateWorkflow(testCtx, run.GetID(), run.GetRunID(), "test over") })

	store := evidence.Dir{Root: t.TempDir()}
	_, err = evidence.Archive(t.Context(), f.client, run.GetID(), run.GetRunID(), store, f.priv, f.keyID)
	require.ErrorIs(t, err, evidence.ErrNotClosed)
	names, err := store.List(t.Context(), evidence.Run{WorkflowID: run.GetID(), RunID: run.GetRunID()})
	require.NoError(t, err)
	assert.Empty(t, names)
}

// The report states what the history holds: times, outcomes, approver and plan digest.
func TestReportFactsMatchTheHistory(t *testing.T) {
	f := getFixture(t)
	report, err := os.ReadFile(filepath.Join(runDir(t, f.archived, f.completed), evidence.ReportFile))
	require.NoError(t, err)
	html := string(report)
	ts := func(tm time.Time) string { return tm.UTC().Format("2006-01-02 15:04:05Z") }

	assert.Contains(t, html, f.completed.WorkflowID)
	assert.Contains(t, html, f.completed.RunID)
	assert.Contains(t, html, f.approver)
	assert.Contains(t, html, f.planDigest)
	assert.Contains(t, html, "leaver confirmed")
	assert.Contains(t, html, ts(f.result.Status.EffectiveAt))
	assert.Contains(t, html, ts(f.result.Status.ContainedAt))
	for _, r := range f.result.Receipts {
		assert.Contains(t, html, r.ControlID+": "+string(r.Outcome), "timeline line of %s", r.ControlID)
		assert.Contains(t, html, ts(r.FinishedAt), "observed time of %s", r.ControlID)
	}
	for _, a := range f.result.Status.Approvals {
		assert.Contains(t, html, ts(a.At))
	}
	assert.Contains(t, html, "containment: met")
	assert.Contains(t, html, "credentials: met")
	assert.NotContains(t, html, "<script")
	assert.NotRegexp(t, `(src|href)="https?://`, html, "no network")
	assert.Contains(t, html, "<style>")
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = string(b)
	}
	return out
}

// copyRun copies an archived run to a fresh directory the test may damage.
func copyRun(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for name, content := range snapshot(t, src) {
		require.NoError(t, os.WriteFile(filepath.Join(dst, name), []byte(content), 0o644))
	}
	return dst
}

func TestRunsListsManifestedRuns(t *testing.T) {
	f := getFixture(t)
	runs, err := f.archived.Runs(t.Context(), "")
	require.NoError(t, err)
	assert.ElementsMatch(t, []evidence.Run{f.completed, f.terminated}, runs)
	one, err := f.archived.Runs(t.Context(), f.terminated.WorkflowID)
	require.NoError(t, err)
	assert.Equal(t, []evidence.Run{f.terminated}, one)

	out := t.TempDir()
	require.NoError(t, evidence.Export(t.Context(), f.archived, f.completed, out))
	require.NoError(t, evidence.Verify(out, f.pub))

	// Keep a store and the public key for trying the CLI by hand.
	if dir := os.Getenv("OFFBOARD_ARTIFACTS"); dir != "" {
		for _, r := range runs {
			require.NoError(t, evidence.Export(t.Context(), f.archived, r, filepath.Join(dir, "store", r.WorkflowID, r.RunID)))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "evidence.pub"), evidence.MarshalPublicKey(f.pub), 0o644))
	}
}
