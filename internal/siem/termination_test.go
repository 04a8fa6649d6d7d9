package siem_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/sandbox/hec"
	"github.com/offboard/offboard/workflows"
)

// heldTarget is one system: suspend in containment, remove_groups in removal.
type heldTarget struct {
	mu   sync.Mutex
	held map[string]bool
}

func (h *heldTarget) Name() string { return "okta" }
func (h *heldTarget) Kind() string { return "fake" }
func (h *heldTarget) Resolve(_ context.Context, p control.Person) (control.Account, error) {
	return control.Account{ID: "00u-" + p.EmployeeID, Login: p.Email}, nil
}
func (h *heldTarget) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{"suspend", "clear_sessions"}
	case control.Removal:
		return []string{"remove_groups"}
	}
	return nil
}
func (h *heldTarget) Observe(_ context.Context, name string, _ control.Account, _ control.Params) (control.Observation, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return control.Observation{Holds: h.held[name], Readable: true, Detail: name}, nil
}
func (h *heldTarget) Enforce(_ context.Context, name string, _ control.Account, _ control.Params) (control.Response, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held[name] = true
	return control.Response{HTTPStatus: 200, RequestID: "req-" + name, Digest: "d-" + name}, nil
}

// Every control of a termination (applied, and verified again later)
// reaches the HEC exactly once, joined to the run by its ids.
func TestTerminationEveryControlReachesHECOnce(t *testing.T) {
	sim := hec.New("tok")
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	em := siem.New(siem.Options{}, &siem.HEC{URL: srv.URL, Token: "tok", HTTP: srv.Client()})

	cfg, err := config.Default()
	require.NoError(t, err)
	acts := activities.New(cfg, []control.Target{&heldTarget{held: map[string]bool{}}})
	acts.Events = em
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	workflows.RegisterWorkflows(env)
	env.RegisterActivity(acts)
	type done struct{ activityID, workflowID, runID string }
	var mu sync.Mutex
	var controls []done
	env.SetOnActivityCompletedListener(func(info *activity.Info, _ converter.EncodedValue, err error) {
		if err == nil && (info.ActivityType.Name == "ApplyControl" || info.ActivityType.Name == "VerifyControl") {
			mu.Lock()
			controls = append(controls, done{info.ActivityID, info.WorkflowExecution.ID, info.WorkflowExecution.RunID})
			mu.Unlock()
		}
	})
	start := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	env.ExecuteWorkflow(workflows.Deprovision, workflows.Termination{EventID: "evt-1", Source: "test", EmployeeID: "E1001",
		Email: "ada@example.test", Kind: workflows.KindTermination, Reason: workflows.ReasonVoluntary, EffectiveAt: start, RequestedBy: "hr"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, em.Close(t.Context()))
	require.Zero(t, em.Dropped())

	var applied, verified int
	byActivity := map[string]siem.Event{}
	for id, raw := range sim.Events() {
		var ev siem.Event
		require.NoError(t, json.Unmarshal(raw, &ev))
		require.Equal(t, id, ev.Metadata.UID)
		if ev.Unmapped.Kind == "control" {
			byActivity[ev.Unmapped.ActivityID] = ev
		}
	}
	counts := sim.Counts()
	require.GreaterOrEqual(t, len(controls), 6, "3 controls applied and verified at least once")
	for _, c := range controls {
		ev, ok := byActivity[c.activityID]
		require.True(t, ok, "control activity %s reached the HEC", c.activityID)
		assert.Equal(t, 1, counts[ev.Metadata.UID], "once per id")
		assert.Equal(t, c.workflowID, ev.Unmapped.WorkflowID)
		assert.Equal(t, c.runID, ev.Unmapped.RunID)
		assert.Len(t, ev.Unmapped.ReceiptDigest, 64)
		assert.Equal(t, "Success", ev.Status)
		switch {
		case strings.HasPrefix(ev.Message, "apply "):
			applied++
		case strings.HasPrefix(ev.Message, "verify "):
			verified++
		}
	}
	assert.Len(t, byActivity, len(controls), "no control event without a control activity")
	assert.Equal(t, 3, applied, "suspend, clear_sessions, remove_groups")
	assert.Equal(t, len(controls)-3, verified)
}

// ApplyControl returns at its own pace while the HEC hangs: the emitter's
// queue takes the event or drops and counts it.
func TestHangingHECDoesNotSlowApplyControl(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	em := siem.New(siem.Options{Buffer: 4, MaxBatch: 1, Retries: 1}, &siem.HEC{URL: srv.URL, Token: "tok", HTTP: srv.Client()})

	cfg, err := config.Default()
	require.NoError(t, err)
	acts := activities.New(cfg, []control.Target{&heldTarget{held: map[string]bool{}}})
	acts.Events = em
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	in := activities.ControlInput{ControlID: "okta/suspend", Target: "okta", Control: "suspend", Phase: control.Containment, Account: control.Account{ID: "00u1"}}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range 20 {
			if _, err := env.ExecuteActivity(acts.ApplyControl, in); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("ApplyControl waited for a hanging HEC")
	}
	// 20 events: at most one in flight, 4 queued, the rest dropped and counted.
	assert.GreaterOrEqual(t, em.Dropped(), int64(15))
	assert.LessOrEqual(t, em.Dropped(), int64(16))
}
