package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/relay"
	"github.com/offboard/offboard/workflows"
)

func TestDecisionUsage(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	t.Setenv("OFFBOARD_TOKEN", "")
	t.Setenv("OFFBOARD_TOKEN_FILE", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"there is no -by", []string{"approve", "-employee", "E1", "-by", "mallory@example.test", "-digest", "sha256:x"}, "flag provided but not defined: -by"},
		{"approve without employee", []string{"approve", "-digest", "sha256:x"}, "-employee is required"},
		{"approve bad decision", []string{"approve", "-employee", "E1", "-digest", "sha256:x", "-decision", "maybe"}, "-decision must be approve or reject"},
		{"no token", []string{"approve", "-employee", "E1", "-digest", "sha256:x"}, "-token-file FILE or OFFBOARD_TOKEN"},
		{"hold without case", []string{"hold", "-employee", "E1"}, "-case is required"},
		{"release without case", []string{"release", "-employee", "E1"}, "-case is required"},
		{"rescind without employee", []string{"rescind"}, "-employee is required"},
		{"rescind names its event", []string{"rescind", "-employee", "E1"}, "-event ID or -effective TIME"},
		{"reschedule bad time", []string{"reschedule", "-employee", "E1", "-event", "e", "-at", "soon"}, `-at "soon"`},
		{"reschedule names what it moves", []string{"reschedule", "-employee", "E1", "-at", "+1h"}, "-event ID or -from TIME"},
		{"retry without control", []string{"retry", "-employee", "E1"}, "-control is required"},
		{"waive without reason", []string{"waive", "-employee", "E1", "-control", "okta/suspend", "-expires", "72h"}, "-reason is required"},
		{"correct names something", []string{"correct", "-employee", "E1"}, "-email, -name or -account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := starter(t, tc.args...)
			require.Equal(t, exitUsage, code, stderr)
			require.Empty(t, stdout)
			require.Contains(t, stderr, tc.want)
		})
	}
}

func TestDecisionKeygen(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	out := filepath.Join(t.TempDir(), "decision.key")
	code, stdout, stderr := starter(t, "decision-keygen", "-out", out)
	require.Equal(t, exitOK, code, stderr)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	key, err := decision.ParsePrivateKey(string(b))
	require.NoError(t, err)
	require.Contains(t, stdout, "publicKey: "+base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	info, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	code, _, stderr = starter(t, "decision-keygen", "-out", out)
	require.Equal(t, exitFailed, code, "never overwrites a key: %s", stderr)
}

func TestDecisionAPIUnreachable(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(token, []byte("sandbox-hr-token\n"), 0o600))
	code, _, stderr := starter(t, "rescind", "-employee", "E1", "-event", "evt-1", "-api", "http://127.0.0.1:1", "-token-file", token)
	require.Equal(t, exitFailed, code, stderr)
	require.Contains(t, stderr, "starter rescind: operator API http://127.0.0.1:1")
}

// planTarget has one containment and one removal control, so runs have a
// plan to approve.
type planTarget struct {
	mu   sync.Mutex
	held map[string]bool
}

func (p *planTarget) Name() string { return "fake" }
func (p *planTarget) Kind() string { return "fake" }
func (p *planTarget) Resolve(_ context.Context, person control.Person) (control.Account, error) {
	return control.Account{ID: person.EmployeeID, Login: person.Email, Holds: []string{"group all-staff", "group finance-approvers"}}, nil
}
func (p *planTarget) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{"suspend"}
	case control.Removal:
		return []string{"remove_groups"}
	}
	return nil
}
func (p *planTarget) Observe(_ context.Context, name string, a control.Account, _ control.Params) (control.Observation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return control.Observation{Holds: p.held[name+a.ID], Readable: true}, nil
}
func (p *planTarget) Enforce(_ context.Context, name string, a control.Account, _ control.Params) (control.Response, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held[name+a.ID] = true
	return control.Response{HTTPStatus: 200}, nil
}

// TestDecisionsThroughTheAPI runs the CLI against the operator API in front
// of a dev server: the person is the token's, refusals exit 3 with the
// reason, an approver sees the plan, break-glass works without the API.
func TestDecisionsThroughTheAPI(t *testing.T) {
	srv := devserver.Start(t)
	cfg, err := config.Default()
	require.NoError(t, err)
	cfg.Policy.Approval.Always = true
	cfg.People.Approvers = nil
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{&planTarget{held: map[string]bool{}}}), &evidence.Activities{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	dir := t.TempDir()
	file := func(name, value string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(value+"\n"), 0o600))
		return p
	}
	seed := func(name string) string {
		s := sha256.Sum256([]byte(name))
		return base64.StdEncoding.EncodeToString(s[:])
	}
	rc := config.Relay{Tokens: []config.Token{
		{Name: "alice@example.test", Roles: []string{config.RoleApprover, config.RoleSecurity}, SHA256: relay.TokenSHA256("alice-token")},
		{Name: "carol@example.test", Roles: []string{config.RoleApprover}, SHA256: relay.TokenSHA256("carol-token")},
		{Name: "sec@example.test", Role: config.RoleSecurity, SHA256: relay.TokenSHA256("sec-token")},
		{Name: "hr@example.test", Role: config.RoleHR, SHA256: relay.TokenSHA256("hr-token")},
	}}
	rc.DecisionKey = config.Secret{File: file("decision.key", seed("sandbox-decision-key"))}
	rl, err := relay.New(relay.Config{Relay: rc}, srv.Client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	api := httptest.NewServer(rl.Handler())
	t.Cleanup(api.Close)
	// The CLI's configuration: where Temporal is and which keys are trusted
	// (the sandbox's, in the embedded default).
	cfgFile := file("offboard.yaml", fmt.Sprintf(`temporal: {address: %q}
people:
  decisionKeys:
    - {name: operator-api, publicKey: 1/Q2WTuCSkxO3lyCyfgLBEQnbOcUKn92Mfuv9qC66YA=}
    - {name: duty-officer, publicKey: wux966FxWxLkrN9o3UAxzd6MN9L02tbOsWHfX0HgGpE=, breakGlass: true}
targets:
  - name: scim-crm
    kind: scim
    scim: {baseURL: "http://127.0.0.1:1/scim/v2", bearer: {env: OFFBOARD_TEST_SCIM_TOKEN}}
`, srv.HostPort))
	t.Setenv("OFFBOARD_CONFIG", cfgFile)
	t.Setenv("OFFBOARD_API", api.URL)
	t.Setenv("OFFBOARD_TOKEN", "")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	employee, st := awaitingApproval(ctx, t, srv.Client, "C", "carol@example.test")

	as := func(token string, args ...string) (int, string, string) {
		return starter(t, append(args, "-token-file", file(token, token))...)
	}
	// Without a digest the approver sees the plan, and is asked for its digest.
	code, stdout, stderr := as("alice-token", "approve", "-employee", employee)
	require.Equal(t, exitUsage, code, stderr)
	require.Contains(t, stdout, "removal   fake/remove_groups")
	require.Contains(t, stdout, "removes group all-staff\n")
	require.Contains(t, stdout, "removes group finance-approvers\n")
	require.Contains(t, stderr, "-digest "+st.PlanDigest)
	// A token without the approver role, and the leaver approving herself.
	code, _, stderr = as("sec-token", "approve", "-employee", employee, "-digest", st.PlanDigest)
	require.Equal(t, exitRefused, code, stderr)
	require.Contains(t, stderr, "needs approver")
	code, _, stderr = as("carol-token", "approve", "-employee", employee, "-digest", st.PlanDigest)
	require.Equal(t, exitRefused, code, stderr)
	require.Contains(t, stderr, "is the leaver")
	// HR places a hold; a release naming another case is refused.
	code, stdout, stderr = as("hr-token", "hold", "-employee", employee, "-case", "CASE-7")
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "accepted: legal hold placed for case CASE-7 (by hr@example.test")
	code, _, stderr = as("hr-token", "release", "-employee", employee, "-case", "CASE-9")
	require.Equal(t, exitRefused, code, stderr)
	require.Contains(t, stderr, `case "CASE-9" does not match the hold's case "CASE-7"`)

	// Break-glass, without the API: a key the configuration does not list
	// as break-glass is refused; the listed one decides, marked as such.
	code, _, stderr = starter(t, "approve", "-employee", employee, "-digest", st.PlanDigest, "-break-glass-key", file("stray.key", seed("stray")))
	require.Equal(t, exitUsage, code, stderr)
	require.Contains(t, stderr, "is not a break-glass key")
	code, stdout, stderr = starter(t, "approve", "-employee", employee, "-digest", st.PlanDigest, "-break-glass-key", file("glass.key", seed("sandbox-break-glass-key")))
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "accepted (break-glass): plan "+st.PlanDigest+" approved (by break-glass:duty-officer")
	st, err = runs.Status(ctx, srv.Client, employee)
	require.NoError(t, err)
	require.Len(t, st.Approvals, 1)
	require.True(t, st.Approvals[0].BreakGlass)
	require.Equal(t, "break-glass:duty-officer", st.Approvals[0].Approver)
}

// awaitingApproval starts a termination for a new employee id (prefix and a
// number) and returns it once its run waits for an approver.
func awaitingApproval(ctx context.Context, t *testing.T, c client.Client, prefix, email string) (string, workflows.Status) {
	t.Helper()
	employee := fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e6)
	_, err := runs.Start(ctx, c, workflows.Termination{EventID: "evt-" + employee, Source: "test", EmployeeID: employee,
		Email: email, Kind: workflows.KindTermination, EffectiveAt: time.Now().UTC()})
	require.NoError(t, err)
	var st workflows.Status
	require.Eventually(t, func() bool {
		st, err = runs.Status(ctx, c, employee)
		return err == nil && st.Phase == workflows.PhaseAwaitingApproval
	}, 30*time.Second, 50*time.Millisecond)
	return employee, st
}
