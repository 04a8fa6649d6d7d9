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

// newTest reports only when flushed.
func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	return newMetrics(reg, 0), reg
}

// flushed reports what m holds and scrapes reg.
func flushed(t *testing.T, m *Metrics, reg prometheus.Gatherer) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	require.NoError(t, m.closer.Close())
	return scrape(t, reg)
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

// scrapeWhen scrapes until the exposition holds every line: the default
// registry's counters and gauges reach it once per ReportInterval.
func scrapeWhen(t *testing.T, reg prometheus.Gatherer, lines ...string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	var text string
	var fams map[string]*dto.MetricFamily
	ok := assert.Eventually(t, func() bool {
		text, fams = scrape(t, reg)
		for _, l := range lines {
			if !strings.Contains(text, l+"\n") {
				return false
			}
		}
		return true
	}, 10*ReportInterval, 20*time.Millisecond)
	if !ok {
		for _, l := range lines {
			assert.Contains(t, text, l+"\n")
		}
		t.FailNow()
	}
	return text, fams
}

func TestSDKHandlerExposition(t *testing.T) {
	m, reg := newTest(t)
	root := m.TemporalHandler().WithTags(map[string]string{"namespace": "default"})
	h := root.WithTags(map[string]string{"task-queue": "deprovision-okta", "workflow.type": "Deprovision"})

	h.Counter("temporal_request").Inc(2)
	h.Counter("temporal_request").Inc(1)
	h.Counter("temporal_request").Inc(-5) // counters never go down
	h.Gauge("temporal.worker-task-slots.available").Update(7)
	h.Gauge("temporal.worker-task-slots.available").Update(3)
	h.Timer("temporal_activity_execution_latency").Record(150 * time.Millisecond)
	h.Timer("temporal_activity_execution_latency").Record(3 * time.Second)
	m.TemporalHandler().WithTags(map[string]string{"bad": "v\xff"}).Counter("temporal_odd").Inc(1)

	const labels = `namespace="default",task_queue="deprovision-okta",workflow_type="Deprovision"`
	tests := []struct {
		name string
		line string
	}{
		{"counter gets _total, tags become labels, values kept", `temporal_request_total{` + labels + `} 3`},
		{"gauge keeps the last value, name sanitised", `temporal_worker_task_slots_available{` + labels + `} 3`},
		{"timer is a histogram in seconds", `temporal_activity_execution_latency_seconds_count{` + labels + `} 2`},
		{"timer sum in seconds", `temporal_activity_execution_latency_seconds_sum{` + labels + `} 3.15`},
		{"timer bucket", `temporal_activity_execution_latency_seconds_bucket{` + labels + `,le="0.25"} 1`},
		{"a value that is not UTF-8 is mended", `temporal_odd_total{bad="v_"} 1`},
	}
	text, fams := flushed(t, m, reg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Contains(t, text, tt.line+"\n") })
	}
	assert.Equal(t, dto.MetricType_COUNTER, fams["temporal_request_total"].GetType())
	assert.Equal(t, dto.MetricType_HISTOGRAM, fams["temporal_activity_execution_latency_seconds"].GetType())
	assert.Equal(t, dto.MetricType_GAUGE, fams["temporal_worker_task_slots_available"].GetType())
}

// A name the registry already holds with other labels, or as another kind,
// is dropped and counted; the scrape still works.
func TestSDKHandlerClashIsCounted(t *testing.T) {
	m, reg := newTest(t)
	h := m.TemporalHandler()
	h.Gauge("temporal_thing_total").Update(4)
	h.Counter("temporal_thing").Inc(1) // exported as temporal_thing_total too
	h.WithTags(map[string]string{"a": "1"}).Timer("temporal_lat").Record(time.Second)
	h.WithTags(map[string]string{"b": "1"}).Timer("temporal_lat").Record(time.Second)
	text, fams := flushed(t, m, reg)
	assert.Contains(t, text, "temporal_thing_total 4\n")
	assert.Contains(t, text, NameRefused+" 2\n")
	assert.Equal(t, dto.MetricType_GAUGE, fams["temporal_thing_total"].GetType())
	assert.Len(t, fams["temporal_lat_seconds"].GetMetric(), 1)
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
	text, fams := flushed(t, m, reg)
	assert.Contains(t, text, `temporal_poll_total{worker="a"} 400`+"\n")
	assert.Contains(t, text, `temporal_poll_total{worker="b"} 400`+"\n")
	assert.Len(t, fams["temporal_poll_total"].GetMetric(), 2)
	assert.Equal(t, uint64(800), fams["temporal_latency_seconds"].GetMetric()[0].GetHistogram().GetSampleCount()+
		fams["temporal_latency_seconds"].GetMetric()[1].GetHistogram().GetSampleCount())
}

// Workflow code emits Offboard's metrics through workflow.GetMetricsHandler,
// which wraps TemporalHandler with the SDK's tags.
func TestOffboardMetrics(t *testing.T) {
	m, reg := newTest(t)
	wf := m.TemporalHandler().WithTags(map[string]string{"namespace": "default", "workflow_type": "Deprovision", "task_queue": "deprovision"})
	const sdk = `namespace="default",task_queue="deprovision",workflow_type="Deprovision"`

	wf.WithTags(map[string]string{"phase": "containment"}).Counter(NameSLABreaches).Inc(1)
	wf.WithTags(map[string]string{"phase": "removal"}).Counter(NameSLABreaches).Inc(1)
	wf.Timer(NameTimeToContain).Record(1500 * time.Millisecond)
	wf.Timer(NameTimeToContain).Record(20 * time.Minute)
	wf.Counter(NameExceptionsOpen).Inc(1)
	wf.Counter(NameExceptionsOpen).Inc(1)
	wf.Counter(NameExceptionsOpen).Inc(-1) // the gauge goes down when an exception closes
	ctl := wf.WithTags(map[string]string{"system": "scim-crm", "kind": "scim", "action": "deactivate", "phase": "containment", "outcome": "observed"})
	ctl.Counter(NameControls).Inc(1)
	ctl.Counter(NameControls).Inc(1)
	m.Notified("sla_breach", true)
	m.Notified("exception", false)

	text, fams := flushed(t, m, reg)
	for _, line := range []string{
		NameSLABreaches + `{namespace="default",phase="containment",task_queue="deprovision",workflow_type="Deprovision"} 1`,
		NameSLABreaches + `{namespace="default",phase="removal",task_queue="deprovision",workflow_type="Deprovision"} 1`,
		`offboard_controls_total{action="deactivate",kind="scim",namespace="default",outcome="observed",phase="containment",system="scim-crm",task_queue="deprovision",workflow_type="Deprovision"} 2`,
		NameExceptionsOpen + " 1",
		NameNotifications + `{kind="sla_breach",sent="true"} 1`,
		NameNotifications + `{kind="exception",sent="false"} 1`,
	} {
		assert.Contains(t, text, line+"\n")
	}
	assert.Contains(t, text, NameTimeToContain+`_bucket{`+sdk+`,le="0.1"} 0`+"\n")
	assert.Contains(t, text, NameTimeToContain+`_bucket{`+sdk+`,le="2.5"} 1`+"\n")
	assert.Contains(t, text, NameTimeToContain+`_bucket{`+sdk+`,le="900"} 1`+"\n")
	assert.Contains(t, text, NameTimeToContain+`_bucket{`+sdk+`,le="+Inf"} 2`+"\n")
	for _, name := range []string{NameControls, NameSLABreaches, NameTimeToContain, NameExceptionsOpen, NameNotifications} {
		assert.Contains(t, fams, name)
	}
	assert.NotContains(t, text, NameRefused+" 1")
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	for _, p := range problems {
		assert.NotContains(t, p.Metric, "offboard_", "lint: %s", p.Text)
	}
}

func TestDefaultRegistry(t *testing.T) {
	Notified("approval_expired", false)
	TemporalHandler().Counter("temporal_default_probe").Inc(1)
	_, fams := scrapeWhen(t, DefaultRegistry(), `offboard_notifications_total{kind="approval_expired",sent="false"} 1`, "temporal_default_probe_total 1")
	assert.Contains(t, fams, "go_goroutines", "Go runtime metrics on the default registry")
}
