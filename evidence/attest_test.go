package evidence_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/workflows"
)

const attestConfig = `
sandbox: true
policy:
  containmentSLA: 15m
  credentialsSLA: 24h
  approval: {privileged: false, forCause: false, timeout: 1h}
  retention: 1s
  reverify: []
  controlAttempts: 2
# The leaver, demo.ServiceOwner, owns an Okta API token: revoked without an approval.
nonHuman: {requireApproval: false}
people:
  approvers: [alice@example.test]
  security: [sec@example.test]
notify: {webhookURL: {env: OFFBOARD_TEST_ATTEST_WEBHOOK}}
evidence: {dir: unused}
reconcile:
  roster: {kind: sandbox, sandboxSize: 10, sandboxLeavers: [E1002]}
drill:
  canary: {employeeId: CANARY-1, email: canary@example.test}
targets:
  - name: okta
    kind: okta
    okta: {orgURL: http://127.0.0.1:1, token: "sandbox:x"}
`

// A quarter in small: a leaver offboarded and archived, a reconciliation
// that finds an orphan, a drill that passes and one that fails to restore
// (and notifies), then the attestation pack for the period: it links the
// leaver's evidence, lists the finding, both drills, and verifies.
func TestDrillAndAttestationOnDevServer(t *testing.T) {
	srv := devserver.Start(t)
	ctx := t.Context()
	var mu sync.Mutex
	var notes []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		notes = append(notes, string(b))
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	t.Setenv("OFFBOARD_TEST_ATTEST_WEBHOOK", hook.URL)
	cfg, err := config.Parse([]byte(attestConfig), "attest test")
	require.NoError(t, err)

	roster := demo.People(10)
	canary := demo.Person{EmployeeID: "CANARY-1", First: "Canary", Last: "Drill", Login: "canary", Email: "canary@example.test"}
	orphan := demo.Person{EmployeeID: "X1", First: "Mallory", Last: "Orphan", Login: "mallory.orphan", Email: "mallory.orphan@example.test"}
	faults := fault.New()
	sim := oktasim.New(oktasim.Options{Token: "tok", Faults: faults, People: append(append([]demo.Person{}, roster...), canary, orphan)})
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(hs.Close)
	oc, err := okta.New(ctx, okta.Config{Name: "okta", OrgURL: hs.URL, Token: "tok", AllowHTTP: true})
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	store := evidence.Dir{Root: t.TempDir()}
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{oc}),
		&evidence.Activities{Client: srv.Client, Store: store, Key: priv, KeyID: evidence.KeyID(pub)})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	from := time.Now().Add(-time.Minute).UTC()

	exec := func(id, wf string, arg, out any) {
		t.Helper()
		run, err := srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, wf, arg)
		require.NoError(t, err)
		require.NoError(t, run.Get(ctx, out))
		recordHistory(t, srv.Client, id, run.GetRunID(), id+".v1")
	}
	// The leaver, offboarded to the end and archived.
	leaver := roster[1]
	lrun, err := srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.WorkflowID(leaver.EmployeeID), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowType, workflows.Termination{EventID: "evt-1", Source: "cli", EmployeeID: leaver.EmployeeID, Email: leaver.Email,
			Kind: workflows.KindTermination, EffectiveAt: time.Now().UTC()})
	require.NoError(t, err)
	require.NoError(t, lrun.Get(ctx, nil))
	_, err = evidence.Archive(ctx, srv.Client, lrun.GetID(), lrun.GetRunID(), store, priv, evidence.KeyID(pub))
	require.NoError(t, err)

	var rec workflows.ReconcileResult
	exec("reconcile-q", workflows.ReconcileWorkflowType, workflows.ReconcileInput{}, &rec)
	require.Equal(t, 1, rec.Report.FindingTally["orphan"])

	// A drill that passes: the canary contained, verified, restored.
	var d1 workflows.DrillResult
	exec("drill-1", workflows.DrillWorkflowType, workflows.DrillInput{}, &d1)
	require.True(t, d1.Passed, "%+v", d1.Targets)
	require.Len(t, d1.Targets, 1)
	assert.True(t, d1.Targets[0].Contained && d1.Targets[0].Verified && d1.Targets[0].Restored)
	u, ok := sim.User(canary.Email)
	require.True(t, ok)
	assert.Equal(t, "ACTIVE", u.Status, "restored")
	actions := []string{}
	for _, tr := range sim.Transitions(u.ID) {
		actions = append(actions, tr.Action)
	}
	assert.Equal(t, "suspend", actions[0])
	assert.Contains(t, actions, "unsuspend")
	dir := t.TempDir()
	require.NoError(t, evidence.ExportReport(ctx, store, "drill", d1.ID, dir))
	_, err = evidence.VerifyReport(dir, pub)
	require.NoError(t, err)

	// A drill whose restore fails: it says so and notifies.
	faults.Add(fault.Rule{Method: http.MethodPost, PathPrefix: "/api/v1/users/" + u.ID + "/lifecycle/unsuspend", Status: 403})
	var d2 workflows.DrillResult
	exec("drill-2", workflows.DrillWorkflowType, workflows.DrillInput{}, &d2)
	assert.False(t, d2.Passed)
	assert.True(t, d2.Targets[0].Contained)
	assert.False(t, d2.Targets[0].Restored)
	mu.Lock()
	got := slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "termination drill failed") })
	mu.Unlock()
	assert.True(t, got, "the failure was notified: %v", notes)
	faults.Clear()

	var sum workflows.AttestSummary
	exec("attest-q", workflows.AttestWorkflowType, workflows.AttestInput{From: from, To: time.Now().Add(time.Minute).UTC()}, &sum)
	assert.Equal(t, 1, sum.Leavers)
	assert.Equal(t, 1, sum.Findings)
	assert.Equal(t, 1, sum.FindingsOpen)
	assert.Equal(t, 2, sum.Drills)
	assert.Equal(t, 1, sum.DrillsFailed)
	assert.Empty(t, sum.Gaps)
	require.True(t, strings.HasPrefix(sum.Where, "attestation/"))

	dir = t.TempDir()
	require.NoError(t, evidence.ExportReport(ctx, store, "attestation", strings.TrimPrefix(sum.Where, "attestation/"), dir))
	_, err = evidence.VerifyReport(dir, pub)
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(dir, evidence.AttestJSON))
	require.NoError(t, err)
	var at evidence.Attestation
	require.NoError(t, json.Unmarshal(raw, &at))
	require.Len(t, at.Leavers, 1)
	l := at.Leavers[0]
	assert.Equal(t, leaver.EmployeeID, l.EmployeeID)
	runs, err := store.Runs(ctx, workflows.WorkflowID(leaver.EmployeeID))
	require.NoError(t, err)
	assert.Equal(t, runs[0].String(), l.Evidence)
	mraw, err := store.Get(ctx, runs[0], evidence.ManifestFile)
	require.NoError(t, err)
	assert.Equal(t, evidence.DigestFile(evidence.ManifestFile, mraw).SHA256, l.ManifestSHA256)
	assert.NotEmpty(t, l.SLA)
	assert.Equal(t, "orphan", at.Findings[0].Kind)
	assert.Equal(t, "open", at.Findings[0].Resolution)
	html, err := os.ReadFile(filepath.Join(dir, evidence.AttestHTML))
	require.NoError(t, err)
	assert.Contains(t, string(html), "FAILED")
	assert.Contains(t, string(html), l.Evidence)
}
