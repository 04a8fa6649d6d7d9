// Package stack runs the production stack of docker-compose.yml for tests,
// the way `make stack` does (scripts/stack.sh): PostgreSQL, the compose
// file's setup scripts, the Temporal server built from source, the sandbox
// simulators, the worker and the starter with a configuration derived from
// deploy/offboard.yaml. It uses the worker, starter and sandbox in bin/
// (make test builds them first) and what scripts/setup.sh stack installs.
package stack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/tclient"
	"github.com/offboard/offboard/internal/testenv/devserver"
)

// Test ports: make run's + 20000, so a `make stack` (+ 10000) and a `make run`
// can run beside the tests; the simulators on their own loopback address.
const (
	testOffset      = 20000
	testSandboxHost = "127.0.0.3"
)

// Stack is a running stack and a client of its Temporal server (with the
// configuration's codec).
type Stack struct {
	Dir         string
	Config      config.Config
	Client      client.Client
	Relay       string // base URL of starter serve
	SandboxHost string
	PGPort      int
	t           testing.TB
	cmd         *exec.Cmd
	log         *os.File
}

// Start runs scripts/stack.sh with the state in a fresh directory under
// .offboard/ and waits until it says it is ready. overrides is YAML merged
// over the derived configuration ("" for none). The stack stops when the
// test ends. Anything missing fails the test, naming what to run.
func Start(t testing.TB, overrides string) *Stack {
	t.Helper()
	root := devserver.RepoRoot(t)
	for _, b := range []string{"temporal-server", "temporal-sql-tool", "temporal-ui-server", "temporal", "worker", "starter", "sandbox"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			t.Fatalf("bin/%s is missing: run scripts/setup.sh stack and make build (make test does): %v", b, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, ".offboard"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: PostgreSQL runs as its own user and must reach its data.
	dir, err := os.MkdirTemp(filepath.Join(root, ".offboard"), "stack-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "stack.out"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{Dir: dir, t: t, log: logf, SandboxHost: testSandboxHost, PGPort: 5432 + testOffset,
		Relay: fmt.Sprintf("http://127.0.0.1:%d", 8080+testOffset)}

	cmd := exec.Command(filepath.Join(root, "scripts", "stack.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "OFFBOARD_STACK_DIR="+dir, "OFFBOARD_STACK_PORT_OFFSET="+strconv.Itoa(testOffset),
		"OFFBOARD_STACK_SANDBOX_HOST="+testSandboxHost, "OFFBOARD_STACK_OVERRIDES="+overrides)
	// Its own process group: the test's Ctrl-C is not the stack's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("scripts/stack.sh: %v", err)
	}
	s.cmd = cmd
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if strings.Contains(sc.Text(), "stack ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { s.stop(exited) })

	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("scripts/stack.sh exited before it was ready (%v):\n%s", err, s.tail())
	case <-time.After(4 * time.Minute):
		t.Fatalf("the stack was not ready within 4 minutes:\n%s", s.tail())
	}

	s.Config, err = config.Load(filepath.Join(dir, "offboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.Client, err = tclient.Dial(s.Config, nil)
	if err != nil {
		t.Fatalf("dial the stack's Temporal: %v", err)
	}
	t.Cleanup(s.Client.Close)
	return s
}

// stop ends stack.sh as Ctrl-C would, and keeps the directory only when the
// test failed (its logs/ say why).
func (s *Stack) stop(exited chan error) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	_ = s.log.Close()
	if s.t.Failed() {
		s.t.Logf("stack state and logs kept in %s\n%s", s.Dir, s.tail())
		return
	}
	_ = os.RemoveAll(s.Dir)
}

func (s *Stack) tail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "stack.out"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// PID is the running process of a service (postgresql, temporal,
// temporal-ui, sandbox, worker, starter), as stack.sh recorded it.
func (s *Stack) PID(service string) int {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "run", service+".pid"))
	if err != nil {
		s.t.Fatalf("%s: %v", service, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		s.t.Fatalf("%s pid: %v", service, err)
	}
	return pid
}

// Signal sends sig to a service's process and waits until stack.sh has
// started the next one and it answers on port (stack.sh restarts what dies,
// as Compose's restart: unless-stopped does). It returns the downtime.
func (s *Stack) Signal(ctx context.Context, service string, sig syscall.Signal, port int) time.Duration {
	s.t.Helper()
	old := s.PID(service)
	t0 := time.Now()
	if err := syscall.Kill(old, sig); err != nil {
		s.t.Fatalf("signal %s (%d): %v", service, old, err)
	}
	for {
		if pid := s.readPID(service); pid != 0 && pid != old && answers(port) {
			return time.Since(t0)
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s did not come back after %v: %v\n%s", service, sig, ctx.Err(), s.Log(service))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Stack) readPID(service string) int {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "run", service+".pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Port is a service's port in the test stack (make run's port + the offset).
func Port(makeRunPort int) int { return makeRunPort + testOffset }

func answers(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Log is the end of a service's log.
func (s *Stack) Log(service string) string {
	f, err := os.Open(filepath.Join(s.Dir, "logs", service+".log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
