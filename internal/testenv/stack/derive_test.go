package stack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/testenv/devserver"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(devserver.RepoRoot(t), name))
	require.NoError(t, err)
	return b
}

// The derived configuration keeps deploy/offboard.yaml's policy, people and
// targets, and moves every address and secret onto this machine.
func TestDeriveFromDeployConfig(t *testing.T) {
	deploy := read(t, "deploy/offboard.yaml")
	want, err := config.Parse(deploy, "deploy/offboard.yaml")
	require.NoError(t, err)
	opts := Options{Dir: "/state", Temporal: "127.0.0.1:17233", Metrics: "127.0.0.1:19090", Starter: "127.0.0.1:18080",
		Codec: "127.0.0.1:18081", UI: "127.0.0.1:18233", SandboxHost: "127.0.0.2", Overrides: []byte("{policy: {retention: 3s}}")}
	out, secrets, err := Derive(deploy, opts)
	require.NoError(t, err)
	cfg, err := config.Parse(out, "derived")
	require.NoError(t, err)

	for line := range strings.Lines(string(out)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			assert.NotContains(t, line, "/run/secrets/")
			assert.NotContains(t, line, "example.okta.com")
		}
	}
	assert.Equal(t, "127.0.0.1:17233", cfg.Temporal.Address)
	assert.Equal(t, want.Temporal.Namespace, cfg.Temporal.Namespace)
	assert.Equal(t, "127.0.0.1:19090", cfg.Worker.MetricsAddr)
	assert.Equal(t, "/state/evidence", cfg.Evidence.Dir)
	assert.Equal(t, "/state/secrets/evidence_signing_key", cfg.Evidence.SigningKey.File)
	assert.True(t, cfg.Codec.Enabled(), "payloads encrypted")
	assert.Equal(t, config.Duration(3e9), cfg.Policy.Retention, "the override")
	assert.Equal(t, want.Policy.Approval, cfg.Policy.Approval, "the rest of the policy is deploy's")
	assert.Equal(t, want.People, cfg.People)
	assert.Equal(t, want.Roles, cfg.Roles)
	require.Len(t, cfg.Targets, len(want.Targets))
	for i, tg := range cfg.Targets {
		assert.Equal(t, want.Targets[i].Name, tg.Name)
		assert.Equal(t, want.Targets[i].Limits, tg.Limits, "%s keeps its rate limits", tg.Name)
	}
	assert.Equal(t, "http://127.0.0.2:8101", cfg.Targets[0].Okta.OrgURL)
	for _, name := range secrets {
		assert.NotContains(t, []string{"notify_webhook_url", "entra_client_secret", "ad_ca_crt"}, name)
	}
	assert.Contains(t, secrets, "codec_key")
	assert.Contains(t, secrets, "hris_webhook_secret")

	// The stack's own decision key replaces the operator API's placeholder.
	opts.DecisionKey = "1/Q2WTuCSkxO3lyCyfgLBEQnbOcUKn92Mfuv9qC66YA="
	out, _, err = Derive(deploy, opts)
	require.NoError(t, err)
	cfg, err = config.Parse(out, "derived")
	require.NoError(t, err)
	require.Len(t, cfg.People.DecisionKeys, len(want.People.DecisionKeys))
	for i, k := range cfg.People.DecisionKeys {
		if k.BreakGlass {
			assert.Equal(t, want.People.DecisionKeys[i], k, "break-glass keys are kept")
		} else {
			assert.Equal(t, opts.DecisionKey, k.PublicKey)
		}
	}

	// Unknown kinds are refused rather than left pointing at production.
	_, _, err = Derive([]byte(strings.Replace(string(deploy), "kind: scim", "kind: scim\n    # x", 1)+"\n"), opts)
	require.NoError(t, err)
	_, _, err = Derive([]byte(strings.Replace(string(deploy), "name: scim-crm", "name: scim-hr", 1)), opts)
	require.ErrorContains(t, err, "scim-hr")
}

func TestComposeEnv(t *testing.T) {
	compose := read(t, "docker-compose.yml")
	env, err := ComposeEnv(compose, "temporal", map[string]string{"POSTGRES_SEEDS": "127.0.0.1", "DYNAMIC_CONFIG_FILE_PATH": "/x.yaml"})
	require.NoError(t, err)
	assert.Contains(t, env, "DB=postgres12", "taken from the compose file")
	assert.Contains(t, env, "POSTGRES_SEEDS=127.0.0.1")

	// A compose-only value that is not overridden is an error, naming it.
	_, err = ComposeEnv(compose, "temporal", map[string]string{"DYNAMIC_CONFIG_FILE_PATH": "/x.yaml"})
	require.ErrorContains(t, err, "POSTGRES_SEEDS")
	_, err = ComposeEnv(compose, "temporal-namespace", nil)
	require.ErrorContains(t, err, "TEMPORAL_ADDRESS")
	_, err = ComposeEnv(compose, "nosuch", nil)
	require.Error(t, err)
}
