package workerapp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/workflows"
)

// sequence answers its self-check from a list, the last answer repeating.
type sequence struct {
	plain
	answers []error
	probes  int
}

func (s *sequence) Probe(context.Context) (control.Probe, error) {
	err := s.answers[min(s.probes, len(s.answers)-1)]
	s.probes++
	return control.Probe{}, err
}

// Only a target that answered and refused is a configuration error; one
// that did not answer is not named, and a refusal is asked again once.
func TestStartProbesNameWhatIsMisconfigured(t *testing.T) {
	down := &control.Error{Kind: control.ErrTransient, Op: "scim: probe", Err: fmt.Errorf("connection refused")}
	wrongAPI := &control.Error{Kind: control.ErrUnexpected, Op: "crm: probe", HTTPStatus: 404, Err: fmt.Errorf("an HTML page")}
	tgts := []control.Target{
		&sequence{plain: plain{name: "okta"}, answers: []error{badToken}},
		&sequence{plain: plain{name: "scim"}, answers: []error{down}},
		&sequence{plain: plain{name: "crm"}, answers: []error{wrongAPI}},
		&sequence{plain: plain{name: "hiccup"}, answers: []error{wrongAPI, nil}}, // a proxy's page once
		newProbed("entra", control.Probe{Missing: []string{"User.ReadWrite.All"}}, nil),
		&plain{name: "ad"},
	}
	rs := StartProbes(t.Context(), tgts, time.Second)
	err := Misconfigured(rs)
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "3 target(s) refused their self-check at start")
	assert.Contains(t, msg, "target okta (fake): okta: probe: unauthorized (HTTP 401): token rejected")
	assert.Contains(t, msg, "target crm (fake): crm: probe: unexpected answer (HTTP 404): an HTML page")
	assert.Contains(t, msg, "target entra (fake): missing permissions: User.ReadWrite.All")
	assert.Contains(t, msg, "worker.startWithFailedTargets: true")
	assert.NotContains(t, msg, "scim", "a target that did not answer may be down: it is not a configuration error")
	assert.NotContains(t, msg, "hiccup", "its second answer stands")
	assert.Equal(t, 2, tgts[0].(*sequence).probes, "a refusal is asked again once")
	assert.Equal(t, 1, tgts[1].(*sequence).probes, "an unreachable target is not")
	assert.Equal(t, 2, tgts[3].(*sequence).probes)

	assert.NoError(t, Misconfigured(StartProbes(t.Context(), []control.Target{tgts[1], &plain{name: "ad"}}, time.Second)))
}

// The worker with real Okta connectors: one whose token the org refuses, or
// whose org URL is not Okta's API, stops it at start naming the target and
// what is wrong (no secret), unless worker.startWithFailedTargets; one that
// does not answer at all lets it start, its controls retrying as usual.
func TestWorkerStopsAtStartOnAMisconfiguredTarget(t *testing.T) {
	srv := devserver.Start(t)
	ctx := t.Context()
	sim := httptest.NewServer(oktasim.New(oktasim.Options{Token: "okta-token", People: demo.People(3)}).Handler())
	t.Cleanup(sim.Close)
	notOkta := httptest.NewServer(http.NotFoundHandler()) // a wrong base path: a 404 that is not Okta's
	t.Cleanup(notOkta.Close)
	oktaAt := func(name, url, token string) control.Target {
		c, err := okta.New(ctx, okta.Config{Name: name, OrgURL: url, Token: token, AllowHTTP: true})
		require.NoError(t, err)
		return c
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "evidence.key")
	_, err := evidence.GenerateKey(keyFile)
	require.NoError(t, err)
	configWith := func(startAnyway bool) config.Config {
		cfg, err := config.Parse(fmt.Appendf(nil, `
worker: {metricsAddr: "off", startWithFailedTargets: %v}
evidence: {dir: %q, signingKey: {file: %q}}
targets:
  - name: okta
    kind: okta
    okta: {orgURL: "http://127.0.0.1:1", token: {env: OFFBOARD_TEST_UNUSED_TOKEN}}
`, startAnyway, filepath.Join(dir, "store"), keyFile), "worker test")
		require.NoError(t, err)
		return cfg
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Refused: RunWith returns an error at once, before it polls anything
	// (a worker that started would run until the deadline, and return nil).
	misconfigured := []control.Target{oktaAt("okta-token", sim.URL, "not-the-token"), oktaAt("okta-url", notOkta.URL, "okta-token")}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = RunWith(rctx, configWith(false), srv.Client, misconfigured, quiet)
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "2 target(s) refused their self-check at start")
	assert.Contains(t, msg, "target okta-token (okta): ")
	assert.Contains(t, msg, "unauthorized (HTTP 401)")
	assert.Contains(t, msg, "target okta-url (okta): okta-url: the org URL "+notOkta.URL+" does not answer with Okta's API")
	assert.NotContains(t, msg, "not-the-token", "no secret in the error")

	// starts runs a worker under its own identity until it polls the
	// deprovision queue; it fails if the worker returns first.
	starts := func(identity string, cfg config.Config, tgts []control.Target) {
		t.Helper()
		c, err := client.NewClientFromExisting(srv.Client, client.Options{Identity: identity})
		require.NoError(t, err)
		defer c.Close()
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- RunWith(wctx, cfg, c, tgts, quiet) }()
		polling := func() bool {
			select {
			case err := <-done:
				cancel()
				require.FailNow(t, "the worker returned before it polled", "%v", err)
			default:
			}
			d, err := srv.Client.DescribeTaskQueue(ctx, workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
			return err == nil && slices.ContainsFunc(d.GetPollers(), func(p *taskqueuepb.PollerInfo) bool { return p.GetIdentity() == identity })
		}
		require.Eventually(t, polling, 30*time.Second, 50*time.Millisecond, identity)
		cancel()
		require.NoError(t, <-done)
	}
	// Down: it starts.
	starts("down-target", configWith(false), []control.Target{oktaAt("okta", "http://127.0.0.1:1", "okta-token")})
	// Refused, but the configuration says start anyway.
	starts("start-anyway", configWith(true), misconfigured)
}
