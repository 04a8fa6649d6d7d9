package runs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/workflows"
)

// Request is one person's decision about a run, as the operator API
// authenticated them (or as a break-glass key's holder).
type Request struct {
	EmployeeID string
	// RunID pins the run; "" is the person's latest run, which must be running.
	RunID      string
	Kind       string // one of decision.Kinds (= the workflow's Update name)
	Person     string
	Roles      []string
	PlanDigest string
	Payload    any
	// IdempotencyKey makes a retried request the same Update: the run applies
	// it once and answers every retry with the same verdict.
	IdempotencyKey string
}

// Verdict is the run's typed answer to a decision.
type Verdict struct {
	Accepted   bool   `json:"accepted"`
	Detail     string `json:"detail,omitempty"` // what it did
	Reason     string `json:"reason,omitempty"` // why it refused
	By         string `json:"by"`
	BreakGlass bool   `json:"breakGlass,omitempty"`
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	UpdateID   string `json:"updateId"`
	// Digest is the signed decision's (decision.Digest), as the run records it.
	Digest string `json:"digest,omitempty"`
}

// Decide signs the request with key and sends it to the run as the Update
// of its kind, waiting at most wait for the run's verdict. A refusal is a
// verdict, not an error; errors are ErrNotFound (no such run running) and
// ErrUnavailable (Temporal or every worker unreachable: retry with the same
// IdempotencyKey).
func Decide(ctx context.Context, c client.Client, key ed25519.PrivateKey, req Request, now time.Time, wait time.Duration) (Verdict, error) {
	id := workflows.WorkflowID(req.EmployeeID)
	run, err := runningRun(ctx, c, id, req.RunID)
	if err != nil {
		return Verdict{}, err
	}
	body, err := json.Marshal(req.Payload)
	if err != nil {
		return Verdict{}, fmt.Errorf("decide %s: payload: %w", req.Kind, err)
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	signed, err := decision.Sign(key, decision.Decision{
		WorkflowID: id, RunID: run, Kind: req.Kind, Person: req.Person, Roles: req.Roles,
		PlanDigest: decision.NormalizeDigest(req.PlanDigest), Payload: body, At: now.UTC(), Nonce: hex.EncodeToString(nonce),
	})
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{By: req.Person, WorkflowID: id, RunID: run, UpdateID: updateID(id, run, req, signed), Digest: decision.Digest(signed)}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	h, err := c.UpdateWorkflow(wctx, client.UpdateWorkflowOptions{
		WorkflowID: id, RunID: run, UpdateID: v.UpdateID, UpdateName: req.Kind,
		Args: []any{signed}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var res workflows.DecisionResult
	if err == nil {
		err = h.Get(wctx, &res)
	}
	var app *temporal.ApplicationError
	var notFound *serviceerror.NotFound
	var timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	switch {
	case err == nil:
		v.Accepted, v.Detail, v.BreakGlass = true, res.Detail, res.BreakGlass
		return v, nil
	case errors.As(err, &app):
		v.Reason = app.Message()
		if strings.HasPrefix(v.Reason, "unknown update") {
			// A run started before decisions were signed Updates takes only
			// the old signals (temporal workflow signal, by an administrator).
			v.Reason = "this run started before decisions were signed Updates and takes none: " + v.Reason
		}
		return v, nil
	case errors.As(err, &notFound):
		return v, fmt.Errorf("decide %s on %s run %s: %w running: %s", req.Kind, id, run, ErrNotFound, notFound.Message)
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return v, fmt.Errorf("decide %s on %s: no worker answered within %s: %w", req.Kind, id, wait, ErrUnavailable)
	}
	return v, fmt.Errorf("decide %s on %s: %w: %w", req.Kind, id, ErrUnavailable, err)
}

// updateID is derived from the idempotency key when there is one (the same
// person retrying the same request), else from the signed decision itself.
func updateID(workflowID, run string, req Request, signed decision.Signed) string {
	if req.IdempotencyKey == "" {
		return "decision-" + decision.Digest(signed)[:32]
	}
	h := sha256.New()
	for _, part := range []string{workflowID, run, req.Kind, decision.NormalizeID(req.Person), req.IdempotencyKey} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "decision-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// runningRun names the run a decision is for: the one asked for, or the
// person's latest, which must still be running.
func runningRun(ctx context.Context, c client.Client, id, run string) (string, error) {
	desc, err := c.DescribeWorkflow(ctx, id, run)
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return "", fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		return "", fmt.Errorf("describe %s: %w: %w", id, ErrUnavailable, err)
	}
	info := desc.RawResponse.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return "", fmt.Errorf("%s run %s is %s: %w running", id, info.GetExecution().GetRunId(), info.GetStatus(), ErrNotFound)
	}
	return info.GetExecution().GetRunId(), nil
}

// Running is the person's run in flight: what an HR rescind that names no
// event refers to.
type Running struct {
	WorkflowID string
	RunID      string
	EventID    string // the event that started it
	StartedAt  time.Time
}

// InFlight describes the person's latest run, which must be running.
func InFlight(ctx context.Context, c client.Client, employeeID string) (Running, error) {
	id := workflows.WorkflowID(employeeID)
	desc, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return Running{}, fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		return Running{}, fmt.Errorf("describe %s: %w: %w", id, ErrUnavailable, err)
	}
	info := desc.RawResponse.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return Running{}, fmt.Errorf("%s: %w running", id, ErrNotFound)
	}
	return Running{WorkflowID: id, RunID: info.GetExecution().GetRunId(), EventID: memoString(desc), StartedAt: info.GetStartTime().AsTime()}, nil
}
