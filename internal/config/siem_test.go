package config

import (
	"strings"
	"testing"
)

const oktaTarget = "\ntargets: [{name: okta, kind: okta, okta: {orgURL: https://e.okta.com, token: {env: X}}}]\n"

// The siem and relay.sources.okta sections as deploy/README.md shows them.
func TestSIEMAndOktaHookSections(t *testing.T) {
	y := `
siem:
  hec: {url: https://splunk.example:8088, token: {env: OFFBOARD_HEC_TOKEN}, index: security}
  syslog: {address: siem.example:6514, caFile: /etc/offboard/siem-ca.pem}
  file: {path: /var/log/offboard/siem.jsonl}
relay:
  sources:
    okta:
      secrets: [{env: OFFBOARD_OKTA_HOOK_SECRET}]
      events: {user.lifecycle.deactivate: termination, user.lifecycle.suspend: containment, user.account.lock: ignore}
      orgURL: https://example.okta.com
      apiToken: {env: OFFBOARD_OKTA_API_TOKEN}
` + oktaTarget
	cfg, err := Parse([]byte(y), "t")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.SIEM.Enabled() || cfg.SIEM.HEC.Token.String() != "env:OFFBOARD_HEC_TOKEN" {
		t.Fatalf("siem section read as %+v", cfg.SIEM)
	}
	for name, bad := range map[string]string{
		"ftp url":        "siem: {hec: {url: ftp://x, token: {env: A}}}",
		"inline token":   "siem: {hec: {url: https://x, token: inline}}",
		"no token":       "siem: {hec: {url: https://x}}",
		"no port":        "siem: {syslog: {address: siem.example}}",
		"sandbox secret": "siem: {hec: {url: https://x, token: sandbox:abc}}",
		"okta mapping":   "relay: {sources: {okta: {secrets: [{env: S}], events: {user.lifecycle.deactivate: delete}}}}",
		"okta no secret": "relay: {sources: {okta: {events: {user.lifecycle.deactivate: termination}}}}",
		"okta no token":  "relay: {sources: {okta: {secrets: [{env: S}], orgURL: https://e.okta.com}}}",
	} {
		cfg, err := Parse([]byte(bad+oktaTarget), "t")
		if err == nil {
			err = cfg.Relay.Validate() // the relay checks its section when it starts
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "abc") {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
}
