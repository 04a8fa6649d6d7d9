package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/offboard/offboard/internal/control"
)

// NonHuman is the policy for the non-human identities a leaver owns (issue
// 15): what happens to each kind, who takes them over, and how long a
// rotation keeps the old credential. It reaches the workflow through the
// plan, so a run keeps the policy it started with; SecretStore stays on the
// worker (it names credentials).
type NonHuman struct {
	// Actions maps a kind (control.Kind*) to reown, rotate or decommission;
	// kinds left out take DefaultActions.
	Actions map[string]control.Action `yaml:"actions" json:"actions,omitempty"`
	// RequireApproval: a run with non-human items waits for an approval even
	// where policy would not otherwise ask (they can break production).
	RequireApproval bool `yaml:"requireApproval" json:"requireApproval"`
	// BreakGlassApproval: break-glass rotations wait for the approval too;
	// by default they run right after containment (the new value is in the vault).
	BreakGlassApproval bool `yaml:"breakGlassApproval" json:"breakGlassApproval,omitempty"`
	// Team takes over on reown when the HR event names no manager.
	Team string `yaml:"team" json:"team,omitempty"`
	// Grace is how long the old credential keeps working after the new one is stored.
	Grace Duration `yaml:"grace" json:"grace"`
	// Purge is how long an inactive old credential is kept before it is deleted.
	Purge Duration `yaml:"purge" json:"purge"`
	// SecretName names the secret-store entry of a rotation the registry does
	// not name: {target}, {kind} (a slug: "service-principal") and {name} are
	// replaced. Without {kind}, an Entra app and its service principal (one
	// display name) would map to one secret: the plan refuses the second.
	SecretName string `yaml:"secretName" json:"secretName,omitempty"`
	// SecretStore is where rotations write new values (AWS Secrets Manager).
	SecretStore SecretStore `yaml:"secretStore" json:"-"`
}

// SecretStore reaches AWS Secrets Manager. Without keys the AWS SDK's
// default chain (the worker's role, AWS_* variables) supplies credentials.
type SecretStore struct {
	Region          string `yaml:"region"`
	Endpoint        string `yaml:"endpoint"` // "" is AWS; the sandbox's simulator otherwise
	AccessKeyID     Secret `yaml:"accessKeyID"`
	SecretAccessKey Secret `yaml:"secretAccessKey"`
}

// IsSet: a store is configured.
func (s SecretStore) IsSet() bool { return s.Region != "" || s.Endpoint != "" }

// BreakGlass is one shared or emergency account from the registry, rotated
// when a person who could know it leaves.
type BreakGlass struct {
	Name    string  `yaml:"name" json:"name"`
	Target  string  `yaml:"target" json:"target"`
	Account string  `yaml:"account" json:"account"` // login, UPN, sAMAccountName or IAM user
	Secret  string  `yaml:"secret" json:"secret"`   // Secrets Manager secret id
	KnownBy KnownBy `yaml:"knownBy" json:"knownBy"`
}

// KnownBy says who may know a break-glass account: members of these groups
// (by name, in any target), holders of these roles (admin rights a target
// showed, or HR roles).
type KnownBy struct {
	Groups []string `yaml:"groups" json:"groups,omitempty"`
	Roles  []string `yaml:"roles" json:"roles,omitempty"`
}

// DefaultActions is what happens to each kind unless the config says otherwise.
var DefaultActions = map[string]control.Action{
	control.KindAPIToken:         control.Decommission, // Okta API tokens cannot be rotated
	control.KindApplication:      control.Reown,
	control.KindServicePrincipal: control.Reown,
	control.KindServiceUser:      control.Rotate,
	control.KindSecret:           control.Reown,
	control.KindManagedAccount:   control.Reown,
	control.KindBreakGlass:       control.Rotate,
}

// DefaultSecretName is where a rotation writes when the registry names no
// secret: the kind keeps an app and its service principal apart.
const DefaultSecretName = "offboard/{target}/{kind}/{name}"

func defaultNonHuman() NonHuman {
	return NonHuman{
		RequireApproval: true,
		Grace:           Duration(24 * time.Hour),
		Purge:           Duration(7 * 24 * time.Hour),
		SecretName:      DefaultSecretName,
	}
}

// Action is what policy does with an identity of kind. A break-glass account
// is always rotated.
func (n NonHuman) Action(kind string) control.Action {
	if kind == control.KindBreakGlass {
		return control.Rotate
	}
	if a, ok := n.Actions[kind]; ok {
		return a
	}
	return DefaultActions[kind]
}

// Secret is the secret-store entry for an identity the registry does not name.
func (n NonHuman) Secret(target, kind, name string) string {
	tmpl := n.SecretName
	if tmpl == "" {
		tmpl = DefaultSecretName
	}
	return strings.NewReplacer("{target}", target, "{kind}", KindSlug(kind), "{name}", name).Replace(tmpl)
}

// KindSlug is a kind as a path segment: "service principal" → "service-principal".
func KindSlug(kind string) string { return strings.ReplaceAll(kind, " ", "-") }

var ownedKinds = []string{control.KindAPIToken, control.KindApplication, control.KindServicePrincipal,
	control.KindServiceUser, control.KindSecret, control.KindManagedAccount}

var actions = []control.Action{control.Reown, control.Rotate, control.Decommission}

func (c *Config) validateNonHuman(root *yaml.Node, targets map[string]bool) error {
	n := &c.NonHuman
	at := func(p ...string) []string { return append([]string{"nonHuman"}, p...) }
	// Sorted, so the first error is the same every time.
	kinds := make([]string, 0, len(n.Actions))
	for k := range n.Actions {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		if !slices.Contains(ownedKinds, k) {
			return c.fieldError(root, at("actions", k), "%q is not a kind of non-human identity (%s)", k, strings.Join(ownedKinds, ", "))
		}
		if !slices.Contains(actions, n.Actions[k]) {
			return c.fieldError(root, at("actions", k), "%q is not reown, rotate or decommission", n.Actions[k])
		}
	}
	switch {
	case n.Grace <= 0:
		return c.fieldError(root, at("grace"), "must be a positive duration like 24h")
	case n.Purge <= 0:
		return c.fieldError(root, at("purge"), "must be a positive duration like 7d")
	case !strings.Contains(n.SecretName, "{name}"):
		return c.fieldError(root, at("secretName"), "%q must contain {name}, or every rotation would write to one secret", n.SecretName)
	}
	s := n.SecretStore
	for _, k := range []struct {
		name   string
		secret Secret
	}{{"accessKeyID", s.AccessKeyID}, {"secretAccessKey", s.SecretAccessKey}} {
		if err := k.secret.check(); err != nil {
			return c.fieldError(root, at("secretStore", k.name), "%v", err)
		}
		if k.secret.value != "" && !c.Sandbox {
			return c.fieldError(root, at("secretStore", k.name), "a sandbox: value is only for the embedded sandbox; name an env variable or a file")
		}
	}
	switch {
	case s.AccessKeyID.empty() != s.SecretAccessKey.empty():
		return c.fieldError(root, at("secretStore", "accessKeyID"), "and secretAccessKey are set together, or neither (the AWS default credential chain)")
	case s.Endpoint != "" && !strings.HasPrefix(s.Endpoint, "https://") && !strings.HasPrefix(s.Endpoint, "http://"):
		return c.fieldError(root, at("secretStore", "endpoint"), "%q is not an http(s) URL", s.Endpoint)
	case s.IsSet() && s.Region == "":
		return c.fieldError(root, at("secretStore", "region"), "is required (the secrets' region, e.g. eu-central-1)")
	}
	names := map[string]bool{}
	secrets := map[string]string{} // secret → the entry that names it
	for i, b := range c.BreakGlass {
		p := func(f string) []string { return []string{"breakGlass", fmt.Sprint(i), f} }
		switch {
		case strings.TrimSpace(b.Name) == "":
			return c.fieldError(root, p("name"), "is required")
		case names[b.Name]:
			return c.fieldError(root, p("name"), "%q is used twice", b.Name)
		case !targets[b.Target]:
			return c.fieldError(root, p("target"), "%q names no configured target", b.Target)
		case strings.TrimSpace(b.Account) == "":
			return c.fieldError(root, p("account"), "is required (the login, UPN, sAMAccountName or IAM user)")
		case strings.TrimSpace(b.Secret) == "":
			return c.fieldError(root, p("secret"), "is required (the Secrets Manager secret holding its password)")
		case secrets[b.Secret] != "":
			// Two rotations into one secret: the second promote would hide the first password.
			return c.fieldError(root, p("secret"), "%q is also %q's secret: each break-glass account needs its own", b.Secret, secrets[b.Secret])
		case len(b.KnownBy.Groups) == 0 && len(b.KnownBy.Roles) == 0:
			return c.fieldError(root, p("knownBy"), "names no group or role: nobody's leaving would rotate it")
		}
		names[b.Name] = true
		secrets[b.Secret] = b.Name
	}
	if len(c.BreakGlass) > 0 && !s.IsSet() {
		return c.fieldError(root, at("secretStore"), "is required with a breakGlass registry: rotations write the new password there")
	}
	return nil
}

// BreakGlassAccount is the registry entry naming an account of target (by
// its id, login or e-mail, case-insensitive). Reconciliation counts such an
// account as known, owned by the registry, never as an orphan: it is
// declared here, and nobody's HR record will ever match it.
func (c Config) BreakGlassAccount(target string, names ...string) (BreakGlass, bool) {
	for _, b := range c.BreakGlass {
		if b.Target != target {
			continue
		}
		for _, n := range names {
			if n != "" && strings.EqualFold(n, b.Account) {
				return b, true
			}
		}
	}
	return BreakGlass{}, false
}
