package hris

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/offboard/offboard/workflows"
)

// SourceGeneric names Offboard's own JSON format.
const SourceGeneric = "generic"

// Generic parses Offboard's own format, for HR systems (or scripts) that can
// POST JSON and sign it. One event, or {"events":[...]} for a batch:
//
//	{
//	  "eventId":     "evt-2026-0042",          // optional: derived from content when absent
//	  "type":        "termination",            // termination | contract_end | role_change | rescind | rehire
//	  "employeeId":  "E1001",                  // required; normalised per the package doc (trimmed, upper case)
//	  "email":       "ada@example.com",        // required to start, unless accounts name every account
//	  "name":        "Ada Lovelace",
//	  "effectiveAt": "2026-03-14T17:00:00Z",   // required to start; a date alone is the last day
//	  "timeZone":    "Europe/Berlin",          // reads a date-only or zone-less effectiveAt (default: the source's)
//	  "reason":      "voluntary",              // voluntary | involuntary | for_cause
//	  "privileged":  true,
//	  "manager":     "grace@example.com",
//	  "newRole":     "analyst",                // role_change only
//	  "roles":       ["dba", "on-call"],       // HR roles held: break-glass accounts known by one are rotated
//	  "accounts":    {"okta": "00u1abc"},
//	  "requestedBy": "hr-bot@example.com",
//	  "legalHold":   {"by": "legal@example.com", "caseRef": "LIT-7", "reason": "..."},
//	  "rescinds":    "evt-2026-0042"           // rescind only: the event id of the termination it cancels
//	}
//
// A date-only effectiveAt ends access at the end of that day, or at its
// start for involuntary and for-cause leavers. Unknown fields are ignored.
// A rescind without "rescinds" cancels the run in flight when it was sent
// (its effectiveAt, or the delivery's time), never a later one.
// In a batch, an event that cannot be acted on is rejected alone.
//
// Signing (checked by the relay): X-Offboard-Timestamp is Unix seconds and
// X-Offboard-Signature is "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body).
type Generic struct {
	Location *time.Location // default zone; nil = UTC
	Now      func() time.Time
}

// GenericEvent is one event in the generic format.
type GenericEvent struct {
	EventID     string            `json:"eventId"`
	Type        string            `json:"type"`
	EmployeeID  string            `json:"employeeId"`
	Email       string            `json:"email"`
	Name        string            `json:"name"`
	EffectiveAt string            `json:"effectiveAt"`
	TimeZone    string            `json:"timeZone"`
	Reason      string            `json:"reason"`
	Privileged  bool              `json:"privileged"`
	Manager     string            `json:"manager"`
	NewRole     string            `json:"newRole"`
	Roles       []string          `json:"roles"`
	Accounts    map[string]string `json:"accounts"`
	RequestedBy string            `json:"requestedBy"`
	LegalHold   *workflows.Hold   `json:"legalHold"`
	Rescinds    string            `json:"rescinds"`
}

// Parse reads one event or a batch.
func (p Generic) Parse(body []byte) (Result, error) {
	trimmed := bytes.TrimSpace(body)
	var events []GenericEvent
	prefix := ""
	var probe map[string]json.RawMessage
	if err := decodeJSON(trimmed, &probe); err != nil {
		return Result{}, malformed(SourceGeneric, err)
	}
	if raw, ok := probe["events"]; ok {
		if err := decodeJSON(raw, &events); err != nil {
			return Result{}, malformed(SourceGeneric, fmt.Errorf("events: %v", err))
		}
		if len(events) == 0 {
			return Result{}, invalid(SourceGeneric, "events", "is empty")
		}
		prefix = "events[%d]."
	} else {
		var e GenericEvent
		if err := decodeJSON(trimmed, &e); err != nil {
			return Result{}, malformed(SourceGeneric, err)
		}
		events = []GenericEvent{e}
	}
	var res Result
	for i, e := range events {
		at := ""
		if prefix != "" {
			at = fmt.Sprintf(prefix, i)
		}
		ev, err := p.event(e, at)
		switch {
		case err != nil && prefix != "":
			res.Rejected = append(res.Rejected, Rejected{EmployeeID: e.EmployeeID, Err: err})
			continue
		case err != nil:
			return Result{}, err
		}
		res.Events = append(res.Events, ev)
	}
	return res, nil
}

func (p Generic) event(e GenericEvent, at string) (Event, error) {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	if e.TimeZone != "" {
		l, err := time.LoadLocation(e.TimeZone)
		if err != nil {
			return Event{}, invalid(SourceGeneric, at+"timeZone", "%q is not an IANA time zone", e.TimeZone)
		}
		loc = l
	}
	id, err := employeeID(SourceGeneric, at+"employeeId", e.EmployeeID)
	if err != nil {
		return Event{}, err
	}
	e.EmployeeID = id
	if e.Type == "" {
		return Event{}, missing(SourceGeneric, at+"type")
	}
	reason := workflows.Reason(e.Reason)
	switch reason {
	case "", workflows.ReasonVoluntary, workflows.ReasonInvoluntary, workflows.ReasonForCause:
	default:
		return Event{}, invalid(SourceGeneric, at+"reason", "%q is not voluntary, involuntary or for_cause", e.Reason)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	switch e.Type {
	case "rescind", "rehire":
		effective := now()
		if e.EffectiveAt != "" {
			t, err := parseWhen(e.EffectiveAt, loc, false)
			if err != nil {
				return Event{}, invalid(SourceGeneric, at+"effectiveAt", "%v", err)
			}
			effective = t
		}
		action := ActionRescind
		why := "termination cancelled (generic event)"
		if e.Type == "rehire" {
			action, why = ActionRehire, "rehired (generic event)"
		}
		eventID := e.EventID
		if eventID == "" {
			eventID = EventID(SourceGeneric, e.EmployeeID, e.Type, time.Time{})
		}
		return Event{Action: action, Reason: why, RefersTo: strings.TrimSpace(e.Rescinds), Termination: workflows.Termination{
			EventID: eventID, Source: SourceGeneric, EmployeeID: e.EmployeeID, EffectiveAt: effective, RequestedBy: e.RequestedBy}}, nil
	case string(workflows.KindTermination), string(workflows.KindContractEnd), string(workflows.KindRoleChange):
	default:
		return Event{}, invalid(SourceGeneric, at+"type", "%q is not termination, contract_end, role_change, rescind or rehire", e.Type)
	}
	kind := workflows.Kind(e.Type)
	if e.Email == "" && len(e.Accounts) == 0 {
		return Event{}, missing(SourceGeneric, at+"email")
	}
	if e.EffectiveAt == "" {
		return Event{}, missing(SourceGeneric, at+"effectiveAt")
	}
	if kind == workflows.KindRoleChange && e.NewRole == "" {
		return Event{}, missing(SourceGeneric, at+"newRole")
	}
	immediate := reason == workflows.ReasonInvoluntary || reason == workflows.ReasonForCause
	effective, err := parseWhen(e.EffectiveAt, loc, !immediate)
	if err != nil {
		return Event{}, invalid(SourceGeneric, at+"effectiveAt", "%v", err)
	}
	if e.LegalHold != nil && e.LegalHold.CaseRef == "" {
		return Event{}, missing(SourceGeneric, at+"legalHold.caseRef")
	}
	eventID := e.EventID
	if eventID == "" {
		k := string(kind)
		if kind == workflows.KindRoleChange {
			k += ":" + e.NewRole
		}
		eventID = EventID(SourceGeneric, e.EmployeeID, k, effective)
	}
	t := workflows.Termination{
		EventID:     eventID,
		Source:      SourceGeneric,
		EmployeeID:  e.EmployeeID,
		Email:       e.Email,
		Name:        e.Name,
		Kind:        kind,
		Reason:      reason,
		EffectiveAt: effective,
		Privileged:  e.Privileged,
		Manager:     e.Manager,
		Roles:       roles(e.Roles...),
		Accounts:    e.Accounts,
		RequestedBy: e.RequestedBy,
		LegalHold:   e.LegalHold,
	}
	if kind == workflows.KindRoleChange {
		t.NewRole = e.NewRole
	}
	return Event{Action: ActionStart, Termination: t}, nil
}
