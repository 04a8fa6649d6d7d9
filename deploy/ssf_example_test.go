package deploy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
)

// The Shared Signals sections offboard.yaml shows commented out are valid
// once uncommented, and name their secrets as files.
func TestExampleSharedSignalsParse(t *testing.T) {
	example := string(read(t, "deploy/offboard.yaml"))
	var out []string
	open, indentOf := false, "" // inside a commented block, and its indent
	for _, line := range strings.Split(example, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		indent := line[:len(line)-len(trimmed)]
		switch {
		case trimmed == "# siem:" || trimmed == "# ssf:":
			open, indentOf = true, indent
			line = indent + strings.TrimPrefix(trimmed, "# ")
		case open && strings.HasPrefix(line, indentOf+"#   "):
			line = indentOf + strings.TrimPrefix(line, indentOf+"# ")
		default:
			open = false
		}
		out = append(out, line)
	}
	cfg, err := config.Parse([]byte(strings.Join(out, "\n")), "deploy/offboard.yaml, Shared Signals uncommented")
	require.NoError(t, err)
	in, tx := cfg.Relay.Sources.SSF, cfg.SIEM.SSF
	require.NotNil(t, in, "relay.sources.ssf is shown")
	require.NotNil(t, tx, "siem.ssf is shown")
	assert.Equal(t, "https://offboard.example.com/ssf/events", in.Audience)
	assert.NotEmpty(t, in.JWKSURI)
	assert.Equal(t, "/run/secrets/ssf_receiver_token", in.Token.File)
	assert.Equal(t, "/run/secrets/ssf_okta_api_token", in.APIToken.File)
	assert.Equal(t, "/run/secrets/ssf_signing_key", tx.SigningKey.File)
	require.Len(t, tx.Receivers, 1)
	assert.Equal(t, "/run/secrets/ssf_crm_token", tx.Receivers[0].Token.File)

	readme := string(read(t, "deploy/README.md"))
	for _, f := range []string{"ssf_receiver_token", "ssf_okta_api_token", "ssf_signing_key", "ssf_crm_token"} {
		assert.True(t, strings.Contains(readme, "`"+f+"`"), "deploy/README.md says what %s holds", f)
	}
}
