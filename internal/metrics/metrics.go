// Package metrics is the worker's Prometheus registry. The Temporal SDK's
// metrics reach it through the SDK's own contrib handler (tally, with tally's
// Prometheus reporter, as temporalio/samples-go metrics/ does), named as in
// Temporal's dashboards: counters end in _total, timers are histograms in
// seconds ending in _seconds.
//
// Offboard's metrics travel the same way:
//
//	offboard_controls_total{system,kind,action,phase,outcome}  controls settled, by receipt outcome
//	offboard_sla_breaches_total{phase}                          SLA timers that fired before the phase was done
//	offboard_time_to_contain_seconds                            effective time → every containment control holds
//	offboard_exceptions_open                                    controls waiting for retry or waive
//	offboard_notifications_total{kind,sent}                     notifications, and whether a webhook took them
//
// Workflow code emits them through workflow.GetMetricsHandler(ctx), which
// records nothing during replay (the SDK adds its namespace, task_queue and
// workflow_type labels); activities call Notified.
package metrics

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Names of Offboard's metrics, as workflow code emits them.
const (
	NameControls       = "offboard_controls_total"
	NameSLABreaches    = "offboard_sla_breaches_total"
	NameTimeToContain  = "offboard_time_to_contain_seconds"
	NameExceptionsOpen = "offboard_exceptions_open"
	NameNotifications  = "offboard_notifications_total"
	// NameRefused counts series the registry refused: a name emitted with
	// two sets of labels, or as two kinds of metric.
	NameRefused = "offboard_metrics_refused_total"
)

// TimerBuckets are the buckets of every timer's histogram, in seconds: RPCs
// and tasks in milliseconds, long polls and workflows in minutes, and time
// to contain up to the default containment SLA (15 min).
var TimerBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600}

// ReportInterval is how often counters and gauges reach the registry;
// timers reach it at once.
const ReportInterval = time.Second

// Metrics is a tally scope reporting to one Prometheus registry, and the
// Temporal SDK handler over it.
type Metrics struct {
	handler client.MetricsHandler
	closer  io.Closer // reports what is pending and stops the reporting
}

// New reports to reg, counters and gauges every ReportInterval.
func New(reg prometheus.Registerer) *Metrics { return newMetrics(reg, ReportInterval) }

// newMetrics reports every interval; with 0 only when closed (tests).
func newMetrics(reg prometheus.Registerer, interval time.Duration) *Metrics {
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: NameRefused,
		Help: "Metric series the registry refused: a name emitted with two sets of labels, or as two kinds of metric."})
	reg.MustRegister(refused)
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: TimerBuckets,
		OnRegisterError:         func(error) { refused.Inc() }, // the series is dropped, the scrape still works
	})
	root, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:         reporter,
		Separator:              tallyprom.DefaultSeparator,
		SanitizeOptions:        &sanitize,
		OmitCardinalityMetrics: true,
	}, interval)
	scope := sdktally.NewPrometheusNamingScope(root)
	return &Metrics{handler: handler{sdktally.NewMetricsHandler(scope), &sum{g: scope.Gauge(NameExceptionsOpen)}}, closer: closer}
}

// sanitize keeps names and label names to Prometheus' [a-zA-Z0-9_] and
// label values as they are (task queues such as deprovision-okta), except
// bytes that are not UTF-8.
var sanitize = tally.SanitizeOptions{
	NameCharacters:       sdktally.PrometheusSanitizeOptions.NameCharacters,
	KeyCharacters:        sdktally.PrometheusSanitizeOptions.KeyCharacters,
	ValueCharacters:      tally.ValidCharacters{Ranges: []tally.SanitizeRange{{0, utf8.RuneError - 1}, {utf8.RuneError + 1, utf8.MaxRune}}},
	ReplacementCharacter: tally.DefaultReplacementCharacter,
}

// TemporalHandler is the client.MetricsHandler for client.Options.
func (m *Metrics) TemporalHandler() client.MetricsHandler { return m.handler }

// Notified counts a notification and whether a webhook accepted it.
func (m *Metrics) Notified(kind string, sent bool) {
	m.handler.WithTags(map[string]string{"kind": kind, "sent": strconv.FormatBool(sent)}).Counter(NameNotifications).Inc(1)
}

// handler is the SDK's tally handler, but for offboard_exceptions_open:
// workflow code steps it by ±1 as a counter, and a Prometheus counter cannot
// go down, so it is summed into a gauge of this process.
type handler struct {
	client.MetricsHandler
	open *sum
}

func (h handler) WithTags(tags map[string]string) client.MetricsHandler {
	return handler{h.MetricsHandler.WithTags(tags), h.open}
}

func (h handler) Counter(name string) client.MetricsCounter {
	if name == NameExceptionsOpen {
		return h.open
	}
	return upOnly{h.MetricsHandler.Counter(name)}
}

// upOnly drops negative steps: tally would report them to a Prometheus
// counter, which panics going down.
type upOnly struct{ client.MetricsCounter }

func (c upOnly) Inc(d int64) {
	if d > 0 {
		c.MetricsCounter.Inc(d)
	}
}

type sum struct {
	mu sync.Mutex
	v  float64
	g  tally.Gauge
}

func (s *sum) Inc(d int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v += float64(d)
	s.g.Update(s.v)
}

// The package default: one registry per process, with Go and process metrics.
var (
	defaultRegistry = prometheus.NewRegistry()
	defaultMetrics  = newDefault()
)

func newDefault() *Metrics {
	defaultRegistry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return New(defaultRegistry)
}

// DefaultRegistry is the process's registry, to serve with Handler.
func DefaultRegistry() *prometheus.Registry { return defaultRegistry }

// TemporalHandler is the default registry's client.MetricsHandler.
func TemporalHandler() client.MetricsHandler { return defaultMetrics.TemporalHandler() }

// Notified counts a notification on the default registry.
func Notified(kind string, sent bool) { defaultMetrics.Notified(kind, sent) }

// Handler serves reg in the Prometheus text format. A collector that fails
// does not hide the others.
func Handler(reg prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
