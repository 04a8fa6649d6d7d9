package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// SDKTimerBuckets are the buckets of the SDK's latency histograms, in
// seconds: RPCs and tasks in milliseconds, long polls and workflows in minutes.
var SDKTimerBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600}

type kind int

const (
	counterKind kind = iota
	gaugeKind
	timerKind
)

func (k kind) String() string { return [...]string{"counter", "gauge", "timer"}[k] }

// exportName is what Prometheus sees: counters end in _total, timers become
// histograms in seconds ending in _seconds (as in Temporal's Grafana
// dashboards: temporal_request_total, temporal_request_latency_seconds_bucket).
func exportName(name string, k kind) string {
	n := sanitizeName(name)
	switch k {
	case counterKind:
		if !strings.HasSuffix(n, "_total") {
			n += "_total"
		}
	case timerKind:
		if !strings.HasSuffix(n, "_seconds") {
			n += "_seconds"
		}
	}
	return n
}

// route is one of Offboard's own metrics, reachable by name through the SDK
// handler so workflow code can emit it replay-safely.
type route struct {
	labels  []string
	counter func(values []string, delta int64)
	gauge   func(values []string, v float64)
	timer   func(values []string, d time.Duration)
}

func (m *Metrics) routes() map[string]route {
	return map[string]route{
		NameControls: {labels: []string{"system", "kind", "action", "phase", "outcome"}, counter: func(v []string, d int64) {
			if d > 0 {
				m.controls.WithLabelValues(v...).Add(float64(d))
			}
		}},
		NameSLABreaches: {labels: []string{"phase"}, counter: func(v []string, d int64) {
			if d > 0 {
				m.slaBreaches.WithLabelValues(v...).Add(float64(d))
			}
		}},
		NameTimeToContain: {timer: func(_ []string, d time.Duration) { m.timeToContain.Observe(d.Seconds()) }},
		// A counter may step the gauge both ways: Inc(1) on open, Inc(-1) on close.
		NameExceptionsOpen: {
			counter: func(_ []string, d int64) { m.exceptions.Add(float64(d)) },
			gauge:   func(_ []string, v float64) { m.exceptions.Set(v) },
		},
		NameNotifications: {labels: []string{"kind", "sent"}, counter: func(v []string, d int64) {
			if d > 0 {
				m.notifications.WithLabelValues(v...).Add(float64(d))
			}
		}},
	}
}

// sdkRegistry holds the families the SDK has emitted so far.
type sdkRegistry struct {
	reg      prometheus.Registerer
	routes   map[string]route
	mu       sync.Mutex
	families map[string]*family
}

func newSDKRegistry(reg prometheus.Registerer, routes map[string]route) *sdkRegistry {
	return &sdkRegistry{reg: reg, routes: routes, families: map[string]*family{}}
}

// route finds one of Offboard's metrics by the name as given or as exported.
func (r *sdkRegistry) route(name string, k kind) (route, bool) {
	if rt, ok := r.routes[sanitizeName(name)]; ok {
		return rt, true
	}
	rt, ok := r.routes[exportName(name, k)]
	return rt, ok
}

// family returns the family for name, registering it on first use; nil when
// the name is already taken by a metric of another kind (dropped, never a
// failed scrape).
func (r *sdkRegistry) family(name string, k kind) *family {
	n := exportName(name, k)
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.families[n]; ok {
		if f.kind != k {
			return nil
		}
		return f
	}
	f := &family{name: n, kind: k, help: "Temporal SDK " + k.String() + " " + name + ".", vecs: map[string]prometheus.Collector{}}
	if err := r.reg.Register(f); err != nil {
		return nil
	}
	r.families[n] = f
	return f
}

// family is one metric name. The SDK emits a name with different tag sets
// from different places, so it holds one vector per set of label names and
// describes nothing up front (an unchecked collector): the registry accepts
// series of one name with different labels.
type family struct {
	name, help string
	kind       kind
	mu         sync.RWMutex
	vecs       map[string]prometheus.Collector // by label names joined with ","
}

func (f *family) Describe(chan<- *prometheus.Desc) {}

func (f *family) Collect(ch chan<- prometheus.Metric) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, v := range f.vecs {
		v.Collect(ch)
	}
}

func (f *family) vec(labels []string) prometheus.Collector {
	key := strings.Join(labels, ",")
	f.mu.RLock()
	v, ok := f.vecs[key]
	f.mu.RUnlock()
	if ok {
		return v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.vecs[key]; ok {
		return v
	}
	switch f.kind {
	case counterKind:
		v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: f.name, Help: f.help}, labels)
	case gaugeKind:
		v = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: f.name, Help: f.help}, labels)
	default:
		v = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: f.name, Help: f.help, Buckets: SDKTimerBuckets}, labels)
	}
	f.vecs[key] = v
	return v
}

// sdkHandler implements client.MetricsHandler; tags become labels.
type sdkHandler struct {
	reg    *sdkRegistry
	tags   map[string]string // sanitised label name → value
	names  []string          // sorted label names
	values []string          // in the order of names
}

var _ client.MetricsHandler = (*sdkHandler)(nil)

// WithTags returns a handler whose metrics carry tags too; a tag already set
// is overwritten.
func (h *sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(h.tags)
	if merged == nil {
		merged = make(map[string]string, len(tags))
	}
	// Sorted, so two tags that sanitise to one label resolve the same way every time.
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		merged[sanitizeLabel(k)] = strings.ToValidUTF8(tags[k], "\uFFFD")
	}
	out := &sdkHandler{reg: h.reg, tags: merged, names: slices.Sorted(maps.Keys(merged))}
	out.values = make([]string, len(out.names))
	for i, n := range out.names {
		out.values[i] = merged[n]
	}
	return out
}

// valuesFor picks the values of an Offboard metric's labels; missing ones are "".
func (h *sdkHandler) valuesFor(labels []string) []string {
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = h.tags[l]
	}
	return out
}

func (h *sdkHandler) Counter(name string) client.MetricsCounter {
	if r, ok := h.reg.route(name, counterKind); ok {
		if r.counter == nil {
			return nopMetric{}
		}
		values := h.valuesFor(r.labels)
		return counterFunc(func(d int64) { r.counter(values, d) })
	}
	f := h.reg.family(name, counterKind)
	if f == nil {
		return nopMetric{}
	}
	c, err := f.vec(h.names).(*prometheus.CounterVec).GetMetricWithLabelValues(h.values...)
	if err != nil {
		return nopMetric{}
	}
	return counterFunc(func(d int64) {
		if d > 0 {
			c.Add(float64(d))
		}
	})
}

func (h *sdkHandler) Gauge(name string) client.MetricsGauge {
	if r, ok := h.reg.route(name, gaugeKind); ok {
		if r.gauge == nil {
			return nopMetric{}
		}
		values := h.valuesFor(r.labels)
		return gaugeFunc(func(v float64) { r.gauge(values, v) })
	}
	f := h.reg.family(name, gaugeKind)
	if f == nil {
		return nopMetric{}
	}
	g, err := f.vec(h.names).(*prometheus.GaugeVec).GetMetricWithLabelValues(h.values...)
	if err != nil {
		return nopMetric{}
	}
	return gaugeFunc(g.Set)
}

func (h *sdkHandler) Timer(name string) client.MetricsTimer {
	if r, ok := h.reg.route(name, timerKind); ok {
		if r.timer == nil {
			return nopMetric{}
		}
		values := h.valuesFor(r.labels)
		return timerFunc(func(d time.Duration) { r.timer(values, d) })
	}
	f := h.reg.family(name, timerKind)
	if f == nil {
		return nopMetric{}
	}
	o, err := f.vec(h.names).(*prometheus.HistogramVec).GetMetricWithLabelValues(h.values...)
	if err != nil {
		return nopMetric{}
	}
	return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

type nopMetric struct{}

func (nopMetric) Inc(int64)            {}
func (nopMetric) Update(float64)       {}
func (nopMetric) Record(time.Duration) {}

// sanitizeName maps a name onto [a-zA-Z_:][a-zA-Z0-9_:]*.
func sanitizeName(s string) string { return sanitize(s, true) }

// sanitizeLabel maps a tag name onto [a-zA-Z_][a-zA-Z0-9_]*, never starting
// with the reserved "__".
func sanitizeLabel(s string) string {
	n := sanitize(s, false)
	if strings.HasPrefix(n, "__") {
		n = "tag" + n
	}
	return n
}

func sanitize(s string, colon bool) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s) + 1)
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (colon && r == ':') || (i > 0 && r >= '0' && r <= '9')
		switch {
		case ok:
			b.WriteRune(r)
		case i == 0 && r >= '0' && r <= '9':
			b.WriteByte('_')
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
