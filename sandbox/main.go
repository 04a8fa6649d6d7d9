// Command sandbox serves local simulators of every target API on loopback,
// seeded with the same demo company, for `make run` and the tests.
//
//	okta  http://127.0.0.1:8101   Okta management API
//	entra http://127.0.0.1:8102   Microsoft Graph v1.0 (users, groups, licences)
//	aws   http://127.0.0.1:8103   AWS IAM + STS Query API (account 123456789012)
//	ad    ldaps://127.0.0.1:8636  Active Directory-shaped LDAP directory (admin view on http://127.0.0.1:8106)
//	crm   http://127.0.0.1:8104   SCIM 2.0 app with PATCH
//	wiki  http://127.0.0.1:8105   SCIM 2.0 app without PATCH (PUT only)
//	siem  http://127.0.0.1:8107   Splunk HTTP Event Collector (GET /counts shows the events by id)
//	hr    http://127.0.0.1:8108   the HR roster: BambooHR's employee directory, Workday Get_Workers
//	secrets http://127.0.0.1:8109 AWS Secrets Manager (same account and credentials as aws): break-glass and rotated secrets
//	idp   http://127.0.0.1:8110   the identity provider's events to the relay: SSF transmitter, Okta event hook (signals.go)
//	rp    http://127.0.0.1:8111   a relying party taking Offboard's SETs (GET /received)
//
// Each answers /_sandbox/faults to inject latency and failures, and
// /_sandbox/users/{login} to show what Offboard did.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/graph"
	"github.com/offboard/offboard/sandbox/hec"
	iamsim "github.com/offboard/offboard/sandbox/iam"
	"github.com/offboard/offboard/sandbox/ldapdir"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/scimapp"
	"github.com/offboard/offboard/sandbox/secrets"
)

// Tokens the embedded default configuration uses; they guard nothing real.
const (
	OktaToken    = "sandbox-okta-token"
	SCIMToken    = "sandbox-scim-token"
	LDAPPassword = "sandbox-ldap-password"
	AWSKeyID     = "AKIASANDBOXOFFBOARD1"
	AWSSecret    = "sandbox-aws-secret"
	HECToken     = "sandbox-hec-token"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on (loopback only)")
	people := flag.Int("people", 200, "how many demo employees to seed")
	latency := flag.Duration("latency", 0, "latency added to every simulated API call")
	state := flag.String("state", ".offboard/sandbox", "where the simulators keep their state and the LDAP directory its CA (the configuration's caFile points here)")
	oktaRate := flag.Int("okta-rate-per-minute", 6000, "Okta rate limit per endpoint bucket")
	relayURL := flag.String("relay", "http://127.0.0.1:8080", "starter serve's base URL, where the event senders send")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if ip := net.ParseIP(*host); *host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fmt.Fprintln(os.Stderr, "sandbox: -host must be a loopback address")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	seed := demo.People(*people)
	faults := func() *fault.Injector {
		f := fault.New()
		f.SetLatency(*latency)
		return f
	}
	okta := oktasim.New(oktasim.Options{Token: OktaToken, People: seed, RateLimitPerMinute: *oktaRate, Faults: faults(), BreakGlass: true})
	crm, err := scimapp.New(scimapp.Options{Name: "crm", Bearer: SCIMToken, PatchSupported: true, People: seed, Faults: faults(), RequestsPerSecond: 1000})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox: crm:", err)
		os.Exit(1)
	}
	wiki, err := scimapp.New(scimapp.Options{Name: "wiki", Bearer: SCIMToken, PatchSupported: false, People: seed, Faults: faults(), RequestsPerSecond: 1000})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox: wiki:", err)
		os.Exit(1)
	}

	ad, err := ldapdir.New(ldapdir.Options{Addr: net.JoinHostPort(*host, "8636"), Password: LDAPPassword, People: seed, CertDir: *state + "/ldap", NonHuman: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox: ldap:", err)
		os.Exit(1)
	}
	logger.Info("simulator listening", "system", "ad", "url", ad.URL(), "caFile", ad.CAFile())

	entra := graph.New(graph.Options{People: seed, Faults: faults(), RequestsPerSecond: 1000})
	aws := iamsim.New(iamsim.Options{AccessKeyID: AWSKeyID, SecretAccessKey: AWSSecret, People: seed, Faults: faults(), RequestsPerSecond: 500})
	idpEvents, err := signals(*relayURL, okta, *host)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox: signals:", err)
		os.Exit(1)
	}
	sm := secrets.New(secrets.Options{AccessKeyID: AWSKeyID, SecretAccessKey: AWSSecret, People: seed, Faults: faults(), RequestsPerSecond: 500})
	servers := []struct {
		name string
		port int
		h    http.Handler
	}{
		{"okta", 8101, okta.Handler()},
		{"entra", 8102, entra.Handler()},
		{"aws", 8103, aws.Handler()},
		{"scim-crm", 8104, crm.Handler()},
		{"scim-wiki", 8105, wiki.Handler()},
		{"ad-admin", 8106, ad.Handler()},
		{"siem-hec", 8107, hec.New(HECToken).Handler()}, // GET /counts shows the events by id
		{"hr", HRPort, hrRoster(seed)},                  // BambooHR directory and Workday Get_Workers (roster.go)
		{"secrets", 8109, sm.Handler()},                 // Secrets Manager: break-glass passwords, rotated keys
		{"idp-events", SignalsPort, idpEvents},          // SSF transmitter and Okta event hook (signals.go)
		{"relying-party", RelyingPartyPort, relyingParty(*relayURL, *host)},
	}
	// What Offboard changed survives a restart of make run, so that resumed
	// workflows find the accounts as they left them, not freshly seeded.
	store := stateStore{dir: *state, logger: logger, sims: map[string]stateful{
		"okta": okta, "entra": entra, "aws": aws, "scim-crm": crm, "scim-wiki": wiki, "ad": ad, "secrets": sm,
	}}
	if err := store.load(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return store.keep(ctx, 5*time.Second) })
	g.Go(func() error { return ad.Serve(ctx) })
	for _, s := range servers {
		addr := net.JoinHostPort(*host, fmt.Sprint(s.port))
		srv := &http.Server{Addr: addr, Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sandbox: %s: %v\n", s.name, err)
			os.Exit(1)
		}
		logger.Info("simulator listening", "system", s.name, "url", "http://"+addr)
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	logger.Info("sandbox ready", "people", len(seed), "example", seed[0].EmployeeID+" "+seed[0].Email)
	if err := g.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}
