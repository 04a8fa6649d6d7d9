package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// The sandbox's API decision key; config.Default lists its public half.
var sandboxDecisionSeed = func() []byte { s := sha256.Sum256([]byte("sandbox-decision-key")); return s[:] }()

// approverTokens hold the approver role: the role is the token's, never a name.
var approverTokens = map[string]config.Token{
	"appr-token":  {Name: "appr@example.test", Roles: []string{config.RoleApprover}},
	"appr2-token": {Name: "appr2@example.test", Roles: []string{config.RoleApprover}},
	"appr3-token": {Name: "appr3@example.test", Roles: []string{config.RoleApprover, config.RoleSecurity}},
}

func withApprovers(cfg Config) Config {
	for secret, tok := range approverTokens {
		tok.SHA256 = TokenSHA256(secret)
		cfg.Relay.Tokens = append(cfg.Relay.Tokens, tok)
	}
	return cfg
}

// Requests refused before anything reaches Temporal.
func TestDecisionsRefusedAtTheDoor(t *testing.T) {
	tests := []struct {
		name, action, token, body string
		status                    int
		want                      string
	}{
		{"no token", "rescind", "", `{"eventId":"e"}`, 401, "bearer token"},
		{"unknown token", "rescind", "guess", `{"eventId":"e"}`, 401, "bearer token"},
		{"hr may not approve", "approve", "hr-token", `{"planDigest":"x"}`, 403, "needs approver"},
		{"security is not approver", "approve", "security-token", `{"planDigest":"x"}`, 403, "needs approver"},
		{"approver may not rescind", "rescind", "appr-token", `{"eventId":"e"}`, 403, "needs hr"},
		{"auditor may not hold", "hold", "auditor-token", `{"caseRef":"x"}`, 403, "auditor role"},
		{"no -by: approver in the body", "approve", "appr-token", `{"planDigest":"x","approver":"mallory@example.test"}`, 400, `unknown field \"approver\"`},
		{"no -by: by in the body", "release", "hr-token", `{"caseRef":"CASE-7","by":"mallory@example.test"}`, 400, `unknown field \"by\"`},
		{"approve needs a digest", "approve", "appr-token", `{}`, 400, "planDigest is required"},
		{"rescind names its event", "rescind", "hr-token", `{"reason":"x"}`, 400, "name the event"},
		{"reschedule names what it moves", "reschedule", "hr-token", `{"effectiveAt":"2026-04-01T17:00:00Z"}`, 400, "name the event"},
		{"bad decision", "approve", "appr-token", `{"planDigest":"x","decision":"maybe"}`, 400, "not approve or reject"},
		{"unknown action", "delete", "hr-token", ``, 404, "unknown action"},
		{"no signing key", "hold", "hr-token", `{"caseRef":"CASE-7"}`, 503, "no decision signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := withApprovers(testConfig(t))
			if tt.status == http.StatusServiceUnavailable {
				cfg.Relay.DecisionKey = config.Secret{}
			}
			rl, ft := newTestRelay(t, cfg)
			rec := httptest.NewRecorder()
			rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1001/"+tt.action, tt.token, tt.body))
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Body.String(), tt.want)
			assert.Empty(t, ft.sent(), "nothing reached Temporal")
		})
	}
}

func TestCheckDecisionKey(t *testing.T) {
	dir := t.TempDir()
	api := base64.StdEncoding.EncodeToString(sandboxDecisionSeed)
	pub := base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(sandboxDecisionSeed).Public().(ed25519.PublicKey))
	other := base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))
	r := config.Relay{DecisionKey: secretFile(t, dir, "decision.key", api)}
	require.NoError(t, CheckDecisionKey(r, config.People{DecisionKeys: []config.DecisionKey{{PublicKey: other}, {PublicKey: pub}}}))
	require.ErrorContains(t, CheckDecisionKey(r, config.People{DecisionKeys: []config.DecisionKey{{PublicKey: other}}}), "not in people.decisionKeys")
	require.ErrorContains(t, CheckDecisionKey(r, config.People{DecisionKeys: []config.DecisionKey{{PublicKey: pub, BreakGlass: true}}}), "break-glass")
	require.ErrorContains(t, CheckDecisionKey(config.Relay{DecisionKey: secretFile(t, dir, "bad.key", "not a key")}, config.People{}), "relay: decisionKey")
	require.NoError(t, CheckDecisionKey(config.Relay{}, config.People{}), "no key: the API refuses decisions instead")
}

// planTarget is one system with a containment and a removal control, so a
// run has a plan to approve.
type planTarget struct{ *suspendTarget }

func (p planTarget) Controls(phase control.Phase) []string {
	if phase == control.Removal {
		return []string{"remove_groups"}
	}
	return p.suspendTarget.Controls(phase)
}

type decisionStack struct {
	t   *testing.T
	rl  *Relay
	c   client.Client
	api ed25519.PrivateKey
}

// newDecisionStack is a dev server, a worker whose policy asks for an
// approval every time, and the relay holding the sandbox decision key.
func newDecisionStack(t *testing.T) *decisionStack {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	c := startDevServer(t)
	cfg, err := config.Default()
	require.NoError(t, err)
	cfg.Policy.Approval.Always = true
	cfg.People.Approvers = nil // the role is proven by the token alone
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{planTarget{newSuspendTarget()}}), &evidence.Activities{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	rcfg := withApprovers(testConfig(t))
	rcfg.Now = nil // real Temporal, real clock
	rcfg.Edge = newMemEdge(time.Now)
	rcfg.Relay.DecisionKey = secretFile(t, t.TempDir(), "decision.key", base64.StdEncoding.EncodeToString(sandboxDecisionSeed))
	rl, err := New(rcfg, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return &decisionStack{t: t, rl: rl, c: c, api: ed25519.NewKeyFromSeed(sandboxDecisionSeed)}
}

type reply struct {
	Code int
	decisionReply
	Error string `json:"error"`
}

func (s *decisionStack) post(employee, action, token, body, idempotencyKey string) reply {
	req := operatorRequest(http.MethodPost, "/deprovisions/"+employee+"/"+action, token, body)
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	rec := httptest.NewRecorder()
	s.rl.Handler().ServeHTTP(rec, req)
	r := reply{Code: rec.Code}
	require.NoError(s.t, json.Unmarshal(rec.Body.Bytes(), &r), rec.Body.String())
	return r
}

func (s *decisionStack) status(employee string) workflows.Status {
	rec := httptest.NewRecorder()
	s.rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodGet, "/deprovisions/"+employee, "auditor-token", ""))
	var st workflows.Status
	if rec.Code == http.StatusOK {
		_ = json.Unmarshal(rec.Body.Bytes(), &st)
	}
	return st
}

func (s *decisionStack) start(ctx context.Context, tm workflows.Termination) runs.Started {
	started, err := runs.Start(ctx, s.c, tm)
	require.NoError(s.t, err)
	return started
}

// historyUpdates lists the update ids the run's history holds.
func (s *decisionStack) historyUpdates(ctx context.Context, id, run string) []string {
	var ids []string
	it := s.c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(s.t, err)
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil {
			ids = append(ids, a.GetAcceptedRequest().GetMeta().GetUpdateId())
		}
	}
	return ids
}

// TestIntegrationDecisionAttacks drives each attack of issue 13 through the
// real operator API (and straight to Temporal) against a dev server.
func TestIntegrationDecisionAttacks(t *testing.T) {
	s := newDecisionStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	employee := fmt.Sprintf("D%d", time.Now().UnixNano()%1e6)
	// The leaver is appr@ by an account hint and appr2@ by an e-mail HR sent
	// with other case and a trailing space.
	started := s.start(ctx, workflows.Termination{EventID: "evt-" + employee, Source: "test", EmployeeID: employee,
		Email: "Appr2@Example.test ", Kind: workflows.KindTermination, EffectiveAt: time.Now().UTC(),
		Accounts: map[string]string{"fake": "appr@example.test"}})
	require.Eventually(t, func() bool { return s.status(employee).Phase == workflows.PhaseAwaitingApproval }, 30*time.Second, 50*time.Millisecond)
	st := s.status(employee)
	assert.Equal(t, st.WorkflowID, s.status("%20"+strings.ToLower(employee)).WorkflowID, "the path's id is read under HR's rule")
	rec := httptest.NewRecorder()
	s.rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodGet, "/deprovisions/M%C3%BCller-7", "auditor-token", ""))
	assert.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	require.Len(t, st.Plan, 1, "the approver sees the concrete plan")
	assert.Equal(t, "fake/remove_groups", st.Plan[0].Control)
	assert.Equal(t, employee, st.Plan[0].Account)
	digest := st.PlanDigest
	approve := fmt.Sprintf(`{"planDigest":%q}`, strings.TrimPrefix(digest, "sha256:")) // accepted without its prefix

	// -by mallory is impossible: the identity is the token's.
	r := s.post(employee, "approve", "appr3-token", fmt.Sprintf(`{"planDigest":%q,"approver":"mallory@example.test"}`, digest), "")
	assert.Equal(t, http.StatusBadRequest, r.Code, r.Error)
	// A token without the approver role.
	r = s.post(employee, "approve", "security-token", approve, "")
	assert.Equal(t, http.StatusForbidden, r.Code, r.Error)
	// Self-approval by an account hint, and by an e-mail with a trailing space.
	r = s.post(employee, "approve", "appr-token", approve, "")
	require.Equal(t, http.StatusConflict, r.Code, r.Error)
	assert.Equal(t, "refused", r.Status)
	assert.Contains(t, r.Reason, "is the leaver")
	selfByHint := r.UpdateID
	r = s.post(employee, "approve", "appr2-token", approve, "")
	require.Equal(t, http.StatusConflict, r.Code, r.Error)
	assert.Contains(t, r.Reason, "is the leaver")
	selfByMail := r.UpdateID

	// Forged decisions sent straight to Temporal, as any client could.
	send := func(updateID string, signed decision.Signed) error {
		h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: started.WorkflowID, RunID: started.RunID,
			UpdateID: updateID, UpdateName: workflows.UpdateApprove, Args: []any{signed}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err == nil {
			err = h.Get(ctx, nil)
		}
		return err
	}
	forge := func(key ed25519.PrivateKey, run string) decision.Signed {
		signed, err := decision.Sign(key, decision.Decision{WorkflowID: started.WorkflowID, RunID: run, Kind: workflows.UpdateApprove,
			Person: "appr3@example.test", Roles: []string{config.RoleApprover}, PlanDigest: digest,
			Payload: json.RawMessage(`{"decision":"approve"}`), At: time.Now().UTC(), Nonce: "forged"})
		require.NoError(t, err)
		return signed
	}
	stray := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	require.ErrorContains(t, send("forged-unsigned", decision.Signed{}), "not signed")
	require.ErrorContains(t, send("forged-stray-key", forge(stray, started.RunID)), "does not trust")
	require.ErrorContains(t, send("forged-other-run", forge(s.api, "a-run-that-is-not-this-one")), "not this run")
	require.NoError(t, s.c.SignalWorkflow(ctx, started.WorkflowID, started.RunID, workflows.SignalApprove,
		workflows.Approve{Approver: "appr3@example.test", Decision: "approve", PlanDigest: digest}))
	require.Eventually(t, func() bool {
		for _, l := range s.status(employee).Log {
			if l.Kind == workflows.SignalApprove && strings.Contains(l.Detail, "ignored") {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the signalled approval is logged as ignored")
	st = s.status(employee)
	assert.Equal(t, workflows.PhaseAwaitingApproval, st.Phase, "nothing above approved the plan")
	assert.Empty(t, st.Approvals)

	// Two approvals at once by the same approver: each gets its own verdict.
	var wg sync.WaitGroup
	verdicts := make([]reply, 2)
	for i := range verdicts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			verdicts[i] = s.post(employee, "approve", "appr3-token", approve, fmt.Sprintf("click-%d", i))
		}()
	}
	wg.Wait()
	codes := []int{verdicts[0].Code, verdicts[1].Code}
	assert.ElementsMatch(t, []int{http.StatusOK, http.StatusConflict}, codes, "%+v", verdicts)
	won := verdicts[0]
	if won.Code != http.StatusOK {
		won = verdicts[1]
	}
	assert.Equal(t, "accepted", won.Status)
	assert.Equal(t, "appr3@example.test", won.By)
	assert.NotEqual(t, verdicts[0].UpdateID, verdicts[1].UpdateID)
	// A retry of the accepted request (same Idempotency-Key) is the same
	// Update: the same verdict, not a second decision.
	key := "click-0"
	if won == verdicts[1] {
		key = "click-1"
	}
	again := s.post(employee, "approve", "appr3-token", approve, key)
	assert.Equal(t, http.StatusOK, again.Code, again.Error)
	assert.Equal(t, won.UpdateID, again.UpdateID)

	st = s.status(employee)
	require.Len(t, st.Approvals, 1)
	assert.Equal(t, "appr3@example.test", st.Approvals[0].Approver)
	assert.Equal(t, digest, st.Approvals[0].PlanDigest)

	// Refused decisions never entered the history; the accepted one did.
	inHistory := s.historyUpdates(ctx, started.WorkflowID, started.RunID)
	assert.Contains(t, inHistory, won.UpdateID)
	for _, id := range []string{selfByHint, selfByMail, "forged-unsigned", "forged-stray-key", "forged-other-run"} {
		assert.NotContains(t, inHistory, id)
	}
}

// TestIntegrationRescindNamesItsRun: a rescind names the event it cancels,
// so a stale one never reaches the newer run for another event.
func TestIntegrationRescindNamesItsRun(t *testing.T) {
	s := newDecisionStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	employee := fmt.Sprintf("R%d", time.Now().UnixNano()%1e6)
	later := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	first := s.start(ctx, workflows.Termination{EventID: "evt-first", Source: "test", EmployeeID: employee, Email: "r@example.test",
		Kind: workflows.KindTermination, EffectiveAt: later})
	require.Eventually(t, func() bool { return s.status(employee).Phase == workflows.PhaseScheduled }, 30*time.Second, 50*time.Millisecond)

	r := s.post(employee, "rescind", "hr-token", `{"eventId":"evt-other","reason":"typo"}`, "")
	require.Equal(t, http.StatusConflict, r.Code, r.Error)
	assert.Contains(t, r.Reason, "not this run's event")
	r = s.post(employee, "reschedule", "hr-token", fmt.Sprintf(`{"from":%q,"effectiveAt":%q}`,
		later.Add(time.Minute).Format(time.RFC3339), later.Add(2*time.Hour).Format(time.RFC3339)), "")
	require.Equal(t, http.StatusConflict, r.Code, r.Error)
	assert.Contains(t, r.Reason, "is not this run's")
	r = s.post(employee, "rescind", "hr-token", `{"eventId":"evt-first","reason":"offer accepted"}`, "")
	require.Equal(t, http.StatusOK, r.Code, r.Error)
	assert.Equal(t, first.RunID, r.RunID)
	var res workflows.Result
	require.NoError(t, s.c.GetWorkflow(ctx, first.WorkflowID, first.RunID).Get(ctx, &res))
	assert.Equal(t, workflows.PhaseRescinded, res.Phase)

	// HR starts a newer run for another event; the same rescind again,
	// whether retried or replayed, does not touch it.
	second := s.start(ctx, workflows.Termination{EventID: "evt-second", Source: "test", EmployeeID: employee, Email: "r@example.test",
		Kind: workflows.KindTermination, EffectiveAt: later})
	require.NotEqual(t, first.RunID, second.RunID)
	require.Eventually(t, func() bool { return s.status(employee).RunID == second.RunID }, 30*time.Second, 50*time.Millisecond)
	r = s.post(employee, "rescind", "hr-token", `{"eventId":"evt-first","reason":"offer accepted"}`, "")
	require.Equal(t, http.StatusConflict, r.Code, r.Error)
	assert.Contains(t, r.Reason, "not this run's event")
	r = s.post(employee, "rescind", "hr-token", fmt.Sprintf(`{"eventId":"evt-second","runId":%q}`, first.RunID), "")
	require.Equal(t, http.StatusNotFound, r.Code, "a run that is closed takes no decision: %s", r.Error)
	assert.Equal(t, workflows.PhaseScheduled, s.status(employee).Phase)
}
