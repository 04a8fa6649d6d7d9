package runs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/workflows"
)

// GuardWait bounds how long an admission waits for the guard's answer; a
// worker answers in tens of milliseconds.
const GuardWait = 10 * time.Second

// Admit asks the cluster-wide blast-radius guard (workflows.Guard, started
// on first use) whether an HR event may act without a person. Every relay
// replica and the CLI ask the same workflow, through an Update, so the count
// is exact and survives restarts. The admission's Key makes a retry the same
// Update: the first verdict, counted once. An error wraps ErrUnavailable:
// without the guard's answer nothing may start, so the caller asks again.
func Admit(ctx context.Context, c client.Client, a workflows.Admission) (workflows.AdmitVerdict, error) {
	var v workflows.AdmitVerdict
	start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.GuardWorkflowID,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, workflows.GuardWorkflowType, workflows.GuardState{})
	uctx, cancel := context.WithTimeout(ctx, GuardWait)
	defer cancel()
	sum := sha256.Sum256([]byte(a.Key))
	h, err := c.UpdateWithStartWorkflow(uctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   workflows.GuardWorkflowID,
			UpdateName:   workflows.UpdateAdmit,
			UpdateID:     "admit-" + hex.EncodeToString(sum[:16]),
			Args:         []any{a},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = h.Get(uctx, &v)
	}
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return v, nil
	case errors.As(err, &app):
		return v, fmt.Errorf("blast-radius guard refused the admission of %s: %s", a.Key, app.Message())
	}
	return v, fmt.Errorf("blast-radius guard: %w: %w", ErrUnavailable, err)
}

// DeliverySeen reports whether a delivery with this digest was remembered
// (RememberDelivery): a replay of a signed webhook.
func DeliverySeen(ctx context.Context, c client.Client, digest string) (bool, error) {
	_, err := c.DescribeWorkflow(ctx, workflows.DeliveryWorkflowID(digest), "")
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &notFound):
		return false, nil
	}
	return false, fmt.Errorf("delivery memory: %w: %w", ErrUnavailable, err)
}

// RememberDelivery records a delivery that was acted on, until its
// signature can no longer be replayed. The record is a workflow whose id is
// the digest: the same id cannot be used again while it runs, nor after
// until the namespace's retention ends, on any replica.
func RememberDelivery(ctx context.Context, c client.Client, digest string, until time.Time) error {
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.DeliveryWorkflowID(digest),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// Closed by the server in any case, should no worker ever run it.
		WorkflowExecutionTimeout:                 time.Until(until) + time.Hour,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, workflows.DeliveryWorkflowType, until)
	var exists *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("delivery memory: %w: %w", ErrUnavailable, err)
	}
	return nil
}
