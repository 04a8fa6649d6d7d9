// Package hris turns what HR systems send (BambooHR webhooks, Workday
// notifications and reports, Offboard's generic JSON) into the events the
// relay acts on: start a Deprovision run, or rescind one.
//
// Parsers never trust the sender for more than the payload says, never fail
// on fields they do not know, and name the field when one they need is missing.
//
// Employee ids follow one rule, whatever the source (NormalizeEmployeeID):
// surrounding white space is trimmed; letters are upper-cased, so " E1001",
// "e1001" and "E1001" are one person with one workflow; what is left must be
// 1 to 64 ASCII letters, digits, '-', '_' or '.', starting with a letter or
// a digit. Anything else (non-ASCII such as "Müller-7", control characters,
// spaces inside, longer ids) is refused for that item alone, so the workflow
// id "deprovision-<id>" is always one Temporal accepts.
//
// A delivery that batches several people (generic "events", BambooHR's
// field-based "employees", several Workday workers) is judged item by item:
// an item that cannot be acted on is in Result.Rejected and the others are
// acted on. A single-item delivery's error is the delivery's error.
package hris

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/offboard/offboard/workflows"
)

// Action is what the relay does with an event.
type Action string

const (
	// ActionStart starts the person's Deprovision run (termination, contract end, role change).
	ActionStart Action = "start"
	// ActionRescind sends `rescind` to the person's run: HR cancelled the termination.
	ActionRescind Action = "rescind"
	// ActionRehire sends `rescind` too: a rehire while a run is still in
	// flight stops it; once removal has started the workflow refuses it.
	ActionRehire Action = "rehire"
)

// Event is one thing an HR system said about one person.
type Event struct {
	Action Action
	// Termination is the workflow input for ActionStart; for rescinds and
	// rehires only EventID, Source, EmployeeID and EffectiveAt are set, and
	// EffectiveAt is when the HR system made the change.
	Termination workflows.Termination
	// Reason explains a rescind or rehire, for the signal.
	Reason string
	// RefersTo is the event id of the termination a rescind cancels, when
	// the source names it; otherwise a rescind refers to the run that was in
	// flight when HR made the change (Termination.EffectiveAt).
	RefersTo string
}

// Ignored explains why a delivery produced no event (e.g. a first-name
// change); the relay answers 200 with it so the sender does not retry.
type Ignored struct {
	EmployeeID string `json:"employeeId,omitempty"`
	Reason     string `json:"reason"`
}

// Result is what one delivery amounts to.
type Result struct {
	Events  []Event
	Ignored []Ignored
	// Rejected are the items of a batch that cannot be acted on.
	Rejected []Rejected
}

// Rejected is one item of a batched delivery that cannot be acted on; the
// other items of the delivery still are.
type Rejected struct {
	// EmployeeID is as sent: it may be the invalid id itself.
	EmployeeID string
	// Err wraps ErrMalformed (a field is missing or invalid),
	// ErrUnknownEmployee, or ErrLookup (transient: deliver again).
	Err error
}

// ErrUnknownEmployee: the HR system's own API says it has no such
// employee. Delivering the event again cannot help.
var ErrUnknownEmployee = errors.New("the HR system has no such employee")

// MaxEmployeeIDLen is the longest employee id accepted: longer than any HR
// system's ids we know, and far below Temporal's limit on workflow ids.
const MaxEmployeeIDLen = 64

// NormalizeEmployeeID applies the employee-id rule of the package doc: it
// returns the id trimmed and upper-cased, or says why it is refused.
func NormalizeEmployeeID(s string) (string, error) {
	id := strings.TrimSpace(s)
	switch {
	case id == "":
		return "", errors.New("is empty")
	case len(id) > MaxEmployeeIDLen:
		return "", fmt.Errorf("is %d bytes long, over the %d allowed", len(id), MaxEmployeeIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return "", fmt.Errorf("%s must start with a letter or a digit", quoteID(id))
		}
		if !alnum && c != '-' && c != '_' && c != '.' {
			return "", fmt.Errorf("%s has %s at byte %d: only ASCII letters, digits, '-', '_' and '.' are allowed", quoteID(id), quoteRune(id[i:]), i)
		}
	}
	return strings.ToUpper(id), nil
}

// quoteID shows an id that was refused, shortened: it may be anything.
func quoteID(id string) string {
	if len(id) > 40 {
		return strconv.Quote(id[:40]) + "..."
	}
	return strconv.Quote(id)
}

func quoteRune(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	return strconv.QuoteRune(r)
}

// employeeID normalises the id read at field, as a FieldError when refused.
func employeeID(source, field, raw string) (string, error) {
	id, err := NormalizeEmployeeID(raw)
	if err != nil {
		if strings.TrimSpace(raw) == "" {
			return "", missing(source, field)
		}
		return "", invalid(source, field, "%v", err)
	}
	return id, nil
}

// ErrMalformed wraps every error caused by the payload itself (bad syntax,
// missing or invalid fields): the relay answers 400 and starts nothing.
var ErrMalformed = errors.New("malformed payload")

// ErrLookup wraps failures reading the HR system's API (e.g. BambooHR's
// REST API while handling an event-based webhook): the relay answers 503 so
// the sender delivers again.
var ErrLookup = errors.New("hr system lookup failed")

// FieldError names a required field that is missing or invalid.
type FieldError struct {
	Source string // bamboohr, workday, generic
	Field  string // path, e.g. "events[2].employeeId"
	Reason string // "is required", "is not a date"
}

func (e *FieldError) Error() string { return e.Source + ": " + e.Field + " " + e.Reason }

// Unwrap makes every FieldError an ErrMalformed.
func (e *FieldError) Unwrap() error { return ErrMalformed }

func missing(source, field string) error {
	return &FieldError{Source: source, Field: field, Reason: "is required"}
}

func invalid(source, field, format string, args ...any) error {
	return &FieldError{Source: source, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func malformed(source string, err error) error {
	return fmt.Errorf("%s: %w: %v", source, ErrMalformed, err)
}

// EventID derives a stable id from content, for senders that give no
// delivery id: the same change delivered twice gets the same id.
func EventID(source, employeeID, kind string, effective time.Time) string {
	h := sha256.Sum256([]byte(strings.Join([]string{source, employeeID, kind, effective.UTC().Format(time.RFC3339)}, "\x00")))
	return source + "-" + hex.EncodeToString(h[:12])
}

// parseWhen reads the date and time forms HR systems send. A date without
// a time is the person's last day: access ends at the end of that day in
// loc, or at its start when endOfDay is false (involuntary leavers). A time
// without a zone is read in loc as well.
func parseWhen(s string, loc *time.Location, endOfDay bool) (time.Time, error) {
	t, err := parseWhenAny(strings.TrimSpace(s), loc, endOfDay)
	if err != nil {
		return t, err
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("%q is not a plausible date", s)
	}
	return t, nil
}

func parseWhenAny(s string, loc *time.Location, endOfDay bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty")
	}
	withZone := []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05.999Z0700", "2006-01-02 15:04:05Z07:00"}
	for _, layout := range withZone {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	// xsd:date may carry a zone: "2026-03-14-08:00", "2026-03-14Z", "2026-03-14+01:00".
	dayLoc := loc
	day := s
	if len(s) > 10 {
		zone := s[10:]
		switch {
		case zone == "Z":
			dayLoc = time.UTC
		case len(zone) == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':':
			z, err := time.Parse("-07:00", zone)
			if err != nil {
				return time.Time{}, fmt.Errorf("%q is not a date or time", s)
			}
			_, off := z.Zone()
			dayLoc = time.FixedZone(zone, off)
		default:
			return time.Time{}, fmt.Errorf("%q is not a date or time", s)
		}
		day = s[:10]
	}
	d, err := time.ParseInLocation("2006-01-02", day, dayLoc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date or time", s)
	}
	if endOfDay {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// truthy reads Workday's "1"/"0" and the usual spellings.
func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "y":
		return true
	}
	return false
}

// roles lists the HR roles a record names (Termination.Roles, matched
// against breakGlass knownBy.roles): once each, in order, blanks dropped,
// and a multi-valued column sent as one "a; b" value split.
func roles(values ...string) []string {
	var out []string
	for _, v := range values {
		for _, r := range strings.Split(v, ";") {
			r = strings.TrimSpace(r)
			dup := r == ""
			for _, have := range out {
				dup = dup || strings.EqualFold(have, r)
			}
			if !dup {
				out = append(out, r)
			}
		}
	}
	return out
}
