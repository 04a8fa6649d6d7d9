package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/workflows"
)

// onStack: -stack, measure on the production stack instead of the dev server.
var onStack bool

// temporalServer is what the bench runs against.
type temporalServer interface {
	Client() client.Client
	FrontendHostPort() string
	Namespace() string
	Name() string
	Stop() error
}

type devServer struct{ *testsuite.DevServer }

func (devServer) Namespace() string { return "default" }
func (devServer) Name() string      { return "dev server (SQLite, WAL)" }

// startDevServer: Temporal, file-backed with the pragmas make run uses.
func startDevServer(ctx context.Context, root, tmp string) (temporalServer, error) {
	fmt.Fprintln(os.Stderr, "starting Temporal dev server (file-backed, WAL)…")
	dev, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     filepath.Join(root, "bin", "temporal"),
		DBFilename:       filepath.Join(tmp, "temporal.db"),
		LogLevel:         "error",
		SearchAttributes: workflows.SearchAttributes(),
		ExtraArgs:        append([]string{"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"}, eagerArgs()...),
		ClientOptions:    &client.Options{Logger: nopLogger{}},
		Stdout:           io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		return nil, fmt.Errorf("dev server: %w", err)
	}
	return devServer{dev}, nil
}

// eagerArgs: a worker that completes a workflow task runs the activities it
// schedules on its own queue at once (eager activity dispatch, issue 17),
// and a workflow task reaches matching within 5 ms of the event that
// scheduled it (the transfer queue's poll rate), as make run's dev server
// does; -no-eager measures without either.
func eagerArgs() []string {
	if noEager {
		return nil
	}
	return []string{"--dynamic-config-value", "system.enableActivityEagerExecution=true",
		"--dynamic-config-value", "history.transferProcessorMaxPollRPS=200"}
}

// The bench's stack: make run's ports + 25000, beside a make stack (+10000)
// and the tests' (+20000); stack.sh allows no more.
const benchStackOffset = 25000

type stackServer struct {
	c    client.Client
	cmd  *exec.Cmd
	dir  string
	done chan error
}

func (s *stackServer) Client() client.Client { return s.c }
func (s *stackServer) FrontendHostPort() string {
	return fmt.Sprintf("127.0.0.1:%d", 7233+benchStackOffset)
}
func (s *stackServer) Namespace() string { return "offboard" }
func (s *stackServer) Name() string {
	v, _ := os.ReadFile("bin/temporal-server.version")
	return "temporal-server " + strings.TrimSpace(string(v)) + " on PostgreSQL (scripts/stack.sh temporal)"
}

// Stop ends stack.sh as Ctrl-C would and removes its state.
func (s *stackServer) Stop() error {
	if s.c != nil {
		s.c.Close()
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
	return os.RemoveAll(s.dir)
}

// startStack runs PostgreSQL and the Temporal server as make stack does,
// with a fresh database.
func startStack(root string) (temporalServer, error) {
	fmt.Fprintln(os.Stderr, "starting the production stack's Temporal (scripts/stack.sh temporal: PostgreSQL, schema, server, namespace)…")
	// Under .offboard, not /tmp: PostgreSQL runs as its own user and must reach its data.
	dir, err := os.MkdirTemp(filepath.Join(root, ".offboard"), "bench-stack-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "stack.sh"), "temporal")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "OFFBOARD_STACK_DIR="+dir, fmt.Sprintf("OFFBOARD_STACK_PORT_OFFSET=%d", benchStackOffset))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scripts/stack.sh: %w", err)
	}
	s := &stackServer{cmd: cmd, dir: dir, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "stack ready") {
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { s.done <- cmd.Wait() }()
	select {
	case <-ready:
	case err := <-s.done:
		return nil, fmt.Errorf("scripts/stack.sh temporal exited before it was ready: %v (logs in %s/logs)", err, dir)
	case <-time.After(5 * time.Minute):
		_ = s.Stop()
		return nil, fmt.Errorf("scripts/stack.sh temporal was not ready within 5 minutes")
	}
	s.c, err = client.Dial(client.Options{HostPort: s.FrontendHostPort(), Namespace: s.Namespace(), Logger: nopLogger{}})
	if err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// writeStackFigures prints and writes what -stack measures.
func writeStackFigures(out string, f figures) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Offboard bench on %s (%s, %d ms per simulated call, %d activities to contain)\n\n", f.Server, f.Machine, f.CallLatencyMS, f.ActivitiesPerRun)
	fmt.Fprintln(tw, "figure\tvalue\t")
	fmt.Fprintf(tw, "time-to-contain p50 / p99 (%d runs)\t%.0f / %.0f ms\t\n", f.Sequential, f.ContainP50MS, f.ContainP99MS)
	fmt.Fprintf(tw, "burst of %d: terminations/s\t%.1f /s\t\n", f.Burst, f.BurstPerSec)
	fmt.Fprintf(tw, "burst: last contained after\t%.1f s\t\n", f.BurstLastMS/1000)
	fmt.Fprintf(tw, "no-op ceiling, same server\t%.1f /s\t\n", f.NoopPerSec)
	fmt.Fprintf(tw, "worker peak RSS\t%.0f MB\t\n", f.WorkerPeakRSSMB)
	_ = tw.Flush()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	return os.WriteFile(out, append(b, '\n'), 0o644)
}
