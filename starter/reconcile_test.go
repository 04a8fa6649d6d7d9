package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/workflows"
)

// starter reconcile shows the schedule, or runs one now and prints what it
// found; starter exceptions lists the registry. Both on a dev server.
func TestReconcileAndExceptionsCommands(t *testing.T) {
	srv := devserver.Start(t)
	ctx := t.Context()
	orphan := demo.Person{EmployeeID: "X1", First: "Mallory", Last: "Orphan", Login: "mallory.orphan", Email: "mallory.orphan@example.test"}
	sim := oktasim.New(oktasim.Options{Token: "tok", People: append(demo.People(5), orphan)})
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(hs.Close)
	oc, err := okta.New(ctx, okta.Config{Name: "okta", OrgURL: hs.URL, Token: "tok", AllowHTTP: true})
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "offboard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`temporal: {address: %q}
people: {security: [sec@example.test]}
reconcile: {roster: {kind: sandbox, sandboxSize: 5}}
targets:
  - name: okta
    kind: okta
    okta: {orgURL: "http://127.0.0.1:1", token: {env: OFFBOARD_TEST_OKTA_TOKEN}}
`, srv.HostPort)), 0o600))
	t.Setenv("OFFBOARD_CONFIG", path)
	cfg, err := config.Load(path)
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{oc}),
		&evidence.Activities{Client: srv.Client, Store: evidence.Dir{Root: t.TempDir()}, Key: priv, KeyID: evidence.KeyID(pub)})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	code, _, stderr := starter(t, "reconcile")
	require.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "a worker with evidence.signingKey creates it")
	require.NoError(t, evidence.EnsureReconcileSchedule(ctx, srv.Client, 24*time.Hour))
	code, stdout, stderr := starter(t, "reconcile")
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "schedule reconcile: every 24h0m0s")
	assert.Contains(t, stdout, "next  ")

	code, stdout, stderr = starter(t, "reconcile", "-now")
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stderr, "started reconcile-now-")
	assert.Contains(t, stdout, "mallory.orphan@example.test")
	assert.Contains(t, stdout, "exception: no active HR record")
	assert.Contains(t, stdout, "sec@example.test")
	assert.Regexp(t, `okta\s+6\s+5\s+0\s+1\s+0\s+whole`, stdout)

	code, stdout, stderr = starter(t, "attest", "-now", "-from", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "-to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "attestation pack in the evidence store at attestation/")
	assert.Contains(t, stdout, "findings 1 (1 open), drills 0 (0 failed)")
	code, _, stderr = starter(t, "attest", "-now", "-from", "2026-01-01")
	assert.Equal(t, exitUsage, code, stderr)

	// No canary configured: the drill refuses rather than terminate someone.
	code, _, stderr = starter(t, "drill", "-now")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "no canary configured")

	code, stdout, stderr = starter(t, "exceptions", "-json")
	require.Equal(t, exitOK, code, stderr)
	var reg runs.Registry
	require.NoError(t, json.Unmarshal([]byte(stdout), &reg))
	assert.True(t, reg.Complete)
	// The orphan the reconciliation left for people is in the registry.
	require.Len(t, reg.Exceptions, 1)
	x := reg.Exceptions[0]
	assert.Equal(t, "finding", x.Kind)
	assert.Equal(t, "sec@example.test", x.Owner)
	assert.Contains(t, x.Control, "okta/orphan:mallory.orphan@example.test")
	assert.False(t, x.ExpiresAt.IsZero(), "its due date")
	assert.Contains(t, x.Action, "mallory.orphan@example.test")
	code, stdout, stderr = starter(t, "exceptions")
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "1 open")
}

// starter evidence verify checks a signed report as it checks a run: ok, and
// exit 1 (tampered) after a byte changes.
func TestEvidenceVerifyReport(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "pub.pem")
	require.NoError(t, os.WriteFile(keyFile, evidence.MarshalPublicKey(pub), 0o600))
	store := evidence.Dir{Root: t.TempDir()}
	where, err := evidence.WriteReport(t.Context(), store, priv, "attestation", "q3", time.Now(),
		map[string][]byte{"attestation.csv": []byte("a,b\n"), "attestation.html": []byte("<p>ok</p>")})
	require.NoError(t, err)
	dir := filepath.Join(store.Root, where)

	code, stdout, stderr := starter(t, "evidence", "verify", "-public-key", keyFile, dir)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "attestation report q3")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "attestation.csv"), []byte("a,c\n"), 0o600))
	code, _, stderr = starter(t, "evidence", "verify", "-public-key", keyFile, dir)
	assert.Equal(t, evidence.ExitTampered, code, stderr)
	assert.Contains(t, stderr, "attestation.csv")
}
