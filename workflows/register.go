package workflows

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
)

// RegisterWorkflows registers every workflow under its contract name; the
// worker, the integration tests and the replayer all call it.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(Deprovision, workflow.RegisterOptions{Name: WorkflowType})
}

// Register registers the workflows and the activities on a worker.
func Register(w worker.Registry, acts *activities.Activities) {
	RegisterWorkflows(w)
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
}
