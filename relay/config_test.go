package relay

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/offboard/offboard/internal/config"
)

// relayYAML is the `relay:` section as an operator writes it.
const relayYAML = `
maxSkew: 5m
blastRadius: {max: 20, window: 10m}
sources:
  bamboohr:
    secrets: [{env: BAMBOOHR_WEBHOOK_KEY}, {file: /run/secrets/bamboohr-next}]
    companyDomain: acme
    apiKey: {env: BAMBOOHR_API_KEY}
    timeZone: America/Chicago
  workday:
    users:
      - {username: ISU_Offboard, password: {file: /run/secrets/workday-password}}
  generic:
    secrets: [{env: OFFBOARD_GENERIC_SECRET}]
tokens:
  - {name: sec@example.test, role: security, sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8}
  - {name: hr@example.test, role: hr, sha256: 6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b}
`

func TestRelayConfigYAML(t *testing.T) {
	var r config.Relay
	require.NoError(t, yaml.Unmarshal([]byte(relayYAML), &r))
	r = r.WithDefaults()
	require.NoError(t, r.Validate())
	assert.Equal(t, 5*time.Minute, r.MaxSkew.D())
	assert.Equal(t, 20, r.BlastRadius.Max)
	assert.Equal(t, "env:BAMBOOHR_WEBHOOK_KEY", r.Sources.BambooHR.Secrets[0].String())
	assert.Equal(t, config.DefaultBambooHRAPI, r.Sources.BambooHR.APIBaseURL)
	assert.Equal(t, config.DefaultWorkdayTimeZone, r.Sources.Workday.TimeZone, "Workday integration users run in Pacific Time")
	assert.Len(t, r.Tokens, 2)

	// Defaults when the section is absent.
	d := config.Relay{}.WithDefaults()
	assert.Equal(t, config.DefaultMaxSkew, d.MaxSkew.D())
	assert.Equal(t, config.BlastRadius{Max: 20, Window: config.Duration(10 * time.Minute)}, d.BlastRadius)

	// An inline secret is refused by config.Secret itself.
	var bad config.Relay
	assert.Error(t, yaml.Unmarshal([]byte("sources: {generic: {secrets: [hunter2]}}"), &bad))

	// A file that does not exist fails at New, naming the secret, not at the first webhook.
	cfg := testConfig(t)
	cfg.Relay.Sources.Workday.Users[0].Password = config.Secret{File: filepath.Join(t.TempDir(), "nope")}
	_, err := New(cfg, newFakeTemporal(), nil)
	assert.ErrorContains(t, err, "workday user 0 password")
}
