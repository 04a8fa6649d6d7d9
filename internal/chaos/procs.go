package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// proc is one component run as an operator runs it: its own process, its
// log appended to across restarts.
type proc struct {
	name    string
	args    []string
	env     []string
	log     string
	ready   func(context.Context) error // nil error once the component serves
	cmd     *exec.Cmd
	exited  chan struct{}
	started int
}

func (p *proc) start(ctx context.Context) error {
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("%s (run make build first): %w", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	p.started++
	go func() { _ = cmd.Wait(); log.Close(); close(p.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := p.ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited while starting; see %s", p.name, p.log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 60 s (%v); see %s", p.name, err, p.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kill ends the process with sig and waits for it.
func (p *proc) kill(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (p *proc) alive() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// devServer is the Temporal dev server on SQLite in a file (as make run
// starts it), so a restart keeps every workflow.
func devServer(root, dir, hostPort string) *proc {
	host, port, _ := net.SplitHostPort(hostPort)
	args := []string{filepath.Join(root, "bin", "temporal"), "server", "start-dev", "--headless",
		"--ip", host, "--port", port, "--db-filename", filepath.Join(dir, "temporal.db"),
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal", "--log-level", "warn"}
	// The search attributes of workflows.SearchAttributes, as scripts/run.sh declares them.
	for _, sa := range []string{"EmployeeId=Keyword", "DeprovisionStatus=Keyword", "Privileged=Bool", "LegalHold=Bool", "SLABreached=Bool"} {
		args = append(args, "--search-attribute", sa)
	}
	return &proc{name: "temporal", args: args, log: filepath.Join(dir, "temporal.log"),
		ready: func(context.Context) error {
			c, err := net.DialTimeout("tcp", hostPort, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}}
}

// httpReady is a component ready once url answers 200.
func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// freeAddr is a loopback address nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
