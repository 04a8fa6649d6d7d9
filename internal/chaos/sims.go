package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/graph"
	iamsim "github.com/offboard/offboard/sandbox/iam"
	"github.com/offboard/offboard/sandbox/ldapdir"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/scimapp"
	secretsim "github.com/offboard/offboard/sandbox/secrets"
)

// Secrets of the chaos simulators, handed to the worker through its environment.
var simEnv = []string{"CHAOS_OKTA_TOKEN=chaos-okta", "CHAOS_SCIM_TOKEN=chaos-scim", "CHAOS_LDAP_PASSWORD=chaos-ldap",
	"CHAOS_AWS_KEY_ID=AKIACHAOSOFFBOARD001", "CHAOS_AWS_SECRET=chaos-aws"}

// sims are the simulators, in this process: they outlive every worker and
// server restart, and their state is the ground truth the tally reads.
type sims struct {
	okta             *oktasim.Sim
	graph            *graph.Sim
	iam              *iamsim.Sim
	crm, wiki        *scimapp.App
	ad               *ldapdir.Server
	urls             map[string]string // target name → base URL
	ldapCA           string
	log              *requestLog
	injectors        []*fault.Injector
	closers          []func()
	dropLDAP, stopAD context.CancelFunc
}

func startSims(ctx context.Context, people []demo.Person, dir string) (*sims, error) {
	s := &sims{urls: map[string]string{}, log: &requestLog{counts: map[string]int{}}}
	inj := func() *fault.Injector { f := fault.New(); s.injectors = append(s.injectors, f); return f }
	s.okta = oktasim.New(oktasim.Options{Token: "chaos-okta", People: people, RateLimitPerMinute: 1 << 30, Faults: inj()})
	var err error
	if s.crm, err = scimapp.New(scimapp.Options{Name: "crm", Bearer: "chaos-scim", PatchSupported: true, People: people, Faults: inj(), RequestsPerSecond: 1 << 20}); err != nil {
		return nil, err
	}
	if s.wiki, err = scimapp.New(scimapp.Options{Name: "wiki", Bearer: "chaos-scim", People: people, Faults: inj(), RequestsPerSecond: 1 << 20}); err != nil {
		return nil, err
	}
	s.graph = graph.New(graph.Options{People: people, Faults: inj(), RequestsPerSecond: 1 << 20})
	s.iam = iamsim.New(iamsim.Options{AccessKeyID: "AKIACHAOSOFFBOARD001", SecretAccessKey: "chaos-aws", People: people, Faults: inj(), RequestsPerSecond: 1 << 20})
	// Secrets Manager beside IAM: the aws target lists owned secrets there (issue 15).
	secrets := secretsim.New(secretsim.Options{AccessKeyID: "AKIACHAOSOFFBOARD001", SecretAccessKey: "chaos-aws", People: people, Faults: inj(), RequestsPerSecond: 1 << 20})
	for name, h := range map[string]http.Handler{"okta": s.okta.Handler(), "entra": s.graph.Handler(), "aws": s.iam.Handler(),
		"aws-secrets": secrets.Handler(), "scim-crm": s.crm.Handler(), "scim-wiki": s.wiki.Handler()} {
		srv := httptest.NewServer(s.log.wrap(name, h))
		s.urls[name] = srv.URL
		// Hung connections are still held at the end: Close alone would wait for them.
		s.closers = append(s.closers, func() { srv.CloseClientConnections(); srv.Close() })
	}
	s.ad, err = ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: "chaos-ldap", People: people, CertDir: filepath.Join(dir, "ldap")})
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	go func() { _ = s.ad.Serve(actx) }()
	s.stopAD = cancel
	s.urls["ad"], s.ldapCA = s.ad.URL(), s.ad.CAFile()
	return s, nil
}

func (s *sims) close() {
	if s.dropLDAP != nil {
		s.dropLDAP()
	}
	for _, c := range s.closers {
		c()
	}
	s.stopAD()
}

// injectFaults makes every HTTP simulator fail share of its API calls: a
// third 503, a quarter 429 with a reset, an eighth hung connections, the rest
// garbage bodies (an HTML-ish page with a 502, as a proxy in front of the API
// sends; with garbage200 some of them come with a 200, which the connectors
// retry on a read and call a permanent failure on a write: an exception, by
// design). The injector tries rules in order, so each rule's
// probability is its share of what the rules before it let through.
// LDAP is not HTTP: AD's connections are dropped every few seconds instead.
func (s *sims) injectFaults(ctx context.Context, share, garbage200 float64) {
	if share <= 0 {
		return
	}
	parts := []struct {
		frac float64
		rule fault.Rule
	}{
		{1.0 / 3, fault.Rule{Status: http.StatusServiceUnavailable}},
		{1.0 / 4, fault.Rule{Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second}},
		{1.0 / 8, fault.Rule{Hang: true}},
		{garbage200, fault.Rule{Garbage: true, Status: http.StatusOK}},
		{1 - 1.0/3 - 1.0/4 - 1.0/8 - garbage200, fault.Rule{Garbage: true, Status: http.StatusBadGateway}},
	}
	left := 1.0
	for _, p := range parts {
		want := share * p.frac
		if want <= 0 {
			continue // a rule's probability 0 means always
		}
		r := p.rule
		r.Probability = want / left
		left -= want
		for _, f := range s.injectors {
			f.Add(r)
		}
	}
	dctx, cancel := context.WithCancel(ctx)
	s.dropLDAP = cancel
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-dctx.Done():
				return
			case <-t.C:
				s.ad.DropConnections()
			}
		}
	}()
}

// requestLog counts the calls each simulator answered itself (not the
// injector) by target, method, path and, for AWS's query API, action and
// user: the request counter the tally reads destructive calls from.
type requestLog struct {
	mu     sync.Mutex
	counts map[string]int // "target METHOD path status-class"
	total  int
	faults int
}

func (l *requestLog) wrap(target string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path
		if target == "aws" && r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			q, _ := url.ParseQuery(string(body))
			key = q.Get("Action")
			// What the action names: the user and the key, policy, device … it acts on.
			for _, p := range []string{"UserName", "AccessKeyId", "PolicyName", "PolicyArn", "SerialNumber", "GroupName",
				"SSHPublicKeyId", "ServiceSpecificCredentialId", "CertificateId"} {
				if v := q.Get(p); v != "" {
					key += " " + p + "=" + v
				}
			}
		}
		rec := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total++
		if rec.Header().Get(fault.FaultHeader) != "" || rec.status == 0 {
			l.faults++ // written by the injector, or a hung connection given up
			return
		}
		if rec.status < 300 {
			l.counts[fmt.Sprintf("%s %s %s", target, r.Method, strings.TrimSpace(key))]++
		}
	})
}

// repeats lists the destructive calls the simulators answered 2xx more than
// once: deleting or deactivating the same user, or an AWS Delete* of the same
// user and key. Removing a group membership twice is harmless and not listed.
func (l *requestLog) repeats() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, n := range l.counts {
		if n > 1 && destructive(strings.Fields(k)) {
			out = append(out, fmt.Sprintf("%s answered 2xx %d times", k, n))
		}
	}
	return out
}

// destructive reads a request-log key: target, method, path (or AWS action, user, key).
func destructive(f []string) bool {
	if len(f) < 3 {
		return false
	}
	seg := strings.Split(strings.Trim(f[2], "/"), "/")
	switch f[0] {
	case "okta": // DELETE /api/v1/users/{id}, POST /api/v1/users/{id}/lifecycle/deactivate
		return f[1] == http.MethodDelete && len(seg) == 4 && seg[2] == "users" ||
			len(seg) == 6 && seg[4] == "lifecycle" && seg[5] == "deactivate"
	case "entra": // DELETE /v1.0/users/{id}
		return f[1] == http.MethodDelete && len(seg) == 3 && seg[1] == "users"
	case "scim-crm", "scim-wiki": // DELETE /scim/v2/Users/{id}
		return f[1] == http.MethodDelete && len(seg) == 4 && seg[2] == "Users"
	case "aws":
		return strings.HasPrefix(f[2], "Delete")
	}
	return false
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
