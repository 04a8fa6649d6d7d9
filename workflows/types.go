package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
)

// Names other tools rely on (design.md, "Messages and names").
const (
	TaskQueue    = "deprovision"
	WorkflowType = "Deprovision"

	SignalApprove     = "approve"
	SignalLegalHold   = "legal-hold"
	SignalReleaseHold = "release-hold"
	SignalRescind     = "rescind"
	SignalReschedule  = "reschedule"
	SignalRetry       = "retry"
	SignalWaive       = "waive"
	// SignalHREvent brings a later HR event for the same person into the run
	// that is in flight: a corrected event (same event id, fixed identity) or
	// a termination that supersedes a role change. Payload: HREvent.
	SignalHREvent = "hr-event"

	QueryStatus = "status"

	// Human decisions are Workflow Updates (updates.go). Each takes a
	// decision.Signed whose body names the same kind, signed by the operator
	// API (or a break-glass key), and returns a DecisionResult; a refusal is
	// an error and never enters the history. The payload of each kind:
	UpdateApprove            = decision.KindApprove            // ApproveRequest; the plan digest is the decision's own field
	UpdateQuarantineRelease  = decision.KindQuarantineRelease  // ApproveRequest (approve releases, reject rescinds)
	UpdateLegalHold          = decision.KindLegalHold          // Hold
	UpdateReleaseHold        = decision.KindReleaseHold        // Release
	UpdateRescind            = decision.KindRescind            // Rescind, naming eventId or effectiveAt
	UpdateReschedule         = decision.KindReschedule         // Reschedule, naming eventId or from
	UpdateRetry              = decision.KindRetry              // Retry
	UpdateWaive              = decision.KindWaive              // Waive
	UpdateIdentityCorrection = decision.KindIdentityCorrection // IdentityCorrection

	// QuarantineDigest is the plan digest an approval names to release a
	// quarantined termination (the blast-radius guard).
	QuarantineDigest = "quarantine"
)

// WorkflowID is the one workflow id per person.
func WorkflowID(employeeID string) string { return "deprovision-" + employeeID }

// Search attributes, registered on the namespace by `make run` and the tests.
var (
	SAEmployeeID  = temporal.NewSearchAttributeKeyKeyword("EmployeeId")
	SAStatus      = temporal.NewSearchAttributeKeyKeyword("DeprovisionStatus")
	SAPrivileged  = temporal.NewSearchAttributeKeyBool("Privileged")
	SALegalHold   = temporal.NewSearchAttributeKeyBool("LegalHold")
	SASLABreached = temporal.NewSearchAttributeKeyBool("SLABreached")
)

// SearchAttributes is every attribute with its type, for registering them on a
// namespace (dev servers in tests and the bench; make run and the compose
// setup name the same five).
func SearchAttributes() temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		SAEmployeeID.ValueSet(""),
		SAStatus.ValueSet(""),
		SAPrivileged.ValueSet(false),
		SALegalHold.ValueSet(false),
		SASLABreached.ValueSet(false),
	)
}

// Kind of HR event.
type Kind string

const (
	KindTermination Kind = "termination"
	KindContractEnd Kind = "contract_end"
	KindRoleChange  Kind = "role_change"
)

// Reason for a termination.
type Reason string

const (
	ReasonVoluntary   Reason = "voluntary"
	ReasonInvoluntary Reason = "involuntary"
	ReasonForCause    Reason = "for_cause"
)

// Termination is the workflow's input: one HR event about one person.
type Termination struct {
	EventID     string    `json:"eventId"`
	Source      string    `json:"source"` // bamboohr, workday, generic, cli
	EmployeeID  string    `json:"employeeId"`
	Email       string    `json:"email"`
	Name        string    `json:"name,omitempty"`
	Kind        Kind      `json:"kind"`
	Reason      Reason    `json:"reason,omitempty"`
	EffectiveAt time.Time `json:"effectiveAt"`
	Privileged  bool      `json:"privileged,omitempty"`
	Manager     string    `json:"manager,omitempty"`
	NewRole     string    `json:"newRole,omitempty"` // role changes: the role whose groups are kept
	// Roles are the HR roles the person held: a break-glass account whose
	// knownBy.roles names one is rotated when they leave.
	Roles []string `json:"roles,omitempty"`
	// Accounts are per-target account identifiers the event already knew
	// (target name → id or login); the rest are looked up by email.
	Accounts    map[string]string `json:"accounts,omitempty"`
	RequestedBy string            `json:"requestedBy,omitempty"` // who asked: may not approve their own request
	LegalHold   *Hold             `json:"legalHold,omitempty"`   // a hold the HR event already carried
	Quarantined bool              `json:"quarantined,omitempty"` // blast-radius guard: wait for security before anything
	// ContainOnly: an identity provider's event asked to contain, not to
	// offboard (a lockout, a disabled account): access is contained at once,
	// and nothing is removed until a person approves, whatever the policy.
	ContainOnly bool `json:"containOnly,omitempty"`
}

// Validate checks what the workflow cannot do without.
func (t Termination) Validate() error {
	switch {
	case t.EmployeeID == "":
		return errField("employeeId")
	case t.Email == "" && len(t.Accounts) == 0:
		return errField("email")
	case t.EffectiveAt.IsZero():
		return errField("effectiveAt")
	}
	switch t.Kind {
	case KindTermination, KindContractEnd:
	case KindRoleChange:
		if t.NewRole == "" {
			return errField("newRole")
		}
	default:
		return temporal.NewNonRetryableApplicationError("termination: kind "+string(t.Kind)+" is not termination, contract_end or role_change", "BadInput", nil)
	}
	switch t.Reason {
	case "", ReasonVoluntary, ReasonInvoluntary, ReasonForCause:
	default:
		return temporal.NewNonRetryableApplicationError("termination: reason "+string(t.Reason)+" is not voluntary, involuntary or for_cause", "BadInput", nil)
	}
	return nil
}

func errField(name string) error {
	return temporal.NewNonRetryableApplicationError("termination: "+name+" is required", "BadInput", nil)
}

// Signal payloads.
type (
	// Approve approves or rejects the removal plan whose digest it names.
	Approve struct {
		Approver   string `json:"approver"`
		Decision   string `json:"decision"` // approve | reject
		PlanDigest string `json:"planDigest"`
		Reason     string `json:"reason,omitempty"`
	}
	// Hold is a legal hold: containment runs, destructive steps wait.
	Hold struct {
		By      string `json:"by"`
		CaseRef string `json:"caseRef"`
		Reason  string `json:"reason,omitempty"`
	}
	// Release ends the legal hold with the same case reference.
	Release struct {
		By      string `json:"by"`
		CaseRef string `json:"caseRef"`
	}
	// Rescind cancels the termination: nothing is touched before the
	// effective time; containment is undone before removal. A signed rescind
	// names the run's event or its effective time, so it cannot reach a
	// newer run for another event.
	Rescind struct {
		By          string    `json:"by"`
		Reason      string    `json:"reason,omitempty"`
		EventID     string    `json:"eventId,omitempty"`
		EffectiveAt time.Time `json:"effectiveAt,omitzero"`
	}
	// Reschedule moves the effective time while it is still in the future;
	// a signed one names the run's event or the effective time it moves (From).
	Reschedule struct {
		By          string    `json:"by"`
		EffectiveAt time.Time `json:"effectiveAt"`
		EventID     string    `json:"eventId,omitempty"`
		From        time.Time `json:"from,omitzero"`
	}
	// Retry runs a control in exception again.
	Retry struct {
		By      string `json:"by"`
		Control string `json:"control"`
	}
	// Waive accepts a control in exception until ExpiresAt; then it re-opens.
	Waive struct {
		By        string    `json:"by"`
		Control   string    `json:"control"`
		Reason    string    `json:"reason"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
)

// ApproveRequest is the payload of an approve or quarantine-release decision.
type ApproveRequest struct {
	Decision string `json:"decision"` // approve | reject
	Reason   string `json:"reason,omitempty"`
}

// DecisionResult is what an accepted decision did.
type DecisionResult struct {
	Kind       string `json:"kind"`
	By         string `json:"by"`
	Detail     string `json:"detail"`
	BreakGlass bool   `json:"breakGlass,omitempty"`
}

// PlanItem is one destructive step of the plan an approver approves: the
// plan digest covers exactly these, in this order.
type PlanItem struct {
	Control    string         `json:"control"` // "okta/remove_groups"
	Phase      control.Phase  `json:"phase"`
	Account    string         `json:"account"`
	Login      string         `json:"login,omitempty"`
	Privileges []string       `json:"privileges,omitempty"`
	Params     control.Params `json:"params,omitzero"`
	// Removes is what the step takes away, from the account's Holds (plan.go);
	// for a non-human step, the identity and what happens to it.
	Removes []string `json:"removes,omitempty"`
	// A non-human step (phase non_human): the identity, the action, who
	// takes it over, the step and its wait.
	Owned    *control.Owned `json:"owned,omitempty"`
	Action   control.Action `json:"action,omitempty"`
	NewOwner string         `json:"newOwner,omitempty"`
	Step     string         `json:"step,omitempty"`
	After    control.Wait   `json:"after,omitempty"`
}

// OwnedStatus is one non-human identity and what the run does with it.
type OwnedStatus struct {
	Owned      control.Owned  `json:"owned"`
	Action     control.Action `json:"action"`
	NewOwner   string         `json:"newOwner,omitempty"`
	BreakGlass bool           `json:"breakGlass,omitempty"` // from the registry: the leaver could know it
	// Problem is why nobody can act on it automatically (the target cannot,
	// nobody to hand it to): its one control waits for a person.
	Problem  string   `json:"problem,omitempty"`
	Controls []string `json:"controls"` // its steps' control ids, in order
}

// HREvent is a later HR event for a run in flight (SignalHREvent). Only the
// signed copy counts: the run takes the termination from Signed's payload
// (a decision of kind hr-event by a trusted key, for this very run) and
// refuses an event without one, so no Temporal client can redirect a run.
type HREvent struct {
	Termination Termination      `json:"termination"`
	Signed      *decision.Signed `json:"signed,omitempty"`
}

// IdentityCorrection fixes who a run in flight is about: the e-mail, name
// and per-target account hints. It arrives from a corrected HR event or from
// an operator; the run records it and resolves the person's accounts again.
type IdentityCorrection struct {
	Email    string            `json:"email,omitempty"`
	Name     string            `json:"name,omitempty"`
	Accounts map[string]string `json:"accounts,omitempty"` // target name → id or login
	EventID  string            `json:"eventId,omitempty"`  // the HR event that carried it, if any
	By       string            `json:"by,omitempty"`       // the operator, when not from HR
	Reason   string            `json:"reason,omitempty"`
}

// Phase of the whole run, as DeprovisionStatus shows it.
type Phase string

const (
	PhaseScheduled        Phase = "scheduled"
	PhaseQuarantined      Phase = "quarantined"
	PhaseContaining       Phase = "containing"
	PhaseAwaitingApproval Phase = "awaiting_approval"
	PhaseOnHold           Phase = "on_hold"
	PhaseRemoving         Phase = "removing"
	PhaseRetention        Phase = "retention"
	PhaseDeleting         Phase = "deleting"
	PhaseRestoring        Phase = "restoring"
	PhaseCompleted        Phase = "completed"
	PhaseRescinded        Phase = "rescinded"
	PhaseRejected         Phase = "rejected"
	PhaseApprovalExpired  Phase = "approval_expired"
)

// ControlState is where one control stands.
type ControlState string

const (
	StatePending   ControlState = "pending"
	StateRunning   ControlState = "running"
	StateDone      ControlState = "done"
	StateException ControlState = "exception"
	StateWaived    ControlState = "waived"
)

// Status is what the `status` query returns.
type Status struct {
	WorkflowID     string           `json:"workflowId"`
	EmployeeID     string           `json:"employeeId"`
	Kind           Kind             `json:"kind"`
	Phase          Phase            `json:"phase"`
	EffectiveAt    time.Time        `json:"effectiveAt"`
	ContainedAt    time.Time        `json:"containedAt,omitzero"`
	PlanDigest     string           `json:"planDigest,omitempty"`
	Accounts       []AccountStatus  `json:"accounts"`
	Controls       []ControlStatus  `json:"controls"`
	PendingGates   []Gate           `json:"pendingGates"`
	Deadlines      []Deadline       `json:"deadlines"`
	LegalHold      *Hold            `json:"legalHold,omitempty"`
	Holds          []HoldRecord     `json:"holds,omitempty"`
	Approvals      []ApprovalRecord `json:"approvals,omitempty"`
	SLABreached    bool             `json:"slaBreached"`
	Drift          []string         `json:"drift,omitempty"`
	Log            []LogEntry       `json:"log"`
	ApprovalNeeded bool             `json:"approvalNeeded"`
	// EventID and RunID say which event and run a decision refers to.
	EventID string `json:"eventId,omitempty"`
	RunID   string `json:"runId,omitempty"`
	// Plan is the removal plan PlanDigest names, for the approver to read.
	Plan []PlanItem `json:"plan,omitempty"`
	// Privileged is true when HR declared the person privileged or a target
	// showed admin rights (AccountStatus.Privileges says which).
	Privileged bool `json:"privileged,omitempty"`
	// Corrections are the identity corrections applied to the run, in order.
	Corrections []IdentityCorrection `json:"corrections,omitempty"`
	// Superseded names the role-change event a termination replaced.
	Superseded string `json:"superseded,omitempty"`
	// NonHuman are the identities the leaver owned or could know, and
	// NonHumanSearched what each target's discovery said.
	NonHuman         []OwnedStatus `json:"nonHuman,omitempty"`
	NonHumanSearched []string      `json:"nonHumanSearched,omitempty"`
}

// AccountStatus says what was found in one target.
type AccountStatus struct {
	Target    string `json:"target"`
	Kind      string `json:"kind"`
	ID        string `json:"id,omitempty"`
	Login     string `json:"login,omitempty"`
	NoAccount bool   `json:"noAccount,omitempty"`
	State     string `json:"state"` // pending, resolved, no_account, exception
	Error     string `json:"error,omitempty"`
	// Searched is what the target was asked, when it has no account: the
	// proof behind no_account.
	Searched []string `json:"searched,omitempty"`
	// Privileges are the admin rights the target showed for the account.
	Privileges []string `json:"privileges,omitempty"`
}

// ControlStatus is one control's state, outcome and receipt.
type ControlStatus struct {
	ID       string           `json:"id"` // "okta/suspend"
	Target   string           `json:"target"`
	Control  string           `json:"control"`
	Phase    control.Phase    `json:"phase"`
	State    ControlState     `json:"state"`
	Outcome  control.Outcome  `json:"outcome,omitempty"`
	Attempts int              `json:"attempts"`
	Error    string           `json:"error,omitempty"`
	Receipt  *control.Receipt `json:"receipt,omitempty"`
	Waiver   *Waive           `json:"waiver,omitempty"`
}

// Gate is something the run waits on a person for.
type Gate struct {
	Kind   string    `json:"kind"` // quarantine, approval, legal_hold, exception
	Detail string    `json:"detail"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until,omitzero"`
}

// Deadline is a phase's SLA.
type Deadline struct {
	Phase    string    `json:"phase"`
	Due      time.Time `json:"due"`
	MetAt    time.Time `json:"metAt,omitzero"`
	Breached bool      `json:"breached"`
}

// HoldRecord is one legal hold placed and maybe released.
type HoldRecord struct {
	Hold
	PlacedAt   time.Time `json:"placedAt"`
	ReleasedBy string    `json:"releasedBy,omitempty"`
	ReleasedAt time.Time `json:"releasedAt,omitzero"`
}

// ApprovalRecord is one accepted approval or rejection.
type ApprovalRecord struct {
	Approve
	At         time.Time `json:"at"`
	BreakGlass bool      `json:"breakGlass,omitempty"`
}

// LogEntry records every decision the run applied, every signal it
// refused, and notable events. A decision's entry names the key that signed
// it; BreakGlass marks one signed outside the operator API.
type LogEntry struct {
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"`
	By         string    `json:"by,omitempty"`
	Detail     string    `json:"detail"`
	Accepted   bool      `json:"accepted"`
	KeyID      string    `json:"keyId,omitempty"`
	BreakGlass bool      `json:"breakGlass,omitempty"`
}

// Result is what the workflow returns when it closes.
type Result struct {
	Phase       Phase             `json:"phase"`
	SLABreached bool              `json:"slaBreached"`
	Receipts    []control.Receipt `json:"receipts"`
	Status      Status            `json:"status"`
}
