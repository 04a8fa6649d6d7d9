// Package control is the contract between the Deprovision workflow and the
// systems it removes access from. A Target knows how to observe and enforce
// a small set of named controls on one system; it has no Temporal imports, so
// connectors stay plain Go clients.
package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Phase groups the controls the workflow runs together.
type Phase string

const (
	// Containment stops the person using access now: suspend, disable, revoke sessions.
	Containment Phase = "containment"
	// Removal takes away what containment only froze: groups, credentials, deactivation.
	Removal Phase = "removal"
	// Deletion removes the account itself, only after retention and with no legal hold.
	Deletion Phase = "deletion"
	// RoleChange removes the groups a new role does not grant; nothing is disabled.
	RoleChange Phase = "role_change"
	// Restore undoes containment when a termination is rescinded before removal.
	Restore Phase = "restore"
	// NonHuman acts on the identities a leaver owned or could know (owned.go):
	// reown, rotate or decommission, step by step.
	NonHuman Phase = "non_human"
)

// Person is who a termination is about, as HR names them.
type Person struct {
	EmployeeID string `json:"employeeId"`
	Email      string `json:"email"`
	Name       string `json:"name,omitempty"`
	// Hints are per-system account identifiers the HR event already carried,
	// keyed by target name; a target uses its hint before looking up by email.
	Hints map[string]string `json:"hints,omitempty"`
}

// Account is one person's account in one target system.
type Account struct {
	Target string `json:"target"`
	// ID is the system's own identifier (Okta user id, Entra object id, AWS
	// "account-id:user-name", AD distinguished name, SCIM resource id).
	ID string `json:"id"`
	// Login is the human-readable identifier (login, UPN, sAMAccountName, userName).
	Login string `json:"login,omitempty"`
	// Privileges are the admin rights Resolve found in the target (an Okta
	// admin role, an Entra directory role, an AWS administrator policy, AD
	// Domain Admins or adminCount=1), each said for people: a person holding
	// any is treated as privileged whatever HR declared.
	Privileges []string `json:"privileges,omitempty"`
	// Holds are the entitlements Resolve read, each said for people and
	// prefixed by its kind ("group all-staff", "directory role Global Reader",
	// "access key …1234 (Active)"); only ids, never key material. A kind that
	// could not be read is said as "<kinds> could not be read: <reason>", so
	// an approver's plan never shows less than is there.
	Holds []string `json:"holds,omitempty"`
}

// Params tune a control.
type Params struct {
	// KeepGroups is used by role changes: the groups (by name) the new role
	// still grants, which remove_groups must leave in place.
	KeepGroups []string `json:"keepGroups,omitempty"`
	// Since is the termination's effective time: sessions and tokens issued
	// before it must no longer work. Targets that can read back a "sessions
	// valid from" time compare it with Since.
	Since time.Time `json:"since,omitzero"`
}

// Observation is what a read-back of a control's state showed.
type Observation struct {
	// Holds is true when the control is in force (suspended, disabled, removed...).
	Holds bool `json:"holds"`
	// Readable is false when the system has no way to read the state back
	// (e.g. Okta sessions); an enforced control is then only "acknowledged".
	Readable bool `json:"readable"`
	// Gone is true when the account no longer exists: the control trivially holds.
	Gone bool `json:"gone,omitempty"`
	// Detail says what was seen, for people ("status=SUSPENDED", "3 groups left").
	Detail string   `json:"detail,omitempty"`
	Call   Response `json:"call"`
}

// Response records one call to a target for the receipt. Body is digested, never stored.
type Response struct {
	RequestID  string `json:"requestId,omitempty"`
	HTTPStatus int    `json:"httpStatus,omitempty"`
	Digest     string `json:"digest,omitempty"`
}

// NewResponse builds a Response, digesting the raw body.
func NewResponse(requestID string, status int, body []byte) Response {
	return Response{RequestID: requestID, HTTPStatus: status, Digest: Digest(body)}
}

// Digest is the SHA-256 of b as "sha256:<hex>"; empty input gives "".
func Digest(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Target is one system whose access Offboard removes.
//
// Observe and Enforce must be safe to call any number of times: the workflow
// observes, enforces only if needed, and observes again, and a retry after a
// crash repeats that sequence.
type Target interface {
	// Name is the configured name ("okta", "aws-prod", "scim-github").
	Name() string
	// Kind is the type of system ("okta", "entra", "awsiam", "ldap", "scim").
	Kind() string
	// Resolve finds the person's account. ErrNotFound means they have none here.
	Resolve(ctx context.Context, p Person) (Account, error)
	// Controls lists, in order, the control names this target applies in a phase.
	Controls(phase Phase) []string
	// Observe reads whether the named control holds for the account.
	Observe(ctx context.Context, name string, acct Account, params Params) (Observation, error)
	// Enforce changes the system so the named control holds.
	Enforce(ctx context.Context, name string, acct Account, params Params) (Response, error)
}

// Finder is implemented by targets whose lookup can answer before the
// account's rights and holdings are read, so containment need not wait for
// them (issue 17). Resolve must equal Find followed by Rights.
type Finder interface {
	// Find is Resolve without Privileges and Holds: the same lookups, the
	// same errors, the same proof behind ErrNotFound.
	Find(ctx context.Context, p Person) (Account, error)
	// Rights reads Privileges and Holds of an account Find returned, as
	// Resolve would have; a read that asking again may cure is an error.
	Rights(ctx context.Context, acct Account) (Account, error)
}

// Prober is implemented by targets that can check their own configuration:
// the credentials are accepted, the base URL answers with this system's API
// (not a proxy page or a wrong path), and the permissions the API can report
// are there. The worker probes every target at start; `starter doctor` too.
type Prober interface {
	Probe(ctx context.Context) (Probe, error)
}

// Probe is what a target's self-check found.
type Probe struct {
	// Checks are the calls made and what each proved, for people
	// ("GET /api/v1/users/me: 200 okta user", "scopes: okta.users.manage").
	Checks []string `json:"checks"`
	// Missing lists permissions the API reported absent; empty when none are
	// missing or the API cannot say.
	Missing []string `json:"missing,omitempty"`
}

// The kinds of failure a target reports. Connectors wrap their errors in an
// *Error carrying one of these; callers test with errors.Is.
//
// ErrNotFound is a claim, and only the target's own not-found answer for the
// resource asked about makes it: Okta errorCode E0000007, Graph error.code
// Request_ResourceNotFound, a SCIM error body (its error schema, status
// "404"), IAM NoSuchEntity, LDAP noSuchObject (32). From Resolve it means the
// person provably has no account: every lookup path covered the directory
// (Error.Searched says what was asked and what came back). A 404 with any
// other body (a route the server lacks, a wrong base path, a proxy's page,
// HTML) is ErrUnexpected, never ErrNotFound.
var (
	ErrNotFound       = errors.New("not found")
	ErrUnexpected     = errors.New("unexpected answer")
	ErrRateLimited    = errors.New("rate limited")
	ErrTransient      = errors.New("transient failure")
	ErrPermanent      = errors.New("permanent failure")
	ErrUnauthorized   = errors.New("unauthorized")
	ErrUnknownControl = errors.New("unknown control")
)

// Error is a classified failure from a target system.
type Error struct {
	Kind       error         // one of the Err* kinds above
	Op         string        // "okta: suspend 00u1"
	HTTPStatus int           // 0 when no HTTP response arrived
	RequestID  string        // the system's request id, when it gave one
	RetryAfter time.Duration // for ErrRateLimited: how long the system asked us to wait
	Digest     string        // digest of the response body, for the receipt
	// Searched, on an ErrNotFound from Resolve, lists every lookup made and
	// what it answered ("GET /api/v1/users?filter=profile.email eq \"x\": 0 users"),
	// for the no-account receipt.
	Searched []string
	Err      error // the underlying error
}

func (e *Error) Error() string {
	msg := e.Op + ": " + e.Kind.Error()
	if e.HTTPStatus != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrNotFound) and friends work.
func (e *Error) Is(target error) bool { return target == e.Kind }

func (e *Error) Unwrap() error { return e.Err }

// ClassifyStatus maps an HTTP status to a failure kind: 429 rate limited,
// 401/403 unauthorized, 408 and 5xx transient, 404/410 unexpected (only the
// system's own not-found body, checked by the connector, makes ErrNotFound),
// other 4xx permanent.
func ClassifyStatus(status int) error {
	switch {
	case status == 404 || status == 410:
		return ErrUnexpected
	case status == 429:
		return ErrRateLimited
	case status == 401 || status == 403:
		return ErrUnauthorized
	case status == 408 || status >= 500:
		return ErrTransient
	default:
		return ErrPermanent
	}
}

// Unknown is the error for a control name a target does not implement.
func Unknown(target, name string) error {
	return &Error{Kind: ErrUnknownControl, Op: target + ": " + name}
}
