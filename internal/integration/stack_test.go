// Package integration runs Offboard end to end: a real Temporal dev server,
// the worker, and the sandbox simulators, as `make run` does.
package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/temporalproto"

	historypb "go.temporal.io/api/history/v1"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/targets"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/internal/workerapp"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/graph"
	iamsim "github.com/offboard/offboard/sandbox/iam"
	"github.com/offboard/offboard/sandbox/ldapdir"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/scimapp"
	secretsim "github.com/offboard/offboard/sandbox/secrets"
	"github.com/offboard/offboard/workflows"
)

const (
	oktaToken    = "it-okta-token"
	scimToken    = "it-scim-token"
	awsKeyID     = "AKIAINTEGRATIONTEST1"
	awsSecret    = "it-aws-secret"
	ldapPassword = "it-ldap-password"
)

// stack is one dev server, the simulators and the config pointing at them.
type stack struct {
	t        testing.TB
	temporal *devserver.Server
	okta     *oktasim.Sim
	crm      *scimapp.App
	wiki     *scimapp.App
	aws      *iamsim.Sim
	graph    *graph.Sim
	graphURL string
	secrets  *secretsim.Sim // Secrets Manager beside IAM: the aws target lists owned secrets there (issue 15)
	smURL    string
	ad       *ldapdir.Server
	oktaURL  string
	crmURL   string
	wikiURL  string
	awsURL   string
	people   []demo.Person
	start    time.Time
}

func newStack(t testing.TB) *stack {
	t.Helper()
	return newStackOn(t, devserver.Start(t))
}

// newStackOn is newStack on a dev server the test started itself.
func newStackOn(t testing.TB, temporal *devserver.Server) *stack {
	t.Helper()
	s := &stack{t: t, temporal: temporal, people: demo.People(50), start: time.Now().UTC().Truncate(time.Second)}
	s.okta = oktasim.New(oktasim.Options{Token: oktaToken, People: s.people, RateLimitPerMinute: 100000})
	var err error
	s.crm, err = scimapp.New(scimapp.Options{Name: "crm", Bearer: scimToken, PatchSupported: true, People: s.people, RequestsPerSecond: 10000})
	require.NoError(t, err)
	s.wiki, err = scimapp.New(scimapp.Options{Name: "wiki", Bearer: scimToken, PatchSupported: false, People: s.people, RequestsPerSecond: 10000})
	require.NoError(t, err)
	s.aws = iamsim.New(iamsim.Options{AccessKeyID: awsKeyID, SecretAccessKey: awsSecret, People: s.people, RequestsPerSecond: 10000})
	s.ad, err = ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: ldapPassword, People: s.people, CertDir: t.TempDir()})
	require.NoError(t, err)
	adCtx, stopAD := context.WithCancel(context.Background())
	ad := s.ad // a test may put its own directory in s.ad; this one serves on
	go func() { _ = ad.Serve(adCtx) }()
	t.Cleanup(stopAD)
	s.oktaURL = serve(t, s.okta.Handler())
	s.awsURL = serve(t, s.aws.Handler())
	s.graph = graph.New(graph.Options{People: s.people, RequestsPerSecond: 10000})
	s.graphURL = serve(t, s.graph.Handler())
	s.crmURL = serve(t, s.crm.Handler())
	s.wikiURL = serve(t, s.wiki.Handler())
	s.secrets = secretsim.New(secretsim.Options{AccessKeyID: awsKeyID, SecretAccessKey: awsSecret, People: s.people, RequestsPerSecond: 10000})
	s.smURL = serve(t, s.secrets.Handler())
	return s
}

func serve(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// policy is the part of the configuration a scenario changes.
type policy struct {
	containmentSLA string
	retention      string
	reverify       string
	attempts       int
	retryInitial   string
}

func defaultPolicy() policy {
	return policy{containmentSLA: "15m", retention: "3s", reverify: "[1s]", attempts: 3, retryInitial: "1s"}
}

// configYAML is the configuration a worker would read from a file; secrets by env.
func (s *stack) configYAML(p policy) string {
	return fmt.Sprintf(`
temporal:
  address: %s
worker:
  metricsAddr: "off"
policy:
  containmentSLA: %s
  credentialsSLA: 24h
  approval: {privileged: true, forCause: true, timeout: 1h}
  retention: %s
  reverify: %s
  controlAttempts: %d
  retry: {initialInterval: %s, maximumInterval: 2s}
people:
  approvers: [alice@example.test]
  security: [alice@example.test]
  decisionKeys: [{name: operator-api, publicKey: 1/Q2WTuCSkxO3lyCyfgLBEQnbOcUKn92Mfuv9qC66YA=}]
targets:
  - name: okta
    kind: okta
    okta: {orgURL: %s, token: {env: IT_OKTA_TOKEN}}
    limits: {activitiesPerSecond: 20}
  - name: entra
    kind: entra
    entra: {baseURL: %s}
  - name: scim-crm
    kind: scim
    scim: {baseURL: %s/scim/v2, bearer: {env: IT_SCIM_TOKEN}}
  - name: scim-wiki
    kind: scim
    scim: {baseURL: %s/scim/v2, bearer: {env: IT_SCIM_TOKEN}}
  - name: aws
    kind: awsiam
    aws: {accountID: "123456789012", endpoint: %s, secretsEndpoint: %s, accessKeyID: {env: IT_AWS_KEY_ID}, secretAccessKey: {env: IT_AWS_SECRET}}
  - name: ad
    kind: ldap
    ldap:
      url: %s
      caFile: %s
      bindDN: CN=Administrator,CN=Users,DC=corp,DC=example,DC=test
      baseDN: DC=corp,DC=example,DC=test
      password: {env: IT_LDAP_PASSWORD}
    limits: {maxConcurrent: 4}
`, s.temporal.HostPort, p.containmentSLA, p.retention, p.reverify, p.attempts, p.retryInitial, s.oktaURL, s.graphURL, s.crmURL, s.wikiURL, s.awsURL, s.smURL, s.ad.URL(), s.ad.CAFile())
}

func (s *stack) config(p policy) config.Config {
	s.t.Helper()
	setenv(s.t, "IT_OKTA_TOKEN", oktaToken)
	setenv(s.t, "IT_SCIM_TOKEN", scimToken)
	setenv(s.t, "IT_AWS_KEY_ID", awsKeyID)
	setenv(s.t, "IT_AWS_SECRET", awsSecret)
	setenv(s.t, "IT_LDAP_PASSWORD", ldapPassword)
	cfg, err := config.Parse([]byte(s.configYAML(p)), "integration.yaml")
	require.NoError(s.t, err)
	return cfg
}

func setenv(t testing.TB, k, v string) {
	if tt, ok := t.(*testing.T); ok {
		tt.Setenv(k, v)
		return
	}
	_ = os.Setenv(k, v)
}

// startWorker runs an in-process worker until the test ends.
func (s *stack) startWorker(p policy) {
	s.t.Helper()
	s.startWorkerEdited(p, func(yaml string) string { return yaml })
}

// startWorkerEdited runs the worker on the configuration edit makes of
// configYAML (roles, a shorter approval timeout …).
func (s *stack) startWorkerEdited(p policy, edit func(yaml string) string) {
	s.t.Helper()
	_ = s.config(p) // the secrets' environment
	cfg, err := config.Parse([]byte(edit(s.configYAML(p))), "integration.yaml")
	require.NoError(s.t, err)
	tgts, err := targets.Build(context.Background(), cfg)
	require.NoError(s.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- workerapp.RunWith(ctx, cfg, s.temporal.Client, tgts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	s.t.Cleanup(func() {
		cancel()
		require.NoError(s.t, <-done)
	})
}

func (s *stack) terminate(ctx context.Context, p demo.Person, mut func(*workflows.Termination)) runs.Started {
	s.t.Helper()
	started, err := runs.Start(ctx, s.temporal.Client, s.termination(p, mut))
	require.NoError(s.t, err)
	return started
}

// termination is the HR event for p, the same each time it is asked for.
func (s *stack) termination(p demo.Person, mut func(*workflows.Termination)) workflows.Termination {
	t := workflows.Termination{
		EventID: "evt-" + p.EmployeeID, Source: "test", EmployeeID: p.EmployeeID, Email: p.Email, Name: p.Name(),
		Kind: workflows.KindTermination, Reason: workflows.ReasonVoluntary, EffectiveAt: s.start, RequestedBy: "hr@example.test",
	}
	if mut != nil {
		mut(&t)
	}
	return t
}

// result waits for the run to close and returns its result.
func (s *stack) result(ctx context.Context, started runs.Started) workflows.Result {
	s.t.Helper()
	var res workflows.Result
	require.NoError(s.t, s.temporal.Client.GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, &res))
	return res
}

// waitStatus polls the status query until cond holds (the only way to see a
// running workflow's state from outside).
func (s *stack) waitStatus(ctx context.Context, employee string, what string, cond func(workflows.Status) bool) workflows.Status {
	s.t.Helper()
	var last workflows.Status
	var lastErr error
	for {
		st, err := runs.Status(ctx, s.temporal.Client, employee)
		if err == nil && cond(st) {
			return st
		}
		last, lastErr = st, err
		select {
		case <-ctx.Done():
			s.t.Fatalf("waiting for %s: %v (last phase %q, err %v)", what, ctx.Err(), last.Phase, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// searchAttributes reads a run's search attributes as Temporal stores them.
func (s *stack) searchAttributes(ctx context.Context, started runs.Started) map[string]string {
	s.t.Helper()
	desc, err := s.temporal.Client.DescribeWorkflow(ctx, started.WorkflowID, started.RunID)
	require.NoError(s.t, err)
	out := map[string]string{}
	for k, v := range desc.RawResponse.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields() {
		out[k] = strings.Trim(string(v.GetData()), `"`)
	}
	return out
}

// waitSearchAttribute waits until Temporal shows the attribute's value: the
// visibility store follows the workflow a moment behind its query.
func (s *stack) waitSearchAttribute(ctx context.Context, started runs.Started, key, want string) {
	s.t.Helper()
	var got string
	for {
		if got = s.searchAttributes(ctx, started)[key]; got == want {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("search attribute %s: want %q, last saw %q", key, want, got)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// scheduledQueues counts the run's activities by the task queue they were
// scheduled on, as its history records them.
func (s *stack) scheduledQueues(ctx context.Context, started runs.Started) map[string]int {
	s.t.Helper()
	out := map[string]int{}
	iter := s.temporal.Client.GetWorkflowHistory(ctx, started.WorkflowID, started.RunID, false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(s.t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			out[a.GetTaskQueue().GetName()]++
		}
	}
	return out
}

// historyGeneration names the histories recorded by today's code. When a
// change to the workflow is versioned, bump it: the older files stay in the
// corpus and keep proving that their branch still replays.
const historyGeneration = "v10"

// recordHistory writes the run's history to testdata/histories when
// OFFBOARD_RECORD_HISTORIES is set (make histories).
func (s *stack) recordHistory(ctx context.Context, name string, started runs.Started) {
	s.t.Helper()
	if os.Getenv("OFFBOARD_RECORD_HISTORIES") == "" {
		return
	}
	hist := &historypb.History{}
	iter := s.temporal.Client.GetWorkflowHistory(ctx, started.WorkflowID, started.RunID, false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(s.t, err)
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(s.t, err)
	path := filepath.Join(devserver.RepoRoot(s.t), "testdata", "histories", name+"."+historyGeneration+".json")
	require.NoError(s.t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(s.t, os.WriteFile(path, append(b, '\n'), 0o644))
	s.t.Logf("recorded %s (%d events)", path, len(hist.Events))
}
