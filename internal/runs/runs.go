// Package runs starts, signals and reads Deprovision workflows for the
// operator CLI and the HRIS relay alike, so both keep the same promises:
// one workflow per person, and the same HR event never starts a second run.
package runs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
	// Duplicate is true when a run for this event (or a run still in flight
	// for this person) already existed: nothing new was started.
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

// Start starts the person's Deprovision workflow for this event, or returns
// the run that already exists for it.
//
// The common case, a person with no run yet, is one call: the start refuses
// any existing run (running or closed). Only then is the existing run read,
// to tell a redelivery of the same event from a new event, and a closed run
// for an earlier event (rehired, leaving again) gives way to a new run.
func Start(ctx context.Context, c client.Client, t workflows.Termination) (Started, error) {
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
	existing := Started{WorkflowID: id, RunID: info.GetExecution().GetRunId(), Duplicate: true}
	event := memoString(desc)
	switch {
	case event == t.EventID:
		existing.SameEvent = true
		existing.Note = "this event already started this run"
		return existing, nil
	case info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		existing.Note = "a deprovisioning for this person is already in flight (event " + event + ")"
		return existing, nil
	}
	// A closed run for an earlier event: this event starts a new one. If
	// another delivery wins the race, it is reported as a duplicate.
	started, err = start(ctx, c, t, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
	if errors.As(err, &exists) {
		return Started{WorkflowID: id, RunID: exists.RunId, Duplicate: true, Note: "another delivery started it a moment ago"}, nil
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
		Memo:                                     map[string]any{memoEventID: t.EventID},
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
	return Started{WorkflowID: id, RunID: run.GetRunID()}, nil
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

// Signal sends one of the contract's signals to the person's running workflow.
func Signal(ctx context.Context, c client.Client, employeeID, name string, payload any) error {
	id := workflows.WorkflowID(employeeID)
	if err := c.SignalWorkflow(ctx, id, "", name, payload); err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return fmt.Errorf("signal %s to %s: %w running for %s", name, id, ErrNotFound, employeeID)
		}
		return fmt.Errorf("signal %s to %s: %w: %w", name, id, ErrUnavailable, err)
	}
	return nil
}

// Verdict is what a run made of a signal, read from the log entry the
// workflow adds for every signal it checks.
type Verdict struct {
	Processed bool   `json:"processed"` // false: not seen in the log within the wait
	Accepted  bool   `json:"accepted"`
	Detail    string `json:"detail,omitempty"` // what it did, or why it refused
}

// SignalAndWait sends a signal and watches the run's log, for at most wait,
// for the entry the signal adds (of kind name, by by). The signal itself is
// durable: when no worker answers within the wait, the verdict is
// unprocessed and the workflow still checks the signal later.
func SignalAndWait(ctx context.Context, c client.Client, employeeID, name, by string, payload any, wait time.Duration) (Verdict, error) {
	deadline := time.Now().Add(wait)
	before := -1
	qctx, cancel := context.WithDeadline(ctx, deadline)
	if st, err := Status(qctx, c, employeeID); err == nil {
		before = len(st.Log)
	}
	cancel()
	if err := Signal(ctx, c, employeeID, name, payload); err != nil {
		return Verdict{}, err
	}
	if before < 0 { // the run could not be read: a worker is missing or slow
		return Verdict{}, nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		qctx, cancel := context.WithDeadline(ctx, deadline)
		st, err := Status(qctx, c, employeeID)
		cancel()
		if err == nil && len(st.Log) > before {
			for _, l := range st.Log[before:] {
				if l.Kind == name && (by == "" || l.By == by) {
					return Verdict{Processed: true, Accepted: l.Accepted, Detail: strings.TrimPrefix(l.Detail, "rejected: ")}, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return Verdict{}, ctx.Err()
		case <-tick.C:
		}
		if !time.Now().Before(deadline) {
			return Verdict{}, nil
		}
	}
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
