package siem_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/internal/ssf"
	"github.com/offboard/offboard/internal/testenv/devserver"
	sandboxssf "github.com/offboard/offboard/sandbox/ssf"
	"github.com/offboard/offboard/workflows"
)

// containTarget is an identity provider: suspend and clear_sessions in
// containment, per account.
type containTarget struct {
	mu   sync.Mutex
	held map[string]bool
}

func (c *containTarget) Name() string { return "idp" } // not "okta": the default gives okta its own task queue
func (c *containTarget) Kind() string { return "fake" }
func (c *containTarget) Resolve(_ context.Context, p control.Person) (control.Account, error) {
	return control.Account{ID: "00u-" + p.EmployeeID, Login: p.Email}, nil
}
func (c *containTarget) Controls(phase control.Phase) []string {
	if phase == control.Containment {
		return []string{"suspend", "clear_sessions"}
	}
	return nil
}
func (c *containTarget) Observe(_ context.Context, name string, a control.Account, _ control.Params) (control.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return control.Observation{Holds: c.held[a.ID+"/"+name], Readable: true, Detail: name}, nil
}
func (c *containTarget) Enforce(_ context.Context, name string, a control.Account, _ control.Params) (control.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held[a.ID+"/"+name] = true
	return control.Response{HTTPStatus: 200, RequestID: "req-" + name}, nil
}

// Offboard pushes a signed SET per containment control to a relying party,
// which verifies it against Offboard's JWKS; a relying party that hangs
// forever does not slow containment, and gets its SETs once it answers.
func TestIntegrationSSFReceiverDownDoesNotSlowContainment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	srv := devserver.Start(t)
	const issuer, audience = "https://offboard.example.test", "https://rp.example.test/ssf"
	key, err := ssf.ParseKey(sandboxssf.KeyFor("offboard-test"))
	require.NoError(t, err)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(key.JWKS()) }))
	defer jwks.Close()
	rp := sandboxssf.NewReceiver(issuer, audience, jwks.URL, "rp-token")
	rps := httptest.NewServer(rp.Handler())
	defer rps.Close()
	em := siem.New(siem.Options{}, &siem.SSF{Receiver: "rp", URL: rps.URL + "/ssf/events", Token: "rp-token", Audience: audience, Issuer: issuer, Key: key,
		HTTP: &http.Client{Timeout: 3 * time.Second}, SessionRevoked: config.DefaultSSFSessionRevoked, AccountDisabled: config.DefaultSSFAccountDisabled})

	cfg, err := config.Default()
	require.NoError(t, err)
	target := &containTarget{held: map[string]bool{}}
	acts := activities.New(cfg, []control.Target{target})
	acts.Events = em
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, acts, &evidence.Activities{})
	require.NoError(t, w.Start())
	defer w.Stop()

	seed := sha256.Sum256([]byte("sandbox-decision-key"))
	contain := func(employee string) time.Duration {
		start := time.Now()
		_, err := runs.StartSigned(t.Context(), srv.Client, workflows.Termination{EventID: "evt-" + employee, Source: "test", EmployeeID: employee,
			Email: strings.ToLower(employee) + "@example.test", Kind: workflows.KindTermination, Reason: workflows.ReasonVoluntary, EffectiveAt: start, RequestedBy: "hr"},
			ed25519.NewKeyFromSeed(seed[:]))
		require.NoError(t, err)
		// Contained as the run records it: every containment activity completed.
		var contained time.Time
		require.Eventually(t, func() bool {
			st, err := runs.Status(t.Context(), srv.Client, employee)
			contained = st.ContainedAt
			return err == nil && !contained.IsZero()
		}, 30*time.Second, 20*time.Millisecond, "%s contained", employee)
		return contained.Sub(start)
	}
	sets := func(email string) map[string]sandboxssf.Received {
		out := map[string]sandboxssf.Received{}
		for _, r := range rp.Received() {
			if r.Subject.Email == email {
				out[r.Type] = r
			}
		}
		return out
	}

	up := contain("E5001")
	require.Eventually(t, func() bool { return len(sets("e5001@example.test")) == 2 }, 10*time.Second, 50*time.Millisecond,
		"account-disabled (suspend) and session-revoked (clear_sessions) reach the relying party")
	got := sets("e5001@example.test")
	assert.Contains(t, got[ssf.EventSessionRevoked].Txn, workflows.WorkflowID("E5001"))
	assert.Contains(t, got, ssf.EventAccountDisabled)

	rp.Hang.Store(true) // every push now waits until the client gives up (3 s), then is retried
	down := contain("E5002")
	require.Eventually(t, func() bool { return rp.Hung() > 0 }, 10*time.Second, 20*time.Millisecond, "a push is held by the hanging relying party")
	downAgain := contain("E5003") // its SETs queue behind the held push
	t.Logf("containment with the relying party up: %s; hanging: %s, %s", up, down, downAgain)
	assert.Less(t, down, 2*time.Second+up, "a hanging relying party does not hold containment back")
	assert.Less(t, downAgain, 2*time.Second+up, "nor does a queue of SETs waiting for it")
	assert.Empty(t, sets("e5002@example.test"), "nothing got through while it hung")
	assert.Empty(t, sets("e5003@example.test"))

	rp.Hang.Store(false)
	for _, email := range []string{"e5002@example.test", "e5003@example.test"} {
		require.Eventually(t, func() bool { return len(sets(email)) == 2 }, 30*time.Second, 100*time.Millisecond,
			"the SETs that waited are delivered once the relying party answers: "+email)
	}
	require.NoError(t, em.Close(t.Context()))
	assert.Zero(t, em.Dropped())
	for jti, n := range rp.Counts() {
		assert.Equal(t, 1, n, "SET %s taken once", jti)
	}
}
