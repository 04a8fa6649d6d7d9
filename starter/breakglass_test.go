package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/sandbox/hec"
	"github.com/offboard/offboard/workflows"
)

// A break-glass decision reaches the SIEM as one event, the operator API's,
// marked as break-glass; a refused one too. With the SIEM down the decision
// still reaches the run, and the CLI says the SIEM did not get it.
func TestBreakGlassDecisionsReachTheSIEM(t *testing.T) {
	srv := devserver.Start(t)
	cfg, err := config.Default()
	require.NoError(t, err)
	cfg.Policy.Approval.Always = true // the run waits at its approval gate meanwhile
	cfg.People.Approvers = nil
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{&planTarget{held: map[string]bool{}}}), &evidence.Activities{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	sim := hec.New("hec-token")
	up := httptest.NewServer(sim.Handler())
	t.Cleanup(up.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	downURL := gone.URL
	gone.Close() // a SIEM that does not answer
	t.Setenv("OFFBOARD_TEST_HEC_TOKEN", "hec-token")

	dir := t.TempDir()
	file := func(name, value string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(value+"\n"), 0o600))
		return p
	}
	configWith := func(name, hecURL string) string {
		return file(name, fmt.Sprintf(`temporal: {address: %q}
people:
  decisionKeys:
    - {name: duty-officer, publicKey: wux966FxWxLkrN9o3UAxzd6MN9L02tbOsWHfX0HgGpE=, breakGlass: true}
siem:
  hec: {url: %q, token: {env: OFFBOARD_TEST_HEC_TOKEN}}
  retries: 1
targets:
  - name: scim-crm
    kind: scim
    scim: {baseURL: "http://127.0.0.1:1/scim/v2", bearer: {env: OFFBOARD_TEST_SCIM_TOKEN}}
`, srv.HostPort, hecURL))
	}
	seed := sha256.Sum256([]byte("sandbox-break-glass-key"))
	glass := file("glass.key", base64.StdEncoding.EncodeToString(seed[:]))
	t.Setenv("OFFBOARD_API", "http://127.0.0.1:1") // the API is down: that is what break-glass is for
	t.Setenv("OFFBOARD_TOKEN", "")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	employee, st := awaitingApproval(ctx, t, srv.Client, "G", "gina@example.test")

	event := func(outcome string) siem.Event {
		t.Helper()
		for _, raw := range sim.Events() {
			var ev siem.Event
			require.NoError(t, json.Unmarshal(raw, &ev))
			if ev.Unmapped.Outcome == outcome {
				return ev
			}
		}
		t.Fatalf("no %s decision among the SIEM's events: %v", outcome, sim.Counts())
		return siem.Event{}
	}

	// The SIEM up: one event, the decision's, said to be break-glass.
	t.Setenv("OFFBOARD_CONFIG", configWith("up.yaml", up.URL))
	code, stdout, stderr := starter(t, "hold", "-employee", employee, "-case", "CASE-7", "-break-glass-key", glass)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "accepted (break-glass): legal hold placed for case CASE-7 (by break-glass:duty-officer")
	assert.NotContains(t, stderr, "SIEM")
	require.Equal(t, 1, sim.Total(), "exactly one event: %v", sim.Counts())
	ev := event("accepted")
	assert.Equal(t, "decision", ev.Unmapped.Kind)
	assert.Equal(t, workflows.SignalLegalHold, ev.ActivityName)
	assert.True(t, ev.Unmapped.BreakGlass)
	assert.Equal(t, "offboard-starter-break-glass", ev.Actor.AppName)
	require.NotNil(t, ev.Actor.User)
	assert.Equal(t, "break-glass:duty-officer", ev.Actor.User.Name)
	assert.Equal(t, employee, ev.Unmapped.EmployeeID)
	assert.Equal(t, workflows.WorkflowID(employee), ev.Unmapped.WorkflowID)
	assert.Equal(t, st.RunID, ev.Unmapped.RunID)
	assert.NotEmpty(t, ev.Unmapped.UpdateID)
	assert.Len(t, ev.Unmapped.DecisionDigest, 64)
	assert.Equal(t, "Success", ev.Status)
	assert.Equal(t, siem.SeverityMedium, ev.SeverityID, "keys used without the API")
	assert.Contains(t, ev.Message, "break-glass, without the operator API")

	// A refused break-glass decision is an event as well, as the API's are.
	code, _, stderr = starter(t, "release", "-employee", employee, "-case", "CASE-9", "-break-glass-key", glass)
	require.Equal(t, exitRefused, code, stderr)
	require.Equal(t, 2, sim.Total(), "one more event: %v", sim.Counts())
	refused := event("refused")
	assert.True(t, refused.Unmapped.BreakGlass)
	assert.Equal(t, "Failure", refused.Status)
	assert.Contains(t, refused.StatusDetail, `case "CASE-9" does not match the hold's case "CASE-7"`)

	// The SIEM down: the decision still reaches the run, and the CLI says
	// the SIEM did not get it.
	t.Setenv("OFFBOARD_CONFIG", configWith("down.yaml", downURL))
	code, stdout, stderr = starter(t, "release", "-employee", employee, "-case", "CASE-7", "-break-glass-key", glass)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "accepted (break-glass): legal hold for case CASE-7 released (by break-glass:duty-officer")
	assert.Contains(t, stderr, "warning: the SIEM did not get this break-glass decision ("+workflows.SignalReleaseHold+", update ")
	assert.Contains(t, stderr, "tell the SOC")
	st, err = runs.Status(ctx, srv.Client, employee)
	require.NoError(t, err)
	assert.Nil(t, st.LegalHold, "the release reached the run")
	require.Len(t, st.Holds, 1)
	assert.Equal(t, "break-glass:duty-officer", st.Holds[0].ReleasedBy)
	assert.Equal(t, 2, sim.Total(), "nothing went to the SIEM that is up")
}
