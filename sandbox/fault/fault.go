// Package fault injects latency and failures into a simulator's HTTP handler,
// so tests and demos can see how Offboard behaves when a target misbehaves.
//
// Rules are set over HTTP at /_sandbox/faults (JSON), or directly in Go tests:
//
//	POST   /_sandbox/faults   {"pathPrefix":"/api/v1/users","status":503,"probability":0.3}
//	GET    /_sandbox/faults   the rules in force
//	DELETE /_sandbox/faults   clear every rule
package fault

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Rule is one injected fault. A request matches when its method (if set) and
// path prefix (if set) match; then, with the given probability (1 when 0), the
// rule fires: it waits Latency, and then hangs, fails with Status, or passes.
type Rule struct {
	Method      string        `json:"method,omitempty"`
	PathPrefix  string        `json:"pathPrefix,omitempty"`
	Probability float64       `json:"probability,omitempty"`
	Count       int           `json:"count,omitempty"` // fire at most this many times; 0 = no limit
	Latency     time.Duration `json:"latency,omitempty"`
	Status      int           `json:"status,omitempty"` // 0 = pass the request on after Latency
	RetryAfter  time.Duration `json:"retryAfter,omitempty"`
	Hang        bool          `json:"hang,omitempty"` // hold the connection until the client gives up
	// Garbage answers Status (200 when 0) with a body that is not the API's
	// format, without passing the request on: nothing is applied.
	Garbage bool `json:"garbage,omitempty"`
	fired   int
}

// ErrorWriter writes a failure in the simulated API's own error format.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration)

// Injector holds the rules and a base latency added to every call.
type Injector struct {
	mu          sync.Mutex
	rules       []*Rule
	baseLatency time.Duration
	rng         *rand.Rand
}

// New returns an Injector with no rules.
func New() *Injector {
	return &Injector{rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// SetLatency adds d to every request (the bench uses 50 ms to look like a SaaS API).
func (i *Injector) SetLatency(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.baseLatency = d
}

// Add installs a rule.
func (i *Injector) Add(r Rule) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.rules = append(i.rules, &r)
}

// Clear removes every rule and the base latency.
func (i *Injector) Clear() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.rules = nil
	i.baseLatency = 0
}

// Rules returns a copy of the rules in force.
func (i *Injector) Rules() []Rule {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]Rule, 0, len(i.rules))
	for _, r := range i.rules {
		out = append(out, *r)
	}
	return out
}

// pick returns the base latency and the rule that fires for r, if any.
func (i *Injector) pick(r *http.Request) (time.Duration, *Rule) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, rule := range i.rules {
		if rule.Method != "" && !strings.EqualFold(rule.Method, r.Method) {
			continue
		}
		if rule.PathPrefix != "" && !strings.HasPrefix(r.URL.Path, rule.PathPrefix) {
			continue
		}
		if rule.Count > 0 && rule.fired >= rule.Count {
			continue
		}
		if rule.Probability > 0 && i.rng.Float64() >= rule.Probability {
			continue
		}
		rule.fired++
		fired := *rule
		return i.baseLatency, &fired
	}
	return i.baseLatency, nil
}

// Middleware wraps next with the injector. Requests under /_sandbox/ are never faulted.
func (i *Injector) Middleware(next http.Handler, writeErr ErrorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
			next.ServeHTTP(w, r)
			return
		}
		base, rule := i.pick(r)
		wait := base
		if rule != nil {
			wait += rule.Latency
		}
		if !sleep(r, wait) {
			return
		}
		if rule != nil && rule.Hang {
			// Read the body first: only then does the server watch the
			// connection, so the request ends when the client (or a Close)
			// drops it; a POST left unread hung on past the server's Close.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		if rule != nil && rule.Garbage {
			writeGarbage(w, rule.Status)
			return
		}
		if rule != nil && rule.Status != 0 {
			w.Header().Set(FaultHeader, "status")
			writeErr(w, r, rule.Status, rule.RetryAfter)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// FaultHeader marks an answer the injector wrote, so a request log can tell it
// from one the simulated API wrote.
const FaultHeader = "X-Sandbox-Fault"

// writeGarbage answers with a body no API client can read as its format.
func writeGarbage(w http.ResponseWriter, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(FaultHeader, "garbage")
	w.WriteHeader(status)
	_, _ = w.Write([]byte("<html><body>502 upstream \x00\xff{\"id\":"))
}

// sleep waits d unless the client goes away first; it reports whether to carry on.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// AdminHandler serves /_sandbox/faults.
func (i *Injector) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, i.Rules())
		case http.MethodPost:
			var body struct {
				Rule
				BaseLatency *time.Duration `json:"baseLatency,omitempty"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
				http.Error(w, "fault rule: "+err.Error(), http.StatusBadRequest)
				return
			}
			if body.BaseLatency != nil {
				i.SetLatency(*body.BaseLatency)
			}
			if body.Rule != (Rule{}) {
				i.Add(body.Rule)
			}
			w.WriteHeader(http.StatusNoContent)
		case http.MethodDelete:
			i.Clear()
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
