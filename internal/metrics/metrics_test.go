package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg)
	require.NoError(t, err)
	return m, reg
}

// scrape serves reg through Handler and returns the text exposition, parsed
// back so a malformed exposition fails the test.
func scrape(t *testing.T, reg prometheus.Gatherer) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, "exposition:\n%s", body)
	return string(body), families
}

func TestSDKHandlerExposition(t *testing.T) {
	m, reg := newTest(t)
	root := m.TemporalHandler().WithTags(map[string]string{"namespace": "default", "client_name": "temporal_go"})
	h := root.WithTags(map[string]string{"task-queue": "deprovision", "workflow.type": "Deprovision"})

	h.Counter("temporal_request").Inc(2)
	h.Counter("temporal_request").Inc(1)
	h.Counter("temporal_request").Inc(-5) // counters never go down
	// The same name with another tag set is a second series, not an error.
	root.WithTags(map[string]string{"operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(1)
	h.Gauge("temporal.worker-task-slots.available").Update(7)
	h.Gauge("temporal.worker-task-slots.available").Update(3)
	h.Timer("temporal_activity_execution_latency").Record(150 * time.Millisecond)
	h.Timer("temporal_activity_execution_latency").Record(3 * time.Second)
	m.TemporalHandler().WithTags(map[string]string{"1st": "x", "__reserved": "y", "bad\xffvalue": "v\xff"}).Counter("9lives").Inc(1)

	text, fams := scrape(t, reg)

	tests := []struct {
		name string
		line string
	}{
		{"counter gets _total and labels from tags", `temporal_request_total{client_name="temporal_go",namespace="default",task_queue="deprovision",workflow_type="Deprovision"} 3`},
		{"second label set of one name", `temporal_request_total{client_name="temporal_go",namespace="default",operation="StartWorkflowExecution"} 1`},
		{"gauge keeps the last value, name sanitised", `temporal_worker_task_slots_available{client_name="temporal_go",namespace="default",task_queue="deprovision",workflow_type="Deprovision"} 3`},
		{"timer is a histogram in seconds", `temporal_activity_execution_latency_seconds_count{client_name="temporal_go",namespace="default",task_queue="deprovision",workflow_type="Deprovision"} 2`},
		{"timer sum in seconds", `temporal_activity_execution_latency_seconds_sum{client_name="temporal_go",namespace="default",task_queue="deprovision",workflow_type="Deprovision"} 3.15`},
		{"timer bucket", `temporal_activity_execution_latency_seconds_bucket{client_name="temporal_go",namespace="default",task_queue="deprovision",workflow_type="Deprovision",le="0.25"} 1`},
		{"invalid names and labels sanitised", `_9lives_total{_1st="x",bad_value="v` + "\uFFFD" + `",tag__reserved="y"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Contains(t, text, tt.line+"\n")
		})
	}
	require.Contains(t, fams, "temporal_request_total")
	assert.Equal(t, dto.MetricType_COUNTER, fams["temporal_request_total"].GetType())
	assert.Len(t, fams["temporal_request_total"].GetMetric(), 2)
	require.Contains(t, fams, "temporal_activity_execution_latency_seconds")
	assert.Equal(t, dto.MetricType_HISTOGRAM, fams["temporal_activity_execution_latency_seconds"].GetType())
	assert.Equal(t, dto.MetricType_GAUGE, fams["temporal_worker_task_slots_available"].GetType())
}

func TestSDKHandlerKindClashIsDropped(t *testing.T) {
	m, reg := newTest(t)
	h := m.TemporalHandler()
	h.Gauge("temporal_thing_total").Update(4)
	h.Counter("temporal_thing").Inc(1) // exported as temporal_thing_total too: dropped, not a broken scrape
	_, fams := scrape(t, reg)
	require.Contains(t, fams, "temporal_thing_total")
	assert.Equal(t, dto.MetricType_GAUGE, fams["temporal_thing_total"].GetType())
	assert.Equal(t, 4.0, fams["temporal_thing_total"].GetMetric()[0].GetGauge().GetValue())
}

func TestSDKHandlerConcurrent(t *testing.T) {
	m, reg := newTest(t)
	h := m.TemporalHandler()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			hh := h.WithTags(map[string]string{"worker": string(rune('a' + i%2))})
			for range 100 {
				hh.Counter("temporal_poll").Inc(1)
				hh.Timer("temporal_latency").Record(time.Millisecond)
			}
		})
	}
	wg.Wait()
	_, fams := scrape(t, reg)
	var total float64
	for _, mm := range fams["temporal_poll_total"].GetMetric() {
		total += mm.GetCounter().GetValue()
	}
	assert.Equal(t, 800.0, total)
	assert.Len(t, fams["temporal_poll_total"].GetMetric(), 2)
}

func TestProjectMetrics(t *testing.T) {
	m, reg := newTest(t)
	m.ControlDone("okta", "okta", "suspend", "containment", "observed")
	m.ControlDone("okta", "okta", "suspend", "containment", "observed")
	m.ControlDone("aws", "awsiam", "deny_all_policy", "containment", "failed")
	m.SLABreached("containment")
	m.Contained(1500 * time.Millisecond)
	m.Contained(20 * time.Minute)
	m.ExceptionOpened()
	m.ExceptionOpened()
	m.ExceptionClosed()
	m.Notified("sla_breach", true)
	m.Notified("exception", false)

	assert.Equal(t, 2.0, testutil.ToFloat64(m.controls.WithLabelValues("okta", "okta", "suspend", "containment", "observed")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.controls.WithLabelValues("aws", "awsiam", "deny_all_policy", "containment", "failed")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.slaBreaches.WithLabelValues("containment")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.exceptions))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.notifications.WithLabelValues("sla_breach", "true")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.notifications.WithLabelValues("exception", "false")))

	text, fams := scrape(t, reg)
	assert.Contains(t, text, `offboard_time_to_contain_seconds_bucket{le="0.1"} 0`+"\n")
	assert.Contains(t, text, `offboard_time_to_contain_seconds_bucket{le="2.5"} 1`+"\n")
	assert.Contains(t, text, `offboard_time_to_contain_seconds_bucket{le="900"} 1`+"\n")
	assert.Contains(t, text, `offboard_time_to_contain_seconds_bucket{le="+Inf"} 2`+"\n")
	for _, name := range []string{NameControls, NameSLABreaches, NameTimeToContain, NameExceptionsOpen, NameNotifications} {
		assert.Contains(t, fams, name)
	}
	// The exposition passes Prometheus' own lint.
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// Workflow code emits Offboard's metrics through workflow.GetMetricsHandler,
// which wraps TemporalHandler: the names land on Offboard's series, with the
// SDK's own tags (namespace, workflow_type …) left out.
func TestSDKHandlerRoutesOffboardNames(t *testing.T) {
	m, reg := newTest(t)
	wf := m.TemporalHandler().WithTags(map[string]string{"namespace": "default", "workflow_type": "Deprovision", "task_queue": "deprovision"})

	wf.WithTags(map[string]string{"phase": "containment"}).Counter(NameSLABreaches).Inc(1)
	wf.WithTags(map[string]string{"phase": "removal"}).Counter("offboard_sla_breaches").Inc(1) // without _total works too
	wf.Timer(NameTimeToContain).Record(42 * time.Second)
	wf.Timer("offboard_time_to_contain").Record(time.Second)
	wf.Counter(NameExceptionsOpen).Inc(1)
	wf.Counter(NameExceptionsOpen).Inc(1)
	wf.Counter(NameExceptionsOpen).Inc(-1)
	wf.WithTags(map[string]string{"system": "okta", "kind": "okta", "action": "suspend", "phase": "containment", "outcome": "observed"}).Counter(NameControls).Inc(1)
	wf.WithTags(map[string]string{"kind": "drift", "sent": "true"}).Counter(NameNotifications).Inc(1)
	wf.Timer(NameControls).Record(time.Second) // wrong kind for the name: dropped

	assert.Equal(t, 1.0, testutil.ToFloat64(m.slaBreaches.WithLabelValues("containment")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.slaBreaches.WithLabelValues("removal")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.exceptions))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.controls.WithLabelValues("okta", "okta", "suspend", "containment", "observed")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.notifications.WithLabelValues("drift", "true")))

	text, fams := scrape(t, reg)
	assert.Contains(t, text, "offboard_time_to_contain_seconds_count 2\n")
	assert.Contains(t, text, "offboard_time_to_contain_seconds_sum 43\n")
	assert.Len(t, fams[NameSLABreaches].GetMetric(), 2)
	for _, mm := range fams[NameSLABreaches].GetMetric() {
		assert.Len(t, mm.GetLabel(), 1, "only the phase label")
	}
	assert.NotContains(t, fams, "offboard_controls_total_seconds")
}

func TestDefaultRegistry(t *testing.T) {
	before := testutil.ToFloat64(defaultMetrics.notifications.WithLabelValues("approval_expired", "false"))
	Notified("approval_expired", false)
	ControlDone("scim-crm", "scim", "deactivate", "containment", "acknowledged")
	SLABreached("credentials")
	Contained(time.Second)
	ExceptionOpened()
	ExceptionClosed()
	TemporalHandler().Counter("temporal_default_probe").Inc(1)

	assert.Equal(t, before+1, testutil.ToFloat64(defaultMetrics.notifications.WithLabelValues("approval_expired", "false")))
	text, fams := scrape(t, DefaultRegistry())
	assert.Contains(t, text, `offboard_controls_total{action="deactivate",kind="scim",outcome="acknowledged",phase="containment",system="scim-crm"} 1`)
	assert.Contains(t, text, "temporal_default_probe_total 1\n")
	assert.Contains(t, fams, "go_goroutines", "Go runtime metrics on the default registry")
	assert.Contains(t, fams, "offboard_exceptions_open")
}

func TestNewTwiceOnOneRegistryFails(t *testing.T) {
	_, reg := newTest(t)
	_, err := New(reg)
	assert.Error(t, err)
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, name, label string }{
		{"temporal_request", "temporal_request", "temporal_request"},
		{"temporal.request-latency", "temporal_request_latency", "temporal_request_latency"},
		{"ns:metric", "ns:metric", "ns_metric"},
		{"7days", "_7days", "_7days"},
		{"", "_", "_"},
		{"__name__", "__name__", "tag__name__"},
		{"héllo", "h_llo", "h_llo"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.name, sanitizeName(tt.in))
			assert.Equal(t, tt.label, sanitizeLabel(tt.in))
			assert.True(t, model.LegacyValidation.IsValidMetricName(sanitizeName(tt.in)))
			assert.True(t, model.LegacyValidation.IsValidLabelName(sanitizeLabel(tt.in)))
		})
	}
}
