// Package siem sends what Offboard did to a SIEM as it happens: every
// control outcome, exception, SLA breach and drift finding becomes an
// OCSF-shaped JSON event (Account Change, class 3001) sent to the configured
// sinks: Splunk's HTTP Event Collector, syslog over TLS (RFC 5425) and a
// JSON-lines file.
//
// Activities emit; workflows never do. Emit never blocks: each sink has a
// bounded queue, and an event that finds it full is dropped and counted
// (offboard_siem_events_dropped_total). Delivery is at-least-once: a batch
// is retried, and an activity retried after a worker crash emits again, but
// every event carries a deterministic id (metadata.uid) made of the workflow
// id, run id, activity id and outcome, so the SIEM can dedupe on it. Splunk's
// HEC does not dedupe by itself.
//
// People's decisions (signed Workflow Updates, which run no activity) are
// emitted by the operator API (DecisionEvent). Shared Signals receivers are
// sinks too (SSF): each applied containment control that a read-back proved
// becomes a signed CAEP session-revoked or RISC account-disabled SET.
package siem

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/control"
)

// OCSF identifiers used here (schema 1.3).
const (
	SchemaVersion      = "1.3.0"
	ClassAccountChange = 3001
	CategoryIAM        = 3
	ActivityDisable    = 5
	ActivityDelete     = 6
	ActivityDetach     = 8 // Detach Policy: groups and entitlements taken away
	ActivityEnable     = 2
	ActivityOther      = 99
	StatusSuccess      = 1
	StatusFailure      = 2
	SeverityInfo       = 1
	SeverityMedium     = 3
	SeverityHigh       = 4
)

// Event is one OCSF Account Change event. Offboard's own fields (to join
// the event to the evidence) are under unmapped, as OCSF asks.
type Event struct {
	Metadata     Metadata `json:"metadata"`
	ClassUID     int      `json:"class_uid"`
	ClassName    string   `json:"class_name"`
	CategoryUID  int      `json:"category_uid"`
	CategoryName string   `json:"category_name"`
	ActivityID   int      `json:"activity_id"`
	ActivityName string   `json:"activity_name"`
	TypeUID      int      `json:"type_uid"`
	SeverityID   int      `json:"severity_id"`
	StatusID     int      `json:"status_id"`
	Status       string   `json:"status"`
	StatusDetail string   `json:"status_detail,omitempty"`
	Time         int64    `json:"time"` // milliseconds since the epoch
	Message      string   `json:"message"`
	Actor        Actor    `json:"actor"`
	User         User     `json:"user"`
	Unmapped     Unmapped `json:"unmapped"`
}

// Metadata names the event (uid) and who produced it.
type Metadata struct {
	UID     string  `json:"uid"`
	Version string  `json:"version"`
	Product Product `json:"product"`
}

// Product is Offboard.
type Product struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

// Actor is who acted: Offboard's worker, on behalf of the run.
type Actor struct {
	AppName string `json:"app_name"`
	User    *User  `json:"user,omitempty"`
}

// User is the account the event is about.
type User struct {
	UID  string `json:"uid,omitempty"`
	Name string `json:"name,omitempty"`
}

// Unmapped carries what joins the event to the evidence.
type Unmapped struct {
	Kind           string `json:"kind"` // control, decision, exception, sla_breach, drift, approval_expired, ...
	WorkflowID     string `json:"workflow_id"`
	RunID          string `json:"run_id"`
	ActivityID     string `json:"activity_id,omitempty"`
	EmployeeID     string `json:"employee_id,omitempty"`
	ControlID      string `json:"control_id,omitempty"`
	System         string `json:"system,omitempty"`
	Phase          string `json:"phase,omitempty"`
	Outcome        string `json:"outcome,omitempty"`
	Attempt        int32  `json:"attempt,omitempty"`
	ReceiptDigest  string `json:"receipt_digest,omitempty"` // sha256 of the receipt's JSON, as the activity returned it
	ResponseDigest string `json:"response_digest,omitempty"`
	RequestID      string `json:"request_id,omitempty"`
	Op             string `json:"op,omitempty"`              // apply or verify (controls)
	DecisionDigest string `json:"decision_digest,omitempty"` // the signed decision's digest (decisions)
	UpdateID       string `json:"update_id,omitempty"`
	BreakGlass     bool   `json:"break_glass,omitempty"`
}

// Run says which activity of which run emits.
type Run struct {
	WorkflowID string
	RunID      string
	ActivityID string
	Attempt    int32
}

// ID is the event's deterministic id: the same facts give the same id, so
// an activity retried after a crash re-emits an event the SIEM can dedupe.
func ID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}

// ReceiptDigest is the sha256 of the receipt's JSON.
func ReceiptDigest(r control.Receipt) string {
	b, _ := json.Marshal(r)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func base(run Run, kind string, at time.Time) Event {
	return Event{
		Metadata:     Metadata{Version: SchemaVersion, Product: Product{Name: "Offboard", VendorName: "Offboard"}},
		ClassUID:     ClassAccountChange,
		ClassName:    "Account Change",
		CategoryUID:  CategoryIAM,
		CategoryName: "Identity & Access Management",
		Time:         at.UnixMilli(),
		Actor:        Actor{AppName: "offboard-worker"},
		Unmapped:     Unmapped{Kind: kind, WorkflowID: run.WorkflowID, RunID: run.RunID, ActivityID: run.ActivityID, Attempt: run.Attempt},
	}
}

func (e *Event) setActivity(id int, name string) {
	e.ActivityID, e.ActivityName, e.TypeUID = id, name, e.ClassUID*100+id
}

// ControlEvent is the event for one control's outcome: the receipt an
// ApplyControl or VerifyControl returned, or the error it failed with.
// A success's id leaves the attempt out (a retry that proves the same
// thing is the same event); each failed attempt is an event of its own.
func ControlEvent(run Run, op string, r control.Receipt, failure error, at time.Time) Event {
	e := base(run, "control", at)
	e.setActivity(activityOf(r.Action))
	e.User = User{UID: r.Target, Name: r.Login}
	u := &e.Unmapped
	u.ControlID, u.System, u.Phase, u.Outcome, u.Op = r.ControlID, r.System, string(r.Phase), string(r.Outcome), op
	u.ResponseDigest, u.RequestID = r.Digest, r.RequestID
	switch {
	case failure != nil:
		e.StatusID, e.Status, e.SeverityID = StatusFailure, "Failure", SeverityMedium
		e.StatusDetail = failure.Error()
		u.Outcome = "error"
		e.Message = fmt.Sprintf("%s %s on %s failed (attempt %d): %s", op, r.ControlID, r.Target, run.Attempt, failure.Error())
		e.Metadata.UID = ID("control", run.WorkflowID, run.RunID, run.ActivityID, op, "error", fmt.Sprint(run.Attempt))
		return e
	case r.Outcome == control.Failed:
		e.StatusID, e.Status, e.SeverityID = StatusFailure, "Failure", SeverityHigh
	default:
		e.StatusID, e.Status, e.SeverityID = StatusSuccess, "Success", SeverityInfo
	}
	e.StatusDetail = r.Detail
	u.ReceiptDigest = ReceiptDigest(r)
	e.Message = fmt.Sprintf("%s %s on %s: %s", op, r.ControlID, r.Target, r.Outcome)
	e.Metadata.UID = ID("control", run.WorkflowID, run.RunID, run.ActivityID, op, string(r.Outcome))
	return e
}

// NoticeEvent is the event for what the workflow tells the security team
// (Notify): an exception, an SLA breach, drift, an approval that expired.
func NoticeEvent(run Run, kind, employeeID, text string, at time.Time) Event {
	e := base(run, kind, at)
	e.setActivity(ActivityOther, kind)
	e.StatusID, e.Status, e.SeverityID = StatusFailure, "Failure", SeverityMedium
	if kind == "sla_breach" || kind == "drift" {
		e.SeverityID = SeverityHigh
	}
	e.User = User{UID: employeeID}
	e.Message, e.StatusDetail = text, text
	e.Unmapped.EmployeeID = employeeID
	e.Metadata.UID = ID("notice", run.WorkflowID, run.RunID, run.ActivityID, kind)
	return e
}

// activityOf maps a control name to OCSF's account-change activities.
func activityOf(action string) (int, string) {
	a := strings.ToLower(action)
	switch {
	case strings.Contains(a, "unsuspend") || strings.Contains(a, "enable") && !strings.Contains(a, "disable") || strings.Contains(a, "restore"):
		return ActivityEnable, "Enable"
	case strings.Contains(a, "suspend") || strings.Contains(a, "disable") || strings.Contains(a, "deactivate"):
		return ActivityDisable, "Disable"
	case strings.Contains(a, "delete"):
		return ActivityDelete, "Delete"
	case strings.Contains(a, "group") || strings.Contains(a, "remove"):
		return ActivityDetach, "Detach Policy"
	}
	return ActivityOther, action
}
