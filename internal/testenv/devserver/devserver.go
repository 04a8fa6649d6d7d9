// Package devserver starts a real Temporal dev server for tests, from the
// CLI that scripts/setup.sh builds into bin/ (nothing is downloaded).
package devserver

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/workflows"
)

// Server is a running dev server and a client connected to it.
type Server struct {
	Client   client.Client
	HostPort string
	dev      *testsuite.DevServer
}

// Start starts a dev server with the project's search attributes registered;
// it is stopped when the test ends. A missing CLI fails the test, naming the
// setup script: a missing install must be visible, never skipped.
func Start(t testing.TB) *Server {
	t.Helper()
	path := filepath.Join(RepoRoot(t), "bin", "temporal")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Temporal CLI not found at %s: run scripts/setup.sh (make test does)", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs io.Writer = io.Discard
	if os.Getenv("OFFBOARD_DEVSERVER_LOGS") != "" {
		logs = os.Stderr
	}
	dev, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     path,
		LogLevel:         "error",
		ClientOptions:    &client.Options{Logger: quietLogger{}},
		SearchAttributes: workflows.SearchAttributes(),
		// As make run: activities on the workflow's own queue start with the
		// workflow task that scheduled them (eager dispatch, issue 17), and
		// workflow tasks reach matching without waiting on the transfer
		// queue's poll rate.
		ExtraArgs: []string{"--dynamic-config-value", "system.enableActivityEagerExecution=true",
			"--dynamic-config-value", "history.transferProcessorMaxPollRPS=200"},
		Stdout: logs,
		Stderr: logs,
	})
	if err != nil {
		t.Fatalf("start Temporal dev server: %v", err)
	}
	t.Cleanup(func() { _ = dev.Stop() })
	return &Server{Client: dev.Client(), HostPort: dev.FrontendHostPort(), dev: dev}
}

// RepoRoot finds the module root from the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal(fmt.Errorf("no go.mod above the test directory"))
		}
		dir = parent
	}
}

// quietLogger keeps the SDK's info chatter out of test output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(msg string, kv ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"temporal client:", msg}, kv...)...)
}
