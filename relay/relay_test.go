package relay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/hris"
	"github.com/offboard/offboard/workflows"
)

var testNow = time.Date(2026, 3, 13, 17, 6, 0, 0, time.UTC)

// The secrets every test relay is configured with (read from files).
var (
	bambooKeys   = []string{"bamboo-key-current", "bamboo-key-next"}
	genericKeys  = []string{"generic-secret-current", "generic-secret-next"}
	workdayUsers = [][2]string{{"ISU_Offboard", "wd-pass-current"}, {"ISU_Offboard_2", "wd-pass-next"}}
	tokens       = map[string]config.Token{
		"hr-token":       {Name: "hr@example.test", Role: config.RoleHR},
		"security-token": {Name: "sec@example.test", Role: config.RoleSecurity},
		"auditor-token":  {Name: "audit@example.test", Role: config.RoleAuditor},
	}
)

func secretFile(t testing.TB, dir, name, value string) config.Secret {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(value+"\n"), 0o600))
	return config.Secret{File: p}
}

type fakeBambooAPI struct{ err error }

func (f fakeBambooAPI) Employee(_ context.Context, id string) (hris.BambooEmployee, error) {
	if f.err != nil {
		return hris.BambooEmployee{}, f.err
	}
	switch id {
	case "1001":
		return hris.BambooEmployee{ID: id, Status: "Inactive", TerminationDate: "2026-03-14", WorkEmail: "ada.lovelace1001@example.test", DisplayName: "Ada Lovelace"}, nil
	case "1004":
		return hris.BambooEmployee{ID: id, Status: "Active", WorkEmail: "barbara.lovelace1004@example.test"}, nil
	}
	return hris.BambooEmployee{}, errors.New("HTTP 404")
}

func testConfig(t testing.TB) Config {
	t.Helper()
	dir := t.TempDir()
	var rc config.Relay
	rc.Sources.BambooHR = &config.BambooHRSource{}
	for i, k := range bambooKeys {
		rc.Sources.BambooHR.Secrets = append(rc.Sources.BambooHR.Secrets, secretFile(t, dir, "bamboo"+string(rune('0'+i)), k))
	}
	rc.Sources.Generic = &config.GenericSource{}
	for i, k := range genericKeys {
		rc.Sources.Generic.Secrets = append(rc.Sources.Generic.Secrets, secretFile(t, dir, "generic"+string(rune('0'+i)), k))
	}
	rc.Sources.Workday = &config.WorkdaySource{}
	for i, u := range workdayUsers {
		rc.Sources.Workday.Users = append(rc.Sources.Workday.Users, config.BasicUser{Username: u[0], Password: secretFile(t, dir, "wd"+string(rune('0'+i)), u[1])})
	}
	for secret, tok := range tokens {
		tok.SHA256 = TokenSHA256(secret)
		rc.Tokens = append(rc.Tokens, tok)
	}
	rc.DecisionKey = secretFile(t, dir, "decision.key", base64.StdEncoding.EncodeToString(sandboxDecisionSeed))
	return Config{Relay: rc, Roles: []string{"analyst", "engineer"}, BambooHR: fakeBambooAPI{}, Now: func() time.Time { return testNow }}
}

// memEdge is the HR edge's memory in a test process: the guard workflow's
// own counting (workflows.GuardState.Admit) on the relay's clock, and a set
// of deliveries.
type memEdge struct {
	mu    sync.Mutex
	now   func() time.Time
	guard workflows.GuardState
	seen  map[string]bool
}

func newMemEdge(now func() time.Time) *memEdge {
	return &memEdge{now: now, seen: map[string]bool{}}
}

func (e *memEdge) Admit(_ context.Context, a workflows.Admission) (workflows.AdmitVerdict, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.guard.Admit(a, e.now()), nil
}

func (e *memEdge) Seen(_ context.Context, digest string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[digest], nil
}

func (e *memEdge) Remember(_ context.Context, digest string, _ time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen[digest] = true
	return nil
}

func newTestRelay(t testing.TB, cfg Config) (*Relay, *fakeTemporal) {
	t.Helper()
	if cfg.Edge == nil {
		now := cfg.Now
		if now == nil {
			now = time.Now
		}
		cfg.Edge = newMemEdge(func() time.Time { return now() })
	}
	ft := newFakeTemporal()
	rl, err := New(cfg, ft, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return rl, ft
}

// webhook builds a signed request as the source would send it.
func webhook(t testing.TB, source string, body []byte, contentType, mutate string) *http.Request {
	t.Helper()
	return webhookAt(t, source, body, contentType, mutate, testNow)
}

func webhookAt(t testing.TB, source string, body []byte, contentType, mutate string, now time.Time) *http.Request {
	t.Helper()
	if mutate == "oversize" {
		body = append(bytes.TrimRight(body, "\n"), bytes.Repeat([]byte(" "), MaxBody)...)
	}
	secret := 0
	if mutate == "second-secret" {
		secret = 1
	}
	at := now
	switch mutate {
	case "stale":
		at = now.Add(-6 * time.Minute)
	case "future":
		at = now.Add(6 * time.Minute)
	}
	req := httptest.NewRequest(http.MethodPost, "/hris/"+source, nil)
	req.Header.Set("Content-Type", contentType)
	switch source {
	case hris.SourceBambooHR:
		var ts string // BambooHR sends Unix seconds or ISO 8601
		if mutate == "iso-timestamp" {
			ts = at.Format("2006-01-02T15:04:05+0000")
		} else {
			ts = jsonNumber(at.Unix())
		}
		sig := SignBambooHR([]byte(bambooKeys[secret]), body, ts)
		if mutate == "timestamp-first" {
			sig = SignBambooHR([]byte(bambooKeys[secret]), append([]byte(ts), body...), "")
		}
		if mutate != "unsigned" {
			req.Header.Set("X-BambooHR-Timestamp", ts)
			req.Header.Set("X-BambooHR-Signature", sig)
		}
	case hris.SourceGeneric:
		ts, sig := SignGeneric([]byte(genericKeys[secret]), body, at)
		if mutate != "unsigned" {
			req.Header.Set("X-Offboard-Timestamp", ts)
			req.Header.Set("X-Offboard-Signature", sig)
		}
	case hris.SourceWorkday:
		u := workdayUsers[secret]
		switch mutate {
		case "tamper":
			req.SetBasicAuth(u[0], u[1]+"x")
		case "unsigned":
		default:
			req.SetBasicAuth(u[0], u[1])
		}
	}
	if mutate == "tamper" && source != hris.SourceWorkday {
		body = append(body, ' ') // signed bytes changed on the way
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	return req
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }

type relayCase struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	File        string `json:"file"`
	ContentType string `json:"contentType"`
	Mutate      string `json:"mutate"`
	Status      int    `json:"status"`
	Reply       string `json:"reply"`
	Error       string `json:"error"`
	Started     int    `json:"started"`
}

func TestWebhookFixtures(t *testing.T) {
	raw, err := os.ReadFile("../internal/hris/testdata/relay/cases.json")
	require.NoError(t, err)
	var cases []relayCase
	require.NoError(t, json.Unmarshal(raw, &cases))
	require.NotEmpty(t, cases)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			rl, ft := newTestRelay(t, testConfig(t))
			body, err := os.ReadFile(filepath.Join("../internal/hris/testdata", tc.File))
			require.NoError(t, err)
			send := func() *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				rl.Handler().ServeHTTP(rec, webhook(t, tc.Source, body, tc.ContentType, tc.Mutate))
				return rec
			}
			rec := send()
			if tc.Mutate == "replay" {
				require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
				rec = send()
			}
			require.Equal(t, tc.Status, rec.Code, rec.Body.String())
			assert.Len(t, ft.started(), tc.Started, "workflows started")
			var reply map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply), rec.Body.String())
			if tc.Reply != "" {
				assert.Equal(t, tc.Reply, reply["status"], rec.Body.String())
			}
			if tc.Error != "" {
				assert.Contains(t, reply["error"], tc.Error)
			}
			if tc.Status == http.StatusAccepted && tc.Started == 1 && reply["results"] == nil {
				assert.Equal(t, workflows.WorkflowID(ft.started()[0].EmployeeID), reply["workflowId"])
				assert.NotEmpty(t, reply["runId"])
			}
			for _, started := range ft.started() {
				assert.Equal(t, tc.Source, started.Source)
				assert.NoError(t, started.Validate())
			}
		})
	}
}

func TestWebhookStartsTheRightTermination(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	body, err := os.ReadFile("../internal/hris/testdata/bamboohr/event_updated_status.json")
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "bamboohr", body, "application/json", ""))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Len(t, ft.started(), 1)
	got := ft.started()[0]
	assert.Equal(t, "1001", got.EmployeeID)
	assert.Equal(t, "ada.lovelace1001@example.test", got.Email)
	assert.Equal(t, time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), got.EffectiveAt)
	assert.False(t, got.Quarantined)
}

func TestTemporalUnavailable(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	ft.setDown(true)
	body, err := os.ReadFile("../internal/hris/testdata/generic/termination.json")
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "generic", body, "application/json", ""))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "60", rec.Header().Get("Retry-After"))
	assert.Empty(t, ft.started())

	// Back up: the same delivery, retried by the sender, starts the run once.
	ft.setDown(false)
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "generic", body, "application/json", ""))
	assert.Equal(t, http.StatusAccepted, rec.Code)
	assert.Len(t, ft.started(), 1)
}

func TestBambooHRLookupUnavailable(t *testing.T) {
	cfg := testConfig(t)
	cfg.BambooHR = fakeBambooAPI{err: errors.New("dial tcp: connection refused")}
	rl, ft := newTestRelay(t, cfg)
	body, err := os.ReadFile("../internal/hris/testdata/bamboohr/event_updated_status.json")
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "bamboohr", body, "application/json", ""))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "BambooHR retries 5xx: the event comes again")
	assert.Equal(t, "60", rec.Header().Get("Retry-After"))
	assert.Empty(t, ft.started())
}

func genericTermination(employee string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "termination", "employeeId": employee, "email": strings.ToLower(employee) + "@example.test", "effectiveAt": "2026-03-14T17:00:00Z"})
	return b
}

func post(t testing.TB, rl *Relay, source string, body []byte) (int, map[string]any) {
	t.Helper()
	return postAt(t, rl, source, body, testNow)
}

func postAt(t testing.TB, rl *Relay, source string, body []byte, at time.Time) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhookAt(t, source, body, "application/json", "", at))
	var reply map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply), rec.Body.String())
	return rec.Code, reply
}

func TestBlastRadiusGuard(t *testing.T) {
	cfg := testConfig(t)
	now := testNow
	cfg.Now = func() time.Time { return now }
	cfg.Relay.BlastRadius = config.BlastRadius{Max: 2, Window: config.Duration(10 * time.Minute)}
	rl, ft := newTestRelay(t, cfg)

	for _, e := range []string{"E1", "E2"} {
		code, reply := post(t, rl, "generic", genericTermination(e))
		require.Equal(t, http.StatusAccepted, code)
		assert.Nil(t, reply["quarantined"], e)
	}
	// A redelivery is a duplicate, not a third termination.
	code, reply := post(t, rl, "generic", genericTermination("E1"))
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "duplicate", reply["status"])

	code, reply = post(t, rl, "generic", genericTermination("E3"))
	require.Equal(t, http.StatusAccepted, code)
	assert.Equal(t, true, reply["quarantined"], "the third within the window waits for security")
	// Role changes have their own budget: two pass, the third waits too.
	for i, e := range []string{"E7", "E8", "E9"} {
		roleChange, _ := json.Marshal(map[string]any{"type": "role_change", "employeeId": e, "email": e + "@example.test", "effectiveAt": "2026-03-14T17:00:00Z", "newRole": "analyst"})
		code, reply = post(t, rl, "generic", roleChange)
		require.Equal(t, http.StatusAccepted, code)
		assert.Equal(t, i == 2, reply["quarantined"] == true, e)
	}

	now = now.Add(10 * time.Minute)
	later, _ := json.Marshal(map[string]any{"type": "termination", "employeeId": "E4", "email": "e4@example.test", "effectiveAt": "2026-03-15T17:00:00Z"})
	code, reply = postAt(t, rl, "generic", later, now)
	require.Equal(t, http.StatusAccepted, code)
	assert.Nil(t, reply["quarantined"], "the window has passed, and it takes effect another day")
	// Arriving slowly does not help when they all take effect at once.
	code, reply = postAt(t, rl, "generic", genericTermination("E5"), now)
	require.Equal(t, http.StatusAccepted, code)
	assert.Equal(t, true, reply["quarantined"], "E1-E3 take effect at the same minute")

	var quarantined []string
	for _, s := range ft.started() {
		if s.Quarantined {
			quarantined = append(quarantined, s.EmployeeID)
		}
	}
	assert.Equal(t, []string{"E3", "E9", "E5"}, quarantined)
	assert.Contains(t, scrape(t, rl), `offboard_relay_quarantined_total{source="generic"} 3`)
}

func operatorRequest(method, path, token, body string) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func TestReleaseQuarantine(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	for _, e := range []string{"E1", "E2", "E3"} {
		ft.addRun(workflows.Termination{EmployeeID: e, EventID: "evt-" + e, Quarantined: e != "E2"})
	}
	for _, tok := range []string{"hr-token", "auditor-token"} {
		rec := httptest.NewRecorder()
		rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/release-quarantine", tok, ""))
		assert.Equal(t, http.StatusForbidden, rec.Code, tok)
	}
	assert.Empty(t, ft.sent())

	// Who releases is the token's person: a body naming someone is refused,
	// as on every decision route, and nothing is sent.
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/release-quarantine", "security-token",
		`{"reason":"HR confirmed the layoff list","employeeIds":["E3"],"approver":"mallory@example.test"}`))
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `unknown field \"approver\"`)
	assert.Empty(t, ft.sent())

	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/release-quarantine", "security-token",
		`{"reason":"HR confirmed the layoff list","employeeIds":["E3"]}`))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	sent := ft.sent()
	require.Len(t, sent, 1, "only the named run")
	assert.Equal(t, "deprovision-E3", sent[0].WorkflowID)
	assert.Equal(t, workflows.UpdateQuarantineRelease, sent[0].Name)
	assert.Equal(t, workflows.Approve{Approver: "sec@example.test", Decision: "approve",
		Reason: "HR confirmed the layoff list"}, sent[0].Payload, "the token's identity, never the body's")

	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/release-quarantine", "security-token", ""))
	require.Equal(t, http.StatusOK, rec.Code)
	var reply struct {
		Released []Released `json:"released"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	require.Len(t, reply.Released, 1)
	assert.Equal(t, "E1", reply.Released[0].EmployeeID, "E3 was released already; E2 was never quarantined")
}

func TestOperatorSignals(t *testing.T) {
	expires := testNow.Add(72 * time.Hour)
	tests := []struct {
		name, action, token, body string
		status                    int
		want                      any
		signal                    string
	}{
		{name: "approver approves", action: "approve", token: "appr-token", body: `{"planDigest":"sha256:abc","reason":"ok"}`,
			status: 200, signal: workflows.UpdateApprove, want: workflows.Approve{Approver: "appr@example.test", Decision: "approve", PlanDigest: "sha256:abc", Reason: "ok"}},
		{name: "approver rejects", action: "approve", token: "appr-token", body: `{"planDigest":"sha256:abc","decision":"reject"}`,
			status: 200, signal: workflows.UpdateApprove, want: workflows.Approve{Approver: "appr@example.test", Decision: "reject", PlanDigest: "sha256:abc"}},
		{name: "hr holds", action: "hold", token: "hr-token", body: `{"caseRef":"LIT-7","reason":"litigation"}`,
			status: 200, signal: workflows.UpdateLegalHold, want: workflows.Hold{By: "hr@example.test", CaseRef: "LIT-7", Reason: "litigation"}},
		{name: "hr releases", action: "release", token: "hr-token", body: `{"caseRef":"LIT-7"}`,
			status: 200, signal: workflows.UpdateReleaseHold, want: workflows.Release{By: "hr@example.test", CaseRef: "LIT-7"}},
		{name: "hr rescinds", action: "rescind", token: "hr-token", body: `{"reason":"stays on","eventId":"evt-1"}`,
			status: 200, signal: workflows.UpdateRescind, want: workflows.Rescind{By: "hr@example.test", Reason: "stays on", EventID: "evt-1"}},
		{name: "hr reschedules", action: "reschedule", token: "hr-token", body: `{"effectiveAt":"2026-04-01T17:00:00Z","eventId":"evt-1"}`,
			status: 200, signal: workflows.UpdateReschedule, want: workflows.Reschedule{By: "hr@example.test", EffectiveAt: time.Date(2026, 4, 1, 17, 0, 0, 0, time.UTC), EventID: "evt-1"}},
		{name: "security retries", action: "retry", token: "security-token", body: `{"control":"okta/suspend"}`,
			status: 200, signal: workflows.UpdateRetry, want: workflows.Retry{By: "sec@example.test", Control: "okta/suspend"}},
		{name: "security waives", action: "waive", token: "security-token", body: `{"control":"aws/remove_groups","reason":"account frozen","expiresAt":"` + expires.Format(time.RFC3339) + `"}`,
			status: 200, signal: workflows.UpdateWaive, want: workflows.Waive{By: "sec@example.test", Control: "aws/remove_groups", Reason: "account frozen", ExpiresAt: expires}},
		{name: "hr corrects the identity", action: "correct-identity", token: "hr-token", body: `{"email":"ada@example.test","reason":"typo"}`,
			status: 200, signal: workflows.UpdateIdentityCorrection, want: workflows.IdentityCorrection{By: "hr@example.test", Email: "ada@example.test", Reason: "typo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rl, ft := newTestRelay(t, withApprovers(testConfig(t)))
			ft.addRun(workflows.Termination{EmployeeID: "E1001", EventID: "evt-1"})
			rec := httptest.NewRecorder()
			rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1001/"+tt.action, tt.token, tt.body))
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			sent := ft.sent()
			if tt.signal == "" {
				assert.Empty(t, sent, "nothing sent")
				return
			}
			require.Len(t, sent, 1)
			assert.Equal(t, "deprovision-E1001", sent[0].WorkflowID)
			assert.Equal(t, tt.signal, sent[0].Name)
			assert.Equal(t, tt.want, sent[0].Payload)
		})
	}
}

// A decision's reply is the run's verdict: accepted (200), refused with its
// reason (409), or no answer (503: retry with the same Idempotency-Key).
func TestOperatorSignalVerdicts(t *testing.T) {
	cfg := testConfig(t)
	cfg.SignalWait = 200 * time.Millisecond
	rl, ft := newTestRelay(t, cfg)
	ft.addRun(workflows.Termination{EmployeeID: "E1", EventID: "evt-1"})

	ft.mu.Lock()
	ft.refuse = map[string]string{workflows.UpdateRescind: "removal has started: too late to rescind; a rehire needs new accounts"}
	ft.mu.Unlock()
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1/rescind", "hr-token", `{"reason":"stays","eventId":"evt-1"}`))
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	var reply map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	assert.Equal(t, "refused", reply["status"])
	assert.Equal(t, "removal has started: too late to rescind; a rehire needs new accounts", reply["reason"])
	assert.Equal(t, "hr@example.test", reply["by"])

	ft.mu.Lock()
	ft.refuse, ft.silent = nil, true
	ft.mu.Unlock()
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1/hold", "hr-token", `{"caseRef":"CASE-1"}`))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "no worker answered")
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
}

func TestOperatorSignalErrors(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E404/rescind", "hr-token", `{"eventId":"evt-1"}`))
	assert.Equal(t, http.StatusNotFound, rec.Code, "no run for that person")

	ft.addRun(workflows.Termination{EmployeeID: "E1", EventID: "evt-1"})
	ft.setDown(true)
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1/rescind", "hr-token", `{"eventId":"evt-1"}`))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
}

func TestStatus(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	ft.addRun(workflows.Termination{EmployeeID: "E1001", EventID: "evt-1", Kind: workflows.KindTermination})
	for _, tok := range []string{"auditor-token", "hr-token", "security-token"} {
		rec := httptest.NewRecorder()
		rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodGet, "/deprovisions/E1001", tok, ""))
		require.Equal(t, http.StatusOK, rec.Code, tok)
		var st workflows.Status
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
		assert.Equal(t, "deprovision-E1001", st.WorkflowID)
		assert.Equal(t, workflows.PhaseScheduled, st.Phase)
	}
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodGet, "/deprovisions/E1001", "", ""))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodGet, "/deprovisions/E404", "auditor-token", ""))
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

func TestRescindWebhook(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	ft.addRun(workflows.Termination{EmployeeID: "E1025", EventID: "evt-1"})
	code, reply := post(t, rl, "generic", []byte(`{"type":"rescind","employeeId":"E1025"}`))
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "rescinded", reply["status"])
	sent := ft.sent()
	require.Len(t, sent, 1)
	assert.Equal(t, workflows.Rescind{By: "hris:generic", Reason: "termination cancelled (generic event)", EventID: "evt-1"}, sent[0].Payload,
		"signed as the source, naming the event of the run in flight")

	// Refused by the run (removal started): said, not claimed as rescinded.
	ft.mu.Lock()
	ft.refuse = map[string]string{workflows.UpdateRescind: "removal has started: too late to rescind; a rehire needs new accounts"}
	ft.mu.Unlock()
	// The same signed bytes again are a replay: nothing is sent.
	code, reply = post(t, rl, "generic", []byte(`{"type":"rescind","employeeId":"E1025"}`))
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "duplicate", reply["status"])
	require.Len(t, ft.sent(), 1)
	// Signed again a second later, it is a new delivery.
	code, reply = postAt(t, rl, "generic", []byte(`{"type":"rescind","employeeId":"E1025"}`), testNow.Add(time.Second))
	require.Equal(t, http.StatusOK, code, "a refusal is an answer, not a failed delivery to retry")
	assert.Equal(t, "refused", reply["status"])
	assert.Contains(t, reply["note"], "too late to rescind")
	ft.mu.Lock()
	ft.refuse = nil
	ft.mu.Unlock()

	// BambooHR: status back to Active is a cancelled termination.
	ft.addRun(workflows.Termination{EmployeeID: "1004", EventID: "evt-2"})
	body, err := os.ReadFile("../internal/hris/testdata/bamboohr/event_updated_reactivated.json")
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "bamboohr", body, "application/json", ""))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Len(t, ft.sent(), 3)
	assert.Equal(t, "deprovision-1004", ft.sent()[2].WorkflowID)
	assert.Equal(t, workflows.UpdateRescind, ft.sent()[2].Name)
}

func TestRoleChangeToUnknownRole(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	body, _ := json.Marshal(map[string]any{"type": "role_change", "employeeId": "E5", "email": "e5@example.test", "effectiveAt": "2026-03-14T17:00:00Z", "newRole": "astronaut"})
	code, reply := post(t, rl, "generic", body)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ignored", reply["status"])
	assert.Contains(t, reply["note"], "astronaut")
	assert.Empty(t, ft.started())
}

func TestUnconfiguredSource(t *testing.T) {
	cfg := testConfig(t)
	cfg.Relay.Sources.Workday = nil
	rl, _ := newTestRelay(t, cfg)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "workday", []byte("<x/>"), "text/xml", ""))
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

func TestHealthAndReadiness(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		rec := httptest.NewRecorder()
		rl.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, want, rec.Code, path)
	}
	ft.setDown(true)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "alive even when Temporal is not")
}

func scrape(t testing.TB, rl *Relay) string {
	t.Helper()
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	return rec.Body.String()
}

func TestMetrics(t *testing.T) {
	rl, _ := newTestRelay(t, testConfig(t))
	body, err := os.ReadFile("../internal/hris/testdata/generic/termination.json")
	require.NoError(t, err)
	post(t, rl, "generic", body)
	post(t, rl, "generic", body)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "generic", body, "application/json", "tamper"))
	m := scrape(t, rl)
	for _, want := range []string{
		`offboard_relay_webhooks_total{outcome="started",source="generic"} 1`,
		`offboard_relay_webhooks_total{outcome="duplicate",source="generic"} 1`,
		`offboard_relay_webhooks_total{outcome="unauthorized",source="generic"} 1`,
		`offboard_relay_requests_total{code="202",route="POST /hris/generic"} 1`,
		`offboard_relay_requests_total{code="401",route="POST /hris/generic"} 1`,
		`offboard_relay_request_duration_seconds_count{route="POST /hris/generic"} 3`,
	} {
		assert.Contains(t, m, want)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.Relay.Sources.Generic.Secrets[0] = config.Secret{File: filepath.Join(t.TempDir(), "missing")}
	_, err := New(cfg, newFakeTemporal(), nil)
	assert.ErrorContains(t, err, "generic secret 0")

	cfg = testConfig(t)
	cfg.Relay.Tokens = append(cfg.Relay.Tokens, config.Token{Name: "x", Role: "security", SHA256: "plain-text-token"})
	_, err = New(cfg, newFakeTemporal(), nil)
	assert.ErrorContains(t, err, "64-hex-digit SHA-256")

	cfg = testConfig(t)
	cfg.Relay.Tokens = append(cfg.Relay.Tokens, config.Token{Name: "x", Role: "admin", SHA256: TokenSHA256("x")})
	_, err = New(cfg, newFakeTemporal(), nil)
	assert.ErrorContains(t, err, "not hr, security, approver or auditor")

	cfg = testConfig(t)
	cfg.Relay.Sources.BambooHR.Secrets = append(cfg.Relay.Sources.BambooHR.Secrets, cfg.Relay.Sources.BambooHR.Secrets[0])
	_, err = New(cfg, newFakeTemporal(), nil)
	assert.ErrorContains(t, err, "at most 2 secrets")

	cfg = testConfig(t)
	cfg.Relay.Sources.Workday.Users[1].Password = secretFile(t, t.TempDir(), "empty", "")
	_, err = New(cfg, newFakeTemporal(), nil)
	assert.ErrorContains(t, err, "relay.sources.workday.users.1.password")
	assert.ErrorContains(t, err, "is empty")

	cfg = testConfig(t)
	cfg.Relay.Tokens = append(cfg.Relay.Tokens, config.Token{Name: "twin", Role: "security", SHA256: TokenSHA256("auditor-token")})
	_, err = New(cfg, newFakeTemporal(), nil)
	assert.ErrorContains(t, err, "the same token digest as audit@example.test's")
}

func TestServeShutsDownOnCancel(t *testing.T) {
	rl, _ := newTestRelay(t, testConfig(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, rl.Handler()) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	require.NoError(t, <-done)
	_, err = http.Get("http://" + ln.Addr().String() + "/healthz")
	assert.Error(t, err, "no longer listening")
}

func TestNewDateReschedulesTheRunInFlight(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	ft.addRun(workflows.Termination{EmployeeID: "E1", EventID: "evt-old", Kind: workflows.KindTermination,
		EffectiveAt: time.Date(2026, 3, 20, 17, 0, 0, 0, time.UTC)})
	moved, _ := json.Marshal(map[string]any{"eventId": "evt-new", "type": "termination", "employeeId": "E1", "email": "e1@example.test", "effectiveAt": "2026-03-16T17:00:00Z"})
	code, reply := post(t, rl, "generic", moved)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "rescheduled", reply["status"])
	require.Len(t, ft.sent(), 1)
	assert.Equal(t, workflows.Reschedule{By: "hris:generic", EffectiveAt: time.Date(2026, 3, 16, 17, 0, 0, 0, time.UTC),
		From: time.Date(2026, 3, 20, 17, 0, 0, 0, time.UTC)}, ft.sent()[0].Payload, "it names the time it moves")
	assert.Empty(t, ft.started(), "never a second run")

	// A redelivery of the run's own event (its old date) never moves it back.
	same, _ := json.Marshal(map[string]any{"eventId": "evt-old", "type": "termination", "employeeId": "E1", "email": "e1@example.test", "effectiveAt": "2026-03-20T17:00:00Z"})
	code, reply = post(t, rl, "generic", same)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "duplicate", reply["status"])
	assert.Len(t, ft.sent(), 1)
}

// replyResults reads a multi-item reply.
func replyResults(t testing.TB, reply map[string]any) []Outcome {
	t.Helper()
	b, err := json.Marshal(reply["results"])
	require.NoError(t, err)
	var out []Outcome
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// One id Temporal would refuse does not hold back the others in the delivery.
func TestBatchItemsStandAlone(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	batch := func(ids ...string) []byte {
		var events []map[string]any
		for _, id := range ids {
			events = append(events, map[string]any{"type": "termination", "employeeId": id, "email": "x@example.test", "effectiveAt": "2026-03-14T17:00:00Z"})
		}
		b, _ := json.Marshal(map[string]any{"events": events})
		return b
	}
	code, reply := post(t, rl, "generic", batch("E2001", "Müller-7", "E\x072", strings.Repeat("9", 1001), "E2002"))
	require.Equal(t, http.StatusAccepted, code, "something was accepted")
	results := replyResults(t, reply)
	require.Len(t, results, 5)
	var started, rejected []string
	for _, o := range results {
		switch o.Status {
		case "started":
			assert.Equal(t, http.StatusAccepted, o.Code)
			started = append(started, o.EmployeeID)
		case "rejected":
			assert.Equal(t, http.StatusBadRequest, o.Code, o.Error)
			assert.Contains(t, o.Error, "employeeId")
			rejected = append(rejected, o.EmployeeID)
		}
	}
	assert.Equal(t, []string{"E2001", "E2002"}, started)
	require.Len(t, rejected, 3)
	assert.Equal(t, "Müller-7", rejected[0])
	assert.Equal(t, `"E\a2"`, rejected[1], "a control character is shown quoted")
	assert.LessOrEqual(t, len(rejected[2]), 90, "a long id is shown shortened")
	assert.Len(t, ft.started(), 2)

	// Nothing acceptable: a 4xx for the whole delivery, which BambooHR and
	// others do not retry, and still a result per item.
	code, reply = post(t, rl, "generic", batch("Müller-8", "-x"))
	require.Equal(t, http.StatusBadRequest, code)
	assert.Len(t, replyResults(t, reply), 2)
	assert.Len(t, ft.started(), 2)
}

// " E1001", "e1001" and "E1001" are one person: one workflow.
func TestEmployeeIDCaseAndSpaceMakeOneRun(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	for i, id := range []string{" E1001", "e1001", "E1001"} {
		body, _ := json.Marshal(map[string]any{"eventId": "evt-1001", "type": "termination", "employeeId": id, "email": "e1001@example.test", "effectiveAt": "2026-03-14T17:00:00Z"})
		code, reply := postAt(t, rl, "generic", body, testNow.Add(time.Duration(i)*time.Second))
		want := "duplicate"
		if i == 0 {
			want = "started"
		}
		assert.Equal(t, want, reply["status"], "%q (%d)", id, code)
		assert.Equal(t, "deprovision-E1001", reply["workflowId"])
	}
	require.Len(t, ft.started(), 1)
	assert.Equal(t, "E1001", ft.started()[0].EmployeeID)
}

// BambooHR's own "no such employee" is final: 422, not 503 for ever.
func TestBambooHRUnknownEmployeeIsNotRetried(t *testing.T) {
	cfg := testConfig(t)
	cfg.BambooHR = fakeBambooAPI{err: fmt.Errorf("bamboohr: read employee 1001: %w: HTTP 404 Employee not found", hris.ErrUnknownEmployee)}
	rl, ft := newTestRelay(t, cfg)
	body, err := os.ReadFile("../internal/hris/testdata/bamboohr/event_updated_status.json")
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "bamboohr", body, "application/json", ""))
	assert.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	assert.Empty(t, rec.Header().Get("Retry-After"))
	assert.Empty(t, ft.started())
}

// In a field-based batch, an employee whose record cannot be read right now
// makes the delivery come again (503); the others start now, and are
// duplicates when it does.
func TestBatchLookupFailureAsksForTheDeliveryAgain(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	body := []byte(`{"employees":[
		{"id":"1005","changedFields":["Status"],"fields":{"Status":"Inactive","Work Email":"b@example.test","Termination Date":"2026-03-14"}},
		{"id":"1099","changedFields":["Status"]}]}`)
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "bamboohr", body, "application/json", ""))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	assert.Equal(t, "60", rec.Header().Get("Retry-After"))
	var reply map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	results := replyResults(t, reply)
	require.Len(t, results, 2)
	assert.Equal(t, "started", results[0].Status)
	assert.Equal(t, "unavailable", results[1].Status)
	assert.Equal(t, "1099", results[1].EmployeeID)
	require.Len(t, ft.started(), 1)

	// The same signed bytes again: not a replay (it was not acted on in full).
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, webhook(t, "bamboohr", body, "application/json", ""))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	assert.Equal(t, "duplicate", replyResults(t, reply)[0].Status)
	assert.Len(t, ft.started(), 1)
}

// A termination while a role change is in flight takes over its run.
func TestTerminationSupersedesRoleChange(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	ft.addRun(workflows.Termination{EmployeeID: "E3001", EventID: "evt-role", Kind: workflows.KindRoleChange, NewRole: "analyst",
		EffectiveAt: testNow})
	code, reply := post(t, rl, "generic", genericTermination("E3001"))
	require.Equal(t, http.StatusAccepted, code)
	assert.Equal(t, "superseded", reply["status"])
	sent := ft.sent()
	require.Len(t, sent, 1)
	assert.Equal(t, workflows.SignalHREvent, sent[0].Name)
	assert.Equal(t, reply["runId"], sent[0].RunID, "to the run read, never a newer one")
	ev, ok := sent[0].Payload.(workflows.HREvent)
	require.True(t, ok)
	assert.Equal(t, workflows.KindTermination, ev.Termination.Kind)
	assert.Empty(t, ft.started(), "no second run")
}

// A flood of rescinds restores access like a flood of terminations removes
// it: beyond the budget they are held, not sent.
func TestRescindFloodIsHeld(t *testing.T) {
	cfg := testConfig(t)
	cfg.Relay.BlastRadius = config.BlastRadius{Max: 2, Window: config.Duration(10 * time.Minute)}
	rl, ft := newTestRelay(t, cfg)
	var events []map[string]any
	for i := range 5 {
		events = append(events, map[string]any{"type": "rescind", "employeeId": fmt.Sprintf("E40%02d", i)})
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	code, reply := post(t, rl, "generic", body)
	require.Equal(t, http.StatusAccepted, code)
	held := 0
	for _, o := range replyResults(t, reply) {
		if o.Status == "quarantined" {
			held++
			assert.Contains(t, o.Note, "blast-radius guard")
		}
	}
	assert.Equal(t, 3, held, "two within the budget, three held")
	assert.Empty(t, ft.sent(), "nothing held was sent")
}
