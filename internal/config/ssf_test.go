package config

import (
	"strings"
	"testing"
)

// The relay.sources.ssf and siem.ssf sections, and what each refuses.
func TestSSFSections(t *testing.T) {
	y := `
siem:
  ssf:
    issuer: https://offboard.example
    signingKey: {file: /etc/offboard/ssf.pem}
    receivers: [{name: crm, url: https://crm.example/ssf/events, token: {env: CRM_SSF_TOKEN}}]
relay:
  sources:
    ssf:
      issuer: https://example.okta.com
      audience: https://offboard.example/ssf/events
      jwksURI: https://example.okta.com/oauth2/v1/keys
      events: {"` + SSFSessionRevoked + `": containment}
      orgURL: https://example.okta.com
      apiToken: {env: OFFBOARD_OKTA_API_TOKEN}
` + oktaTarget
	cfg, err := Parse([]byte(y), "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Relay.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.SIEM.Enabled() || cfg.SIEM.SSF.Receivers[0].Token.String() != "env:CRM_SSF_TOKEN" || cfg.Relay.Sources.SSF.Events[SSFSessionRevoked] != "containment" {
		t.Fatalf("sections read as %+v, %+v", cfg.SIEM.SSF, cfg.Relay.Sources.SSF)
	}
	for name, bad := range map[string]string{
		"no keys":        "relay: {sources: {ssf: {issuer: https://i, audience: a}}}",
		"both keys":      "relay: {sources: {ssf: {issuer: https://i, audience: a, jwksURI: https://i/k, jwks: '{}'}}}",
		"no audience":    "relay: {sources: {ssf: {issuer: https://i, jwksURI: https://i/k}}}",
		"bad mapping":    "relay: {sources: {ssf: {issuer: https://i, audience: a, jwksURI: https://i/k, events: {x: delete}}}}",
		"org no token":   "relay: {sources: {ssf: {issuer: https://i, audience: a, jwksURI: https://i/k, orgURL: https://o}}}",
		"no signing key": "siem: {ssf: {issuer: https://o, receivers: [{name: a, url: https://a}]}}",
		"inline key":     "siem: {ssf: {issuer: https://o, signingKey: abc, receivers: [{name: a, url: https://a}]}}",
		"bad receiver":   "siem: {ssf: {issuer: https://o, signingKey: {env: K}, receivers: [{name: a, url: ftp://a}]}}",
		"twice":          "siem: {ssf: {issuer: https://o, signingKey: {env: K}, receivers: [{name: a, url: https://a}, {name: a, url: https://b}]}}",
		"no issuer":      "siem: {ssf: {signingKey: {env: K}}}",
		"sandbox key":    "siem: {ssf: {issuer: https://o, signingKey: sandbox:abc, receivers: [{name: a, url: https://a}]}}",
		"sandbox token":  "relay: {sources: {ssf: {issuer: https://i, audience: a, jwksURI: https://i/k, token: sandbox:abc}}}",
	} {
		cfg, err := Parse([]byte(bad+oktaTarget), "t")
		if err == nil {
			err = cfg.Relay.Validate()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "abc") {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
}
