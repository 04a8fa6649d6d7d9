package evidence

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/sdk/converter"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/workflows"
)

// Extracted is what a run's history says, for the receipts and the report.
type Extracted struct {
	Source      string // "result" or "history"
	Termination workflows.Termination
	Status      workflows.Status
	Receipts    []control.Receipt
	Phase       string
	StartTime   time.Time
	CloseTime   time.Time
	CloseStatus string
	// Failure is the close failure's message for a failed run.
	Failure string
}

// plain decodes what is never encrypted: search attributes.
var plain = converter.GetDefaultDataConverter()

// Extract reads a Deprovision history. A completed run's result carries the
// receipts and the final status; for a run that did not complete, both are
// reconstructed from the events: ApplyControl completions are receipts,
// their final failures exceptions, signals give approvals, holds and waivers.
// Encrypted payloads need WithConverters.
func Extract(events []*historypb.HistoryEvent, opts ...Option) (Extracted, error) {
	dc := optionsOf(opts).dc
	if len(events) == 0 {
		return Extracted{}, errors.New("empty history")
	}
	started := events[0].GetWorkflowExecutionStartedEventAttributes()
	if started == nil {
		return Extracted{}, errors.New("history does not start with WorkflowExecutionStarted")
	}
	if name := started.GetWorkflowType().GetName(); name != workflows.WorkflowType {
		return Extracted{}, fmt.Errorf("workflow type %q is not %s", name, workflows.WorkflowType)
	}
	last := events[len(events)-1]
	x := Extracted{
		StartTime:   events[0].GetEventTime().AsTime().UTC(),
		CloseTime:   last.GetEventTime().AsTime().UTC(),
		CloseStatus: closeStatus(last),
	}
	if err := fromPayloads(dc, started.GetInput(), &x.Termination); err != nil {
		return x, fmt.Errorf("workflow input: %w", err)
	}
	if done := last.GetWorkflowExecutionCompletedEventAttributes(); done != nil {
		var res workflows.Result
		if err := fromPayloads(dc, done.GetResult(), &res); err != nil {
			return x, fmt.Errorf("workflow result: %w", err)
		}
		x.Source, x.Status, x.Receipts, x.Phase = "result", res.Status, res.Receipts, string(res.Phase)
		if x.Receipts == nil {
			x.Receipts = []control.Receipt{}
		}
		return x, nil
	}
	x.Source = "history"
	x.Status, x.Receipts = reconstruct(dc, events, x.Termination)
	x.Phase = string(x.Status.Phase)
	x.Status.ContainedAt = containedFromReceipts(x.Status.Controls)
	x.Status.Deadlines = reconstructDeadlines(x, planOf(dc, events))
	if f := last.GetWorkflowExecutionFailedEventAttributes(); f != nil {
		x.Failure = failureText(dc, f.GetFailure()).GetMessage()
	}
	if t := last.GetWorkflowExecutionTerminatedEventAttributes(); t != nil {
		x.Failure = "terminated: " + t.GetReason()
	}
	return x, nil
}

func fromPayloads(dc converter.DataConverter, p *commonpb.Payloads, v any) error {
	if p == nil || len(p.GetPayloads()) == 0 {
		return errors.New("no payload")
	}
	return dc.FromPayload(p.GetPayloads()[0], v)
}

// reconstruct rebuilds the last status a run's history shows.
func reconstruct(dc converter.DataConverter, events []*historypb.HistoryEvent, t workflows.Termination) (workflows.Status, []control.Receipt) {
	st := workflows.Status{
		EmployeeID:   t.EmployeeID,
		Kind:         t.Kind,
		EffectiveAt:  t.EffectiveAt,
		Phase:        workflows.PhaseScheduled,
		Accounts:     []workflows.AccountStatus{},
		Controls:     []workflows.ControlStatus{},
		PendingGates: []workflows.Gate{},
		Deadlines:    []workflows.Deadline{},
		Log:          []workflows.LogEntry{},
	}
	if t.LegalHold != nil {
		st.LegalHold = t.LegalHold
		st.Holds = append(st.Holds, workflows.HoldRecord{Hold: *t.LegalHold, PlacedAt: events[0].GetEventTime().AsTime().UTC()})
	}
	scheduled := map[int64]activities.ControlInput{}
	index := map[string]int{}
	ctl := func(in activities.ControlInput) *workflows.ControlStatus {
		i, ok := index[in.ControlID]
		if !ok {
			i = len(st.Controls)
			index[in.ControlID] = i
			st.Controls = append(st.Controls, workflows.ControlStatus{ID: in.ControlID, Target: in.Target, Control: in.Control, Phase: in.Phase, State: workflows.StatePending})
		}
		return &st.Controls[i]
	}
	accepted := map[string]*updatepb.Input{} // update id → its request
	for _, e := range events {
		at := e.GetEventTime().AsTime().UTC()
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := e.GetActivityTaskScheduledEventAttributes()
			if a.GetActivityType().GetName() != "ApplyControl" {
				continue
			}
			var in activities.ControlInput
			if fromPayloads(dc, a.GetInput(), &in) == nil {
				scheduled[e.GetEventId()] = in
				c := ctl(in)
				c.State = workflows.StateRunning
				c.Attempts++
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := e.GetActivityTaskCompletedEventAttributes()
			in, ok := scheduled[a.GetScheduledEventId()]
			if !ok {
				continue
			}
			var r control.Receipt
			if fromPayloads(dc, a.GetResult(), &r) != nil {
				continue
			}
			c := ctl(in)
			c.State, c.Outcome, c.Error, c.Receipt = workflows.StateDone, r.Outcome, "", &r
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			var sched int64
			msg := "timed out"
			if a := e.GetActivityTaskFailedEventAttributes(); a != nil {
				f := failureText(dc, a.GetFailure())
				sched, msg = a.GetScheduledEventId(), innermost(f.GetMessage(), f.GetCause().GetMessage())
			} else {
				sched = e.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
			}
			in, ok := scheduled[sched]
			if !ok {
				continue
			}
			c := ctl(in)
			r := control.Receipt{ControlID: in.ControlID, System: in.Target, Action: in.Control, Phase: in.Phase,
				Target: in.Account.ID, Login: in.Account.Login, Outcome: control.Failed, Detail: msg, StartedAt: at, FinishedAt: at}
			c.State, c.Outcome, c.Error, c.Receipt = workflows.StateException, control.Failed, msg, &r
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			applySignal(dc, &st, e.GetWorkflowExecutionSignaledEventAttributes(), at)
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			// A person's decision: the signed envelope is in the accepted
			// request; it took effect only if the Update then completed.
			u := e.GetWorkflowExecutionUpdateAcceptedEventAttributes()
			accepted[u.GetAcceptedRequest().GetMeta().GetUpdateId()] = u.GetAcceptedRequest().GetInput()
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
			u := e.GetWorkflowExecutionUpdateCompletedEventAttributes()
			if in := accepted[u.GetMeta().GetUpdateId()]; in != nil && u.GetOutcome().GetSuccess() != nil {
				applyDecision(dc, &st, in.GetName(), in.GetArgs(), at)
			}
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			fields := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
			var s string
			if p, ok := fields["DeprovisionStatus"]; ok && plain.FromPayload(p, &s) == nil && s != "exception" {
				st.Phase = workflows.Phase(s)
			}
			var b bool
			if p, ok := fields["SLABreached"]; ok && plain.FromPayload(p, &b) == nil && b {
				st.SLABreached = true
			}
		}
	}
	var receipts []control.Receipt
	for _, c := range st.Controls {
		if c.Receipt != nil {
			receipts = append(receipts, *c.Receipt)
		}
	}
	if receipts == nil {
		receipts = []control.Receipt{}
	}
	return st, receipts
}

// applySignal records what a signal asked for. Whether the workflow accepted
// it is not in the history, so the log says so.
func applySignal(dc converter.DataConverter, st *workflows.Status, s *historypb.WorkflowExecutionSignaledEventAttributes, at time.Time) {
	var raw json.RawMessage
	if fromPayloads(dc, s.GetInput(), &raw) != nil {
		return
	}
	entry := workflows.LogEntry{At: at, Kind: s.GetSignalName(), Detail: "signal received (acceptance not recorded: the run did not complete)"}
	switch s.GetSignalName() {
	case workflows.SignalApprove:
		var v workflows.Approve
		if json.Unmarshal(raw, &v) == nil {
			entry.By = v.Approver
			st.Approvals = append(st.Approvals, workflows.ApprovalRecord{Approve: v, At: at})
		}
	case workflows.SignalLegalHold:
		var v workflows.Hold
		if json.Unmarshal(raw, &v) == nil {
			entry.By = v.By
			st.LegalHold = &v
			st.Holds = append(st.Holds, workflows.HoldRecord{Hold: v, PlacedAt: at})
		}
	case workflows.SignalReleaseHold:
		var v workflows.Release
		if json.Unmarshal(raw, &v) == nil {
			entry.By = v.By
			for i := range st.Holds {
				if st.Holds[i].CaseRef == v.CaseRef && st.Holds[i].ReleasedAt.IsZero() {
					st.Holds[i].ReleasedBy, st.Holds[i].ReleasedAt = v.By, at
				}
			}
			if st.LegalHold != nil && st.LegalHold.CaseRef == v.CaseRef {
				st.LegalHold = nil
			}
		}
	case workflows.SignalWaive:
		var v workflows.Waive
		if json.Unmarshal(raw, &v) == nil {
			entry.By = v.By
			i := slices.IndexFunc(st.Controls, func(c workflows.ControlStatus) bool { return c.ID == v.Control })
			if i >= 0 && st.Controls[i].State == workflows.StateException {
				c := &st.Controls[i]
				c.State, c.Outcome, c.Waiver = workflows.StateWaived, control.Waived, &v
			}
		}
	default:
		var v struct {
			By string `json:"by"`
		}
		_ = json.Unmarshal(raw, &v)
		entry.By = v.By
	}
	st.Log = append(st.Log, entry)
}

// applyDecision records a signed decision the run applied (an Update that
// completed): who decided is the signer, not a field of the payload.
func applyDecision(dc converter.DataConverter, st *workflows.Status, name string, args *commonpb.Payloads, at time.Time) {
	var signed decision.Signed
	if fromPayloads(dc, args, &signed) != nil {
		return
	}
	d, err := decision.Parse(signed.Body)
	if err != nil {
		return
	}
	by := d.Person
	st.Log = append(st.Log, workflows.LogEntry{At: at, Kind: name, By: by, Accepted: true,
		Detail: "signed decision applied (key " + signed.KeyID + "; the run did not complete, so its own log is not recorded)"})
	switch name {
	case workflows.UpdateApprove:
		var v workflows.ApproveRequest
		if json.Unmarshal(d.Payload, &v) == nil {
			st.Approvals = append(st.Approvals, workflows.ApprovalRecord{At: at,
				Approve: workflows.Approve{Approver: by, Decision: v.Decision, PlanDigest: d.PlanDigest, Reason: v.Reason}})
		}
	case workflows.UpdateLegalHold:
		var v workflows.Hold
		if json.Unmarshal(d.Payload, &v) == nil {
			v.By = by
			st.LegalHold = &v
			st.Holds = append(st.Holds, workflows.HoldRecord{Hold: v, PlacedAt: at})
		}
	case workflows.UpdateReleaseHold:
		var v workflows.Release
		if json.Unmarshal(d.Payload, &v) == nil {
			for i := range st.Holds {
				if st.Holds[i].CaseRef == v.CaseRef && st.Holds[i].ReleasedAt.IsZero() {
					st.Holds[i].ReleasedBy, st.Holds[i].ReleasedAt = by, at
				}
			}
			if st.LegalHold != nil && st.LegalHold.CaseRef == v.CaseRef {
				st.LegalHold = nil
			}
		}
	case workflows.UpdateWaive:
		var v workflows.Waive
		if json.Unmarshal(d.Payload, &v) == nil {
			v.By = by
			i := slices.IndexFunc(st.Controls, func(c workflows.ControlStatus) bool { return c.ID == v.Control })
			if i >= 0 && st.Controls[i].State == workflows.StateException {
				c := &st.Controls[i]
				c.State, c.Outcome, c.Waiver = workflows.StateWaived, control.Waived, &v
			}
		}
	}
}

func innermost(msgs ...string) string {
	out := ""
	for _, m := range msgs {
		if m != "" {
			out = m
		}
	}
	return out
}

// facts condenses the extraction for the manifest.
func (x Extracted) facts() Facts {
	f := Facts{
		Source:         x.Source,
		EmployeeID:     x.Termination.EmployeeID,
		Kind:           string(x.Termination.Kind),
		Phase:          x.Phase,
		EffectiveAt:    x.Termination.EffectiveAt.UTC(),
		ContainedAt:    x.Status.ContainedAt.UTC(),
		SLABreached:    x.Status.SLABreached,
		Deadlines:      []SLAFact{},
		Controls:       len(x.Status.Controls),
		OpenExceptions: []string{},
		Waivers:        []WaiverFact{},
		Drift:          len(x.Status.Drift),
	}
	if x.Status.ContainedAt.IsZero() {
		f.ContainedAt = time.Time{}
	}
	for _, d := range x.Status.Deadlines {
		f.Deadlines = append(f.Deadlines, SLAFact{Phase: d.Phase, Due: d.Due.UTC(), MetAt: utcOrZero(d.MetAt), Breached: d.Breached})
	}
	for _, c := range x.Status.Controls {
		switch c.State {
		case workflows.StateException:
			f.OpenExceptions = append(f.OpenExceptions, c.ID)
		case workflows.StateWaived:
			if c.Waiver != nil {
				f.Waivers = append(f.Waivers, WaiverFact{Control: c.ID, By: c.Waiver.By, Reason: c.Waiver.Reason, ExpiresAt: c.Waiver.ExpiresAt.UTC()})
			}
		}
	}
	if h := x.Status.LegalHold; h != nil {
		hf := &HoldFact{By: h.By, CaseRef: h.CaseRef}
		for _, r := range x.Status.Holds {
			if r.CaseRef == h.CaseRef && r.ReleasedAt.IsZero() {
				hf.Since = r.PlacedAt.UTC()
			}
		}
		f.LegalHold = hf
	}
	return f
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// containedFromReceipts is when the last containment control held, if all did.
func containedFromReceipts(controls []workflows.ControlStatus) time.Time {
	var at time.Time
	n := 0
	for _, c := range controls {
		if c.Phase != control.Containment {
			continue
		}
		n++
		if c.State != workflows.StateDone || c.Receipt == nil {
			return time.Time{}
		}
		if c.Receipt.FinishedAt.After(at) {
			at = c.Receipt.FinishedAt.UTC()
		}
	}
	if n == 0 {
		return time.Time{}
	}
	return at
}

// planOf is the plan the run loaded, if it did: from the LoadPlan activity
// (older runs) or its local-activity marker.
func planOf(dc converter.DataConverter, events []*historypb.HistoryEvent) *activities.PlanBase {
	var sched int64
	for _, e := range events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "LoadPlan" {
			sched = e.GetEventId()
		}
		if a := e.GetActivityTaskCompletedEventAttributes(); a != nil && sched != 0 && a.GetScheduledEventId() == sched {
			var p activities.PlanBase
			if fromPayloads(dc, a.GetResult(), &p) == nil {
				return &p
			}
		}
		if m := e.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() == "LocalActivity" {
			var data struct{ ActivityType string }
			if fromPayloads(dc, m.GetDetails()["data"], &data) != nil || data.ActivityType != "LoadPlan" {
				continue
			}
			var p activities.PlanBase
			if fromPayloads(dc, m.GetDetails()["result"], &p) == nil {
				return &p
			}
		}
	}
	return nil
}

// reconstructDeadlines rebuilds the SLA deadlines of a run that did not
// complete, the way the workflow sets them: from when it could act (the
// later of its start and the effective time), once containment began.
func reconstructDeadlines(x Extracted, plan *activities.PlanBase) []workflows.Deadline {
	out := []workflows.Deadline{}
	if plan == nil || x.Termination.Kind == workflows.KindRoleChange {
		return out
	}
	began := false
	for _, c := range x.Status.Controls {
		if c.Phase == control.Containment {
			began = true
		}
	}
	if !began {
		return out
	}
	from := x.StartTime
	if x.Termination.EffectiveAt.After(from) {
		from = x.Termination.EffectiveAt
	}
	removalDone := time.Time{}
	n := 0
	for _, c := range x.Status.Controls {
		if c.Phase != control.Removal {
			continue
		}
		n++
		if c.State != workflows.StateDone || c.Receipt == nil {
			removalDone, n = time.Time{}, -1
			break
		}
		if c.Receipt.FinishedAt.After(removalDone) {
			removalDone = c.Receipt.FinishedAt.UTC()
		}
	}
	if n <= 0 {
		removalDone = time.Time{}
	}
	for _, d := range []struct {
		phase  string
		within time.Duration
		met    time.Time
	}{{"containment", plan.Policy.ContainmentSLA.D(), x.Status.ContainedAt}, {"credentials", plan.Policy.CredentialsSLA.D(), removalDone}} {
		dl := workflows.Deadline{Phase: d.phase, Due: from.Add(d.within), MetAt: d.met}
		switch {
		case !d.met.IsZero():
			dl.Breached = d.met.After(dl.Due)
		default:
			dl.Breached = x.CloseTime.After(dl.Due)
		}
		out = append(out, dl)
	}
	return out
}
