package evidence_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
)

// A worker configured without a signing key still knows the Archiver (the
// schedule another worker created reaches it), and its activities refuse
// once, naming what is missing, instead of "unknown workflow type".
func TestArchiverOnAWorkerWithoutKey(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	evidence.Register(env, new(activities.Activities), &evidence.Activities{})
	attempts := 0
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) { attempts++ })
	env.ExecuteWorkflow(evidence.ArchiverWorkflowType, evidence.ArchiverInput{})

	require.True(t, env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	require.Equal(t, "NoSigningKey", appErr.Type())
	require.True(t, appErr.NonRetryable())
	require.Contains(t, appErr.Error(), "this worker has no evidence.signingKey")
	require.Equal(t, 1, attempts, "not retried")
}

// The replayer registers what the worker runs: recorded Deprovision
// histories replay with evidence.RegisterWorkflows.
func TestRegisterWorkflowsReplays(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	r := worker.NewWorkflowReplayer()
	evidence.RegisterWorkflows(r)
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, files[len(files)-1]))
}
