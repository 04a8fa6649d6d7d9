// Command chaos runs the Deprovision workflow's invariants at system level
// (issue #12): N terminations arrive as signed generic webhooks at the relay
// (starter serve), as an HR system sends them, while
//
//   - the worker process is killed with SIGKILL k times and restarted;
//   - the Temporal dev server (SQLite in a file, as make run starts it) is
//     restarted once;
//   - every HTTP simulator fails a share of its API calls (5xx, 429 with a
//     reset, hung connections, garbage bodies) and AD's LDAP connections are
//     dropped every 5 s.
//
// It then counts, from the simulators' own state and request log and from
// the workflows (visibility and the status query): contained, removed, in
// exception, destructive calls applied more than once, webhooks accepted but
// never started, evidence bundles missing; prints a table and exits 1 on any
// loss or unsafe repeat.
//
//	go run ./internal/chaos -n 500 -kills 5
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/relay"
	"github.com/offboard/offboard/sandbox/demo"
)

const webhookSecret = "chaos-webhook-secret"

type options struct {
	n, kills   int
	faultShare float64
	garbage200 float64
	every      time.Duration // between chaos events
	settle     time.Duration // how long runs may take to close after the last event
	dir        string
	stack      bool // Temporal on PostgreSQL (scripts/stack.sh temporal) instead of the dev server
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 500, "terminations sent through the relay")
	flag.IntVar(&o.kills, "kills", 5, "times the worker is killed with SIGKILL and restarted")
	flag.Float64Var(&o.faultShare, "faults", 0.3, "share of every simulator's API calls that fail")
	flag.Float64Var(&o.garbage200, "garbage200", 0, "share of the faults that are garbage bodies with a 200 (a read retries them; a write ends its control in an exception)")
	flag.DurationVar(&o.every, "every", 20*time.Second, "time between chaos events (worker kills, the server restart)")
	flag.DurationVar(&o.settle, "settle", 20*time.Minute, "how long runs may take to close or wait on a person after the last chaos event")
	flag.StringVar(&o.dir, "dir", ".offboard/chaos", "state and logs (emptied first)")
	flag.BoolVar(&o.stack, "stack", false, "run Temporal as the production stack does (scripts/stack.sh temporal: the server on PostgreSQL); its restart stops and starts both")
	flag.Parse()
	code, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(o options) (int, error) {
	ctx := context.Background()
	t0 := time.Now()
	root, err := os.Getwd()
	if err != nil {
		return 0, err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return 0, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}

	people := demo.People(o.n)
	sims, err := startSims(ctx, people, dir)
	if err != nil {
		return 0, err
	}
	defer sims.close()

	hostPort, namespace := "", "default"
	var server *proc
	if o.stack {
		server, hostPort, namespace = stackServer(root, dir)
	} else if hostPort, err = freeAddr(); err != nil {
		return 0, err
	} else {
		server = devServer(root, dir, hostPort)
	}
	metrics, err := freeAddr()
	if err != nil {
		return 0, err
	}
	listen, err := freeAddr()
	if err != nil {
		return 0, err
	}
	key := filepath.Join(dir, "evidence.key")
	if out, err := exec.Command(filepath.Join(root, "bin", "starter"), "evidence", "keygen", "--out", key).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("evidence keygen: %v: %s", err, out)
	}
	cfgPath := filepath.Join(dir, "offboard.yaml")
	evidenceDir := filepath.Join(dir, "evidence")
	if err := os.WriteFile(cfgPath, []byte(chaosConfig(hostPort, namespace, metrics, listen, evidenceDir, key, sims)), 0o600); err != nil {
		return 0, err
	}

	env := append([]string{"OFFBOARD_CONFIG=" + cfgPath, "CHAOS_WEBHOOK_SECRET=" + webhookSecret}, simEnv...)
	worker := &proc{name: "worker", args: []string{filepath.Join(root, "bin", "worker"), "-config", cfgPath}, env: env,
		log: filepath.Join(dir, "worker.log"), ready: httpReady("http://" + metrics + "/healthz")}
	starter := &proc{name: "starter", args: []string{filepath.Join(root, "bin", "starter"), "serve", "-config", cfgPath}, env: env,
		log: filepath.Join(dir, "starter.log"), ready: httpReady("http://" + listen + "/readyz")}
	fmt.Fprintf(os.Stderr, "chaos: %d terminations, %d worker kills, 1 server restart, %.0f %% of simulator calls failing; logs in %s\n",
		o.n, o.kills, 100*o.faultShare, dir)
	for _, p := range []*proc{server, worker, starter} {
		if err := p.start(ctx); err != nil {
			return 0, err
		}
		defer p.kill(syscall.SIGTERM)
	}
	c, err := client.Dial(client.Options{HostPort: hostPort, Namespace: namespace, Logger: nopLogger{}})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	sims.injectFaults(ctx, o.faultShare, o.garbage200)

	// HR sends while the chaos runs; both end before the settling starts.
	var sent sender
	var wg sync.WaitGroup
	wg.Add(1)
	// Spread over most of the chaos, so webhooks also arrive while the server restarts.
	window := time.Duration(max(o.kills, 1)) * o.every * 4 / 5
	go func() { defer wg.Done(); sent.send(ctx, "http://"+listen+"/hris/generic", people, window) }()
	chaosErr := chaos(ctx, o, server, worker, sims)
	wg.Wait()
	if chaosErr != nil {
		return 0, chaosErr
	}
	fmt.Fprintf(os.Stderr, "chaos: %d webhooks accepted (%d refused or failed and sent again); waiting for the runs to settle…\n", len(sent.accepted), sent.retries.Load())

	settled, err := settle(ctx, c, o.settle, worker)
	if err != nil {
		return 0, err
	}
	if settled {
		waitEvidence(ctx, c, evidenceDir, 3*time.Minute)
	}
	t := tally(ctx, c, people, &sent, sims, evidenceDir)
	t.settled = settled
	t.wall = time.Since(t0)
	t.kills, t.serverRestarts, t.workerStarts = o.kills, server.started-1, worker.started
	t.faultShare = o.faultShare
	t.print(os.Stdout, o.n)
	b, _ := json.MarshalIndent(t.figures(o.n), "", "  ")
	_ = os.WriteFile(filepath.Join(dir, "chaos.json"), append(b, '\n'), 0o644)
	if t.failed() {
		return 1, nil
	}
	return 0, nil
}

// chaos kills the worker every o.every, o.kills times, and restarts the
// server once, between the middle kill and the worker's restart.
func chaos(ctx context.Context, o options, server, worker *proc, s *sims) error {
	for i := 1; i <= o.kills || (o.kills == 0 && i == 1); i++ {
		time.Sleep(o.every)
		if o.kills > 0 {
			fmt.Fprintf(os.Stderr, "chaos: SIGKILL worker (%d/%d)\n", i, o.kills)
			worker.kill(syscall.SIGKILL)
		}
		if i == (o.kills+1)/2 || o.kills == 0 {
			fmt.Fprintln(os.Stderr, "chaos: restarting the Temporal dev server")
			server.kill(syscall.SIGTERM)
			time.Sleep(2 * time.Second)
			if err := server.start(ctx); err != nil {
				return err
			}
		}
		if !worker.alive() {
			if err := worker.start(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// settle waits until every Deprovision run has closed or waits on a person
// (an open exception, or an approver policy asks for), and no Archiver is still running; a worker that
// exited on its own is restarted (and counted).
func settle(ctx context.Context, c client.Client, limit time.Duration, worker *proc) (bool, error) {
	deadline := time.Now().Add(limit)
	last := int64(-1)
	for time.Now().Before(deadline) {
		if !worker.alive() {
			fmt.Fprintln(os.Stderr, "chaos: the worker exited on its own; restarting it")
			if err := worker.start(ctx); err != nil {
				return false, err
			}
		}
		busy, err1 := count(ctx, c, `WorkflowType = "Deprovision" AND ExecutionStatus = "Running" AND DeprovisionStatus NOT IN ("exception", "awaiting_approval")`)
		archiving, err2 := count(ctx, c, `WorkflowType = "Archiver" AND ExecutionStatus = "Running"`)
		if err := errors.Join(err1, err2); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err) // the server may be busy; ask again
		} else if busy == 0 && archiving == 0 {
			return true, nil
		}
		if busy != last {
			fmt.Fprintf(os.Stderr, "chaos: %d runs still working, %d archivers running\n", busy, archiving)
			last = busy
		}
		time.Sleep(5 * time.Second)
	}
	return false, nil
}

// waitEvidence gives the Archivers a run starts as it closes time to write
// every closed run's bundle; the tally counts what is missing after that.
func waitEvidence(ctx context.Context, c client.Client, dir string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		missing := 0
		var token []byte
		for {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: `WorkflowType = "Deprovision" AND ExecutionStatus != "Running"`, NextPageToken: token})
			if err != nil {
				missing = -1
				break
			}
			for _, e := range resp.GetExecutions() {
				ex := e.GetExecution()
				if _, err := os.Stat(filepath.Join(dir, ex.GetWorkflowId(), ex.GetRunId(), evidence.ManifestFile)); err != nil {
					missing++
				}
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
		if missing == 0 {
			return
		}
		fmt.Fprintf(os.Stderr, "chaos: waiting for %d evidence bundles\n", missing)
		time.Sleep(5 * time.Second)
	}
}

// sender posts each termination as a signed generic webhook, evenly over a
// window, sending it again until the relay accepts it (2xx), as an HR
// system's retries do.
type sender struct {
	mu       sync.Mutex
	accepted map[string]string // employee id → event id
	retries  atomic.Int64
	gaveUp   []string
}

func (s *sender) send(ctx context.Context, url string, people []demo.Person, window time.Duration) {
	s.accepted = map[string]string{}
	work := make(chan demo.Person)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				s.sendOne(ctx, url, p)
			}
		}()
	}
	for _, p := range people {
		work <- p
		time.Sleep(window / time.Duration(len(people)))
	}
	close(work)
	wg.Wait()
}

func (s *sender) sendOne(ctx context.Context, url string, p demo.Person) {
	event := map[string]any{"eventId": "chaos-" + p.EmployeeID, "type": "termination", "employeeId": p.EmployeeID,
		"email": p.Email, "name": p.Name(), "effectiveAt": time.Now().UTC().Format(time.RFC3339), "reason": "voluntary",
		"requestedBy": "hr-bot@example.test"}
	body, _ := json.Marshal(event)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ts, sig := relay.SignGeneric([]byte(webhookSecret), body, time.Now())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Offboard-Timestamp", ts)
		req.Header.Set("X-Offboard-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				s.mu.Lock()
				s.accepted[p.EmployeeID] = event["eventId"].(string)
				s.mu.Unlock()
				return
			}
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			s.gaveUp = append(s.gaveUp, p.EmployeeID)
			s.mu.Unlock()
			return
		}
		s.retries.Add(1)
		time.Sleep(time.Second)
	}
}

// chaosConfig is the worker's and the relay's file: the simulators as
// targets, times shortened so runs close within minutes, no approval for
// these voluntary leavers, and a blast-radius limit above N so the burst is
// not quarantined (the guard still counts every termination).
func chaosConfig(hostPort, namespace, metrics, listen, evidenceDir, key string, s *sims) string {
	return fmt.Sprintf(`
temporal: {address: %q, namespace: %s}
worker: {metricsAddr: %q}
starter: {listen: %q}
policy:
  containmentSLA: 10m
  credentialsSLA: 15m
  approval: {always: false, privileged: false, forCause: false, timeout: 72h}
  retention: 2m
  reverify: [1m]
  controlAttempts: 8
  retry: {initialInterval: 1s, maximumInterval: 15s}
people: {approvers: [alice@example.test], security: [alice@example.test]}
evidence: {dir: %q, signingKey: {file: %q}}
relay:
  sources:
    generic: {secrets: [{env: CHAOS_WEBHOOK_SECRET}]}
  blastRadius: {max: 100000, window: 10m}
targets:
  - {name: okta, kind: okta, okta: {orgURL: %q, token: {env: CHAOS_OKTA_TOKEN}}}
  - {name: entra, kind: entra, entra: {baseURL: %q}}
  - {name: scim-crm, kind: scim, scim: {baseURL: "%s/scim/v2", bearer: {env: CHAOS_SCIM_TOKEN}}}
  - {name: scim-wiki, kind: scim, scim: {baseURL: "%s/scim/v2", bearer: {env: CHAOS_SCIM_TOKEN}}}
  - name: ad
    kind: ldap
    ldap: {url: %q, caFile: %q, bindDN: "CN=Administrator,CN=Users,DC=corp,DC=example,DC=test", baseDN: "DC=corp,DC=example,DC=test", password: {env: CHAOS_LDAP_PASSWORD}}
  - {name: aws, kind: awsiam, aws: {accountID: "123456789012", endpoint: %q, secretsEndpoint: %q, servicePathPrefix: /service/, accessKeyID: {env: CHAOS_AWS_KEY_ID}, secretAccessKey: {env: CHAOS_AWS_SECRET}}}
`, hostPort, namespace, metrics, listen, evidenceDir, key, s.urls["okta"], s.urls["entra"], s.urls["scim-crm"], s.urls["scim-wiki"],
		s.urls["ad"], s.ldapCA, s.urls["aws"], s.urls["aws-secrets"])
}

// count asks the visibility store how many workflows match query.
func count(ctx context.Context, c client.Client, query string) (int64, error) {
	resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", query, err)
	}
	return resp.GetCount(), nil
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
