// Package relay is `starter serve`: it receives HR systems' webhooks,
// checks who sent them, turns them into Terminations and starts (or
// rescinds) the person's Deprovision run; and it serves the operator API
// through which people approve, hold, rescind and read runs.
package relay

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/hris"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/workflows"
)

// MaxBody is the largest request body accepted (413 above it).
const MaxBody = 1 << 20

// Config is everything the relay needs, passed by value.
type Config struct {
	Relay config.Relay
	// Roles are the role names a role change may name: the keys of the
	// configuration's roles map. A role change to any other is ignored.
	Roles []string
	// BambooHR reads employees for event-based webhooks; nil builds a
	// hris.BambooClient from Relay.Sources.BambooHR's API settings.
	BambooHR hris.BambooAPI
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// SignalWait bounds how long a signal's reply waits for the workflow's
	// verdict (accepted or refused); 0 is DefaultSignalWait.
	SignalWait time.Duration
	// Edge is the HR edge's memory; nil keeps it in Temporal (TemporalEdge).
	Edge Edge
	// Transmitter is published at /.well-known/ssf-configuration (ssf.go); nil: not a transmitter.
	Transmitter *config.SIEMSSF
	// Events sends people's decisions to the SIEM (operator.go); nil: none.
	Events *siem.Emitter
}

// Edge is what the HR edge remembers across requests: the blast-radius
// guard's counts and the signed deliveries already acted on. It must be
// durable and shared by every relay replica (and the CLI), so it lives in
// Temporal, not in a process.
type Edge interface {
	// Admit asks the blast-radius guard about one event (runs.Admit).
	Admit(ctx context.Context, a workflows.Admission) (workflows.AdmitVerdict, error)
	// Seen reports whether a signed delivery was acted on (runs.DeliverySeen).
	Seen(ctx context.Context, digest string) (bool, error)
	// Remember records one until its signature is stale (runs.RememberDelivery).
	Remember(ctx context.Context, digest string, until time.Time) error
}

// TemporalEdge keeps the HR edge's memory in Temporal: the guard workflow
// and one workflow id per signed delivery.
type TemporalEdge struct{ C client.Client }

func (e TemporalEdge) Admit(ctx context.Context, a workflows.Admission) (workflows.AdmitVerdict, error) {
	return runs.Admit(ctx, e.C, a)
}

func (e TemporalEdge) Seen(ctx context.Context, digest string) (bool, error) {
	return runs.DeliverySeen(ctx, e.C, digest)
}

func (e TemporalEdge) Remember(ctx context.Context, digest string, until time.Time) error {
	return runs.RememberDelivery(ctx, e.C, digest, until)
}

// DefaultSignalWait is how long a signal's reply waits for the workflow to
// log its verdict: a running worker takes tens of milliseconds.
const DefaultSignalWait = 5 * time.Second

// ConfigFrom builds the relay's Config from the configuration file's
// relay section and roles map.
func ConfigFrom(r config.Relay, roles map[string]config.RoleGroups) Config {
	cfg := Config{Relay: r}
	for name := range roles {
		cfg.Roles = append(cfg.Roles, name)
	}
	return cfg
}

// Relay is the HTTP service.
type Relay struct {
	cfg     config.Relay
	c       client.Client
	log     *slog.Logger
	now     func() time.Time
	bamboo  *hmacSource[hris.BambooHR]
	workday *workdaySource
	generic *hmacSource[hris.Generic]
	okta    *oktaHook       // Okta Event Hooks (oktahooks.go); nil: not configured
	ssfIn   *ssfReceiver    // Shared Signals receiver (ssf.go); nil: not configured
	ssfOut  *ssfTransmitter // Shared Signals transmitter metadata (ssf.go); nil: none
	events  *siem.Emitter   // decisions to the SIEM; nil: none
	tokens  []token
	roles   map[string]bool
	edge    Edge
	metrics *metrics
	handler http.Handler
	// signalWait bounds the wait for a decision's verdict.
	signalWait time.Duration
	// decisionKey signs people's decisions (operator.go); nil: none configured.
	decisionKey ed25519.PrivateKey
	// oidc checks identity-provider access tokens (auth.go); nil: tokens only.
	oidc *operatorOIDC
}

// New reads every secret once (a missing one fails here, not on the first
// webhook) and builds the routes.
func New(cfg Config, c client.Client, logger *slog.Logger) (*Relay, error) {
	if c == nil {
		return nil, errors.New("relay: a Temporal client is required")
	}
	if logger == nil {
		logger = slog.Default()
	}
	rc := cfg.Relay.WithDefaults()
	if err := rc.Validate(); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	rl := &Relay{cfg: rc, c: c, log: logger, now: cfg.Now, metrics: newMetrics(), signalWait: cfg.SignalWait}
	if rl.now == nil {
		rl.now = time.Now
	}
	if rl.signalWait <= 0 {
		rl.signalWait = DefaultSignalWait
	}
	if rl.edge = cfg.Edge; rl.edge == nil {
		rl.edge = TemporalEdge{C: c}
	}
	if cfg.Roles != nil {
		rl.roles = map[string]bool{}
		for _, r := range cfg.Roles {
			rl.roles[r] = true
		}
	}
	var err error
	if b := rc.Sources.BambooHR; b != nil {
		loc, lerr := time.LoadLocation(b.TimeZone)
		if lerr != nil {
			return nil, fmt.Errorf("relay: bamboohr time zone: %w", lerr)
		}
		api := cfg.BambooHR
		if api == nil && b.APIKey.IsSet() {
			key, kerr := b.APIKey.Value()
			if kerr != nil {
				return nil, fmt.Errorf("relay: bamboohr apiKey: %w", kerr)
			}
			api = &hris.BambooClient{BaseURL: b.APIBaseURL, CompanyDomain: b.CompanyDomain, APIKey: key, HTTP: &http.Client{Timeout: 10 * time.Second}}
		}
		rl.bamboo = &hmacSource[hris.BambooHR]{parser: hris.BambooHR{API: api, Location: loc, Now: rl.now}}
		if rl.bamboo.secrets, err = readSecrets("bamboohr", b.Secrets); err != nil {
			return nil, err
		}
	}
	if g := rc.Sources.Generic; g != nil {
		loc, lerr := time.LoadLocation(g.TimeZone)
		if lerr != nil {
			return nil, fmt.Errorf("relay: generic time zone: %w", lerr)
		}
		rl.generic = &hmacSource[hris.Generic]{parser: hris.Generic{Location: loc, Now: rl.now}}
		if rl.generic.secrets, err = readSecrets("generic", g.Secrets); err != nil {
			return nil, err
		}
	}
	if w := rc.Sources.Workday; w != nil {
		loc, lerr := time.LoadLocation(w.TimeZone)
		if lerr != nil {
			return nil, fmt.Errorf("relay: workday time zone: %w", lerr)
		}
		rl.workday = &workdaySource{parser: hris.Workday{Location: loc, Now: rl.now}}
		for i, u := range w.Users {
			pw, perr := u.Password.Value()
			if perr != nil {
				return nil, fmt.Errorf("relay: workday user %d password: %w", i, perr)
			}
			// An empty file would let anyone in with the username alone.
			if pw == "" {
				return nil, fmt.Errorf("relay: relay.sources.workday.users.%d.password (%s) is empty", i, u.Password)
			}
			rl.workday.users = append(rl.workday.users, newBasicUser(u.Username, pw))
		}
	}
	if rl.tokens, err = parseTokens(rc.Tokens); err != nil {
		return nil, err
	}
	if rl.decisionKey, err = LoadDecisionKey(rc.DecisionKey); err != nil {
		return nil, err
	}
	if rl.okta, err = newOktaHook(context.Background(), rc.Sources.Okta); err != nil {
		return nil, err
	}
	if rl.ssfIn, err = newSSFReceiver(context.Background(), rc.Sources.SSF, rl.now); err != nil {
		return nil, err
	}
	if rl.ssfOut, err = newSSFTransmitter(cfg.Transmitter); err != nil {
		return nil, err
	}
	rl.events = cfg.Events
	rl.oidc = newOperatorOIDC(rc.OIDC)
	rl.handler = rl.routes()
	return rl, nil
}

// Handler serves every route.
func (rl *Relay) Handler() http.Handler { return rl.handler }

func (rl *Relay) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hris/bamboohr", rl.handleBambooHR)
	mux.HandleFunc("POST /hris/workday", rl.handleWorkday)
	mux.HandleFunc("POST /hris/generic", rl.handleGeneric)
	mux.HandleFunc("/hooks/okta", rl.handleOktaHook) // GET verifies the hook, POST delivers events
	mux.HandleFunc("POST "+SSFEventsPath, rl.handleSSFEvents)
	mux.HandleFunc("GET "+SSFConfigPath, rl.handleSSFConfiguration)
	mux.HandleFunc("GET "+SSFJWKSPath, rl.handleSSFJWKS)
	mux.HandleFunc("POST /deprovisions/release-quarantine", rl.operator(roleSet(config.RoleSecurity), rl.handleReleaseQuarantine))
	mux.HandleFunc("POST /deprovisions/{employeeId}/{action}", rl.handleDecision)
	mux.HandleFunc("GET /deprovisions/{employeeId}", rl.operator(roleSet(config.RoleAuditor, config.RoleHR, config.RoleSecurity), rl.handleStatus))
	mux.HandleFunc("GET /exceptions", rl.operator(roleSet(config.RoleAuditor, config.RoleSecurity), rl.handleExceptions))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", rl.handleReady)
	mux.Handle("GET /metrics", rl.metrics.handler())
	return rl.instrument(mux)
}

func (rl *Relay) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := rl.c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "temporal: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Serve listens on addr until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("relay: listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h)
}

// ServeListener serves on ln until ctx ends; requests in flight get 15 s to finish.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("relay: serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("relay: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("relay: serve: %w", err)
	}
	return nil
}

// instrument records every request's route, status and latency.
func (rl *Relay) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		rl.metrics.observe(route, rec.status, time.Since(start))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"status": "rejected", "error": msg})
}
