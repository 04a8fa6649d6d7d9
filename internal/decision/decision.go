// Package decision is the signed envelope a person's decision travels in,
// from the operator API (or a break-glass key) to the Deprovision workflow:
// who decided what about which run, when, signed with Ed25519 by a key only
// the API holds. The workflow verifies it with the public keys of its plan.
//
// The signature covers the exact bytes of the body, and the body has one
// encoding only (Parse refuses any other spelling of the same decision), so
// there is nothing to canonicalise on the verifying side.
package decision

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kinds of decision; each is also the name of the workflow's Update.
const (
	KindApprove            = "approve" // approve or reject the removal plan (payload's decision)
	KindQuarantineRelease  = "quarantine-release"
	KindLegalHold          = "legal-hold"
	KindReleaseHold        = "release-hold"
	KindRescind            = "rescind"
	KindReschedule         = "reschedule"
	KindRetry              = "retry"
	KindWaive              = "waive"
	KindIdentityCorrection = "identity-correction"
	// KindHREvent signs a later HR event the relay sends to a run in flight
	// (a correction, a termination superseding a role change). It travels as
	// a signal, HR needing no answer, so it is not in Kinds.
	KindHREvent = "hr-event"
)

// Kinds lists every kind, in the order the documentation shows them.
var Kinds = []string{KindApprove, KindQuarantineRelease, KindLegalHold, KindReleaseHold, KindRescind,
	KindReschedule, KindRetry, KindWaive, KindIdentityCorrection}

// Roles a decision may carry, as the operator API's tokens grant them.
const (
	RoleHR       = "hr"
	RoleSecurity = "security"
	RoleApprover = "approver"
)

// domain separates these signatures from any other use of the same key.
const domain = "offboard-decision-v1\x00"

// MaxBody bounds a body; a decision is a few hundred bytes.
const MaxBody = 16 << 10

// Decision is what a person decided, as the operator API authenticated them.
type Decision struct {
	WorkflowID string          `json:"workflowId"`
	RunID      string          `json:"runId"`
	Kind       string          `json:"kind"`
	Person     string          `json:"person"`
	Roles      []string        `json:"roles"`
	PlanDigest string          `json:"planDigest"` // "" where the kind binds no plan
	Payload    json.RawMessage `json:"payload"`    // the kind's own fields, compact JSON
	At         time.Time       `json:"at"`         // when the API signed it, UTC
	Nonce      string          `json:"nonce"`      // makes two equal decisions two different ones
}

// Signed is the envelope the workflow's Updates take.
type Signed struct {
	KeyID string `json:"keyId"`
	Body  []byte `json:"body"` // the Decision, as Encode wrote it
	Sig   []byte `json:"sig"`  // Ed25519 over domain + Body
}

// HasRole reports whether the decision carries role.
func (d Decision) HasRole(role string) bool {
	for _, r := range d.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Encode writes the one encoding of d that Parse accepts.
func Encode(d Decision) ([]byte, error) {
	if d.Roles == nil {
		d.Roles = []string{}
	}
	if len(d.Payload) == 0 {
		d.Payload = json.RawMessage("{}")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, d.Payload); err != nil {
		return nil, fmt.Errorf("decision: payload: %w", err)
	}
	d.Payload = buf.Bytes()
	d.At = d.At.UTC()
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("decision: encode: %w", err)
	}
	if len(b) > MaxBody {
		return nil, fmt.Errorf("decision: body of %d bytes is over %d", len(b), MaxBody)
	}
	return b, nil
}

// Parse reads a body strictly: known fields only, every field present, one
// value, and exactly the bytes Encode would write for it.
func Parse(body []byte) (Decision, error) {
	var d Decision
	if len(body) > MaxBody {
		return d, fmt.Errorf("decision: body of %d bytes is over %d", len(body), MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Decision{}, fmt.Errorf("decision: parse: %w", err)
	}
	again, err := Encode(d)
	if err != nil {
		return Decision{}, err
	}
	if !bytes.Equal(again, body) {
		return Decision{}, errors.New("decision: parse: not in canonical form")
	}
	switch {
	case d.WorkflowID == "" || d.RunID == "":
		return Decision{}, errors.New("decision: workflowId and runId are required")
	case d.Kind == "":
		return Decision{}, errors.New("decision: kind is required")
	case strings.TrimSpace(d.Person) == "":
		return Decision{}, errors.New("decision: person is required")
	case d.At.IsZero():
		return Decision{}, errors.New("decision: at is required")
	case d.Nonce == "":
		return Decision{}, errors.New("decision: nonce is required")
	}
	return d, nil
}

// KeyID names a public key: "ed25519:" and the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(s[:8])
}

// Sign encodes and signs d.
func Sign(priv ed25519.PrivateKey, d Decision) (Signed, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return Signed{}, errors.New("decision: sign: not an Ed25519 private key")
	}
	body, err := Encode(d)
	if err != nil {
		return Signed{}, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	return Signed{KeyID: KeyID(pub), Body: body, Sig: ed25519.Sign(priv, message(body))}, nil
}

func message(body []byte) []byte {
	return append([]byte(domain), body...)
}

// Key is a public key the verifier trusts.
type Key struct {
	Public     ed25519.PublicKey
	BreakGlass bool // a key held outside the API, for when the API is down
}

// Verified is a decision whose signature checked out.
type Verified struct {
	Decision
	KeyID      string
	BreakGlass bool
}

// Errors Verify returns, to tell an attacker's envelope from a stale one.
var (
	ErrUnsigned   = errors.New("decision is not signed")
	ErrUnknownKey = errors.New("decision is signed by a key this run does not trust")
	ErrBadSig     = errors.New("decision's signature does not match")
)

// Verify checks the signature against the trusted keys and parses the body.
// It does not look at the decision's time or run: the caller knows its own.
func Verify(s Signed, keys []Key) (Verified, error) {
	if s.KeyID == "" || len(s.Sig) == 0 || len(s.Body) == 0 {
		return Verified{}, ErrUnsigned
	}
	for _, k := range keys {
		if len(k.Public) != ed25519.PublicKeySize || KeyID(k.Public) != s.KeyID {
			continue
		}
		if len(s.Sig) != ed25519.SignatureSize || !ed25519.Verify(k.Public, message(s.Body), s.Sig) {
			return Verified{}, ErrBadSig
		}
		d, err := Parse(s.Body)
		if err != nil {
			return Verified{}, err
		}
		return Verified{Decision: d, KeyID: s.KeyID, BreakGlass: k.BreakGlass}, nil
	}
	return Verified{}, fmt.Errorf("%w (%s)", ErrUnknownKey, s.KeyID)
}

// Digest names a signed decision: the update id when the caller gave no
// idempotency key, and what a run remembers so it never applies one twice.
func Digest(s Signed) string {
	h := sha256.New()
	h.Write([]byte(s.KeyID))
	h.Write([]byte{0})
	h.Write(s.Body)
	h.Write([]byte{0})
	h.Write(s.Sig)
	return hex.EncodeToString(h.Sum(nil))
}

// NormalizeDigest writes a plan digest as the workflow shows it: "sha256:"
// and lower-case hex, whether or not the person typed the prefix.
func NormalizeDigest(d string) string {
	d = strings.ToLower(strings.TrimSpace(d))
	if d == "" {
		return ""
	}
	if len(d) == 2*sha256.Size && !strings.HasPrefix(d, "sha256:") {
		if _, err := hex.DecodeString(d); err == nil {
			return "sha256:" + d
		}
	}
	return d
}

// ParsePrivateKey reads a private key as configured: base64 (standard) of
// the 32-byte seed or of the 64-byte private key.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("decision key: not base64")
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		k := ed25519.PrivateKey(b)
		if !bytes.Equal(ed25519.NewKeyFromSeed(b[:ed25519.SeedSize]), k) {
			return nil, errors.New("decision key: the public half does not match the seed")
		}
		return k, nil
	}
	return nil, fmt.Errorf("decision key: %d bytes is not an Ed25519 seed (32) or private key (64)", len(b))
}

// ParsePublicKey reads a public key as configured: base64 of 32 bytes.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("decision public key: want base64 of 32 bytes")
	}
	return ed25519.PublicKey(b), nil
}

// NormalizeID is how identifiers of people are compared: trimmed, lower-case.
func NormalizeID(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
