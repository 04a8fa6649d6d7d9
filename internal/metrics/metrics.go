// Package metrics is the worker's Prometheus registry: the Temporal SDK's own
// metrics (through a client.MetricsHandler written over client_golang, so no
// tally or OpenTelemetry modules) and Offboard's metrics, served on /metrics.
//
// Offboard's metrics:
//
//	offboard_controls_total{system,kind,action,phase,outcome}  controls settled, by receipt outcome
//	offboard_sla_breaches_total{phase}                          SLA timers that fired before the phase was done
//	offboard_time_to_contain_seconds                            effective time → every containment control holds
//	offboard_exceptions_open                                    controls waiting for retry or waive
//	offboard_notifications_total{kind,sent}                     notifications, and whether a webhook took them
//
// Activities call the package functions (ControlDone, Notified …) directly.
// Workflow code must not: it emits through workflow.GetMetricsHandler(ctx),
// which drops what is recorded during replay, using the names above; the
// handler from TemporalHandler sends those names to the same series.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
)

// Names of Offboard's metrics, for workflow code that emits them through
// workflow.GetMetricsHandler(ctx).
const (
	NameControls       = "offboard_controls_total"
	NameSLABreaches    = "offboard_sla_breaches_total"
	NameTimeToContain  = "offboard_time_to_contain_seconds"
	NameExceptionsOpen = "offboard_exceptions_open"
	NameNotifications  = "offboard_notifications_total"
)

// TimeToContainBuckets run from 0.1 s to the default containment SLA, 15 min.
var TimeToContainBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900}

// Metrics is Offboard's metrics on one registry, and the Temporal SDK handler
// that writes to the same registry.
type Metrics struct {
	controls      *prometheus.CounterVec
	slaBreaches   *prometheus.CounterVec
	timeToContain prometheus.Histogram
	exceptions    prometheus.Gauge
	notifications *prometheus.CounterVec
	sdk           *sdkRegistry
}

// New registers Offboard's metrics on reg. SDK metrics are registered on reg
// as the SDK first emits them.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		controls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameControls,
			Help: "Controls settled, by system, kind, action, phase and receipt outcome (observed, acknowledged, attested, waived, failed).",
		}, []string{"system", "kind", "action", "phase", "outcome"}),
		slaBreaches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameSLABreaches,
			Help: "SLA timers that fired before their phase was done, by phase.",
		}, []string{"phase"}),
		timeToContain: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    NameTimeToContain,
			Help:    "Time from the effective time to every containment control holding.",
			Buckets: TimeToContainBuckets,
		}),
		exceptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: NameExceptionsOpen,
			Help: "Controls in exception, waiting for retry or waive (counted by this process since it started).",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameNotifications,
			Help: "Notifications by kind (sla_breach, exception, drift, approval_expired) and whether a webhook accepted them.",
		}, []string{"kind", "sent"}),
	}
	for _, c := range []prometheus.Collector{m.controls, m.slaBreaches, m.timeToContain, m.exceptions, m.notifications} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.sdk = newSDKRegistry(reg, m.routes())
	return m, nil
}

// ControlDone counts a settled control by its receipt outcome.
func (m *Metrics) ControlDone(system, kind, action, phase, outcome string) {
	m.controls.WithLabelValues(system, kind, action, phase, outcome).Inc()
}

// SLABreached counts a phase that missed its SLA.
func (m *Metrics) SLABreached(phase string) { m.slaBreaches.WithLabelValues(phase).Inc() }

// Contained records the time from the effective time to containment.
func (m *Metrics) Contained(d time.Duration) { m.timeToContain.Observe(d.Seconds()) }

// ExceptionOpened counts a control that became an exception.
func (m *Metrics) ExceptionOpened() { m.exceptions.Inc() }

// ExceptionClosed counts an exception retried successfully or waived.
func (m *Metrics) ExceptionClosed() { m.exceptions.Dec() }

// Notified counts a notification and whether a webhook accepted it.
func (m *Metrics) Notified(kind string, sent bool) {
	m.notifications.WithLabelValues(kind, strconv.FormatBool(sent)).Inc()
}

// TemporalHandler is the client.MetricsHandler for client.Options: the SDK's
// metrics land on the same registry, and Offboard's names emitted through
// workflow.GetMetricsHandler(ctx) land on Offboard's series.
func (m *Metrics) TemporalHandler() client.MetricsHandler { return &sdkHandler{reg: m.sdk} }

// The package default: one registry per process, with Go and process metrics.
var (
	defaultRegistry = prometheus.NewRegistry()
	defaultMetrics  = mustNew(defaultRegistry)
)

func mustNew(reg *prometheus.Registry) *Metrics {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := New(reg)
	if err != nil {
		panic(err)
	}
	return m
}

// Default is the process's Metrics, on DefaultRegistry.
func Default() *Metrics { return defaultMetrics }

// DefaultRegistry is the process's registry, to serve with Handler.
func DefaultRegistry() *prometheus.Registry { return defaultRegistry }

// ControlDone counts a settled control on the default registry.
func ControlDone(system, kind, action, phase, outcome string) {
	defaultMetrics.ControlDone(system, kind, action, phase, outcome)
}

// SLABreached counts a missed SLA on the default registry.
func SLABreached(phase string) { defaultMetrics.SLABreached(phase) }

// Contained records a time to contain on the default registry.
func Contained(d time.Duration) { defaultMetrics.Contained(d) }

// ExceptionOpened counts an opened exception on the default registry.
func ExceptionOpened() { defaultMetrics.ExceptionOpened() }

// ExceptionClosed counts a closed exception on the default registry.
func ExceptionClosed() { defaultMetrics.ExceptionClosed() }

// Notified counts a notification on the default registry.
func Notified(kind string, sent bool) { defaultMetrics.Notified(kind, sent) }

// TemporalHandler is the default registry's client.MetricsHandler.
func TemporalHandler() client.MetricsHandler { return defaultMetrics.TemporalHandler() }

// Handler serves reg in the Prometheus text format. A collector that fails
// does not hide the others.
func Handler(reg prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
