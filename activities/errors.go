package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/control"
)

// FailureDetail travels in an ApplicationError's details so the workflow can
// put the failing call's status, request id and digest in the receipt.
type FailureDetail struct {
	HTTPStatus int    `json:"httpStatus,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
	Digest     string `json:"digest,omitempty"`
}

func failureDetail(r control.Response) FailureDetail {
	return FailureDetail{HTTPStatus: r.HTTPStatus, RequestID: r.RequestID, Digest: r.Digest}
}

// classify turns a connector error into Temporal's error kinds. It returns an
// ApplicationError at the top level, or its non-retryable type would be lost.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var detail FailureDetail
	var ce *control.Error
	if errors.As(err, &ce) {
		detail = FailureDetail{HTTPStatus: ce.HTTPStatus, RequestID: ce.RequestID, Digest: ce.Digest}
	}
	opts := temporal.ApplicationErrorOptions{Details: []any{detail}}
	switch {
	case errors.Is(err, control.ErrRateLimited):
		if ce != nil && ce.RetryAfter > 0 {
			opts.NextRetryDelay = ce.RetryAfter
		}
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeRateLimited, opts)
	case errors.Is(err, control.ErrUnauthorized):
		opts.NonRetryable = true
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeUnauthorized, opts)
	case errors.Is(err, control.ErrPermanent), errors.Is(err, control.ErrUnknownControl), errors.Is(err, control.ErrUnexpected):
		// An unexpected answer (a 404 from a route the server lacks, a foreign
		// body) will not change by asking again: a person must look.
		opts.NonRetryable = true
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypePermanent, opts)
	case errors.Is(err, control.ErrNotFound):
		// Reaching here means the account vanished between resolve and act in a
		// way the control could not absorb; a retry re-observes.
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeTransient, opts)
	default:
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeTransient, opts)
	}
}

func responseOf(err error, fallback control.Response) control.Response {
	var ce *control.Error
	if errors.As(err, &ce) {
		return control.Response{RequestID: ce.RequestID, HTTPStatus: ce.HTTPStatus, Digest: ce.Digest}
	}
	return fallback
}

// receipt builds a control.Receipt step by step.
type receipt struct{ control.Receipt }

func newReceipt(ctx context.Context, t control.Target, in ControlInput) *receipt {
	r := &receipt{control.Receipt{
		ControlID: in.ControlID,
		System:    in.Target,
		Kind:      t.Kind(),
		Action:    in.Control,
		Phase:     in.Phase,
		Target:    in.Account.ID,
		Login:     in.Account.Login,
		StartedAt: time.Now().UTC(),
	}}
	if activity.IsActivity(ctx) {
		r.Attempt = activity.GetInfo(ctx).Attempt
	}
	return r
}

func (r *receipt) addObservation(step string, o control.Observation) {
	holds := o.Holds
	r.Calls = append(r.Calls, control.Call{Step: step, Response: o.Call, Holds: &holds, Detail: o.Detail})
}

func (r *receipt) addCall(step string, resp control.Response, detail string) {
	r.Calls = append(r.Calls, control.Call{Step: step, Response: resp, Detail: detail})
}

func (r *receipt) finish(outcome control.Outcome, detail string) control.Receipt {
	r.Outcome, r.Detail, r.FinishedAt = outcome, detail, time.Now().UTC()
	// The receipt's headline call is the last one that reached the system.
	for i := len(r.Calls) - 1; i >= 0; i-- {
		if c := r.Calls[i]; c.HTTPStatus != 0 || c.RequestID != "" || c.Digest != "" {
			r.RequestID, r.HTTPStatus, r.Digest = c.RequestID, c.HTTPStatus, c.Digest
			break
		}
	}
	return r.Receipt
}
