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

	code, stdout, stderr = starter(t, "exceptions", "-json")
	require.Equal(t, exitOK, code, stderr)
	var reg runs.Registry
	require.NoError(t, json.Unmarshal([]byte(stdout), &reg))
	assert.True(t, reg.Complete)
	assert.Empty(t, reg.Exceptions)
}
