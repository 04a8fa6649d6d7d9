package workerapp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// plain is a target without a self-check; it counts what it is asked to do.
type plain struct {
	name     string
	enforced atomic.Int32
}

func (p *plain) Name() string                    { return p.name }
func (p *plain) Kind() string                    { return "fake" }
func (p *plain) Controls(control.Phase) []string { return []string{"suspend"} }
func (p *plain) Resolve(context.Context, control.Person) (control.Account, error) {
	return control.Account{ID: "u1"}, nil
}
func (p *plain) Observe(context.Context, string, control.Account, control.Params) (control.Observation, error) {
	return control.Observation{}, nil
}
func (p *plain) Enforce(context.Context, string, control.Account, control.Params) (control.Response, error) {
	p.enforced.Add(1)
	return control.Response{}, nil
}

// probed is a target with a self-check whose answer the test sets.
type probed struct {
	plain
	probes atomic.Int32
	answer atomic.Pointer[probeAnswer]
}

type probeAnswer struct {
	p   control.Probe
	err error
}

func newProbed(name string, p control.Probe, err error) *probed {
	t := &probed{plain: plain{name: name}}
	t.set(p, err)
	return t
}

func (t *probed) set(p control.Probe, err error) { t.answer.Store(&probeAnswer{p, err}) }

func (t *probed) Probe(context.Context) (control.Probe, error) {
	t.probes.Add(1)
	a := t.answer.Load()
	return a.p, a.err
}

var badToken = &control.Error{Kind: control.ErrUnauthorized, Op: "okta: probe", HTTPStatus: 401, Err: errors.New("token rejected")}

func TestProbeTargets(t *testing.T) {
	tgts := []control.Target{
		newProbed("okta", control.Probe{Checks: []string{"GET /api/v1/users/me: 200"}}, nil),
		newProbed("entra", control.Probe{Checks: []string{"GET /organization: 200"}, Missing: []string{"User.ReadWrite.All"}}, nil),
		newProbed("scim", control.Probe{}, badToken),
		&plain{name: "ad"},
	}
	rs := ProbeTargets(t.Context(), tgts, time.Second)
	require.Len(t, rs, 4)
	assert.Equal(t, ProbeResult{Target: "okta", Kind: "fake", Probed: true, Checks: []string{"GET /api/v1/users/me: 200"}}, rs[0])
	assert.EqualError(t, rs[1].Err, "missing permissions: User.ReadWrite.All")
	assert.ErrorIs(t, rs[2].Err, control.ErrUnauthorized)
	assert.Equal(t, ProbeResult{Target: "ad", Kind: "fake"}, rs[3])

	var logs bytes.Buffer
	logProbes(slog.New(slog.NewTextHandler(&logs, nil)), rs, true)
	assert.Contains(t, logs.String(), `msg="target self-check passed" target=okta`)
	assert.Contains(t, logs.String(), `level=ERROR msg="target FAILED its self-check`)
	assert.Contains(t, logs.String(), `target=entra kind=fake error="missing permissions: User.ReadWrite.All"`)
	assert.Contains(t, logs.String(), `msg="target has no self-check" target=ad`)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// A target that failed its probe fails its controls for good, naming why;
// a minute later the next use probes it again, and a fixed target recovers.
func TestSelfCheckGatesAndRecovers(t *testing.T) {
	okta := newProbed("okta", control.Probe{}, badToken)
	slow := newProbed("scim", control.Probe{}, &control.Error{Kind: control.ErrTransient, Op: "scim: probe", Err: errors.New("connection refused")})
	good := newProbed("entra", control.Probe{Checks: []string{"ok"}}, nil)
	tgts := []control.Target{okta, slow, good, &plain{name: "ad"}}
	clk := &clock{time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	s := newSelfChecks(tgts, ProbeTargets(t.Context(), tgts, time.Second), clk.now)

	for _, name := range []string{"scim", "entra", "ad"} {
		assert.NoError(t, s.Check(name), "%s: passed, unreachable (its controls retry as usual) or no self-check", name)
	}
	err := s.Check("okta")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "target okta failed its self-check at worker start: okta: probe: unauthorized (HTTP 401): token rejected")
	assert.ErrorIs(t, err, control.ErrUnauthorized)
	assert.Equal(t, int32(1), okta.probes.Load(), "not probed again within the minute")

	clk.t = clk.t.Add(ReprobeAfter)
	err = s.Check("okta")
	assert.ErrorContains(t, err, "target okta failed its self-check at 2026-11-29T12:01:00Z: ")
	assert.Equal(t, int32(2), okta.probes.Load())

	okta.set(control.Probe{Checks: []string{"GET /api/v1/users/me: 200"}}, nil)
	clk.t = clk.t.Add(30 * time.Second)
	assert.Error(t, s.Check("okta"), "the last failure is 30 s old")
	clk.t = clk.t.Add(30 * time.Second)
	assert.NoError(t, s.Check("okta"), "fixed: recovers without a restart")
	assert.NoError(t, s.Check("okta"))
	assert.Equal(t, int32(3), okta.probes.Load())
}

// Through the activities: a control of a target that failed its self-check
// fails for good with SelfCheckFailed and touches nothing.
func TestActivitiesRefuseATargetThatFailedItsSelfCheck(t *testing.T) {
	okta := newProbed("okta", control.Probe{}, badToken)
	tgts := []control.Target{okta}
	acts := activities.New(config.Config{}, tgts)
	acts.SelfCheck = newSelfChecks(tgts, ProbeTargets(t.Context(), tgts, time.Second), time.Now).Check

	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.ApplyControl, activities.ControlInput{ControlID: "okta/suspend", Target: "okta", Control: "suspend", Phase: control.Containment, Account: control.Account{ID: "u1"}})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, activities.ErrTypeSelfCheck, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Error(), "target okta failed its self-check at worker start: ")
	assert.Zero(t, okta.enforced.Load())
}
