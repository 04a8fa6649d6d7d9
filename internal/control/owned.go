package control

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Non-human identities (issue 15): what a leaver owns or could know that is
// not their own account. Control 1-9-5 covers service accounts and API keys,
// and break-glass access: they stay valid after the person leaves unless
// someone takes them over, rotates them or shuts them down.

// The kinds of non-human identity.
const (
	KindAPIToken         = "api token"           // Okta: an API token the person created
	KindApplication      = "application"         // Entra: an app registration the person owns
	KindServicePrincipal = "service principal"   // Entra: a service principal the person owns
	KindServiceUser      = "service user"        // AWS IAM: a user whose owner tag names the person
	KindSecret           = "secret"              // AWS Secrets Manager: a secret whose owner tag names the person
	KindManagedAccount   = "managed account"     // AD: an account whose managedBy is the person
	KindBreakGlass       = "break-glass account" // a shared or emergency account from the registry
)

// Action is what policy does with a non-human identity.
type Action string

const (
	// Reown hands it to the leaver's manager (or a named team) and takes the leaver off it.
	Reown Action = "reown"
	// Rotate replaces its credentials: the new value goes to the secret store
	// before the old one stops working, so a service never loses its key.
	Rotate Action = "rotate"
	// Decommission stops it working: credentials removed or disabled, sign-in off.
	Decommission Action = "decommission"
)

// Owned is one non-human identity: found by an Owner's Discover, or named in
// the break-glass registry.
type Owned struct {
	Target string `json:"target"`
	Kind   string `json:"kind"`
	// ID is the system's own identifier: Okta token id, Entra object id, AWS
	// "account-id:user-name" or secret ARN, AD distinguished name; for a
	// break-glass account, its login as the registry names it.
	ID string `json:"id"`
	// Name is how people know it (token name, display name, user name).
	Name string `json:"name,omitempty"`
	// Credentials are what it holds at discovery, by id, never by value. A
	// rotation replaces exactly these; an approver sees them by last four.
	Credentials []Credential `json:"credentials,omitempty"`
	// Secret names the secret-store entry (Secrets Manager secret id or ARN)
	// a rotation writes the new value to: from the registry for break-glass
	// accounts, from config.NonHuman.SecretName for the rest.
	Secret string `json:"secret,omitempty"`
}

// Credential is one credential of a non-human identity, by id.
type Credential struct {
	Kind   string `json:"kind"`             // "access key", "client secret", "certificate", "api token"
	ID     string `json:"id"`               // access key id, keyId; never the secret
	Status string `json:"status,omitempty"` // "Active", "Inactive", "expires 2027-01-01"
}

// Last4 is the credential as people see it in a plan: its kind and the last
// four characters of its id.
func (c Credential) Last4() string {
	id := c.ID
	if len(id) > 4 {
		id = id[len(id)-4:]
	}
	s := c.Kind + " …" + id
	if c.Status != "" {
		s += " (" + c.Status + ")"
	}
	return s
}

// Say is the identity as a plan line: "service user deploy-bot (aws): access key …1234 (Active)".
func (o Owned) Say() string {
	s := fmt.Sprintf("%s %s (%s)", o.Kind, o.displayName(), o.Target)
	if len(o.Credentials) > 0 {
		var cs []string
		for _, c := range o.Credentials {
			cs = append(cs, c.Last4())
		}
		s += ": " + strings.Join(cs, ", ")
	}
	return s
}

func (o Owned) displayName() string {
	if o.Name != "" {
		return o.Name
	}
	return o.ID
}

// Wait is when a step of a non-human action may run.
type Wait string

const (
	// Now: as soon as the action may run (after approval, where policy asks for one).
	Now Wait = ""
	// Grace: after the rotation grace period (config.NonHuman.Grace), so
	// services have picked up the new credential before the old one stops.
	Grace Wait = "grace"
	// Purge: after the purge period (config.NonHuman.Purge): the old,
	// already inactive credential is deleted.
	Purge Wait = "purge"
)

// Step is one control of a non-human action, in order.
type Step struct {
	Name  string `json:"name"`
	After Wait   `json:"after,omitempty"`
}

// OwnedParams tune a non-human control.
type OwnedParams struct {
	// NewOwner takes over on Reown: the manager's e-mail or login from the
	// HR event, or a team (group) name from config.NonHuman.Team.
	NewOwner string `json:"newOwner,omitempty"`
	// Leaver is the leaver's own account in this target (empty for a
	// break-glass account in a target where the leaver has none): Reown
	// takes it off the owners.
	Leaver Account `json:"leaver"`
	// Token identifies this rotation: the same for every retry of the same
	// run's rotation of the same object, so a retried rotation writes the
	// same secret version and recognises the credential it created. It has
	// the form of a UUID (Secrets Manager's ClientRequestToken).
	Token string `json:"token,omitempty"`
	// Since is when the run's rotation began: a password changed after it is
	// the rotated one (read back from pwdLastSet, passwordChanged…).
	Since time.Time `json:"since,omitzero"`
	// Store is where rotations write new values; set by the activity, never
	// recorded. Nil when no store is configured: a rotation then fails as
	// ErrPermanent, naming the missing store.
	Store SecretStore `json:"-"`
}

// Owner is implemented by targets that find and act on non-human identities.
// Every step follows observe → enforce if needed → observe, like any
// control; Observe and Enforce must be safe to repeat after a crash.
type Owner interface {
	// Discover lists the non-human identities acct's person owns in this
	// system. An empty list is a claim like "no account": a list the
	// connector could not read fully is an error, never an empty result.
	Discover(ctx context.Context, acct Account) ([]Owned, error)
	// OwnedSteps lists, in order, the steps that carry out action on an
	// identity of kind; nil when the target cannot (the plan then says so,
	// and the identity waits for a person as an exception).
	OwnedSteps(kind string, action Action) []Step
	// ObserveOwned reads whether the named step holds for o.
	ObserveOwned(ctx context.Context, name string, o Owned, p OwnedParams) (Observation, error)
	// EnforceOwned changes the system so the named step holds.
	EnforceOwned(ctx context.Context, name string, o Owned, p OwnedParams) (Response, error)
}

// SecretStore is where rotated credentials go (AWS Secrets Manager in
// production). A rotation follows Secrets Manager's own protocol: the new
// value is stored as a pending version first, then set on the system, then
// promoted to current, so at every moment the current version works and a
// value is never lost.
type SecretStore interface {
	// PutPending stores value as a pending version whose id is token
	// (Secrets Manager: PutSecretValue, ClientRequestToken=token,
	// VersionStages=[AWSPENDING]). The same token and value again is a no-op.
	PutPending(ctx context.Context, secret, token string, value []byte) error
	// Pending reads the version token back; ok is false when there is none.
	Pending(ctx context.Context, secret, token string) (value []byte, ok bool, err error)
	// Promote makes version token the current one (AWSCURRENT moves to it).
	Promote(ctx context.Context, secret, token string) error
	// Current is the id of the current version, without its value.
	Current(ctx context.Context, secret string) (versionID string, err error)
}

// RotationMissing says what a rotation of o lacks before it may touch
// anything (no store, no secret named, no token, no start time); "" when
// nothing is missing. Connectors wrap it in their own ErrPermanent.
func (p OwnedParams) RotationMissing(o Owned) string {
	switch {
	case p.Store == nil:
		return "no secret store configured: a rotation has nowhere to keep the new value"
	case o.Secret == "":
		return "no secret named for " + o.Say() + ": a rotation has nowhere to keep the new value"
	case p.Token == "":
		return "no rotation token: a retry could not recognise its own version"
	case p.Since.IsZero():
		return "no rotation start time: its read-back could not tell the new value from the old"
	}
	return ""
}
