package evidence_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
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

// The schedule exists once, however often the worker starts, and a sweep it
// starts on the deprovision task queue archives the closed runs.
func TestEnsureScheduleArchivesAutomatically(t *testing.T) {
	f := getFixture(t)
	require.NoError(t, evidence.EnsureSchedule(t.Context(), f.client))
	require.NoError(t, evidence.EnsureSchedule(t.Context(), f.client), "a second call is fine")
	h := f.client.ScheduleClient().GetHandle(t.Context(), evidence.ArchiverScheduleID)
	t.Cleanup(func() { _ = h.Delete(testCtx) })

	desc, err := h.Describe(t.Context())
	require.NoError(t, err)
	require.Len(t, desc.Schedule.Spec.Intervals, 1)
	assert.Equal(t, time.Minute, desc.Schedule.Spec.Intervals[0].Every)
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok)
	assert.Equal(t, evidence.ArchiverWorkflowType, action.Workflow)
	assert.Equal(t, "deprovision", action.TaskQueue)

	require.NoError(t, h.Trigger(t.Context(), client.ScheduleTriggerOptions{}))
	require.Eventually(t, func() bool {
		runs, err := f.swept.Runs(t.Context(), "")
		return err == nil && slices.Contains(runs, f.completed) && slices.Contains(runs, f.terminated)
	}, 30*time.Second, 200*time.Millisecond, "the scheduled sweep archived both runs")
	dir, err := f.swept.RunDir(f.completed)
	require.NoError(t, err)
	require.NoError(t, evidence.Verify(dir, f.pub))
}
