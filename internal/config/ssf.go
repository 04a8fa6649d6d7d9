package config

import (
	"fmt"
	"net/url"
	"slices"
	"time"
)

// SSFSource receives OpenID Shared Signals (relay.sources.ssf): SETs pushed
// (RFC 8935) to POST /ssf/events by one transmitter, signed with a key of
// its JWKS (JWKSURI, or JWKS inline), for this receiver (Audience).
type SSFSource struct {
	Issuer   string `yaml:"issuer"`   // the transmitter's iss, exactly
	Audience string `yaml:"audience"` // the aud a SET must name (this receiver)
	JWKSURI  string `yaml:"jwksURI"`  // read when first needed and on an unknown kid
	JWKS     string `yaml:"jwks"`     // or the JWKS document inline (public keys only)
	// Token, when set, is the bearer token the transmitter must send
	// (RFC 8935 section 2.1 leaves authentication to the deployment).
	Token Secret `yaml:"token"`
	// MaxAge is how old a SET's iat may be (default 10m).
	MaxAge Duration `yaml:"maxAge"`
	// Events maps an event type to what it starts: termination,
	// containment or ignore (the same words as relay.sources.okta.events).
	// Default: RISC account-disabled → termination, CAEP session-revoked →
	// ignore (a session revoked is no leaver by itself). Containment
	// contains at once and removes nothing until a person approves.
	Events map[string]string `yaml:"events"`
	// OrgURL and APIToken name the Okta org whose Users API maps a subject
	// to the person (profile.employeeNumber): an email by login, an iss_sub
	// (iss = OrgURL or Issuer) or an opaque id by user id.
	OrgURL   string `yaml:"orgURL"`
	APIToken Secret `yaml:"apiToken"`
	// Target is the Okta target's name in targets: the run acts on the very
	// user the subject named (default "okta").
	Target string `yaml:"target"`
}

// SSF event types (internal/ssf names them too).
const (
	SSFAccountDisabled = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
	SSFSessionRevoked  = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	DefaultSSFMaxAge   = 10 * time.Minute
)

// DefaultSSFEvents is the receiver's mapping when the file lists none.
var DefaultSSFEvents = map[string]string{SSFAccountDisabled: OktaStartTermination, SSFSessionRevoked: OktaIgnore}

func (s *SSFSource) check() error {
	if s == nil {
		return nil
	}
	const at = "relay.sources.ssf"
	if s.Issuer == "" || s.Audience == "" {
		return fmt.Errorf("%s: issuer and audience are required", at)
	}
	if (s.JWKSURI == "") == (s.JWKS == "") {
		return fmt.Errorf("%s: name the transmitter's keys with jwksURI or jwks (one of them)", at)
	}
	if s.JWKSURI != "" {
		if u, err := url.Parse(s.JWKSURI); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("%s.jwksURI: %q is not an http(s) URL", at, s.JWKSURI)
		}
	}
	if s.MaxAge < 0 {
		return fmt.Errorf("%s.maxAge: must not be negative", at)
	}
	for typ, what := range s.Events {
		if !slices.Contains([]string{OktaStartTermination, OktaStartContainment, OktaIgnore}, what) {
			return fmt.Errorf("%s.events.%s: %q is not termination, containment or ignore", at, typ, what)
		}
	}
	if err := s.Token.check(); err != nil {
		return fmt.Errorf("%s.token: %v", at, err)
	}
	if s.OrgURL != "" {
		if u, err := url.Parse(s.OrgURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("%s.orgURL: %q is not an http(s) URL", at, s.OrgURL)
		}
		if !s.APIToken.IsSet() {
			return fmt.Errorf("%s.apiToken: is required with orgURL", at)
		}
	}
	if err := s.APIToken.check(); err != nil {
		return fmt.Errorf("%s.apiToken: %v", at, err)
	}
	return nil
}

// SIEMSSF makes Offboard a Shared Signals transmitter (siem.ssf): once a
// containment control that revokes sessions or disables the account is
// observed, a CAEP session-revoked or RISC account-disabled SET, signed
// with SigningKey, is pushed (RFC 8935) to every receiver. It rides the
// SIEM emitter: its own queue per receiver, retries, and the dropped
// counter; a receiver that is down never slows containment.
type SIEMSSF struct {
	// Issuer is Offboard's iss: the base URL `starter serve` is reached at,
	// which serves /.well-known/ssf-configuration and /ssf/jwks.json.
	Issuer string `yaml:"issuer"`
	// SigningKey is a PEM private key (EC P-256 → ES256, RSA → RS256) or
	// the base64 of a 32-byte P-256 private key.
	SigningKey Secret        `yaml:"signingKey"`
	Receivers  []SSFReceiver `yaml:"receivers"`
	// SessionRevoked and AccountDisabled list the controls (by name, like
	// clear_sessions, or id, like okta/suspend) whose observed success is
	// announced. Defaults: clear_sessions, revoke_sessions; suspend, disable.
	SessionRevoked  []string `yaml:"sessionRevoked"`
	AccountDisabled []string `yaml:"accountDisabled"`
}

// SSFReceiver is one relying party's push endpoint.
type SSFReceiver struct {
	Name     string `yaml:"name"`
	URL      string `yaml:"url"`
	Audience string `yaml:"audience"` // the SET's aud (default: the URL)
	Token    Secret `yaml:"token"`    // bearer token the receiver asks for
}

// Default controls announced.
var (
	DefaultSSFSessionRevoked  = []string{"clear_sessions", "revoke_sessions"}
	DefaultSSFAccountDisabled = []string{"suspend", "disable"}
)

func (s *SIEMSSF) check() error {
	if s == nil {
		return nil
	}
	const at = "siem.ssf"
	if u, err := url.Parse(s.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%s.issuer: %q is not an http(s) URL", at, s.Issuer)
	}
	if !s.SigningKey.IsSet() {
		return fmt.Errorf("%s.signingKey: is required ({env: NAME} or {file: PATH})", at)
	}
	if err := s.SigningKey.check(); err != nil {
		return fmt.Errorf("%s.signingKey: %v", at, err)
	}
	names := map[string]bool{}
	for i, r := range s.Receivers {
		if r.Name == "" || names[r.Name] {
			return fmt.Errorf("%s.receivers.%d.name: required and unique", at, i)
		}
		names[r.Name] = true
		if u, err := url.Parse(r.URL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("%s.receivers.%d.url: %q is not an http(s) URL", at, i, r.URL)
		}
		if err := r.Token.check(); err != nil {
			return fmt.Errorf("%s.receivers.%d.token: %v", at, i, err)
		}
	}
	return nil
}

// ssfSecrets are the Shared Signals sections' secrets, for the checks every
// secret outside a target gets (no sandbox: value outside the sandbox).
func (c *Config) ssfSecrets() []namedSecret {
	var out []namedSecret
	if s := c.Relay.Sources.SSF; s != nil {
		out = append(out, namedSecret{[]string{"relay", "sources", "ssf", "token"}, s.Token},
			namedSecret{[]string{"relay", "sources", "ssf", "apiToken"}, s.APIToken})
	}
	if s := c.SIEM.SSF; s != nil {
		out = append(out, namedSecret{[]string{"siem", "ssf", "signingKey"}, s.SigningKey})
		for i, r := range s.Receivers {
			out = append(out, namedSecret{[]string{"siem", "ssf", "receivers", fmt.Sprint(i), "token"}, r.Token})
		}
	}
	return out
}
