package config

import (
	"fmt"
	"net/url"
)

// OktaHookSource accepts Okta Event Hooks (POST /hooks/okta). Okta sends the
// hook's configured Authorization header value with every request: Secrets
// holds it (and, during a rotation, the next one).
type OktaHookSource struct {
	Secrets []Secret `yaml:"secrets"`
	// Events maps an Okta event type to what it starts: termination,
	// containment, or ignore. Unlisted types are ignored. Default:
	// user.lifecycle.deactivate → termination only.
	Events map[string]string `yaml:"events"`
	// OrgURL and APIToken let the relay read a user's profile.employeeNumber
	// when the event does not carry it (Okta's event targets never do).
	OrgURL   string `yaml:"orgURL"`
	APIToken Secret `yaml:"apiToken"`
	// Target is the Okta target's name in targets, so the run acts on the
	// very user the event named (default "okta").
	Target string `yaml:"target"`
}

// Okta hook mappings.
const (
	OktaStartTermination  = "termination"
	OktaStartContainment  = "containment"
	OktaIgnore            = "ignore"
	DefaultOktaHookTarget = "okta"
)

// DefaultOktaHookEvents is the mapping when the file lists none.
var DefaultOktaHookEvents = map[string]string{"user.lifecycle.deactivate": OktaStartTermination}

func (o *OktaHookSource) check() error {
	if o == nil {
		return nil
	}
	if len(o.Secrets) == 0 || len(o.Secrets) > maxSecretsPerSource {
		return fmt.Errorf("relay.sources.okta.secrets: list one or two secrets (the hook's Authorization header value)")
	}
	for i, s := range o.Secrets {
		if err := s.check(); err != nil || s.empty() {
			return fmt.Errorf("relay.sources.okta.secrets.%d: name an env variable or a file", i)
		}
	}
	for typ, what := range o.Events {
		switch what {
		case OktaStartTermination, OktaStartContainment, OktaIgnore:
		default:
			return fmt.Errorf("relay.sources.okta.events.%s: %q is not termination, containment or ignore", typ, what)
		}
	}
	if o.OrgURL != "" {
		if u, err := url.Parse(o.OrgURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("relay.sources.okta.orgURL: %q is not an http(s) URL", o.OrgURL)
		}
		if !o.APIToken.IsSet() {
			return fmt.Errorf("relay.sources.okta.apiToken: is required with orgURL")
		}
	}
	if err := o.APIToken.check(); err != nil {
		return fmt.Errorf("relay.sources.okta.apiToken: %v", err)
	}
	return nil
}
