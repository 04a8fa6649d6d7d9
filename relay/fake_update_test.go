package relay

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/workflows"
)

// UpdateWorkflow is the fake's side of a decision: like the workflow it
// checks the signature (sandbox key) and the run, records the decision as
// sent with the signed person as its By, and answers with a verdict
// (refuse: refused with the reason; silent: no worker answers).
func (f *fakeTemporal) UpdateWorkflow(ctx context.Context, opts client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, serviceerror.NewUnavailable("connection refused")
	}
	r, ok := f.runs[opts.WorkflowID]
	if !ok || !r.running || (opts.RunID != "" && opts.RunID != r.runID) {
		return nil, serviceerror.NewNotFound("workflow execution already completed")
	}
	if f.silent {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	signed, ok := opts.Args[0].(decision.Signed)
	if !ok || len(opts.Args) != 1 {
		return nil, fmt.Errorf("fake: update argument is %T, not a decision.Signed", opts.Args[0])
	}
	v, err := decision.Verify(signed, []decision.Key{{Public: ed25519.NewKeyFromSeed(sandboxDecisionSeed).Public().(ed25519.PublicKey)}})
	if err != nil {
		return fakeUpdate{err: temporal.NewApplicationError(err.Error(), "")}, nil
	}
	if v.Kind != opts.UpdateName || v.RunID != r.runID || v.WorkflowID != r.id {
		return fakeUpdate{err: temporal.NewApplicationError("signed for another run or kind", "")}, nil
	}
	payload, err := decodedPayload(v)
	if err != nil {
		return nil, err
	}
	f.signals = append(f.signals, sentSignal{WorkflowID: opts.WorkflowID, RunID: r.runID, Name: opts.UpdateName, Payload: payload})
	if reason, refused := f.refuse[opts.UpdateName]; refused {
		return fakeUpdate{err: temporal.NewApplicationError(reason, "")}, nil
	}
	if rs, ok := payload.(workflows.Reschedule); ok {
		r.status.EffectiveAt = rs.EffectiveAt
	}
	if opts.UpdateName == workflows.UpdateQuarantineRelease {
		r.released = true
		r.status.Phase = workflows.PhaseScheduled
	}
	return fakeUpdate{res: workflows.DecisionResult{Kind: v.Kind, By: v.Person, Detail: v.Kind + " done"}}, nil
}

// decodedPayload is the decision's payload as its type, with By the signed person.
func decodedPayload(v decision.Verified) (any, error) {
	var err error
	switch v.Kind {
	case workflows.UpdateApprove, workflows.UpdateQuarantineRelease:
		var p workflows.ApproveRequest
		err = json.Unmarshal(v.Payload, &p)
		return workflows.Approve{Approver: v.Person, Decision: p.Decision, PlanDigest: v.PlanDigest, Reason: p.Reason}, err
	case workflows.UpdateLegalHold:
		var p workflows.Hold
		err = json.Unmarshal(v.Payload, &p)
		p.By = v.Person
		return p, err
	case workflows.UpdateReleaseHold:
		var p workflows.Release
		err = json.Unmarshal(v.Payload, &p)
		p.By = v.Person
		return p, err
	case workflows.UpdateRescind:
		var p workflows.Rescind
		err = json.Unmarshal(v.Payload, &p)
		p.By = v.Person
		return p, err
	case workflows.UpdateReschedule:
		var p workflows.Reschedule
		err = json.Unmarshal(v.Payload, &p)
		p.By = v.Person
		return p, err
	case workflows.UpdateRetry:
		var p workflows.Retry
		err = json.Unmarshal(v.Payload, &p)
		p.By = v.Person
		return p, err
	case workflows.UpdateWaive:
		var p workflows.Waive
		err = json.Unmarshal(v.Payload, &p)
		p.By = v.Person
		return p, err
	case workflows.UpdateIdentityCorrection:
		var p workflows.IdentityCorrection
		err = json.Unmarshal(v.Payload, &p)
		p.By = v.Person
		return p, err
	}
	return nil, fmt.Errorf("fake: unknown decision kind %q", v.Kind)
}

type fakeUpdate struct {
	res workflows.DecisionResult
	err error
}

func (u fakeUpdate) WorkflowID() string { return "" }
func (u fakeUpdate) RunID() string      { return "" }
func (u fakeUpdate) UpdateID() string   { return "" }
func (u fakeUpdate) Get(_ context.Context, ptr any) error {
	if u.err != nil {
		return u.err
	}
	if p, ok := ptr.(*workflows.DecisionResult); ok {
		*p = u.res
	}
	return nil
}
