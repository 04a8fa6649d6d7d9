package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// starter runs one command line the way main does and returns its exit
// code, stdout and stderr.
func starter(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// unreachableConfig is a valid configuration whose Temporal address
// refuses connections.
func unreachableConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "offboard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`temporal: {address: "127.0.0.1:1"}
targets:
  - name: scim-crm
    kind: scim
    scim: {baseURL: "http://127.0.0.1:1/scim/v2", bearer: {env: OFFBOARD_TEST_SCIM_TOKEN}}
`), 0o600))
	return path
}

func TestCLIUsage(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	for _, tc := range []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"no command", nil, []string{"usage: starter <command>", "terminate", "approve", "evidence"}},
		{"help", []string{"help"}, []string{"usage: starter <command>"}},
		{"unknown command", []string{"fire"}, []string{`unknown command "fire"`, "usage: starter <command>"}},
		{"unknown flag", []string{"status", "-nope"}, []string{"flag provided but not defined: -nope", "-employee"}},
		{"stray argument", []string{"status", "-employee", "E1", "extra"}, []string{`unexpected argument "extra"`}},
		{"status without employee", []string{"status"}, []string{"-employee is required"}},
		{"terminate without employee", []string{"terminate", "-email", "a@x"}, []string{"-employee is required"}},
		{"terminate without email", []string{"terminate", "-employee", "E1"}, []string{"-email is required"}},
		{"terminate bad time", []string{"terminate", "-employee", "E1", "-email", "a@x", "-effective", "tomorrow"}, []string{`-effective "tomorrow" is not now, +DURATION or RFC 3339`}},
		{"terminate bad kind", []string{"terminate", "-employee", "E1", "-email", "a@x", "-kind", "vanish"}, []string{"vanish"}},
		{"terminate bad account", []string{"terminate", "-employee", "E1", "-account", "okta"}, []string{"want TARGET=ID"}},
		{"missing config", []string{"status", "-employee", "E1", "-config", "/nonexistent/offboard.yaml"}, []string{"/nonexistent/offboard.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := starter(t, tc.args...)
			require.Equal(t, exitUsage, code, stderr)
			require.Empty(t, stdout)
			for _, w := range tc.want {
				require.Contains(t, stderr, w)
			}
		})
	}
}

func TestCLITemporalUnreachable(t *testing.T) {
	cfg := unreachableConfig(t)
	for _, args := range [][]string{
		{"status", "-employee", "E1", "-config", cfg},
		{"terminate", "-employee", "E1", "-email", "a@example.test", "-config", cfg},
	} {
		t.Run(args[0], func(t *testing.T) {
			code, stdout, stderr := starter(t, args...)
			require.Equal(t, exitFailed, code, stderr)
			require.Empty(t, stdout)
			require.Contains(t, stderr, "starter "+args[0]+": temporal: dial 127.0.0.1:1")
		})
	}
}

func TestParseTime(t *testing.T) {
	now := mustTime(t, "2026-11-29T12:00:00Z")
	for in, want := range map[string]string{
		"":                     "2026-11-29T12:00:00Z",
		"now":                  "2026-11-29T12:00:00Z",
		"+2h":                  "2026-11-29T14:00:00Z",
		"72h":                  "2026-12-02T12:00:00Z",
		"2026-12-01T17:00:00Z": "2026-12-01T17:00:00Z",
	} {
		got, err := parseTime("at", in, now)
		require.NoError(t, err, in)
		require.Equal(t, mustTime(t, want), got, in)
	}
	for _, in := range []string{"+2x", "monday", "2026-12-01"} {
		_, err := parseTime("at", in, now)
		require.ErrorIs(t, err, errUsage, in)
		require.ErrorContains(t, err, "-at", in)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return v
}
