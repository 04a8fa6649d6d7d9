package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRelayRefusesDuplicateTokenDigests(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	r := Relay{Tokens: []Token{
		{Name: "alice", Role: RoleAuditor, SHA256: digest},
		{Name: "bob", Role: RoleSecurity, SHA256: strings.ToUpper(digest)},
	}}
	err := r.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "relay.tokens.1.sha256")
	require.Contains(t, err.Error(), "alice")

	r.Tokens[1].SHA256 = strings.Repeat("cd", 32)
	require.NoError(t, r.Validate())
}
