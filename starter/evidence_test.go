package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/evidence"
)

// archivedRun writes the evidence of a recorded run (testdata/histories)
// to a directory and the signer's public key beside it.
func archivedRun(t *testing.T) (dir, pubFile string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "histories", "approval.v3.json"))
	require.NoError(t, err)
	hist, err := evidence.UnmarshalHistory(raw)
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	run := evidence.Run{WorkflowID: "deprovision-E1001", RunID: "run-1"}
	b, err := evidence.Build(run, hist.GetEvents(), time.Now(), priv, evidence.KeyID(pub))
	require.NoError(t, err)
	store := evidence.Dir{Root: t.TempDir()}
	require.NoError(t, b.Write(t.Context(), store))
	dir, err = store.RunDir(run)
	require.NoError(t, err)
	pubFile = filepath.Join(t.TempDir(), "evidence.pub")
	require.NoError(t, os.WriteFile(pubFile, evidence.MarshalPublicKey(pub), 0o600))
	return dir, pubFile
}

func TestEvidenceVerify(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	dir, pub := archivedRun(t)

	code, stdout, stderr := starter(t, "evidence", "verify", dir, "--public-key", pub)
	require.Equal(t, evidence.ExitOK, code, stderr)
	require.Contains(t, stdout, "ok "+dir+": deprovision-E1001 run run-1")
	require.Contains(t, stdout, "history replays")

	receipts := filepath.Join(dir, evidence.ReceiptsFile)
	b, err := os.ReadFile(receipts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(receipts, append(b, ' '), 0o600))
	code, stdout, stderr = starter(t, "evidence", "verify", dir, "--public-key", pub)
	require.Equal(t, evidence.ExitTampered, code, stdout)
	require.Contains(t, stderr, "starter evidence verify: ")
	require.Contains(t, stderr, evidence.ReceiptsFile)
	require.NotContains(t, stdout, "ok ")
}

func TestEvidenceVerifyWrongKey(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	dir, _ := archivedRun(t)
	_, other := archivedRun(t)
	code, _, stderr := starter(t, "evidence", "verify", dir, "--public-key", other)
	require.Equal(t, evidence.ExitTampered, code, stderr)
	require.Contains(t, stderr, evidence.ManifestFile)
}

func TestEvidenceUsage(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: starter evidence <command>"},
		{"unknown command", []string{"burn"}, `unknown command "burn"`},
		{"verify without key", []string{"verify", t.TempDir()}, "verify <dir> --public-key FILE"},
		{"verify unreadable key", []string{"verify", t.TempDir(), "--public-key", "/nonexistent.pub"}, "/nonexistent.pub"},
		{"verify not a directory", []string{"verify", "/nonexistent-dir", "--public-key", writePub(t)}, "/nonexistent-dir is not a directory of evidence"},
		{"keygen without out", []string{"keygen"}, "keygen --out FILE"},
		{"summary bad time", []string{"summary", "--from", "last week"}, `"last week" is not a time`},
		{"summary bad format", []string{"summary", "--store", t.TempDir(), "--format", "pdf"}, "--format is table, csv or html"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := starter(t, append([]string{"evidence"}, tc.args...)...)
			require.Equal(t, evidence.ExitUsage, code, stderr)
			require.Contains(t, stderr, tc.want)
		})
	}
}

func TestEvidenceGetNothingArchived(t *testing.T) {
	code, _, stderr := starter(t, "evidence", "get", "E404", "--store", t.TempDir(), "--config", unreachableConfig(t))
	require.Equal(t, evidence.ExitNotFound, code, stderr)
	require.Contains(t, stderr, "no evidence archived for deprovision-E404")
}

func TestEvidenceKeygenAndPublicKey(t *testing.T) {
	key := filepath.Join(t.TempDir(), "evidence.key")
	code, stdout, stderr := starter(t, "evidence", "keygen", "--out", key)
	require.Equal(t, evidence.ExitOK, code, stderr)
	require.Contains(t, stdout, "wrote "+key)
	code, stdout, stderr = starter(t, "evidence", "public-key", "--key", key)
	require.Equal(t, evidence.ExitOK, code, stderr)
	require.Contains(t, stdout, "BEGIN PUBLIC KEY")
	require.Contains(t, stderr, "key id ")
}

func writePub(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "k.pub")
	require.NoError(t, os.WriteFile(path, evidence.MarshalPublicKey(pub), 0o600))
	return path
}
