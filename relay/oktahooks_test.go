package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/workflows"
)

const oktaHookSecret = "okta-hook-secret-value"

// oktaSource configures the hook against a simulated Okta org holding demo people.
func oktaSource(t *testing.T, events map[string]string) (*config.OktaHookSource, *oktasim.Sim) {
	t.Helper()
	sim := oktasim.New(oktasim.Options{Token: "okta-api-token", People: demo.People(3)})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	return &config.OktaHookSource{
		Secrets: []config.Secret{secretFile(t, dir, "okta-hook", oktaHookSecret)},
		Events:  events, OrgURL: srv.URL, APIToken: secretFile(t, dir, "okta-api", "okta-api-token"),
	}, sim
}

// oktaHookRequest is a delivery as Okta sends it: one event per user id.
func oktaHookRequest(t testing.TB, secret, deliveryID, eventType string, published time.Time, users ...string) *http.Request {
	var events []map[string]any
	for i, u := range users {
		events = append(events, map[string]any{
			"uuid": fmt.Sprintf("%s-%d", deliveryID, i), "published": published.UTC().Format(time.RFC3339Nano), "eventType": eventType,
			"actor":   map[string]any{"id": "00uadmin", "type": "User", "alternateId": "admin@example.test"},
			"outcome": map[string]any{"result": "SUCCESS"},
			"target":  []map[string]any{{"id": u, "type": "User", "alternateId": "someone@example.test", "displayName": "Some One"}},
		})
	}
	body, err := json.Marshal(map[string]any{"eventType": "com.okta.event_hook", "eventId": deliveryID, "eventTime": published.UTC().Format(time.RFC3339),
		"contentType": "application/json", "data": map[string]any{"events": events}})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/hooks/okta", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", secret)
	}
	return req
}

func serveOkta(rl *Relay, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, req)
	return rec
}

func TestOktaHookVerification(t *testing.T) {
	cfg := testConfig(t)
	cfg.Relay.Sources.Okta, _ = oktaSource(t, nil)
	rl, _ := newTestRelay(t, cfg)

	req := httptest.NewRequest(http.MethodGet, "/hooks/okta", nil)
	req.Header.Set("X-Okta-Verification-Challenge", "ch4llenge")
	req.Header.Set("Authorization", oktaHookSecret)
	rec := serveOkta(rl, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"verification":"ch4llenge"}`, rec.Body.String())

	req.Header.Set("Authorization", "wrong")
	rec = serveOkta(rl, req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.NotContains(t, rec.Body.String(), "ch4llenge")
}

func TestOktaHookStartsTerminationFromEmployeeNumber(t *testing.T) {
	cfg := testConfig(t)
	src, sim := oktaSource(t, nil)
	cfg.Relay.Sources.Okta = src
	rl, ft := newTestRelay(t, cfg)
	person := demo.People(3)[1]
	u, ok := sim.User(person.Email)
	require.True(t, ok)

	rec := serveOkta(rl, oktaHookRequest(t, oktaHookSecret, "dlv-1", "user.lifecycle.deactivate", testNow, u.ID))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	started := ft.started()
	require.Len(t, started, 1)
	got := started[0]
	assert.Equal(t, person.EmployeeID, got.EmployeeID, "profile.employeeNumber read from Okta")
	assert.Equal(t, person.Email, got.Email)
	assert.Equal(t, "okta-dlv-1-0", got.EventID)
	assert.Equal(t, SourceOkta, got.Source)
	assert.Equal(t, workflows.KindTermination, got.Kind)
	assert.Equal(t, map[string]string{"okta": u.ID}, got.Accounts)
	assert.True(t, got.EffectiveAt.Equal(testNow))
	assert.False(t, got.ContainOnly, "the policy said termination")

	// A replay of the delivery starts nothing.
	rec = serveOkta(rl, oktaHookRequest(t, oktaHookSecret, "dlv-1", "user.lifecycle.deactivate", testNow, u.ID))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "already received", "the delivery memory answered, before any run was asked")
	assert.Len(t, ft.started(), 1)
}

func TestOktaHookRefusesAndIgnores(t *testing.T) {
	cfg := testConfig(t)
	src, sim := oktaSource(t, map[string]string{"user.lifecycle.deactivate": "termination", "user.account.lock": "ignore", "user.lifecycle.suspend": "containment"})
	cfg.Relay.Sources.Okta = src
	rl, ft := newTestRelay(t, cfg)
	u, _ := sim.User(demo.People(3)[0].Email)

	for name, secret := range map[string]string{"missing": "", "wrong": "not-the-secret", "prefix": oktaHookSecret[:5]} {
		rec := serveOkta(rl, oktaHookRequest(t, secret, "dlv-"+name, "user.lifecycle.deactivate", testNow, u.ID))
		assert.Equal(t, http.StatusUnauthorized, rec.Code, name)
		assert.NotContains(t, rec.Body.String(), oktaHookSecret, name)
	}
	rec := serveOkta(rl, oktaHookRequest(t, oktaHookSecret, "dlv-lock", "user.account.lock", testNow, u.ID))
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "starts nothing by policy")
	rec = serveOkta(rl, oktaHookRequest(t, oktaHookSecret, "dlv-unknown", "user.lifecycle.deactivate", testNow, "00unosuchuser"))
	assert.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	assert.Empty(t, ft.started(), "nothing started by a refused, ignored or unknown-user hook")

	// Containment only: a run that contains and removes nothing until a person approves.
	rec = serveOkta(rl, oktaHookRequest(t, oktaHookSecret, "dlv-suspend", "user.lifecycle.suspend", testNow, u.ID))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Len(t, ft.started(), 1)
	assert.Equal(t, workflows.KindTermination, ft.started()[0].Kind)
	assert.True(t, ft.started()[0].ContainOnly, "the policy said containment")
}

// Through a real dev server and worker: a hook suspends the person once;
// its replay and a badly authenticated copy start nothing more.
func TestIntegrationOktaHookSuspends(t *testing.T) {
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
	rcfg := testConfig(t)
	rcfg.Now = nil
	src, sim := oktaSource(t, nil)
	src.Target = "fake"
	rcfg.Relay.Sources.Okta = src
	rl, err := New(rcfg, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)

	person := demo.People(3)[2]
	u, _ := sim.User(person.Email)
	rec := serveOkta(rl, oktaHookRequest(t, "bad", "dlv-x", "user.lifecycle.deactivate", time.Now(), u.ID))
	require.Equal(t, http.StatusUnauthorized, rec.Code)

	rec = serveOkta(rl, oktaHookRequest(t, oktaHookSecret, "dlv-x", "user.lifecycle.deactivate", time.Now(), u.ID))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var reply Outcome
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	assert.Equal(t, "started", reply.Status)
	assert.Equal(t, workflows.WorkflowID(person.EmployeeID), reply.WorkflowID)
	waitSuspended(t, target, person.EmployeeID, 30*time.Second) // Accounts are hints: the fake resolves by employee id

	rec = serveOkta(rl, oktaHookRequest(t, oktaHookSecret, "dlv-x", "user.lifecycle.deactivate", time.Now(), u.ID))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "already received", "the delivery memory answered, before any run was asked")

	// One run for the person: the replay started no other.
	desc, err := c.DescribeWorkflow(t.Context(), reply.WorkflowID, "")
	require.NoError(t, err)
	assert.Equal(t, reply.RunID, desc.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId())
	select {
	case id := <-target.suspended:
		t.Fatalf("%s suspended again", id)
	default:
	}
}

// make run's relay takes Okta hooks with the sandbox's secret.
func TestOktaHookInEmbeddedDefault(t *testing.T) {
	def, err := config.Default()
	require.NoError(t, err)
	rl, _ := newTestRelay(t, ConfigFrom(def.Relay, def.Roles))
	req := httptest.NewRequest(http.MethodGet, "/hooks/okta", nil)
	req.Header.Set("X-Okta-Verification-Challenge", "abc")
	req.Header.Set("Authorization", "sandbox-okta-hook-secret")
	rec := serveOkta(rl, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"verification":"abc"}`, rec.Body.String())
}
