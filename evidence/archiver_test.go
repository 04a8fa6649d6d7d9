package evidence_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"slices"
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
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/workflows"
)

// The Archiver workflow finds the closed runs without a manifest and archives
// them; the next sweep finds nothing left to do.
func TestArchiverSweepsClosedRuns(t *testing.T) {
	f := getFixture(t)
	store := evidence.Dir{Root: t.TempDir()}
	const queue = "archiver-test"
	w := worker.New(f.client, queue, worker.Options{})
	evidence.Register(w, new(activities.Activities), &evidence.Activities{Client: f.client, Store: store, Key: f.priv, KeyID: f.keyID})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	sweep := func() evidence.ArchiverResult {
		run, err := f.client.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{TaskQueue: queue}, evidence.ArchiverWorkflowType, evidence.ArchiverInput{})
		require.NoError(t, err)
		var res evidence.ArchiverResult
		require.NoError(t, run.Get(t.Context(), &res))
		return res
	}
	// Visibility may lag the close by a moment: sweep until both runs are in.
	var archived []evidence.Run
	for i := 0; i < 20 && !(slices.Contains(archived, f.completed) && slices.Contains(archived, f.terminated)); i++ {
		res := sweep()
		assert.Empty(t, res.Failed)
		archived = append(archived, res.Archived...)
	}
	assert.Contains(t, archived, f.completed)
	assert.Contains(t, archived, f.terminated)

	again := sweep()
	assert.Empty(t, again.Archived, "nothing left to archive")
	assert.Empty(t, again.Failed)
	for _, r := range []evidence.Run{f.completed, f.terminated} {
		dir, err := store.RunDir(r)
		require.NoError(t, err)
		require.NoError(t, evidence.Verify(dir, f.pub))
	}
}

// The schedule exists once, however often the worker starts; the every-minute
// schedule of earlier versions becomes the daily sweep; and a sweep it starts
// on the deprovision task queue archives the closed runs.
func TestEnsureScheduleArchivesAutomatically(t *testing.T) {
	rig := newArchiveRig(t)
	tm := termination("E500")
	tm.EffectiveAt = time.Now().Add(time.Hour)
	closed := rig.start(t, tm)
	require.NoError(t, rig.client.TerminateWorkflow(t.Context(), closed.WorkflowID, closed.RunID, "stopped by the test"))

	h, err := rig.client.ScheduleClient().Create(t.Context(), client.ScheduleOptions{
		ID:   evidence.ArchiverScheduleID,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Minute}}},
		Action: &client.ScheduleWorkflowAction{ID: evidence.ArchiverScheduleID, Workflow: evidence.ArchiverWorkflowType,
			Args: []any{evidence.ArchiverInput{}}, TaskQueue: workflows.TaskQueue},
		Paused: true,
	})
	require.NoError(t, err, "an earlier version's schedule")
	require.NoError(t, evidence.EnsureSchedule(t.Context(), rig.client))
	require.NoError(t, evidence.EnsureSchedule(t.Context(), rig.client), "a second call is fine")

	desc, err := h.Describe(t.Context())
	require.NoError(t, err)
	require.Len(t, desc.Schedule.Spec.Intervals, 1)
	assert.Equal(t, 24*time.Hour, desc.Schedule.Spec.Intervals[0].Every, "a sweep a day, not a workflow a minute")
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok)
	assert.Equal(t, evidence.ArchiverWorkflowType, action.Workflow)
	assert.Equal(t, "deprovision", action.TaskQueue)

	require.NoError(t, h.Trigger(t.Context(), client.ScheduleTriggerOptions{}))
	require.Eventually(t, func() bool {
		runs, err := rig.store.Runs(t.Context(), "")
		return err == nil && slices.Contains(runs, closed)
	}, 30*time.Second, 200*time.Millisecond, "the scheduled sweep archived the closed run")
	dir, err := rig.store.RunDir(closed)
	require.NoError(t, err)
	require.NoError(t, evidence.Verify(dir, rig.pub))
}

// archiveRig is a dev server of its own with a worker that archives into
// store: the tests of archiving at close need no recorded fixture runs.
type archiveRig struct {
	client client.Client
	store  evidence.Dir
	pub    ed25519.PublicKey
}

func newArchiveRig(t *testing.T) archiveRig {
	t.Helper()
	srv := devserver.Start(t)
	cfg, err := config.Parse([]byte(testConfig), "archiver test")
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	rig := archiveRig{client: srv.Client, store: evidence.Dir{Root: t.TempDir()}, pub: pub}
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{newFakeTarget("fake")}),
		&evidence.Activities{Client: srv.Client, Store: rig.store, Key: priv, KeyID: evidence.KeyID(pub)})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return rig
}

func (rig archiveRig) start(t *testing.T, tm workflows.Termination) evidence.Run {
	t.Helper()
	run, err := rig.client.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: workflows.WorkflowID(tm.EmployeeID), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowType, tm)
	require.NoError(t, err)
	return evidence.Run{WorkflowID: run.GetID(), RunID: run.GetRunID()}
}

// At close, the Archiver of one run waits for the close to be recorded (an
// open run is retried, not refused), then archives it.
func TestArchiverAtCloseWaitsForTheClose(t *testing.T) {
	rig := newArchiveRig(t)
	tm := termination("E400")
	tm.EffectiveAt = time.Now().Add(time.Hour) // waits on its timer
	r := rig.start(t, tm)

	arch, err := rig.client.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: "evidence-" + r.WorkflowID, TaskQueue: workflows.TaskQueue},
		evidence.ArchiverWorkflowType, evidence.ArchiverInput{Run: &r})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		d, err := rig.client.DescribeWorkflow(t.Context(), arch.GetID(), arch.GetRunID())
		if err != nil || len(d.RawResponse.GetPendingActivities()) != 1 {
			return false
		}
		p := d.RawResponse.GetPendingActivities()[0]
		return p.GetAttempt() >= 2 && strings.Contains(p.GetLastFailure().GetMessage(), "still open")
	}, 30*time.Second, 100*time.Millisecond, "the open run is tried again, not refused")
	names, err := rig.store.List(t.Context(), r)
	require.NoError(t, err)
	assert.Empty(t, names, "nothing archived while the run is open")

	require.NoError(t, rig.client.TerminateWorkflow(t.Context(), r.WorkflowID, r.RunID, "closed by the test"))
	var res evidence.ArchiverResult
	require.NoError(t, arch.Get(t.Context(), &res))
	assert.Equal(t, []evidence.Run{r}, res.Archived)
	dir, err := rig.store.RunDir(r)
	require.NoError(t, err)
	require.NoError(t, evidence.Verify(dir, rig.pub))
}

// A run that closes on its own starts its own archiving as it finishes: its
// evidence is in the store with no sweep, archived by evidence-<workflow id>.
func TestRunArchivesItselfAtClose(t *testing.T) {
	rig := newArchiveRig(t)
	tm := termination("E600")
	tm.Privileged, tm.Reason = false, workflows.ReasonVoluntary // no approval to wait for
	r := rig.start(t, tm)
	var res workflows.Result
	require.NoError(t, rig.client.GetWorkflow(t.Context(), r.WorkflowID, r.RunID).Get(t.Context(), &res))
	require.Equal(t, workflows.PhaseCompleted, res.Phase)

	var archived evidence.ArchiverResult
	require.NoError(t, rig.client.GetWorkflow(t.Context(), "evidence-"+r.WorkflowID, "").Get(t.Context(), &archived), "the run started its Archiver")
	assert.Equal(t, []evidence.Run{r}, archived.Archived)
	dir, err := rig.store.RunDir(r)
	require.NoError(t, err)
	require.NoError(t, evidence.Verify(dir, rig.pub))
}
