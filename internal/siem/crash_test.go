package siem_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/sandbox/hec"
	"github.com/offboard/offboard/workflows"
)

// crashTarget's first suspend takes effect and then never returns, as if
// the worker running it died mid-call: that attempt sends nothing.
type crashTarget struct {
	heldTarget
	once    sync.Once
	entered chan struct{}
}

func (c *crashTarget) Name() string { return "fake" }

func (c *crashTarget) Enforce(ctx context.Context, name string, a control.Account, p control.Params) (control.Response, error) {
	resp, err := c.heldTarget.Enforce(ctx, name, a, p)
	if name == "suspend" {
		first := false
		c.once.Do(func() { first = true })
		if first {
			close(c.entered)
			select {} // the dead worker's call: never returns, never emits
		}
	}
	return resp, err
}

// A worker dies in the middle of a control; the next worker's retry proves
// the control and sends its event: every control of the termination reaches
// the HEC once per id, and nothing is dropped.
func TestIntegrationEveryControlOnceAcrossWorkerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	srv := devserver.Start(t)
	sim := hec.New("tok")
	hs := httptest.NewServer(sim.Handler())
	defer hs.Close()
	em := siem.New(siem.Options{}, &siem.HEC{URL: hs.URL, Token: "tok", HTTP: hs.Client()})

	cfg, err := config.Default()
	require.NoError(t, err)
	target := &crashTarget{heldTarget: heldTarget{held: map[string]bool{}}, entered: make(chan struct{})}
	newWorker := func() worker.Worker {
		acts := activities.New(cfg, []control.Target{target})
		acts.Events = em
		w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
		evidence.Register(w, acts, &evidence.Activities{})
		require.NoError(t, w.Start())
		return w
	}
	first := newWorker()

	seed := sha256.Sum256([]byte("sandbox-decision-key")) // the embedded default's operator-api key
	now := time.Now()
	st, err := runs.StartSigned(t.Context(), srv.Client, workflows.Termination{EventID: "evt-crash", Source: "test", EmployeeID: "E4242",
		Email: "crash@example.test", Kind: workflows.KindTermination, Reason: workflows.ReasonVoluntary, EffectiveAt: now, RequestedBy: "hr"},
		ed25519.NewKeyFromSeed(seed[:]))
	require.NoError(t, err)
	select {
	case <-target.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first worker never ran suspend")
	}
	first.Stop() // the worker is gone; its suspend call never returns
	second := newWorker()
	defer second.Stop()

	applied := func() map[string]siem.Event {
		out := map[string]siem.Event{}
		for _, raw := range sim.Events() {
			var ev siem.Event
			require.NoError(t, json.Unmarshal(raw, &ev))
			if ev.Unmapped.Kind == "control" && strings.HasPrefix(ev.Message, "apply ") {
				out[ev.Unmapped.ControlID] = ev
			}
		}
		return out
	}
	// suspend is retried after the heartbeat timeout (10 s) on the second worker.
	require.Eventually(t, func() bool { return len(applied()) == 3 }, 60*time.Second, 200*time.Millisecond,
		"suspend, clear_sessions and remove_groups reach the HEC")
	require.NoError(t, em.Close(t.Context()))
	assert.Zero(t, em.Dropped())
	for id, n := range sim.Counts() {
		assert.Equal(t, 1, n, "event %s arrived once", id)
	}
	got := applied()
	suspend := got["fake/suspend"]
	assert.Equal(t, "Success", suspend.Status)
	assert.Equal(t, int32(2), suspend.Unmapped.Attempt, "the second worker's retry sent it")
	assert.Equal(t, st.RunID, suspend.Unmapped.RunID)
	assert.Equal(t, workflows.WorkflowID("E4242"), suspend.Unmapped.WorkflowID)
	for id, ev := range got {
		assert.Equal(t, "Success", ev.Status, id)
	}
}

// diesAfterEmit lets the first suspend run to its end (the control holds
// and its event is emitted) and then never reports back, as if the worker
// died between the emit and the completion reaching Temporal.
type diesAfterEmit struct {
	interceptor.WorkerInterceptorBase
	once    sync.Once
	entered chan struct{}
}

func (d *diesAfterEmit) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &diesAfterEmitActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, root: d}
}

type diesAfterEmitActivity struct {
	interceptor.ActivityInboundInterceptorBase
	root *diesAfterEmit
}

func (a *diesAfterEmitActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := a.Next.ExecuteActivity(ctx, in)
	if ci, ok := in.Args[0].(activities.ControlInput); ok && len(in.Args) == 1 && ci.Control == "suspend" && activity.GetInfo(ctx).ActivityType.Name == "ApplyControl" {
		first := false
		a.root.once.Do(func() { first = true })
		if first {
			close(a.root.entered)
			select {} // emitted, never completed
		}
	}
	return res, err
}

// The worker dies after the control's event was sent: the next worker's
// retry proves the control again and sends the same event (same id) again.
// Delivery is at least once; counted by event id, every control reaches the
// HEC exactly once, which is what the SIEM's dedupe on metadata.uid keeps.
func TestIntegrationEveryControlOnceByIDAcrossCrashAfterEmit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	srv := devserver.Start(t)
	sim := hec.New("tok")
	hs := httptest.NewServer(sim.Handler())
	defer hs.Close()
	em := siem.New(siem.Options{}, &siem.HEC{URL: hs.URL, Token: "tok", HTTP: hs.Client()})

	cfg, err := config.Default()
	require.NoError(t, err)
	target := &heldTarget{held: map[string]bool{}}
	dies := &diesAfterEmit{entered: make(chan struct{})}
	newWorker := func(ic ...interceptor.WorkerInterceptor) worker.Worker {
		acts := activities.New(cfg, []control.Target{&renamed{target}})
		acts.Events = em
		w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{Interceptors: ic})
		evidence.Register(w, acts, &evidence.Activities{})
		require.NoError(t, w.Start())
		return w
	}
	first := newWorker(dies)
	seed := sha256.Sum256([]byte("sandbox-decision-key"))
	st, err := runs.StartSigned(t.Context(), srv.Client, workflows.Termination{EventID: "evt-crash-emit", Source: "test", EmployeeID: "E4343",
		Email: "crash-emit@example.test", Kind: workflows.KindTermination, Reason: workflows.ReasonVoluntary, EffectiveAt: time.Now(), RequestedBy: "hr"},
		ed25519.NewKeyFromSeed(seed[:]))
	require.NoError(t, err)
	select {
	case <-dies.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first worker never finished suspend")
	}
	first.Stop()
	second := newWorker()
	defer second.Stop()

	// Every apply success by id, and each id's arrivals.
	applied := func() map[string][]string {
		out := map[string][]string{}
		for id, raw := range sim.Events() {
			var ev siem.Event
			require.NoError(t, json.Unmarshal(raw, &ev))
			if ev.Unmapped.Kind == "control" && ev.Unmapped.Op == "apply" && ev.Status == "Success" {
				out[ev.Unmapped.ControlID] = append(out[ev.Unmapped.ControlID], id)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(applied()) == 3 && sim.Counts()[applied()["fake/suspend"][0]] == 2 }, 60*time.Second, 200*time.Millisecond,
		"suspend (sent by both workers), clear_sessions and remove_groups reach the HEC")
	require.NoError(t, em.Close(t.Context()))
	assert.Zero(t, em.Dropped())
	counts := sim.Counts()
	for control, ids := range applied() {
		assert.Len(t, ids, 1, "%s: one event id, however often it was sent", control)
		if control != "fake/suspend" {
			assert.Equal(t, 1, counts[ids[0]], control)
		}
	}
	var last siem.Event
	require.NoError(t, json.Unmarshal(sim.Events()[applied()["fake/suspend"][0]], &last))
	assert.Equal(t, int32(2), last.Unmapped.Attempt, "the retry's copy carries the same id")
	assert.Equal(t, st.RunID, last.Unmapped.RunID)
}

// renamed is the held target under the name "fake" (the default gives
// "okta" its own task queue, which no test worker polls).
type renamed struct{ *heldTarget }

func (r *renamed) Name() string { return "fake" }
