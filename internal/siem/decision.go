package siem

import (
	"fmt"
	"time"
)

// Decision is a person's signed decision (a Workflow Update) as the
// operator API sent it and the run answered: decisions run no activity, so
// the API emits them, refused ones too (a SOC wants to see those).
type Decision struct {
	Kind       string // the Update: approve, waive, legal_hold, ...
	By         string
	Roles      []string
	EmployeeID string
	WorkflowID string
	RunID      string
	UpdateID   string
	Digest     string // the signed decision's digest, as the run records it
	Accepted   bool
	Reason     string // why it was refused
	Detail     string // what it did
	Control    string // the control a retry or waiver names
	BreakGlass bool
}

// DecisionEvent is the event for one decision. Its id is the update id's
// and the verdict's: a retry of the same Update is the same event.
func DecisionEvent(d Decision, at time.Time) Event {
	e := base(Run{WorkflowID: d.WorkflowID, RunID: d.RunID}, "decision", at)
	e.setActivity(ActivityOther, d.Kind)
	e.Actor = Actor{AppName: "offboard-operator-api", User: &User{Name: d.By}}
	e.User = User{UID: d.EmployeeID}
	u := &e.Unmapped
	u.EmployeeID, u.ControlID, u.Outcome = d.EmployeeID, d.Control, "accepted"
	u.DecisionDigest, u.UpdateID, u.BreakGlass = d.Digest, d.UpdateID, d.BreakGlass
	e.StatusID, e.Status, e.SeverityID, e.StatusDetail = StatusSuccess, "Success", SeverityInfo, d.Detail
	if d.Kind == "waive" || d.BreakGlass {
		e.SeverityID = SeverityMedium // a control left undone, or keys used without the API
	}
	e.Message = fmt.Sprintf("decision %s on %s by %s (%v): accepted", d.Kind, d.WorkflowID, d.By, d.Roles)
	if !d.Accepted {
		u.Outcome = "refused"
		e.StatusID, e.Status, e.SeverityID, e.StatusDetail = StatusFailure, "Failure", SeverityMedium, d.Reason
		e.Message = fmt.Sprintf("decision %s on %s by %s (%v): refused: %s", d.Kind, d.WorkflowID, d.By, d.Roles, d.Reason)
	}
	e.Metadata.UID = ID("decision", d.WorkflowID, d.RunID, d.UpdateID, u.Outcome)
	return e
}
