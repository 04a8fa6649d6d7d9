package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// startArchiving is the evidence package's activity that starts a closing
// run's Archiver. It is called by name: evidence imports this package.
const startArchiving = "StartArchiving"

// archiveAtClose has the run's evidence archived as soon as the run has
// closed (from version archive-at-close), instead of by a sweep a minute
// later: the activity starts an Archiver for this run, which waits for the
// close and archives it. Should that fail, the daily sweep archives the run.
func (wf *deprovision) archiveAtClose(ctx workflow.Context) {
	if workflow.GetVersion(ctx, versionArchiveAtClose, workflow.DefaultVersion, 1) != 1 {
		return
	}
	run := workflow.GetInfo(ctx).WorkflowExecution
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		Summary:             "archive the evidence once this run has closed",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second,
			MaximumInterval: 10 * time.Second,
			MaximumAttempts: 3,
			// A worker without the evidence activities (workflows' own
			// tests) or without a signing key: the sweep's turn, at once.
			NonRetryableErrorTypes: []string{"ActivityNotRegisteredError", "NoSigningKey"},
		},
	})
	in := struct {
		WorkflowID string `json:"workflowId"`
		RunID      string `json:"runId"`
	}{run.ID, run.RunID}
	if err := workflow.ExecuteActivity(ctx, startArchiving, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("evidence not archived at close; the daily sweep will", "error", err)
	}
}
