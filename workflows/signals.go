package workflows

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// listenSignals is how runs recorded before versionSignedDecisions took
// decisions: as unsigned signals, checked against the names of the plan's
// people. It stays only so those histories replay; new runs take signed
// Updates (updates.go). One coroutine receives every signal; a bad one is
// rejected and recorded in the log, and never fails the workflow.
func (wf *deprovision) listenSignals(ctx workflow.Context) error {
	type handler struct {
		name string
		fn   func(workflow.Context, json.RawMessage) error
	}
	handlers := []handler{
		{SignalApprove, wf.onApprove},
		{SignalLegalHold, wf.onHold},
		{SignalReleaseHold, wf.onRelease},
		{SignalRescind, wf.onRescind},
		{SignalReschedule, wf.onReschedule},
		{SignalRetry, wf.onRetry},
		{SignalWaive, wf.onWaive},
	}
	sel := workflow.NewSelector(ctx)
	for _, h := range handlers {
		ch := workflow.GetSignalChannel(ctx, h.name)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var raw json.RawMessage
			c.Receive(ctx, &raw)
			if err := h.fn(ctx, raw); err != nil {
				wf.log(ctx, h.name, byOf(raw), "rejected: "+err.Error(), false)
			}
		})
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel.Select(ctx)
		}
	})
	return nil
}

// decode reads a signal strictly: unknown fields are an error.
func decode(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad payload: %v", err)
	}
	return nil
}

func byOf(raw json.RawMessage) string {
	var v struct {
		By       string `json:"by"`
		Approver string `json:"approver"`
	}
	_ = json.Unmarshal(raw, &v)
	if v.Approver != "" {
		return v.Approver
	}
	return v.By
}

func (wf *deprovision) onApprove(ctx workflow.Context, raw json.RawMessage) error {
	var s Approve
	if err := decode(raw, &s); err != nil {
		return err
	}
	switch {
	case s.Approver == "":
		return fmt.Errorf("approver is required")
	case s.Decision != "approve" && s.Decision != "reject":
		return fmt.Errorf("decision %q is not approve or reject", s.Decision)
	case strings.EqualFold(s.Approver, wf.t.RequestedBy) && wf.t.RequestedBy != "":
		return fmt.Errorf("%s requested this deprovisioning and may not approve it", s.Approver)
	case strings.EqualFold(s.Approver, wf.t.Email) || strings.EqualFold(s.Approver, wf.t.EmployeeID):
		return fmt.Errorf("%s may not approve their own deprovisioning", s.Approver)
	}
	rec := ApprovalRecord{Approve: s, At: workflow.Now(ctx)}
	if s.PlanDigest == QuarantineDigest {
		if !contains(wf.base.People.Security, s.Approver) {
			return fmt.Errorf("%s does not hold the security role needed to release a quarantine", s.Approver)
		}
		if !wf.t.Quarantined || wf.quarantineReleased {
			return fmt.Errorf("this run is not quarantined")
		}
		if s.Decision == "reject" {
			wf.rescinded = &Rescind{By: s.Approver, Reason: "quarantine rejected: " + s.Reason}
		} else {
			wf.quarantineReleased = true
		}
		wf.status.Approvals = append(wf.status.Approvals, rec)
		wf.log(ctx, SignalApprove, s.Approver, "quarantine "+s.Decision+"d", true)
		return nil
	}
	if !contains(wf.base.People.Approvers, s.Approver) {
		return fmt.Errorf("%s does not hold the approver role", s.Approver)
	}
	if wf.status.PlanDigest == "" || !wf.status.ApprovalNeeded {
		return fmt.Errorf("no plan is waiting for approval")
	}
	if s.PlanDigest != wf.status.PlanDigest {
		return fmt.Errorf("plan digest %s does not match the current plan %s: the plan changed, approve the new one", s.PlanDigest, wf.status.PlanDigest)
	}
	if wf.removalStarted || wf.rejected != nil {
		return fmt.Errorf("the plan was already decided")
	}
	if s.Decision == "reject" {
		wf.rejected = &rec
	} else {
		wf.approved = &rec
	}
	wf.status.Approvals = append(wf.status.Approvals, rec)
	wf.log(ctx, SignalApprove, s.Approver, "plan "+s.PlanDigest+" "+s.Decision+"d", true)
	return nil
}

func (wf *deprovision) onHold(ctx workflow.Context, raw json.RawMessage) error {
	var s Hold
	if err := decode(raw, &s); err != nil {
		return err
	}
	if s.By == "" || s.CaseRef == "" {
		return fmt.Errorf("by and caseRef are required")
	}
	if wf.status.LegalHold != nil {
		return fmt.Errorf("a legal hold (case %s) is already in force", wf.status.LegalHold.CaseRef)
	}
	wf.placeHold(ctx, s, "signal")
	wf.updatePhaseAttribute(ctx)
	return nil
}

func (wf *deprovision) placeHold(ctx workflow.Context, h Hold, how string) {
	wf.status.LegalHold = &h
	wf.status.Holds = append(wf.status.Holds, HoldRecord{Hold: h, PlacedAt: workflow.Now(ctx)})
	wf.log(ctx, SignalLegalHold, h.By, "legal hold placed for case "+h.CaseRef+" ("+how+")", true)
}

func (wf *deprovision) onRelease(ctx workflow.Context, raw json.RawMessage) error {
	var s Release
	if err := decode(raw, &s); err != nil {
		return err
	}
	switch {
	case s.By == "":
		return fmt.Errorf("by is required")
	case wf.status.LegalHold == nil:
		return fmt.Errorf("no legal hold is in force")
	case s.CaseRef != wf.status.LegalHold.CaseRef:
		return fmt.Errorf("case %q does not match the hold's case %q", s.CaseRef, wf.status.LegalHold.CaseRef)
	}
	wf.status.LegalHold = nil
	last := &wf.status.Holds[len(wf.status.Holds)-1]
	last.ReleasedBy, last.ReleasedAt = s.By, workflow.Now(ctx)
	wf.log(ctx, SignalReleaseHold, s.By, "legal hold for case "+s.CaseRef+" released", true)
	wf.updatePhaseAttribute(ctx)
	return nil
}

func (wf *deprovision) onRescind(ctx workflow.Context, raw json.RawMessage) error {
	var s Rescind
	if err := decode(raw, &s); err != nil {
		return err
	}
	switch {
	case s.By == "":
		return fmt.Errorf("by is required")
	case wf.rescinded != nil:
		return fmt.Errorf("already rescinded by %s", wf.rescinded.By)
	case wf.removalStarted:
		return fmt.Errorf("removal has started: too late to rescind; a rehire needs new accounts")
	}
	wf.rescinded = &s
	wf.stopping = true
	wf.log(ctx, SignalRescind, s.By, "rescinded: "+s.Reason, true)
	return nil
}

func (wf *deprovision) onReschedule(ctx workflow.Context, raw json.RawMessage) error {
	var s Reschedule
	if err := decode(raw, &s); err != nil {
		return err
	}
	switch {
	case s.By == "":
		return fmt.Errorf("by is required")
	case s.EffectiveAt.IsZero():
		return fmt.Errorf("effectiveAt is required")
	case !wf.startedAt.IsZero():
		return fmt.Errorf("the effective time has passed and containment has started")
	}
	wf.effectiveAt = s.EffectiveAt
	wf.status.EffectiveAt = s.EffectiveAt
	wf.scheduleChanged = true
	wf.log(ctx, SignalReschedule, s.By, "effective time moved to "+s.EffectiveAt.UTC().Format("2006-01-02T15:04:05Z"), true)
	return nil
}

func (wf *deprovision) onRetry(ctx workflow.Context, raw json.RawMessage) error {
	var s Retry
	if err := decode(raw, &s); err != nil {
		return err
	}
	i, ok := wf.controlIndex[s.Control]
	switch {
	case s.By == "":
		return fmt.Errorf("by is required")
	case !ok:
		return fmt.Errorf("unknown control %q", s.Control)
	case wf.status.Controls[i].State != StateException && wf.status.Controls[i].State != StateWaived:
		return fmt.Errorf("control %s is %s, not in exception", s.Control, wf.status.Controls[i].State)
	}
	wf.retries[s.Control]++
	wf.log(ctx, SignalRetry, s.By, "retry "+s.Control, true)
	return nil
}

func (wf *deprovision) onWaive(ctx workflow.Context, raw json.RawMessage) error {
	var s Waive
	if err := decode(raw, &s); err != nil {
		return err
	}
	i, ok := wf.controlIndex[s.Control]
	now := workflow.Now(ctx)
	maxWaiver := wf.base.Policy.MaxWaiver.D()
	switch {
	case s.By == "":
		return fmt.Errorf("by is required")
	case !contains(wf.base.People.Security, s.By):
		return fmt.Errorf("%s does not hold the security role needed to waive", s.By)
	case !ok:
		return fmt.Errorf("unknown control %q", s.Control)
	case wf.status.Controls[i].State != StateException:
		return fmt.Errorf("control %s is %s, not in exception", s.Control, wf.status.Controls[i].State)
	case strings.TrimSpace(s.Reason) == "":
		return fmt.Errorf("a waiver needs a reason")
	case !s.ExpiresAt.After(now):
		return fmt.Errorf("waiver already expired at %s", s.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	case maxWaiver > 0 && s.ExpiresAt.Sub(now) > maxWaiver:
		return fmt.Errorf("waiver longer than the policy's maximum of %s", maxWaiver)
	}
	wf.waivers[s.Control] = &s
	wf.log(ctx, SignalWaive, s.By, "waived "+s.Control+" until "+s.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z")+": "+s.Reason, true)
	return nil
}

func contains(list []string, who string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, who) })
}
