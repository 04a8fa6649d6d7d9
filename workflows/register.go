package workflows

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// RegisterWorkflows registers every workflow of this package under its
// contract name: the one list of them. A worker registers them with the
// evidence Archiver and the activities through evidence.Register (evidence
// imports this package); the replayer of recorded histories calls this.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(Deprovision, workflow.RegisterOptions{Name: WorkflowType})
	r.RegisterWorkflowWithOptions(Guard, workflow.RegisterOptions{Name: GuardWorkflowType})
	r.RegisterWorkflowWithOptions(Delivery, workflow.RegisterOptions{Name: DeliveryWorkflowType})
	r.RegisterWorkflowWithOptions(Reconcile, workflow.RegisterOptions{Name: ReconcileWorkflowType})
	r.RegisterWorkflowWithOptions(Attest, workflow.RegisterOptions{Name: AttestWorkflowType})
	r.RegisterWorkflowWithOptions(DrillWorkflow, workflow.RegisterOptions{Name: DrillWorkflowType})
	r.RegisterWorkflowWithOptions(BreakGlassStep, workflow.RegisterOptions{Name: BreakGlassWorkflowType}) // nonhuman.go
}
