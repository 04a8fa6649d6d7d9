package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const minimal = `
temporal: {address: localhost:7233}
targets:
  - name: okta
    kind: okta
    okta:
      orgURL: https://acme.okta.com
      token: {env: OKTA_API_TOKEN}
`

func TestDefaultParses(t *testing.T) {
	cfg, err := Default()
	require.NoError(t, err)
	require.True(t, cfg.Sandbox)
	require.NotEmpty(t, cfg.Targets)
	require.Equal(t, 30*24*time.Hour, cfg.Policy.Retention.D())
	tok, err := cfg.Targets[0].Okta.Token.Value()
	require.NoError(t, err)
	require.Equal(t, "sandbox-okta-token", tok)
	require.Equal(t, "sandbox", cfg.Targets[0].Okta.Token.String(), "a secret never prints its value")
}

func TestMinimalGetsDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), "offboard.yaml")
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute, cfg.Policy.ContainmentSLA.D())
	require.Equal(t, 24*time.Hour, cfg.Policy.CredentialsSLA.D())
	require.Equal(t, int32(5), cfg.Policy.ControlAttempts)
	require.Equal(t, "env:OKTA_API_TOKEN", cfg.Targets[0].Okta.Token.String())
}

func TestLimitedTargetGetsItsOwnQueue(t *testing.T) {
	cfg, err := Parse([]byte(minimal+"    limits: {activitiesPerSecond: 2.5, maxConcurrent: 10}\n  - {name: crm, kind: scim, scim: {baseURL: https://crm.example, bearer: {env: T}}}\n"), "offboard.yaml")
	require.NoError(t, err)
	require.Equal(t, &Limits{ActivitiesPerSecond: 2.5, MaxConcurrent: 10}, cfg.Targets[0].Limits)
	require.Equal(t, "deprovision-okta", cfg.Targets[0].TaskQueue())
	require.Empty(t, cfg.Targets[1].TaskQueue(), "a target without limits stays on the deprovision queue")
}

func TestEvidenceInS3(t *testing.T) {
	cfg, err := Parse([]byte(minimal+"evidence:\n  s3: {bucket: acme-evidence, prefix: offboard, region: eu-central-1, retention: 2555d}\n"), "offboard.yaml")
	require.NoError(t, err)
	require.Equal(t, &EvidenceS3{Bucket: "acme-evidence", Prefix: "offboard", Region: "eu-central-1", Mode: ObjectLockCompliance,
		Retention: Duration(2555 * 24 * time.Hour)}, cfg.Evidence.S3, "the lock mode defaults to COMPLIANCE")
}

func TestBadConfigNamesFieldAndLine(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		want []string
	}{
		"unknown field":                        {minimal + "polcy: {}\n", []string{"offboard.yaml", "line 9", "polcy"}},
		"inline secret":                        {strings.Replace(minimal, "{env: OKTA_API_TOKEN}", "s3cr3t", 1), []string{"line 8", "secrets are not written in the file"}},
		"sandbox secret outside sandbox":       {strings.Replace(minimal, "{env: OKTA_API_TOKEN}", "sandbox:x", 1), []string{"offboard.yaml:8", "targets.0.okta.token", "only for the embedded sandbox"}},
		"missing org url":                      {strings.Replace(minimal, "orgURL: https://acme.okta.com", "orgURL: ''", 1), []string{"offboard.yaml:7", "targets.0.okta.orgURL", "is required"}},
		"unknown kind":                         {strings.Replace(minimal, "kind: okta", "kind: oktaa", 1), []string{"offboard.yaml:5", "targets.0.kind", `"oktaa"`}},
		"wrong section":                        {strings.Replace(minimal, "kind: okta", "kind: scim", 1), []string{"targets.0", `"scim"`}},
		"bad duration":                         {minimal + "policy: {containmentSLA: soon}\n", []string{"line 9", `"soon" is not a duration`}},
		"zero sla":                             {minimal + "policy:\n  containmentSLA: 0s\n", []string{"offboard.yaml:10", "policy.containmentSLA", "positive"}},
		"no targets":                           {"temporal: {address: x}\n", []string{"targets", "lists no target"}},
		"duplicate target":                     {minimal + "  - {name: okta, kind: okta, okta: {orgURL: x, token: {env: Y}}}\n", []string{"targets.1.name", "used twice"}},
		"env and file":                         {strings.Replace(minimal, "{env: OKTA_API_TOKEN}", "{env: A, file: /b}", 1), []string{"targets.0.okta.token", "either env or file"}},
		"plain ldap":                           {minimal + "  - {name: ad, kind: ldap, ldap: {url: 'ldap://dc:389', bindDN: x, baseDN: y, password: {env: P}}}\n", []string{"targets.1.ldap.startTLS", "refuses plain binds"}},
		"sandbox relay secret outside sandbox": {minimal + "relay: {sources: {generic: {secrets: [sandbox:x]}}}\n", []string{"offboard.yaml:9", "relay.sources.generic.secrets.0", "only for the embedded sandbox"}},
		"role names unknown target":            {minimal + "roles: {eng: {github: [devs]}}\n", []string{"roles.eng.github", "names no configured target"}},
		"negative rate limit":                  {minimal + "    limits: {activitiesPerSecond: -5}\n", []string{"offboard.yaml:9", "targets.0.limits.activitiesPerSecond", "positive"}},
		"empty limits":                         {minimal + "    limits: {}\n", []string{"targets.0.limits", "neither activitiesPerSecond nor maxConcurrent"}},
		"rate limit not a number":              {minimal + "    limits: {activitiesPerSecond: fast}\n", []string{"line 9", "fast"}},
		"s3 evidence without bucket":           {minimal + "evidence: {s3: {region: eu-central-1, retention: 2555d}}\n", []string{"offboard.yaml:9", "evidence.s3.bucket", "Object Lock"}},
		"s3 evidence without retention":        {minimal + "evidence: {s3: {bucket: ev, region: eu-central-1}}\n", []string{"evidence.s3.retention", "is required"}},
		"s3 evidence without region":           {minimal + "evidence: {s3: {bucket: ev, retention: 2555d}}\n", []string{"evidence.s3.region", "is required"}},
		"s3 evidence unknown lock mode":        {minimal + "evidence: {s3: {bucket: ev, region: r, retention: 30d, mode: LEGAL}}\n", []string{"evidence.s3.mode", `"LEGAL"`, "COMPLIANCE"}},
		"s3 evidence half a key":               {minimal + "evidence: {s3: {bucket: ev, region: r, retention: 30d, accessKeyID: {env: K}}}\n", []string{"evidence.s3.accessKeyID", "set together"}},
		"s3 evidence endpoint not a URL":       {minimal + "evidence: {s3: {bucket: ev, region: r, retention: 30d, endpoint: 'minio:9000'}}\n", []string{"evidence.s3.endpoint", "http(s) URL"}},
		"s3 evidence sandbox key":              {minimal + "evidence: {s3: {bucket: ev, region: r, retention: 30d, accessKeyID: sandbox:a, secretAccessKey: sandbox:b}}\n", []string{"evidence.s3.accessKeyID", "only for the embedded sandbox"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "offboard.yaml")
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestSecretSources(t *testing.T) {
	t.Setenv("OFFBOARD_TEST_SECRET", "from-env")
	v, err := Secret{Env: "OFFBOARD_TEST_SECRET"}.Value()
	require.NoError(t, err)
	require.Equal(t, "from-env", v)
	_, err = Secret{Env: "OFFBOARD_TEST_UNSET_SECRET"}.Value()
	require.ErrorContains(t, err, "OFFBOARD_TEST_UNSET_SECRET is not set")
	_, err = Secret{File: t.TempDir() + "/missing"}.Value()
	require.ErrorContains(t, err, "secret file")
}

func TestDurationDays(t *testing.T) {
	d, err := parseDuration("30d")
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, d.D())
	_, err = parseDuration("3xd")
	require.Error(t, err)
}

// FuzzParse: whatever the file holds, Parse returns a config or an error; it never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add(defaultYAML)
	f.Add([]byte("targets: [{name: a, kind: scim, scim: {baseURL: x, bearer: {file: /dev/null}}}]"))
	f.Add([]byte("policy: {reverify: [1h, -1h]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b, "fuzz.yaml")
		if err == nil && len(cfg.Targets) == 0 {
			t.Fatal("a config without targets was accepted")
		}
	})
}
