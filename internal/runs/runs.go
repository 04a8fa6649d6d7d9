// Package runs starts, decides on and reads Deprovision workflows for the
// operator CLI and the HRIS relay alike, so both keep the same promises:
// one workflow per person, the same HR event never starts a second run, and
// a decision reaches the run it was signed for (decide.go).
package runs

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/workflows"
)

// memoEventID is the memo key holding the HR event a run was started for.
const memoEventID = "eventId"

// Started says what Start did.
type Started struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	// Outcome is OutcomeStarted, OutcomeDuplicate, OutcomeSuperseded or
	// OutcomeCorrected.
	Outcome string `json:"outcome"`
	// Duplicate is true when a run for this event (or a run still in flight
	// for this person) already existed and nothing was started or changed.
	Duplicate bool `json:"duplicate"`
	// SameEvent is true when the existing run was started by this very event
	// (a redelivery); false for a run in flight for another event.
	SameEvent bool   `json:"sameEvent,omitempty"`
	Note      string `json:"note,omitempty"`
}

var (
	// ErrUnavailable wraps errors reaching Temporal: the caller should try again later.
	ErrUnavailable = errors.New("temporal unavailable")
	// ErrNotFound: the person has no deprovisioning (or none running, for signals).
	ErrNotFound = errors.New("no deprovisioning")
)

// Start starts the person's Deprovision workflow for this event, or says
// what it did with the run that already exists for the person.
//
// The common case, a person with no run yet, is one call: the start refuses
// any existing run (running or closed). Only then is the existing run read:
// a redelivery of the same event is a duplicate, unless it corrects who the
// person is (e-mail, name, accounts), which the run in flight takes as a
// correction; a termination while a role change is in flight supersedes it;
// a closed run for an earlier event (rehired, leaving again) gives way to a
// new run. Corrections and supersessions reach that exact run (by run id)
// as workflows.SignalHREvent.
func Start(ctx context.Context, c client.Client, t workflows.Termination) (Started, error) {
	return StartSigned(ctx, c, t, nil)
}

// StartSigned is Start for a sender holding a key the runs trust (the
// relay's relay.decisionKey): a later event that corrects or supersedes the
// run in flight is sent to it signed by key, as the run requires. Without a
// key such an event is refused with ErrUnsigned and nothing changes.
func StartSigned(ctx context.Context, c client.Client, t workflows.Termination, key ed25519.PrivateKey) (Started, error) {
	if t.EventID == "" {
		return Started{}, fmt.Errorf("start: event id is required")
	}
	id := workflows.WorkflowID(t.EmployeeID)
	started, err := start(ctx, c, t, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE)
	var exists *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &exists) {
		return started, err
	}
	desc, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		return Started{}, fmt.Errorf("start %s: describe: %w: %w", id, ErrUnavailable, err)
	}
	info := desc.RawResponse.GetWorkflowExecutionInfo()
	run := existingRun{
		runID:    info.GetExecution().GetRunId(),
		event:    memoString(desc),
		kind:     workflows.Kind(memoValue(desc, memoKind)),
		identity: memoValue(desc, memoIdentity),
		running:  info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
	}
	if run.running && run.kind == "" {
		// A run started before the kind was in the memo: ask it.
		run.kind = queryKind(ctx, c, id, run.runID)
	}
	if run.running || run.event == t.EventID {
		return answerExisting(ctx, c, t, run, key)
	}
	// A closed run for an earlier event: this event starts a new one. If
	// another delivery wins the race, it is reported as a duplicate.
	started, err = start(ctx, c, t, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
	if errors.As(err, &exists) {
		return Started{WorkflowID: id, RunID: exists.RunId, Outcome: OutcomeDuplicate, Duplicate: true, Note: "another delivery started it a moment ago"}, nil
	}
	return started, err
}

func start(ctx context.Context, c client.Client, t workflows.Termination, reuse enumspb.WorkflowIdReusePolicy) (Started, error) {
	id := workflows.WorkflowID(t.EmployeeID)
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    reuse,
		// Tell us when a run exists rather than silently handing it back.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            workflows.StaticSummary(t), // the run's line in the Web UI
		Memo:                                     map[string]any{memoEventID: t.EventID, memoKind: string(t.Kind), memoIdentity: IdentityDigest(t)},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SAEmployeeID.ValueSet(t.EmployeeID),
			workflows.SAStatus.ValueSet(string(workflows.PhaseScheduled)),
			workflows.SAPrivileged.ValueSet(t.Privileged),
			workflows.SALegalHold.ValueSet(t.LegalHold != nil),
			workflows.SASLABreached.ValueSet(false),
		),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.WorkflowType, t)
	var exists *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &exists):
		return Started{}, err
	case err != nil:
		return Started{}, fmt.Errorf("start %s: %w: %w", id, ErrUnavailable, err)
	}
	return Started{WorkflowID: id, RunID: run.GetRunID(), Outcome: OutcomeStarted}, nil
}

// memoString reads the run's event id from its memo. The client encoded the
// memo with its data converter (encrypted when the codec is on), so it is
// decoded with the same one: the description carries the client's converter.
// A description built without a client (test fakes) has only the raw
// response; its memo is read with the default converter.
func memoString(desc *client.WorkflowExecutionDescription) string {
	var s string
	if desc.Memo != nil {
		if err := desc.GetMemoValue(memoEventID, &s); err != nil {
			return ""
		}
		return s
	}
	p := desc.RawResponse.GetWorkflowExecutionInfo().GetMemo().GetFields()[memoEventID]
	if p == nil {
		return ""
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}

// Status queries the person's latest run.
func Status(ctx context.Context, c client.Client, employeeID string) (workflows.Status, error) {
	var st workflows.Status
	id := workflows.WorkflowID(employeeID)
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return st, fmt.Errorf("status of %s: %w for %s", id, ErrNotFound, employeeID)
		}
		return st, fmt.Errorf("status of %s: %w", id, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("status of %s: decode: %w", id, err)
	}
	return st, nil
}
