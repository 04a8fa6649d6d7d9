package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/workflows"
)

// temporalBinary is the CLI the dev server runs from: $OFFBOARD_TEMPORAL_BIN
// or the repository's bin/temporal.
func temporalBinary(t testing.TB) string {
	if p := os.Getenv("OFFBOARD_TEMPORAL_BIN"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "bin", "temporal"))
	require.NoError(t, err)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Temporal CLI at %s: run scripts/setup.sh (make test does) or set OFFBOARD_TEMPORAL_BIN: %v", p, err)
	}
	return p
}

// startDevServer runs a real Temporal dev server with Offboard's search attributes.
func startDevServer(t testing.TB) client.Client {
	t.Helper()
	args := []string{"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"}
	srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath:     temporalBinary(t),
		ClientOptions:    &client.Options{Namespace: "default", Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))},
		LogLevel:         "error",
		ExtraArgs:        args,
		SearchAttributes: workflows.SearchAttributes(),
		Stdout:           io.Discard,
		Stderr:           io.Discard,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.Client()
}

// suspendTarget is one system whose only containment control is "suspend";
// suspended reports each employee the moment their account is suspended.
type suspendTarget struct {
	mu        sync.Mutex
	held      map[string]bool
	suspended chan string
}

func newSuspendTarget() *suspendTarget {
	return &suspendTarget{held: map[string]bool{}, suspended: make(chan string, 100)}
}

func (s *suspendTarget) Name() string { return "fake" }
func (s *suspendTarget) Kind() string { return "fake" }
func (s *suspendTarget) Resolve(_ context.Context, p control.Person) (control.Account, error) {
	return control.Account{ID: p.EmployeeID, Login: p.Email}, nil
}

func (s *suspendTarget) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{"suspend"}
	case control.Restore:
		return []string{"unsuspend"}
	}
	return nil
}

func (s *suspendTarget) Observe(_ context.Context, name string, acct control.Account, _ control.Params) (control.Observation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := name + "/" + acct.ID
	return control.Observation{Holds: s.held[key], Readable: true, Detail: fmt.Sprintf("%s=%v", key, s.held[key])}, nil
}

func (s *suspendTarget) Enforce(_ context.Context, name string, acct control.Account, _ control.Params) (control.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := name + "/" + acct.ID
	if name == "suspend" && !s.held[key] {
		s.suspended <- acct.ID
	}
	s.held[key] = true
	return control.Response{HTTPStatus: 200, RequestID: "req-" + key}, nil
}

func waitSuspended(t testing.TB, target *suspendTarget, employee string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case id := <-target.suspended:
			if id == employee {
				return
			}
		case <-deadline:
			t.Fatalf("%s was not suspended within %s", employee, within)
		}
	}
}

// integration runs a worker over the fake target and a relay in front of
// the dev server, as `starter serve` and the worker would in production.
func integration(t *testing.T, blast config.BlastRadius) (*Relay, *suspendTarget, client.Client) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	c := startDevServer(t)
	cfg, err := config.Default()
	require.NoError(t, err)
	cfg.People.Security = []string{"sec@example.test"}
	cfg.People.Approvers = []string{"sec@example.test"}
	target := newSuspendTarget()
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{target}), &evidence.Activities{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	rcfg := testConfig(t)
	rcfg.Now = nil // real Temporal, real clock
	rcfg.Relay.BlastRadius = blast
	rl, err := New(rcfg, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return rl, target, c
}

func signedTermination(t testing.TB, employee string) *http.Request {
	return signedTerminationAt(t, employee, time.Now(), time.Now())
}

// signedTerminationAt is a delivery signed at signedAt: a sender's retry is
// signed again, a replay is the same bytes and signature.
func signedTerminationAt(t testing.TB, employee string, effective, signedAt time.Time) *http.Request {
	body, err := json.Marshal(map[string]any{"type": "termination", "employeeId": employee,
		"email": employee + "@example.test", "effectiveAt": effective.UTC().Format(time.RFC3339), "reason": "voluntary"})
	require.NoError(t, err)
	return webhookAt(t, "generic", body, "application/json", "", signedAt)
}

func TestIntegrationWebhookSuspends(t *testing.T) {
	rl, target, _ := integration(t, config.BlastRadius{})
	employee := fmt.Sprintf("E%d", time.Now().UnixNano()%1e6)

	effective := time.Now()
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, signedTerminationAt(t, employee, effective, effective))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var reply Outcome
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	assert.Equal(t, "started", reply.Status)
	assert.Equal(t, workflows.WorkflowID(employee), reply.WorkflowID)

	waitSuspended(t, target, employee, 30*time.Second)

	// The sender's retry (signed again) is a duplicate of the same run.
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, signedTerminationAt(t, employee, effective, effective.Add(time.Second)))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var dup Outcome
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &dup))
	assert.Equal(t, "duplicate", dup.Status)
	assert.Equal(t, reply.RunID, dup.RunID)

	// The auditor reads the run through the operator API.
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodGet, "/deprovisions/"+employee, "auditor-token", ""))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var st workflows.Status
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	assert.Equal(t, employee, st.EmployeeID)
	assert.NotEqual(t, workflows.PhaseScheduled, st.Phase)
}

func TestIntegrationQuarantine(t *testing.T) {
	rl, target, _ := integration(t, config.BlastRadius{Max: 1, Window: config.Duration(10 * time.Minute)})
	base := time.Now().UnixNano() % 1e6
	first, second := fmt.Sprintf("Q%d", base), fmt.Sprintf("Q%d", base+1)

	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, signedTermination(t, first))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	waitSuspended(t, target, first, 30*time.Second)

	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, signedTermination(t, second))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var reply Outcome
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	require.True(t, reply.Quarantined, "the N+1th termination within the window is quarantined")

	// It waits for security: the status says quarantined (polled: the
	// worker sets it once the plan is loaded).
	status := func() workflows.Status {
		rec := httptest.NewRecorder()
		rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodGet, "/deprovisions/"+second, "auditor-token", ""))
		var st workflows.Status
		if rec.Code == http.StatusOK {
			_ = json.Unmarshal(rec.Body.Bytes(), &st)
		}
		return st
	}
	require.Eventually(t, func() bool { return status().Phase == workflows.PhaseQuarantined }, 30*time.Second, 100*time.Millisecond)
	select {
	case id := <-target.suspended:
		t.Fatalf("%s suspended while %s was quarantined", id, second)
	default:
	}

	// Security releases it; visibility is eventually consistent, so ask
	// again until the list has caught up (a repeated release is harmless).
	released := func() bool {
		rec := httptest.NewRecorder()
		rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/release-quarantine", "security-token", `{"reason":"layoff list confirmed"}`))
		var r struct {
			Released []Released `json:"released"`
		}
		_ = json.NewDecoder(bytes.NewReader(rec.Body.Bytes())).Decode(&r)
		return rec.Code == http.StatusOK && len(r.Released) == 1 && r.Released[0].EmployeeID == second
	}
	require.Eventually(t, released, 30*time.Second, 200*time.Millisecond)
	waitSuspended(t, target, second, 30*time.Second)
	assert.Contains(t, approvals(status()), "sec@example.test")
}

func approvals(st workflows.Status) []string {
	var out []string
	for _, a := range st.Approvals {
		out = append(out, a.Approver)
	}
	return out
}
