package stack

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/sandbox/demo"
)

// The derived stack rotates into the sandbox's Secrets Manager and names the
// sandbox's break-glass accounts (issue 15).
func TestDeriveNonHuman(t *testing.T) {
	out, _, err := Derive(read(t, "deploy/offboard.yaml"), Options{Dir: "/state", Temporal: "127.0.0.1:17233", Metrics: "127.0.0.1:19090",
		Starter: "127.0.0.1:18080", Codec: "127.0.0.1:18081", UI: "127.0.0.1:18233", SandboxHost: "127.0.0.2"})
	require.NoError(t, err)
	cfg, err := config.Parse(out, "derived")
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.2:8109", cfg.NonHuman.SecretStore.Endpoint)
	require.Equal(t, "/state/secrets/aws_access_key_id", cfg.NonHuman.SecretStore.AccessKeyID.File)
	for _, tg := range cfg.Targets {
		if tg.AWS != nil {
			require.Equal(t, "http://127.0.0.2:8109", tg.AWS.SecretsEndpoint)
		}
	}
	require.NotEmpty(t, cfg.BreakGlass)
	for _, b := range cfg.BreakGlass {
		require.Contains(t, []string{demo.BreakGlassOkta, demo.BreakGlassEntra, demo.BreakGlassAD, demo.BreakGlassAWS}, b.Account, b.Name)
		require.Equal(t, demo.BreakGlassSecrets[map[string]string{"okta": "okta", "ad": "ldap"}[b.Target]], b.Secret, b.Name)
	}
}
