package integration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/workflows"
)

// TestWorkerKilledMidContainment kills the worker process (SIGKILL) while the
// Okta suspend is in flight, starts a new one, and checks the run completes
// with no step applied twice on any target.
func TestWorkerKilledMidContainment(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := s.people[5]

	// Know the moment the suspend reaches Okta, and keep it there: the call
	// is slow enough that the worker dies in the middle of it.
	var once sync.Once
	suspendSeen := make(chan struct{})
	okta := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/lifecycle/suspend") {
			once.Do(func() { close(suspendSeen) })
		}
		s.okta.Handler().ServeHTTP(w, r)
	})
	srv := httptest.NewServer(okta)
	t.Cleanup(srv.Close)
	s.oktaURL = srv.URL
	s.okta.Faults().Add(fault.Rule{Method: "POST", PathPrefix: "/api/v1/users/", Latency: 30 * time.Second, Count: 1})

	bin := buildWorker(t)
	cfgPath := filepath.Join(t.TempDir(), "offboard.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(s.configYAML(defaultPolicy())), 0o600))

	crm, ok := s.crm.User(p.Email)
	require.True(t, ok)
	first := startWorkerProcess(t, bin, cfgPath)
	started := s.terminate(ctx, p, nil)
	select {
	case <-suspendSeen:
	case <-ctx.Done():
		t.Fatal("the suspend never reached Okta")
	}
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	user, _ := s.okta.User(p.Email)
	require.Equal(t, "ACTIVE", user.Status, "the killed worker's suspend did not complete")

	startWorkerProcess(t, bin, cfgPath)
	res := s.result(ctx, started)
	require.Equal(t, workflows.PhaseCompleted, res.Phase)

	// Every step reached each target exactly once.
	seen := map[string]int{}
	for _, tr := range s.okta.Transitions(user.ID) {
		seen["okta "+tr.Action+" "+tr.Detail]++
	}
	for _, tr := range s.crm.Transitions(crm.ID) {
		seen["crm "+tr.Action]++
	}
	require.Equal(t, 1, seen["okta suspend "])
	require.Equal(t, 1, seen["crm deactivate"])
	require.Equal(t, 1, seen["crm delete"])
	for step, n := range seen {
		require.Equal(t, 1, n, "%s applied %d times", step, n)
	}
	require.GreaterOrEqual(t, len(seen), 8)
}

func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	cmd := exec.Command("go", "build", "-o", bin, "./worker")
	cmd.Dir = devserver.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build worker: %s", out)
	return bin
}

func startWorkerProcess(t *testing.T, bin, cfgPath string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Env = append(os.Environ(), "IT_OKTA_TOKEN="+oktaToken, "IT_SCIM_TOKEN="+scimToken,
		"IT_AWS_KEY_ID="+awsKeyID, "IT_AWS_SECRET="+awsSecret, "IT_LDAP_PASSWORD="+ldapPassword)
	if os.Getenv("OFFBOARD_WORKER_LOGS") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}
