// Package ssf is OpenID Shared Signals plumbing: Security Event Tokens
// (RFC 8417) signed as compact JWS with RS256 or ES256 only, checked against
// a transmitter's JWKS, and push delivery (RFC 8935). It knows nothing of
// runs or Temporal: the relay receives with it, the SIEM emitter transmits.
package ssf

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Event types Offboard receives and transmits.
const (
	EventAccountDisabled = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
	EventSessionRevoked  = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	// MediaType is a SET's HTTP content type (RFC 8417 section 8.2).
	MediaType = "application/secevent+jwt"
	// TypeHeader is a SET's JWS "typ" (RFC 8417 section 2.3): explicit
	// typing keeps an ID token or an access token from passing as a SET.
	TypeHeader = "secevent+jwt"
	// DeliveryPush names RFC 8935 push delivery in transmitter metadata.
	DeliveryPush = "urn:ietf:rfc:8935"
)

// Subject is an SSF subject identifier (RFC 9493): format email (Email),
// iss_sub (Iss and Sub) or opaque (ID).
type Subject struct {
	Format string `json:"format"`
	Email  string `json:"email,omitempty"`
	Iss    string `json:"iss,omitempty"`
	Sub    string `json:"sub,omitempty"`
	ID     string `json:"id,omitempty"`
}

// Check says whether the subject carries what its format needs.
func (s Subject) Check() error {
	switch s.Format {
	case "email":
		if !strings.Contains(s.Email, "@") {
			return errors.New("subject format email without an email")
		}
	case "iss_sub":
		if s.Iss == "" || s.Sub == "" {
			return errors.New("subject format iss_sub needs iss and sub")
		}
	case "opaque":
		if s.ID == "" {
			return errors.New("subject format opaque without an id")
		}
	default:
		return fmt.Errorf("subject format %q is not email, iss_sub or opaque", s.Format)
	}
	return nil
}

// SET is a Security Event Token's claims.
type SET struct {
	Issuer   string   `json:"iss"`
	Audience Audience `json:"aud"`
	IssuedAt int64    `json:"iat"`
	JTI      string   `json:"jti"`
	Txn      string   `json:"txn,omitempty"`
	Expires  int64    `json:"exp,omitempty"`
	// SubID is the subject of every event (SSF 1.0); older CAEP and RISC
	// senders put it in each event instead (EventBody.Subject).
	SubID  *Subject                   `json:"sub_id,omitempty"`
	Events map[string]json.RawMessage `json:"events"`
}

// EventBody is what Offboard reads and writes in one event.
type EventBody struct {
	Subject          *Subject          `json:"subject,omitempty"`
	EventTimestamp   int64             `json:"event_timestamp,omitempty"`
	InitiatingEntity string            `json:"initiating_entity,omitempty"` // admin, user, policy, system
	ReasonAdmin      map[string]string `json:"reason_admin,omitempty"`
	Reason           string            `json:"reason,omitempty"` // RISC account-disabled: hijacking, bulk-account
}

// SubjectOf is the subject an event is about: its own, else the SET's.
func (s SET) SubjectOf(eventType string) (Subject, error) {
	var b EventBody
	if raw, ok := s.Events[eventType]; ok && len(raw) > 0 {
		if err := json.Unmarshal(raw, &b); err != nil {
			return Subject{}, fmt.Errorf("event %s: %w", eventType, err)
		}
	}
	sub := b.Subject
	if sub == nil {
		sub = s.SubID
	}
	if sub == nil {
		return Subject{}, fmt.Errorf("event %s names no subject (sub_id or the event's subject)", eventType)
	}
	if err := sub.Check(); err != nil {
		return Subject{}, fmt.Errorf("event %s: %w", eventType, err)
	}
	return *sub, nil
}

// Audience is "aud": one string or a list (RFC 7519 section 4.1.3).
type Audience []string

func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = many
	return nil
}

func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}
