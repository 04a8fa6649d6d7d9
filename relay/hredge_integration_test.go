package relay

import (
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
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/workflows"
)

// replica is another `starter serve` in front of the same Temporal: a second
// replica, or the first one after a restart (nothing kept in the process).
func replica(t *testing.T, c client.Client, blast config.BlastRadius) *Relay {
	t.Helper()
	cfg := testConfig(t)
	cfg.Now = nil
	cfg.Relay.BlastRadius = blast
	rl, err := New(cfg, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return rl
}

// integrationWithRole is integration with a role the worker's plan knows.
func integrationWithRole(t *testing.T, role string) (*Relay, *suspendTarget, client.Client) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	c := startDevServer(t)
	cfg, err := config.Default()
	require.NoError(t, err)
	cfg.People.Security = []string{"sec@example.test"}
	cfg.People.Approvers = []string{"sec@example.test"}
	cfg.Roles = map[string]config.RoleGroups{role: {"fake": {"team"}}}
	target := newSuspendTarget()
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{target}), &evidence.Activities{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return replica(t, c, config.BlastRadius{}), target, c
}

func serve(t *testing.T, rl *Relay, req *http.Request) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	rl.Handler().ServeHTTP(rec, req)
	var reply map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply), rec.Body.String())
	return rec.Code, reply
}

func signedGeneric(t *testing.T, v any, at time.Time) *http.Request {
	t.Helper()
	body, err := json.Marshal(v)
	require.NoError(t, err)
	return webhookAt(t, "generic", body, "application/json", "", at)
}

func terminationEvent(employee string, effective time.Time) map[string]any {
	return map[string]any{"type": "termination", "employeeId": employee, "email": strings.ToLower(strings.TrimSpace(employee)) + "@example.test",
		"effectiveAt": effective.UTC().Format(time.RFC3339), "reason": "voluntary"}
}

// Each attack of issue 13 on the HR edge, through the real HTTP API, against
// a dev server and a worker, with two relay replicas.
func TestIntegrationHREdgeUnderAttack(t *testing.T) {
	blast := config.BlastRadius{Max: 3, Window: config.Duration(10 * time.Minute)}
	rl, target, c := integration(t, blast)
	other := replica(t, c, blast)
	base := time.Now().UnixNano() % 1e6
	id := func(n int) string { return fmt.Sprintf("H%d", base+int64(n)) }
	now := time.Now()

	// 1. Ids Temporal would refuse, in one delivery with a good one: the
	// good one is deprovisioned, each bad one answers 400 on its own.
	batch := signedGeneric(t, map[string]any{"events": []any{
		terminationEvent("Müller-7", now), terminationEvent("E\x01", now), terminationEvent(strings.Repeat("9", 1001), now),
		terminationEvent(" "+strings.ToLower(id(0)), now),
	}}, now)
	code, reply := serve(t, rl, batch)
	require.Equal(t, http.StatusAccepted, code, reply)
	results := replyResults(t, reply)
	require.Len(t, results, 4)
	assert.Equal(t, "started", results[0].Status)
	assert.Equal(t, workflows.WorkflowID(id(0)), results[0].WorkflowID, "trimmed and upper-cased")
	for _, o := range results[1:] {
		assert.Equal(t, "rejected", o.Status)
		assert.Equal(t, http.StatusBadRequest, o.Code)
	}
	waitSuspended(t, target, id(0), 30*time.Second)

	// 2. The same signed bytes again, to the other replica: a duplicate.
	replay := signedGeneric(t, map[string]any{"events": []any{
		terminationEvent("Müller-7", now), terminationEvent("E\x01", now), terminationEvent(strings.Repeat("9", 1001), now),
		terminationEvent(" "+strings.ToLower(id(0)), now),
	}}, now)
	code, reply = serve(t, other, replay)
	require.Equal(t, http.StatusOK, code, reply)
	assert.Equal(t, "duplicate", reply["status"])
	assert.Contains(t, reply["note"], "already received")

	// 3. The guard is one for every replica and survives a restart: A
	// counted above, B on this replica, C on the other, D on a fresh one.
	for i, r := range []*Relay{rl, other} {
		code, reply = serve(t, r, signedTermination(t, id(1+i)))
		require.Equal(t, http.StatusAccepted, code, reply)
		assert.Nil(t, reply["quarantined"], id(1+i))
	}
	restarted := replica(t, c, blast)
	code, reply = serve(t, restarted, signedTermination(t, id(3)))
	require.Equal(t, http.StatusAccepted, code, reply)
	assert.Equal(t, true, reply["quarantined"], "the fourth within the window, whichever replica")

	// 4. One delivery of 30 rescinds: three are let through (no run: ignored), the rest held.
	var rescinds []any
	for i := range 30 {
		rescinds = append(rescinds, map[string]any{"type": "rescind", "employeeId": fmt.Sprintf("R%d", base+int64(i))})
	}
	code, reply = serve(t, other, signedGeneric(t, map[string]any{"events": rescinds}, time.Now()))
	require.Equal(t, http.StatusAccepted, code, reply)
	held := 0
	for _, o := range replyResults(t, reply) {
		if o.Status == "quarantined" {
			held++
		}
	}
	assert.Equal(t, 27, held)
}

// Issue 12: a termination while a role change waits is not dropped; issue
// 11: a corrected HR event reaches the run in flight. Through the relay,
// against the real Deprovision workflow.
func TestIntegrationSupersedeAndCorrect(t *testing.T) {
	rl, target, _ := integrationWithRole(t, "analyst")
	base := time.Now().UnixNano() % 1e6
	mover, leaver := fmt.Sprintf("M%d", base), fmt.Sprintf("L%d", base)
	tomorrow := time.Now().Add(24 * time.Hour)

	code, reply := serve(t, rl, signedGeneric(t, map[string]any{"type": "role_change", "employeeId": mover, "email": strings.ToLower(mover) + "@example.test",
		"effectiveAt": tomorrow.UTC().Format(time.RFC3339), "newRole": "analyst"}, time.Now()))
	require.Equal(t, http.StatusAccepted, code, reply)
	require.Equal(t, "started", reply["status"])
	roleRun := reply["runId"]

	code, reply = serve(t, rl, signedTermination(t, mover))
	require.Equal(t, http.StatusAccepted, code, reply)
	assert.Equal(t, "superseded", reply["status"], "not a duplicate: the role change's run takes the termination")
	assert.Equal(t, roleRun, reply["runId"])
	waitSuspended(t, target, mover, 30*time.Second)

	first := map[string]any{"eventId": "evt-" + leaver, "type": "termination", "employeeId": leaver, "email": "typo@exmaple.test",
		"effectiveAt": tomorrow.UTC().Format(time.RFC3339)}
	code, reply = serve(t, rl, signedGeneric(t, first, time.Now()))
	require.Equal(t, http.StatusAccepted, code, reply)
	require.Equal(t, "started", reply["status"])
	fixed := map[string]any{"eventId": "evt-" + leaver, "type": "termination", "employeeId": leaver, "email": strings.ToLower(leaver) + "@example.test",
		"effectiveAt": tomorrow.UTC().Format(time.RFC3339)}
	code, reply = serve(t, rl, signedGeneric(t, fixed, time.Now().Add(time.Second)))
	require.Equal(t, http.StatusAccepted, code, reply)
	assert.Equal(t, "corrected", reply["status"], "the corrected e-mail is applied, not a duplicate")

	// The true redelivery of the corrected event is a duplicate.
	code, reply = serve(t, rl, signedGeneric(t, fixed, time.Now().Add(2*time.Second)))
	require.Equal(t, http.StatusOK, code, reply)
	assert.Equal(t, "duplicate", reply["status"])
}
