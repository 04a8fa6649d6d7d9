package runs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/workflows"
)

// brokenTarget holds every control but suspend, which it refuses for good.
type brokenTarget struct{}

func (brokenTarget) Name() string { return "okta" }
func (brokenTarget) Kind() string { return "fake" }
func (brokenTarget) Resolve(_ context.Context, p control.Person) (control.Account, error) {
	return control.Account{Target: "okta", ID: "u-" + p.EmployeeID, Login: p.Email}, nil
}
func (brokenTarget) Controls(phase control.Phase) []string {
	if phase == control.Containment {
		return []string{"suspend", "clear_sessions"}
	}
	return nil
}
func (brokenTarget) Observe(_ context.Context, name string, _ control.Account, _ control.Params) (control.Observation, error) {
	return control.Observation{Holds: name != "suspend", Readable: true}, nil
}
func (brokenTarget) Enforce(_ context.Context, name string, _ control.Account, _ control.Params) (control.Response, error) {
	return control.Response{}, &control.Error{Kind: control.ErrPermanent, Op: "okta: " + name, Err: errors.New("E0000006 you do not have permission")}
}

const exceptionsConfig = `
sandbox: true
policy:
  containmentSLA: 15m
  credentialsSLA: 24h
  approval: {privileged: false, forCause: false, timeout: 1h}
  retention: 24h
  reverify: []
  controlAttempts: 1
people:
  approvers: [alice@example.test]
  security: [sec@example.test]
evidence: {dir: unused}
targets:
  - name: okta
    kind: okta
    okta: {orgURL: http://127.0.0.1:1, token: "sandbox:x"}
`

// A real Deprovision whose suspend fails for good shows in the registry,
// with its owner, age, SLA deadline and the commands that act on it; a run
// without an exception does not.
func TestExceptionsOnDevServer(t *testing.T) {
	srv := devserver.Start(t)
	ctx := t.Context()
	cfg, err := config.Parse([]byte(exceptionsConfig), "exceptions test")
	require.NoError(t, err)
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{brokenTarget{}}), &evidence.Activities{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	start := func(emp string, at time.Time) client.WorkflowRun {
		run, err := srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.WorkflowID(emp), TaskQueue: workflows.TaskQueue},
			workflows.WorkflowType, workflows.Termination{EventID: "evt-" + emp, Source: "cli", EmployeeID: emp, Email: emp + "@example.test",
				Kind: workflows.KindTermination, EffectiveAt: at})
		require.NoError(t, err)
		return run
	}
	failing := start("E7001", time.Now().UTC())
	start("E7002", time.Now().Add(24*time.Hour).UTC()) // waits on its timer: nothing open

	var reg runs.Registry
	require.Eventually(t, func() bool {
		reg, err = runs.Exceptions(ctx, srv.Client, "sec@example.test", time.Now())
		return err == nil && len(reg.Exceptions) > 0
	}, 60*time.Second, 200*time.Millisecond, "the exception shows in the registry")
	assert.True(t, reg.Complete)
	assert.Equal(t, 2, reg.Runs)
	require.Len(t, reg.Exceptions, 1)
	x := reg.Exceptions[0]
	assert.Equal(t, "exception", x.Kind)
	assert.Equal(t, "E7001", x.EmployeeID)
	assert.Equal(t, failing.GetRunID(), x.RunID)
	assert.Equal(t, "okta/suspend", x.Control)
	assert.Equal(t, "sec@example.test", x.Owner)
	assert.Contains(t, x.Reason, "E0000006")
	assert.NotEmpty(t, x.Age)
	assert.False(t, x.ExpiresAt.IsZero(), "the containment SLA deadline")
	assert.Contains(t, x.Action, "starter retry -employee E7001 -control okta/suspend")
	assert.Contains(t, x.Action, "starter waive -employee E7001 -control okta/suspend")
}
