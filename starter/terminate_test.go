package main

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/workflows"
)

// TestTerminateOutcomes: the CLI's terminate goes through the same id rule
// and the same cluster-wide blast-radius guard as the relay, and says what
// happened to a run in flight (superseded, corrected) instead of
// "duplicate" with exit 0.
func TestTerminateOutcomes(t *testing.T) {
	srv := devserver.Start(t)
	cfg, err := config.Default()
	require.NoError(t, err)
	cfg.Roles = map[string]config.RoleGroups{"analyst": {"fake": {"team"}}}
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{&planTarget{held: map[string]bool{}}}), &evidence.Activities{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	// The relay's key signs what the CLI sends to a run in flight; the
	// worker's (default) configuration trusts it.
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "decision.key")
	seed := sha256.Sum256([]byte("sandbox-decision-key"))
	require.NoError(t, os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(seed[:])), 0o600))
	path := filepath.Join(dir, "offboard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`temporal: {address: %q}
relay: {blastRadius: {max: 1, window: 10m}, decisionKey: {file: %q}}
targets:
  - name: scim-crm
    kind: scim
    scim: {baseURL: "http://127.0.0.1:1/scim/v2", bearer: {env: OFFBOARD_TEST_SCIM_TOKEN}}
`, srv.HostPort, keyFile)), 0o600))
	t.Setenv("OFFBOARD_CONFIG", path)
	base := time.Now().UnixNano() % 1e6
	id := func(p string) string { return fmt.Sprintf("%s%d", p, base) }
	tomorrow := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)

	// An id the relay would refuse is refused here too.
	code, _, stderr := starter(t, "terminate", "-employee", "Müller-7", "-email", "m@example.test")
	require.Equal(t, exitUsage, code, stderr)
	require.Contains(t, stderr, "-employee")

	// A role change waits for tomorrow; a termination today supersedes it.
	code, stdout, stderr := starter(t, "terminate", "-employee", strings.ToLower(id("M")), "-email", "m@example.test",
		"-kind", "role_change", "-new-role", "analyst", "-effective", tomorrow)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "started: "+workflows.WorkflowID(id("M")), "the id upper-cased")
	code, stdout, stderr = starter(t, "terminate", "-employee", id("M"), "-email", "m@example.test")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "superseded: "+workflows.WorkflowID(id("M")))

	// The same request with a corrected e-mail corrects the run in flight.
	code, stdout, stderr = starter(t, "terminate", "-employee", id("L"), "-email", "typo@exmaple.test", "-effective", tomorrow)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "started: ")
	require.Contains(t, stdout, "quarantined by the blast-radius guard", "the CLI counts in the same guard: a second removal within the window")
	code, stdout, stderr = starter(t, "terminate", "-employee", id("L"), "-email", "l@example.test", "-effective", tomorrow)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "corrected: "+workflows.WorkflowID(id("L")))

	// Without the relay's key a change to the run in flight is refused, and
	// nothing is sent: no Temporal client can redirect a run unsigned.
	unsigned := filepath.Join(dir, "unsigned.yaml")
	conf, err := os.ReadFile(path)
	require.NoError(t, err)
	conf = []byte(strings.Replace(string(conf), fmt.Sprintf(", decisionKey: {file: %q}", keyFile), "", 1))
	require.NoError(t, os.WriteFile(unsigned, conf, 0o600))
	t.Setenv("OFFBOARD_CONFIG", unsigned)
	code, _, stderr = starter(t, "terminate", "-employee", id("L"), "-email", "other@example.test", "-effective", tomorrow)
	require.Equal(t, exitFailed, code, stderr)
	require.Contains(t, stderr, "must be signed by the relay's key")
}
