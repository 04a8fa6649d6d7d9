package config

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Relay configures `starter serve`: the HRIS webhook endpoints and the
// operator API. It is the `relay:` section of the file.
type Relay struct {
	Sources     RelaySources `yaml:"sources"`
	Tokens      []Token      `yaml:"tokens"`
	BlastRadius BlastRadius  `yaml:"blastRadius"`
	// MaxSkew is how far a signed webhook's timestamp may be from our clock.
	MaxSkew Duration `yaml:"maxSkew"`
	// DecisionKey is the Ed25519 private key (base64 of the 32-byte seed)
	// the operator API signs people's decisions with; its public half must be
	// in people.decisionKeys. Without it the API refuses decisions.
	DecisionKey Secret `yaml:"decisionKey"`
	// OIDC lets people use their identity provider's access tokens (the same
	// login as the codec server's) besides the configured bearer tokens.
	OIDC *RelayOIDC `yaml:"oidc"`
}

// RelayOIDC checks access tokens of an OpenID Connect provider for the
// operator API: iss, aud, exp, the signature, and email_verified when people
// are named by e-mail. Roles says who holds which role; nobody else gets in.
type RelayOIDC struct {
	Issuer    string              `yaml:"issuer"`
	Audience  string              `yaml:"audience"`
	UserClaim string              `yaml:"userClaim"` // default "email"
	Roles     map[string][]string `yaml:"roles"`     // role → people (UserClaim values)
}

// RelaySources lists the HR systems allowed to call; a nil source's endpoint answers 404.
type RelaySources struct {
	BambooHR *BambooHRSource `yaml:"bamboohr"`
	Workday  *WorkdaySource  `yaml:"workday"`
	Generic  *GenericSource  `yaml:"generic"`
	Okta     *OktaHookSource `yaml:"okta"` // Okta Event Hooks (oktahook.go)
	SSF      *SSFSource      `yaml:"ssf"`  // OpenID Shared Signals receiver (ssf.go)
}

// BambooHRSource is one BambooHR webhook. Secrets holds its private key and,
// during a rotation, the next one (at most two are valid at once). The API
// settings let the relay read the employee an event-based webhook names.
type BambooHRSource struct {
	Secrets       []Secret `yaml:"secrets"`
	APIBaseURL    string   `yaml:"apiBaseURL"` // default https://api.bamboohr.com
	CompanyDomain string   `yaml:"companyDomain"`
	APIKey        Secret   `yaml:"apiKey"`
	// TimeZone reads date-only termination dates (IANA name, default UTC).
	TimeZone string `yaml:"timeZone"`
}

// WorkdaySource accepts Workday's outbound SOAP notifications and RaaS
// reports. Workday cannot sign, so it authenticates with basic auth; two
// users may be valid at once for rotation.
type WorkdaySource struct {
	Users []BasicUser `yaml:"users"`
	// TimeZone reads dates without a zone; Workday integration users run in
	// Pacific Time, so that is the default.
	TimeZone string `yaml:"timeZone"`
}

// BasicUser is one basic-auth credential.
type BasicUser struct {
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// GenericSource is Offboard's own JSON format, signed with
// X-Offboard-Signature (see internal/hris/generic.go).
type GenericSource struct {
	Secrets  []Secret `yaml:"secrets"`
	TimeZone string   `yaml:"timeZone"` // for date-only effectiveAt, default UTC
}

// Token is one operator API bearer token. Only its SHA-256 (hex) is stored.
type Token struct {
	Name   string   `yaml:"name"`  // the person the API signs decisions as
	Role   string   `yaml:"role"`  // hr, security, approver or auditor
	Roles  []string `yaml:"roles"` // more roles the same person holds
	SHA256 string   `yaml:"sha256"`
}

// AllRoles is Role and Roles together, without repeats.
func (t Token) AllRoles() []string {
	var out []string
	for _, r := range append([]string{t.Role}, t.Roles...) {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Operator roles. An approver may approve removal plans; the role is
// proven by the token, and the workflow checks it in the signed decision.
const (
	RoleHR       = "hr"
	RoleSecurity = "security"
	RoleApprover = "approver"
	RoleAuditor  = "auditor"
)

// BlastRadius quarantines terminations beyond Max within Window: they wait
// for a security person before anything is touched.
type BlastRadius struct {
	Max    int      `yaml:"max"`
	Window Duration `yaml:"window"`
}

// Relay defaults.
const (
	DefaultMaxSkew          = 5 * time.Minute
	DefaultBlastRadiusMax   = 20
	DefaultBlastRadiusWin   = 10 * time.Minute
	DefaultBambooHRAPI      = "https://api.bamboohr.com"
	DefaultWorkdayTimeZone  = "America/Los_Angeles"
	maxSecretsPerSource     = 2
	relayTokenSHA256HexSize = 64
)

// WithDefaults fills what the file left out.
func (r Relay) WithDefaults() Relay {
	if r.MaxSkew == 0 {
		r.MaxSkew = Duration(DefaultMaxSkew)
	}
	if r.BlastRadius.Max == 0 {
		r.BlastRadius.Max = DefaultBlastRadiusMax
	}
	if r.BlastRadius.Window == 0 {
		r.BlastRadius.Window = Duration(DefaultBlastRadiusWin)
	}
	if b := r.Sources.BambooHR; b != nil {
		c := *b
		if c.APIBaseURL == "" {
			c.APIBaseURL = DefaultBambooHRAPI
		}
		if c.TimeZone == "" {
			c.TimeZone = "UTC"
		}
		r.Sources.BambooHR = &c
	}
	if w := r.Sources.Workday; w != nil {
		c := *w
		if c.TimeZone == "" {
			c.TimeZone = DefaultWorkdayTimeZone
		}
		r.Sources.Workday = &c
	}
	if g := r.Sources.Generic; g != nil {
		c := *g
		if c.TimeZone == "" {
			c.TimeZone = "UTC"
		}
		r.Sources.Generic = &c
	}
	return r
}

// Validate checks the relay section; errors name the field.
func (r Relay) Validate() error {
	if r.MaxSkew < 0 {
		return fmt.Errorf("relay.maxSkew: must not be negative")
	}
	if r.BlastRadius.Max < 0 || r.BlastRadius.Window < 0 {
		return fmt.Errorf("relay.blastRadius: max and window must not be negative")
	}
	secrets := func(field string, ss []Secret) error {
		if len(ss) == 0 {
			return fmt.Errorf("%s: at least one secret is required", field)
		}
		if len(ss) > maxSecretsPerSource {
			return fmt.Errorf("%s: at most %d secrets (current and next) may be valid at once", field, maxSecretsPerSource)
		}
		for i, s := range ss {
			if err := s.check(); err != nil {
				return fmt.Errorf("%s.%d: %v", field, i, err)
			}
			if s.empty() {
				return fmt.Errorf("%s.%d: name an env variable or a file", field, i)
			}
		}
		return nil
	}
	zone := func(field, name string) error {
		if name == "" {
			return nil
		}
		if _, err := time.LoadLocation(name); err != nil {
			return fmt.Errorf("%s: %q is not a time zone", field, name)
		}
		return nil
	}
	if b := r.Sources.BambooHR; b != nil {
		if err := secrets("relay.sources.bamboohr.secrets", b.Secrets); err != nil {
			return err
		}
		if err := zone("relay.sources.bamboohr.timeZone", b.TimeZone); err != nil {
			return err
		}
		if b.APIKey.IsSet() && b.CompanyDomain == "" {
			return fmt.Errorf("relay.sources.bamboohr.companyDomain: is required with apiKey")
		}
	}
	if w := r.Sources.Workday; w != nil {
		if len(w.Users) == 0 || len(w.Users) > maxSecretsPerSource {
			return fmt.Errorf("relay.sources.workday.users: list one or two basic-auth users")
		}
		for i, u := range w.Users {
			if u.Username == "" {
				return fmt.Errorf("relay.sources.workday.users.%d.username: is required", i)
			}
			if err := u.Password.check(); err != nil || u.Password.empty() {
				return fmt.Errorf("relay.sources.workday.users.%d.password: name an env variable or a file", i)
			}
		}
		if err := zone("relay.sources.workday.timeZone", w.TimeZone); err != nil {
			return err
		}
	}
	if g := r.Sources.Generic; g != nil {
		if err := secrets("relay.sources.generic.secrets", g.Secrets); err != nil {
			return err
		}
		if err := zone("relay.sources.generic.timeZone", g.TimeZone); err != nil {
			return err
		}
	}
	if err := r.Sources.Okta.check(); err != nil {
		return err
	}
	if err := r.Sources.SSF.check(); err != nil {
		return err
	}
	if err := r.DecisionKey.check(); err != nil {
		return fmt.Errorf("relay.decisionKey: %v", err)
	}
	if o := r.OIDC; o != nil {
		if o.Issuer == "" || o.Audience == "" {
			return fmt.Errorf("relay.oidc: issuer and audience are required")
		}
		if len(o.Roles) == 0 {
			return fmt.Errorf("relay.oidc.roles: name who holds which role (hr, security, approver, auditor)")
		}
		for role := range o.Roles {
			if !slices.Contains([]string{RoleHR, RoleSecurity, RoleApprover, RoleAuditor}, role) {
				return fmt.Errorf("relay.oidc.roles: %q is not hr, security, approver or auditor", role)
			}
		}
	}
	names := map[string]bool{}
	digests := map[string]string{} // lower-case digest → the token that has it
	for i, t := range r.Tokens {
		at := fmt.Sprintf("relay.tokens.%d", i)
		if strings.TrimSpace(t.Name) == "" {
			return fmt.Errorf("%s.name: is required (it is the identity signals carry)", at)
		}
		if names[t.Name] {
			return fmt.Errorf("%s.name: %q is used twice", at, t.Name)
		}
		names[t.Name] = true
		if len(t.AllRoles()) == 0 {
			return fmt.Errorf("%s.role: is required (hr, security, approver or auditor)", at)
		}
		for _, r := range t.AllRoles() {
			if !slices.Contains([]string{RoleHR, RoleSecurity, RoleApprover, RoleAuditor}, r) {
				return fmt.Errorf("%s.role: %q is not hr, security, approver or auditor", at, r)
			}
		}
		if _, err := hex.DecodeString(t.SHA256); err != nil || len(t.SHA256) != relayTokenSHA256HexSize {
			return fmt.Errorf("%s.sha256: must be the 64-hex-digit SHA-256 of the token, never the token itself", at)
		}
		// One secret with two roles would silently take the last one.
		if first, dup := digests[strings.ToLower(t.SHA256)]; dup {
			return fmt.Errorf("%s.sha256: the same token digest as %s's: each token must be its own secret", at, first)
		}
		digests[strings.ToLower(t.SHA256)] = t.Name
	}
	return nil
}
