package workerapp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/internal/workerapp"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/workflows"
)

// The worker, as it runs in production, creates the reconcile, attest and
// drill schedules at start (and again at the next start without error), and
// a reconciliation lists a rate-limited target on that target's own task
// queue, where the server holds it to the configured rate.
func TestWorkerSchedulesAndTargetQueue(t *testing.T) {
	srv := devserver.Start(t)
	ctx := t.Context()
	sim := oktasim.New(oktasim.Options{Token: "tok", People: demo.People(12)})
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(hs.Close)
	oc, err := okta.New(ctx, okta.Config{Name: "okta", OrgURL: hs.URL, Token: "tok", AllowHTTP: true})
	require.NoError(t, err)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "evidence.key")
	_, err = evidence.GenerateKey(keyFile)
	require.NoError(t, err)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
worker: {metricsAddr: "off"}
evidence: {dir: %q, signingKey: {file: %q}}
reconcile: {every: 12h, roster: {kind: sandbox, sandboxSize: 12}}
targets:
  - name: okta
    kind: okta
    okta: {orgURL: "http://127.0.0.1:1", token: {env: OFFBOARD_TEST_UNUSED_TOKEN}}
    limits: {activitiesPerSecond: 20}
`, filepath.Join(dir, "store"), keyFile)), "worker test")
	require.NoError(t, err)

	start := func() (stop func() error) {
		wctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- workerapp.RunWith(wctx, cfg, srv.Client, []control.Target{oc}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
		return func() error { cancel(); return <-done }
	}
	scheduled := func() bool {
		_, err := srv.Client.ScheduleClient().GetHandle(ctx, workflows.DrillScheduleID).Describe(ctx)
		return err == nil
	}
	stop := start()
	require.Eventually(t, scheduled, 30*time.Second, 100*time.Millisecond)
	require.NoError(t, stop())
	stop = start() // a restart finds the schedules there
	t.Cleanup(func() { require.NoError(t, stop()) })
	d, err := srv.Client.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID).Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, 12*time.Hour, d.Schedule.Spec.Intervals[0].Every)
	for _, id := range []string{workflows.AttestScheduleID, workflows.DrillScheduleID} {
		d, err := srv.Client.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
		require.NoError(t, err, id)
		require.NotEmpty(t, d.Info.NextActionTimes, id)
		next := d.Info.NextActionTimes[0].UTC()
		assert.Equal(t, 3, next.Hour(), id)
		assert.Contains(t, []time.Month{1, 2, 4, 5, 7, 8, 10, 11}, next.Month(), id)
	}

	run, err := srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reconcile-queue", TaskQueue: workflows.TaskQueue},
		workflows.ReconcileWorkflowType, workflows.ReconcileInput{Limit: 5})
	require.NoError(t, err)
	var res workflows.ReconcileResult
	require.NoError(t, run.Get(ctx, &res))
	assert.Equal(t, 12, res.Report.Targets[0].Counts.Accounts)
	assert.Equal(t, "reconcile/"+res.Report.ID, res.Where)
	queues := map[string]string{}
	it := srv.Client.GetWorkflowHistory(ctx, "reconcile-queue", "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			queues[a.GetActivityType().GetName()] = a.GetTaskQueue().GetName()
		}
	}
	assert.Equal(t, "deprovision-okta", queues["ReconcileListPages"])
	assert.Equal(t, workflows.TaskQueue, queues["LoadReconcilePlan"])
}
