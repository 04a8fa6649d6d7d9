package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/internal/ssf"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/hec"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/workflows"
)

const (
	ssfIssuer   = "https://idp.example.test"
	ssfAudience = "https://offboard.example.test/ssf"
)

func newSSFKey(t testing.TB) *ssf.Key {
	t.Helper()
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k, err := ssf.NewKey(pk)
	require.NoError(t, err)
	return k
}

// ssfSource is a transmitter whose JWKS is served at jwksURI, and a
// simulated Okta org (demo people) that maps subjects to people.
func ssfSource(t *testing.T, key *ssf.Key) (*config.SSFSource, *oktasim.Sim) {
	t.Helper()
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(key.JWKS())
	}))
	t.Cleanup(jwks.Close)
	sim := oktasim.New(oktasim.Options{Token: "okta-api-token", People: demo.People(3)})
	org := httptest.NewServer(sim.Handler())
	t.Cleanup(org.Close)
	return &config.SSFSource{Issuer: ssfIssuer, Audience: ssfAudience, JWKSURI: jwks.URL, OrgURL: org.URL,
		APIToken: secretFile(t, t.TempDir(), "okta-api", "okta-api-token")}, sim
}

func accountDisabled(jti string, sub ssf.Subject, iat time.Time) ssf.SET {
	body, _ := json.Marshal(ssf.EventBody{Subject: &sub, EventTimestamp: iat.Unix(), InitiatingEntity: "admin"})
	return ssf.SET{Issuer: ssfIssuer, Audience: ssf.Audience{ssfAudience}, IssuedAt: iat.Unix(), JTI: jti,
		Events: map[string]json.RawMessage{ssf.EventAccountDisabled: body}}
}

func setRequest(t testing.TB, token string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, SSFEventsPath, strings.NewReader(token))
	req.Header.Set("Content-Type", ssf.MediaType)
	return req
}

func signSET(t testing.TB, k *ssf.Key, set ssf.SET) string {
	tok, err := k.Sign(set)
	require.NoError(t, err)
	return tok
}

func ssfError(t *testing.T, rec *httptest.ResponseRecorder) ssf.Error {
	t.Helper()
	var e ssf.Error
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	return e
}

func TestSSFAccountDisabledStartsTermination(t *testing.T) {
	key := newSSFKey(t)
	cfg := testConfig(t)
	src, sim := ssfSource(t, key)
	cfg.Relay.Sources.SSF = src
	rl, ft := newTestRelay(t, cfg)
	person := demo.People(3)[1]
	u, ok := sim.User(person.Email)
	require.True(t, ok)

	token := signSET(t, key, accountDisabled("jti-1", ssf.Subject{Format: "iss_sub", Iss: src.OrgURL, Sub: u.ID}, testNow))
	rec := serveOkta(rl, setRequest(t, token))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	started := ft.started()
	require.Len(t, started, 1)
	got := started[0]
	assert.Equal(t, person.EmployeeID, got.EmployeeID, "profile.employeeNumber read from Okta")
	assert.Equal(t, person.Email, got.Email)
	assert.Equal(t, SourceSSF, got.Source)
	assert.Equal(t, workflows.KindTermination, got.Kind)
	assert.Equal(t, map[string]string{"okta": u.ID}, got.Accounts)
	assert.Equal(t, "ssf:"+ssfIssuer, got.RequestedBy)
	assert.True(t, strings.HasPrefix(got.EventID, "ssf-"))

	// The same SET again: refused as RFC 8935 says, nothing started.
	rec = serveOkta(rl, setRequest(t, token))
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	assert.Equal(t, ssf.ErrInvalidRequest, ssfError(t, rec).Code)
	assert.Contains(t, ssfError(t, rec).Description, "already received")
	assert.Len(t, ft.started(), 1)

	// An email subject finds the person by login.
	other := demo.People(3)[2]
	rec = serveOkta(rl, setRequest(t, signSET(t, key, accountDisabled("jti-2", ssf.Subject{Format: "email", Email: other.Email}, testNow))))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Len(t, ft.started(), 2)
	assert.Equal(t, other.EmployeeID, ft.started()[1].EmployeeID)
}

func TestSSFRefusesAndStartsNothing(t *testing.T) {
	key := newSSFKey(t)
	cfg := testConfig(t)
	src, sim := ssfSource(t, key)
	src.Token = secretFile(t, t.TempDir(), "ssf-token", "push-token")
	cfg.Relay.Sources.SSF = src
	rl, ft := newTestRelay(t, cfg)
	u, _ := sim.User(demo.People(3)[0].Email)
	sub := ssf.Subject{Format: "iss_sub", Iss: src.OrgURL, Sub: u.ID}
	good := func(jti string) ssf.SET { return accountDisabled(jti, sub, testNow) }
	mut := func(jti string, f func(*ssf.SET)) string {
		s := good(jti)
		f(&s)
		return signSET(t, key, s)
	}
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"secevent+jwt"}`))
	claims, _ := json.Marshal(good("jti-none"))
	alone := noneHeader + "." + base64.RawURLEncoding.EncodeToString(claims) + "."

	cases := []struct {
		name, token, auth, ctype string
		status                   int
		code                     string
	}{
		{"wrong key", signSET(t, newSSFKey(t), good("jti-wk")), "", "", 400, ssf.ErrInvalidKey},
		{"alg none", alone, "", "", 400, ssf.ErrInvalidKey},
		{"wrong aud", mut("jti-aud", func(s *ssf.SET) { s.Audience = ssf.Audience{"https://other.test"} }), "", "", 400, ssf.ErrInvalidAudience},
		{"wrong iss", mut("jti-iss", func(s *ssf.SET) { s.Issuer = "https://evil.test" }), "", "", 400, ssf.ErrInvalidIssuer},
		{"expired", mut("jti-old", func(s *ssf.SET) { s.IssuedAt = testNow.Add(-time.Hour).Unix() }), "", "", 400, ssf.ErrInvalidRequest},
		{"no token", signSET(t, key, good("jti-auth")), "-", "", 401, ssf.ErrAuthenticationFailed},
		{"json", signSET(t, key, good("jti-ct")), "", "application/json", 400, ssf.ErrInvalidRequest},
		{"foreign iss_sub", mut("jti-sub", func(s *ssf.SET) {
			body, _ := json.Marshal(ssf.EventBody{Subject: &ssf.Subject{Format: "iss_sub", Iss: "https://other-idp.test", Sub: u.ID}})
			s.Events[ssf.EventAccountDisabled] = body
		}), "", "", 400, ssf.ErrInvalidRequest},
	}
	for _, c := range cases {
		req := setRequest(t, c.token)
		if c.auth != "-" {
			req.Header.Set("Authorization", "Bearer push-token")
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		rec := serveOkta(rl, req)
		assert.Equal(t, c.status, rec.Code, c.name+": "+rec.Body.String())
		assert.Equal(t, c.code, ssfError(t, rec).Code, c.name)
	}
	assert.Empty(t, ft.started(), "nothing started by a refused SET")

	// A session revoked starts nothing by default policy; the good SET does.
	revoked := good("jti-rev")
	revoked.Events = map[string]json.RawMessage{ssf.EventSessionRevoked: revoked.Events[ssf.EventAccountDisabled]}
	req := setRequest(t, signSET(t, key, revoked))
	req.Header.Set("Authorization", "Bearer push-token")
	rec := serveOkta(rl, req)
	assert.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "starts nothing by policy")
	assert.Empty(t, ft.started())
	req = setRequest(t, signSET(t, key, good("jti-ok")))
	req.Header.Set("Authorization", "Bearer push-token")
	rec = serveOkta(rl, req)
	assert.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	assert.Len(t, ft.started(), 1)
}

// Offboard as a transmitter: its metadata names the JWKS, and that JWKS
// verifies the SETs the worker's sink signs.
func TestSSFTransmitterMetadata(t *testing.T) {
	cfg := testConfig(t)
	seed := make([]byte, 32)
	seed[31] = 7
	cfg.Transmitter = &config.SIEMSSF{Issuer: "https://offboard.example.test/", SigningKey: secretFile(t, t.TempDir(), "ssf.key", base64.StdEncoding.EncodeToString(seed))}
	rl, _ := newTestRelay(t, cfg)

	rec := serveOkta(rl, httptest.NewRequest(http.MethodGet, SSFConfigPath, nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var meta SSFConfiguration
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &meta))
	assert.Equal(t, "https://offboard.example.test", meta.Issuer)
	assert.Equal(t, "https://offboard.example.test/ssf/jwks.json", meta.JWKSURI)
	assert.Equal(t, []string{ssf.DeliveryPush}, meta.DeliveryMethodsSupported)
	assert.ElementsMatch(t, []string{ssf.EventSessionRevoked, ssf.EventAccountDisabled}, meta.EventsSupported)

	rec = serveOkta(rl, httptest.NewRequest(http.MethodGet, SSFJWKSPath, nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.NotContains(t, rec.Body.String(), `"d"`, "no private part")
	keys, err := ssf.StaticKeys(rec.Body.Bytes())
	require.NoError(t, err)
	key, err := ssf.ParseKey(base64.StdEncoding.EncodeToString(seed))
	require.NoError(t, err)
	sink := &siem.SSF{Receiver: "rp", URL: "https://rp.test/events", Issuer: meta.Issuer, Key: key, SessionRevoked: []string{"clear_sessions"}}
	ev := siem.ControlEvent(siem.Run{WorkflowID: "deprovision-E1", RunID: "r1", ActivityID: "5"}, "apply",
		control.Receipt{ControlID: "okta/clear_sessions", System: "okta", Action: "clear_sessions", Phase: control.Containment, Target: "00u1", Login: "ada@example.test", Outcome: control.Observed}, nil, time.Now())
	sets := sink.SETs(ev)
	require.Len(t, sets, 1)
	v := &ssf.Verifier{Issuer: meta.Issuer, Audience: "https://rp.test/events", Keys: keys}
	got, err := v.Verify(t.Context(), signSET(t, key, sets[0]))
	require.NoError(t, err)
	s, err := got.SubjectOf(ssf.EventSessionRevoked)
	require.NoError(t, err)
	assert.Equal(t, "ada@example.test", s.Email)
}

// Every decision the API sends reaches the SIEM, accepted or refused, with
// the run's ids and the signed decision's digest.
func TestDecisionsReachTheSIEM(t *testing.T) {
	sim := hec.New("tok")
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	em := siem.New(siem.Options{}, &siem.HEC{URL: srv.URL, Token: "tok", HTTP: srv.Client()})
	cfg := testConfig(t)
	cfg.Events = em
	rl, ft := newTestRelay(t, cfg)
	ft.addRun(workflows.Termination{EmployeeID: "E1001", EventID: "evt-1"})
	ft.refuse = map[string]string{workflows.UpdateRetry: "okta/suspend is not in exception"}

	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1001/waive", "security-token",
		`{"control":"okta/suspend","reason":"vendor outage","expiresAt":"2026-03-20T00:00:00Z"}`))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1001/retry", "security-token", `{"control":"okta/suspend"}`))
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	require.NoError(t, em.Close(t.Context()))
	require.Zero(t, em.Dropped())

	byKind := map[string]siem.Event{}
	for _, raw := range sim.Events() {
		var ev siem.Event
		require.NoError(t, json.Unmarshal(raw, &ev))
		byKind[ev.ActivityName] = ev
	}
	require.Len(t, byKind, 2, fmt.Sprint(sim.Counts()))
	waive, retry := byKind[workflows.UpdateWaive], byKind[workflows.UpdateRetry]
	assert.Equal(t, "decision", waive.Unmapped.Kind)
	assert.Equal(t, "accepted", waive.Unmapped.Outcome)
	assert.Equal(t, "Success", waive.Status)
	assert.Equal(t, "okta/suspend", waive.Unmapped.ControlID)
	assert.Equal(t, "sec@example.test", waive.Actor.User.Name)
	assert.Equal(t, workflows.WorkflowID("E1001"), waive.Unmapped.WorkflowID)
	assert.NotEmpty(t, waive.Unmapped.RunID)
	assert.Len(t, waive.Unmapped.DecisionDigest, 64)
	assert.Equal(t, "refused", retry.Unmapped.Outcome)
	assert.Equal(t, "Failure", retry.Status)
	assert.Contains(t, retry.StatusDetail, "not in exception")
	assert.Len(t, retry.Unmapped.DecisionDigest, 64)
	assert.NotEqual(t, waive.Unmapped.DecisionDigest, retry.Unmapped.DecisionDigest)
}

// Through a real dev server and worker: a signed SET suspends the person
// once; its replay and badly signed copies start nothing more.
func TestIntegrationSSFStartsOneRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	c := startDevServer(t)
	cfg, err := config.Default()
	require.NoError(t, err)
	target := newSuspendTarget()
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{target}), &evidence.Activities{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	key := newSSFKey(t)
	rcfg := testConfig(t)
	rcfg.Now = nil
	src, sim := ssfSource(t, key)
	src.Target = "fake"
	rcfg.Relay.Sources.SSF = src
	rl, err := New(rcfg, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)

	person := demo.People(3)[2]
	u, _ := sim.User(person.Email)
	sub := ssf.Subject{Format: "iss_sub", Iss: src.OrgURL, Sub: u.ID}
	now := time.Now()
	for name, token := range map[string]string{
		"wrong key": signSET(t, newSSFKey(t), accountDisabled("jti-x", sub, now)),
		"wrong aud": signSET(t, key, func() ssf.SET { s := accountDisabled("jti-x", sub, now); s.Audience = ssf.Audience{"x"}; return s }()),
		"expired":   signSET(t, key, accountDisabled("jti-x", sub, now.Add(-time.Hour))),
	} {
		rec := serveOkta(rl, setRequest(t, token))
		require.Equal(t, http.StatusBadRequest, rec.Code, name)
	}
	token := signSET(t, key, accountDisabled("jti-x", sub, now))
	rec := serveOkta(rl, setRequest(t, token))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var reply Outcome
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	assert.Equal(t, "started", reply.Status)
	assert.Equal(t, workflows.WorkflowID(person.EmployeeID), reply.WorkflowID)
	waitSuspended(t, target, person.EmployeeID, 30*time.Second)

	rec = serveOkta(rl, setRequest(t, token))
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "already received")

	desc, err := c.DescribeWorkflow(t.Context(), reply.WorkflowID, "")
	require.NoError(t, err)
	assert.Equal(t, reply.RunID, desc.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "one run for the person")
	select {
	case id := <-target.suspended:
		t.Fatalf("%s suspended again", id)
	default:
	}
}
