package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecisionUsage(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"approve without employee", []string{"approve", "-digest", "sha256:x"}, "-employee is required"},
		{"approve bad decision", []string{"approve", "-employee", "E1", "-by", "alice@example.test", "-digest", "sha256:x", "-decision", "maybe"}, "-decision must be approve or reject"},
		{"hold without case", []string{"hold", "-employee", "E1", "-by", "legal@x"}, "-case is required"},
		{"release without case", []string{"release", "-employee", "E1", "-by", "legal@x"}, "-case is required"},
		{"rescind without employee", []string{"rescind"}, "-employee is required"},
		{"reschedule bad time", []string{"reschedule", "-employee", "E1", "-by", "hr@x", "-at", "soon"}, `-at "soon"`},
		{"retry without control", []string{"retry", "-employee", "E1", "-by", "alice@x"}, "-control is required"},
		{"waive without reason", []string{"waive", "-employee", "E1", "-by", "alice@x", "-control", "okta/suspend", "-expires", "72h"}, "-reason is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := starter(t, tc.args...)
			require.Equal(t, exitUsage, code, stderr)
			require.Empty(t, stdout)
			require.Contains(t, stderr, tc.want)
		})
	}
}

func TestDecisionTemporalUnreachable(t *testing.T) {
	code, _, stderr := starter(t, "rescind", "-employee", "E1", "-by", "hr@x", "-config", unreachableConfig(t))
	require.Equal(t, exitFailed, code, stderr)
	require.Contains(t, stderr, "starter rescind: temporal: dial 127.0.0.1:1")
}
