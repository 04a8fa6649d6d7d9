package control

import "time"

// Outcome is how a control ended, as an auditor reads it.
type Outcome string

const (
	// Observed: a read-back proved the state.
	Observed Outcome = "observed"
	// Acknowledged: the system accepted the change but its state cannot be read back.
	Acknowledged Outcome = "acknowledged"
	// Attested: a person declared the state (e.g. the account has no access here).
	Attested Outcome = "attested"
	// Waived: a security approver accepted the risk, with a reason and an expiry.
	Waived Outcome = "waived"
	// Failed: the control did not hold; it is an open exception.
	Failed Outcome = "failed"
)

// Receipt is the record of one control on one account: what was seen, what
// was done, and the proof. It never contains secrets or response bodies, only
// their digests.
type Receipt struct {
	ControlID   string    `json:"controlId"` // "okta/suspend"
	System      string    `json:"system"`    // target name
	Kind        string    `json:"kind"`      // target kind
	Action      string    `json:"action"`    // control name
	Phase       Phase     `json:"phase"`
	Target      string    `json:"target"` // account id
	Login       string    `json:"login,omitempty"`
	Outcome     Outcome   `json:"outcome"`
	AlreadyHeld bool      `json:"alreadyHeld,omitempty"` // nothing changed: the control held before we acted
	Gone        bool      `json:"gone,omitempty"`        // the account no longer exists
	Drift       bool      `json:"drift,omitempty"`       // re-verification found the control no longer held
	Detail      string    `json:"detail,omitempty"`
	StartedAt   time.Time `json:"startedAt"`
	FinishedAt  time.Time `json:"finishedAt"`
	RequestID   string    `json:"requestId,omitempty"`
	HTTPStatus  int       `json:"httpStatus,omitempty"`
	Digest      string    `json:"digest,omitempty"`
	Calls       []Call    `json:"calls,omitempty"`
	Attempt     int32     `json:"attempt,omitempty"`
	By          string    `json:"by,omitempty"`     // who waived or attested
	Reason      string    `json:"reason,omitempty"` // why it was waived
	ExpiresAt   time.Time `json:"expiresAt,omitzero"`
}

// Call is one request made while running a control.
type Call struct {
	Step string `json:"step"` // "observe", "enforce", "observe-after"
	Response
	Holds  *bool  `json:"holds,omitempty"`
	Detail string `json:"detail,omitempty"`
}
