package relay

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics live in the relay's own registry, so two relays (tests) never collide.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	webhooks    *prometheus.CounterVec
	quarantined *prometheus.CounterVec
	signals     *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offboard_relay_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "offboard_relay_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offboard_relay_webhooks_total",
			Help: "HR events by source and outcome (started, duplicate, rescinded, ignored, rejected, unauthorized, unavailable).",
		}, []string{"source", "outcome"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offboard_relay_quarantined_total", Help: "Terminations started quarantined by the blast-radius guard.",
		}, []string{"source"}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offboard_relay_signals_total", Help: "Operator signals sent by signal and role.",
		}, []string{"signal", "role"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.webhooks, m.quarantined, m.signals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) webhook(source, outcome string) { m.webhooks.WithLabelValues(source, outcome).Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
