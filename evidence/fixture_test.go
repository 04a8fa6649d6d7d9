package evidence_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// fixture is one real dev server with a worker, and two recorded runs:
// one completed (with an approval), one terminated while on legal hold.
type fixture struct {
	client     client.Client
	address    string
	priv       ed25519.PrivateKey
	pub        ed25519.PublicKey
	keyID      string
	completed  evidence.Run
	result     workflows.Result
	terminated evidence.Run
	approver   string
	planDigest string
	// archived is a store holding both runs, archived once.
	archived evidence.Dir
	// swept is the store of the worker's Archiver activities.
	swept evidence.Dir
}

var (
	fx     *fixture
	fxErr  error
	fxOnce sync.Once
)

var testCtx, stopTests = context.WithCancel(context.Background())

func TestMain(m *testing.M) {
	code := m.Run()
	stopTests()
	if fx != nil {
		fx.client.Close()
		_ = os.RemoveAll(fx.archived.Root)
		_ = os.RemoveAll(fx.swept.Root)
	}
	if devServer != nil {
		_ = devServer.Stop()
	}
	os.Exit(code)
}

var devServer *testsuite.DevServer

// repoRoot is one level up from this package.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
}

// temporalCLI is the CLI `make` installs at bin/temporal.
func temporalCLI() string { return filepath.Join(repoRoot(), "bin", "temporal") }

// getFixture starts the dev server, a worker and the two runs once per test binary.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	fxOnce.Do(func() { fx, fxErr = newFixture(testCtx) })
	require.NoError(t, fxErr)
	return fx
}

const testConfig = `
sandbox: true
policy:
  containmentSLA: 15m
  credentialsSLA: 24h
  approval: {privileged: true, forCause: true, timeout: 1h}
  retention: 1s
  reverify: []
  controlAttempts: 2
people:
  approvers: [alice@example.test]
  security: [alice@example.test]
evidence: {dir: unused}
targets:
  - name: okta
    kind: okta
    okta: {orgURL: http://127.0.0.1:1, token: "sandbox:x"}
`

func newFixture(ctx context.Context) (*fixture, error) {
	cli := temporalCLI()
	if _, err := os.Stat(cli); err != nil {
		return nil, fmt.Errorf("the Temporal CLI is not at %s (make installs it): %w", cli, err)
	}
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     cli,
		ClientOptions:    &client.Options{Logger: quiet},
		LogLevel:         "error",
		Stdout:           io.Discard,
		SearchAttributes: workflows.SearchAttributes(),
	})
	if err != nil {
		return nil, fmt.Errorf("start dev server: %w", err)
	}
	devServer = srv
	pubKey := base64.StdEncoding.EncodeToString(decisionKey.Public().(ed25519.PublicKey))
	yaml := strings.Replace(testConfig, "people:\n", "people:\n  decisionKeys: [{name: operator-api, publicKey: "+pubKey+"}]\n", 1)
	cfg, err := config.Parse([]byte(yaml), "evidence test")
	if err != nil {
		return nil, err
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f := &fixture{client: srv.Client(), address: srv.FrontendHostPort(), priv: priv, pub: pub, keyID: evidence.KeyID(pub), approver: "alice@example.test"}

	w := worker.New(f.client, workflows.TaskQueue, worker.Options{})
	archiveDir, err := os.MkdirTemp("", "evidence-fixture-")
	if err != nil {
		return nil, err
	}
	f.archived = evidence.Dir{Root: archiveDir}
	f.swept = evidence.Dir{Root: filepath.Join(archiveDir, "..", filepath.Base(archiveDir)+"-swept")}
	evidence.Register(w, activities.New(cfg, []control.Target{newFakeTarget("fake")}), &evidence.Activities{Client: f.client, Store: f.swept, Key: priv, KeyID: f.keyID})
	if err := w.Start(); err != nil {
		return nil, err
	}
	go func() { <-ctx.Done(); w.Stop() }()

	if err := f.recordCompleted(ctx); err != nil {
		return nil, fmt.Errorf("completed run: %w", err)
	}
	if err := f.recordTerminated(ctx); err != nil {
		return nil, fmt.Errorf("terminated run: %w", err)
	}
	for _, r := range []evidence.Run{f.completed, f.terminated} {
		if _, err := evidence.Archive(ctx, f.client, r.WorkflowID, r.RunID, f.archived, f.priv, f.keyID); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func termination(id string) workflows.Termination {
	return workflows.Termination{EventID: "evt-" + id, Source: "cli", EmployeeID: id, Email: id + "@example.test", Name: "Test " + id,
		Kind: workflows.KindTermination, Reason: workflows.ReasonInvoluntary, EffectiveAt: time.Now().UTC(), Privileged: true,
		RequestedBy: "hr@example.test"}
}

func (f *fixture) start(ctx context.Context, t workflows.Termination) (client.WorkflowRun, error) {
	return f.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.WorkflowID(t.EmployeeID), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowType, t)
}

// awaitApproval polls the status query until the run waits for an approval.
func (f *fixture) awaitApproval(ctx context.Context, run client.WorkflowRun) (workflows.Status, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-deadline:
			return workflows.Status{}, fmt.Errorf("%s never waited for approval", run.GetID())
		case <-ctx.Done():
			return workflows.Status{}, ctx.Err()
		case <-tick.C:
		}
		v, err := f.client.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.QueryStatus)
		if err != nil {
			continue
		}
		var st workflows.Status
		if err := v.Get(&st); err != nil {
			return st, err
		}
		if st.Phase == workflows.PhaseAwaitingApproval {
			return st, nil
		}
	}
}

func (f *fixture) recordCompleted(ctx context.Context) error {
	run, err := f.start(ctx, termination("E100"))
	if err != nil {
		return err
	}
	st, err := f.awaitApproval(ctx, run)
	if err != nil {
		return err
	}
	f.planDigest = st.PlanDigest
	if err := f.decide(ctx, run, decision.KindApprove, f.approver, []string{decision.RoleApprover}, st.PlanDigest,
		workflows.ApproveRequest{Decision: "approve", Reason: "leaver confirmed"}); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := run.Get(wctx, &f.result); err != nil {
		return err
	}
	f.completed = evidence.Run{WorkflowID: run.GetID(), RunID: run.GetRunID()}
	return nil
}

// decisionKey signs the fixture's decisions as the operator API would; the
// test configuration trusts its public half.
var decisionKey = func() ed25519.PrivateKey {
	s := sha256.Sum256([]byte("evidence-fixture-decision-key"))
	return ed25519.NewKeyFromSeed(s[:])
}()

// decide sends a person's signed decision to the run and requires it accepted.
func (f *fixture) decide(ctx context.Context, run client.WorkflowRun, kind, person string, roles []string, digest string, payload any) error {
	v, err := runs.Decide(ctx, f.client, decisionKey, runs.Request{EmployeeID: run.GetID()[len("deprovision-"):], RunID: run.GetRunID(),
		Kind: kind, Person: person, Roles: roles, PlanDigest: digest, Payload: payload}, time.Now(), 30*time.Second)
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	if !v.Accepted {
		return fmt.Errorf("%s refused: %s", kind, v.Reason)
	}
	return nil
}

func (f *fixture) recordTerminated(ctx context.Context) error {
	run, err := f.start(ctx, termination("E200"))
	if err != nil {
		return err
	}
	if _, err := f.awaitApproval(ctx, run); err != nil {
		return err
	}
	if err := f.decide(ctx, run, decision.KindLegalHold, "legal@example.test", []string{decision.RoleHR}, "",
		workflows.Hold{CaseRef: "CASE-7", Reason: "litigation"}); err != nil {
		return err
	}
	if err := f.client.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "operator stopped the run"); err != nil {
		return err
	}
	f.terminated = evidence.Run{WorkflowID: run.GetID(), RunID: run.GetRunID()}
	return nil
}

// fakeTarget is an in-memory system: each control is a flag.
type fakeTarget struct {
	name  string
	mu    sync.Mutex
	holds map[string]bool
}

func newFakeTarget(name string) *fakeTarget {
	return &fakeTarget{name: name, holds: map[string]bool{}}
}

func (f *fakeTarget) Name() string { return f.name }
func (f *fakeTarget) Kind() string { return "fake" }

func (f *fakeTarget) Resolve(_ context.Context, p control.Person) (control.Account, error) {
	return control.Account{ID: "u-" + p.EmployeeID, Login: p.Email}, nil
}

func (f *fakeTarget) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{"suspend", "clear_sessions"}
	case control.Removal:
		return []string{"remove_groups"}
	case control.Deletion:
		return []string{"delete"}
	case control.Restore:
		return []string{"unsuspend"}
	}
	return nil
}

func (f *fakeTarget) Observe(_ context.Context, name string, acct control.Account, _ control.Params) (control.Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := control.NewResponse("req-observe-"+name, 200, []byte(`{"id":"`+acct.ID+`"}`))
	if name == "clear_sessions" {
		return control.Observation{Readable: false, Call: call}, nil
	}
	held := f.holds[acct.ID+"/"+name]
	return control.Observation{Holds: held, Readable: true, Detail: fmt.Sprintf("%s held=%v", name, held), Call: call}, nil
}

func (f *fakeTarget) Enforce(_ context.Context, name string, acct control.Account, _ control.Params) (control.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holds[acct.ID+"/"+name] = true
	return control.NewResponse("req-enforce-"+name, 204, nil), nil
}
