package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServeExitCodes(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("policy:\n  containmentSLA: -5m\n"), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"-port", "1"}, exitUsage, "flag provided but not defined: -port"},
		{"bad config names the field", []string{"-config", bad}, exitUsage, "policy.containmentSLA: must be a positive duration"},
		{"missing config", []string{"-config", "/nonexistent/offboard.yaml"}, exitUsage, "/nonexistent/offboard.yaml"},
		{"temporal unreachable", []string{"-config", unreachableConfig(t)}, exitFailed, "starter serve: temporal: dial 127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := starter(t, append([]string{"serve"}, tc.args...)...)
			require.Equal(t, tc.code, code, stderr)
			require.Contains(t, stderr, tc.want)
		})
	}
}
