package metrics

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

const probeQueue = "metrics-probe"

// replayed is set when the probe workflow's code runs again during replay.
var replayed atomic.Bool

// probeWorkflow emits Offboard metrics the way the Deprovision workflow
// should: through workflow.GetMetricsHandler, before and after waiting.
func probeWorkflow(ctx workflow.Context) (string, error) {
	if workflow.IsReplaying(ctx) {
		replayed.Store(true)
	}
	mh := workflow.GetMetricsHandler(ctx)
	mh.WithTags(map[string]string{"phase": "containment"}).Counter(NameSLABreaches).Inc(1)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	if err := workflow.ExecuteActivity(ctx, probeActivity, "E1001").Get(ctx, &out); err != nil {
		return "", err
	}
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, nil)
	mh.Timer(NameTimeToContain).Record(3 * time.Second)
	return out, nil
}

func probeActivity(_ context.Context, who string) (string, error) { return "contained " + who, nil }

func startProbeWorker(t *testing.T, c client.Client) worker.Worker {
	t.Helper()
	w := worker.New(c, probeQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(probeWorkflow, workflow.RegisterOptions{Name: "MetricsProbe"})
	w.RegisterActivity(probeActivity)
	require.NoError(t, w.Start())
	return w
}

// A real dev server and worker with client.Options.MetricsHandler set: the
// SDK's own metrics reach the registry, and a metric the workflow emitted
// before a worker restart is not counted again when the next worker replays.
func TestSDKMetricsFromRealWorker(t *testing.T) {
	cli, err := filepath.Abs(filepath.Join("..", "..", "bin", "temporal"))
	require.NoError(t, err)
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("Temporal CLI not found at %s: run scripts/setup.sh (make test does)", cli)
	}
	reg := prometheus.NewPedanticRegistry()
	m := newMetrics(reg, 0) // counters reach reg when flushed at the end

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dev, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		LogLevel:      "error",
		ClientOptions: &client.Options{MetricsHandler: m.TemporalHandler(), Logger: quiet{}},
		Stdout:        io.Discard,
		Stderr:        io.Discard,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Stop() })
	c := dev.Client()

	w1 := startProbeWorker(t, c)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "metrics-probe-1", TaskQueue: probeQueue}, "MetricsProbe")
	require.NoError(t, err)

	// Timers reach reg at once.
	require.Eventually(t, func() bool {
		return counterValue(t, reg, "temporal_activity_execution_latency_seconds", map[string]string{"activity_type": "probeActivity", "task_queue": probeQueue}) >= 1
	}, 30*time.Second, 50*time.Millisecond, "the activity ran on the first worker")

	// A new worker takes over with an empty cache and replays the history.
	w1.Stop()
	worker.PurgeStickyWorkflowCache()
	w2 := startProbeWorker(t, c)
	require.NoError(t, c.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), "go", nil))
	var out string
	require.NoError(t, run.Get(ctx, &out))
	assert.Equal(t, "contained E1001", out)
	w2.Stop()

	text, _ := flushed(t, m, reg)
	completed := map[string]string{"workflow_type": "MetricsProbe", "task_queue": probeQueue, "namespace": "default"}
	assert.Equal(t, 1.0, counterValue(t, reg, "temporal_workflow_completed_total", completed), "temporal_workflow_completed_total for the probe")
	assert.True(t, replayed.Load(), "the second worker replayed the workflow")
	breaches := map[string]string{"phase": "containment", "workflow_type": "MetricsProbe"}
	assert.Equal(t, 1.0, counterValue(t, reg, NameSLABreaches, breaches), "the breach the first worker counted is not counted again on replay")
	assert.Equal(t, 1.0, counterValue(t, reg, NameTimeToContain, nil), "time to contain recorded once")
	assert.Equal(t, 0.0, counterValue(t, reg, NameRefused, nil), "every SDK series was taken")
	for _, name := range []string{
		"temporal_request_total{",
		"temporal_request_latency_seconds_bucket{",
		"temporal_workflow_task_execution_latency_seconds_bucket{",
		"temporal_activity_execution_latency_seconds_count{",
		"temporal_workflow_endtoend_latency_seconds_count{",
		"temporal_worker_task_slots_available{",
		"temporal_workflow_completed_total{",
	} {
		assert.Contains(t, text, name)
	}
}

// counterValue sums the counter values, or histogram counts, of the series
// of name whose labels include want.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				sum += float64(m.GetHistogram().GetSampleCount())
			default:
				t.Fatalf("%s is a %s", name, f.GetType())
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// quiet keeps the SDK's info chatter out of test output.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(msg string, kv ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"temporal:", msg}, kv...)...)
}
