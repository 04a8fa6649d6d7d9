package evidence_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"

	"github.com/offboard/offboard/evidence"
)

func requireVerifyError(t *testing.T, err error, kind error, file string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, kind)
	var ve *evidence.VerifyError
	require.True(t, errors.As(err, &ve), "a *VerifyError: %v", err)
	assert.Equal(t, file, ve.File, "names the file: %v", err)
	assert.Contains(t, err.Error(), file)
}

// Flipping any single byte of any file is caught, and the error names the file.
func TestVerifyDetectsAFlippedByteInEveryFile(t *testing.T) {
	f := getFixture(t)
	src := runDir(t, f.archived, f.completed)
	for _, name := range []string{evidence.HistoryFile, evidence.ReceiptsFile, evidence.ReportFile, evidence.ManifestFile} {
		size := len(snapshot(t, src)[name])
		// First byte, a middle one, the last one.
		for _, at := range []int{0, size / 2, size - 1} {
			t.Run(name, func(t *testing.T) {
				dir := copyRun(t, src)
				p := filepath.Join(dir, name)
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				b[at] ^= 0x01
				require.NoError(t, os.WriteFile(p, b, 0o644))
				err = evidence.Verify(dir, f.pub)
				requireVerifyError(t, err, evidence.ErrTampered, name)
				assert.Equal(t, evidence.ExitTampered, evidence.ExitCode(err))
			})
		}
	}
}

func TestVerifyDetectsMissingAndExtraFiles(t *testing.T) {
	f := getFixture(t)
	src := runDir(t, f.archived, f.completed)
	for _, name := range []string{evidence.HistoryFile, evidence.ReceiptsFile, evidence.ReportFile, evidence.ManifestFile} {
		t.Run("drop "+name, func(t *testing.T) {
			dir := copyRun(t, src)
			require.NoError(t, os.Remove(filepath.Join(dir, name)))
			err := evidence.Verify(dir, f.pub)
			requireVerifyError(t, err, evidence.ErrTampered, name)
			assert.Contains(t, err.Error(), "missing")
		})
	}
	for _, name := range []string{"notes.txt", ".hidden", ".history.json.tmp-1"} {
		t.Run("add "+name, func(t *testing.T) {
			dir := copyRun(t, src)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644))
			err := evidence.Verify(dir, f.pub)
			requireVerifyError(t, err, evidence.ErrTampered, name)
			assert.Contains(t, err.Error(), "extra file")
		})
	}
}

func TestVerifyRefusesAnotherKey(t *testing.T) {
	f := getFixture(t)
	dir := copyRun(t, runDir(t, f.archived, f.completed))
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	err := evidence.Verify(dir, other)
	requireVerifyError(t, err, evidence.ErrTampered, evidence.ManifestFile)
	assert.Contains(t, err.Error(), "signed by key "+f.keyID)

	// The right key id but a signature by someone else.
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	m := readManifest(t, dir)
	require.NoError(t, m.Sign(forger))
	writeManifest(t, dir, m)
	err = evidence.Verify(dir, f.pub)
	requireVerifyError(t, err, evidence.ErrTampered, evidence.ManifestFile)
	assert.Contains(t, err.Error(), "bad signature")
}

// Whoever holds the key could re-sign changed evidence; the history checks
// and the replay still refuse a history that is not one the code produced.
func TestVerifyDetectsReorderedOrRewrittenEventsEvenWhenResigned(t *testing.T) {
	f := getFixture(t)
	src := runDir(t, f.archived, f.completed)
	edit := func(t *testing.T, change func(events []*historypb.HistoryEvent) []*historypb.HistoryEvent) string {
		dir := copyRun(t, src)
		b, err := os.ReadFile(filepath.Join(dir, evidence.HistoryFile))
		require.NoError(t, err)
		h, err := evidence.UnmarshalHistory(b)
		require.NoError(t, err)
		out, err := evidence.MarshalHistory(change(h.GetEvents()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, evidence.HistoryFile), out, 0o644))
		return dir
	}

	t.Run("reordered, digest not updated", func(t *testing.T) {
		dir := edit(t, func(ev []*historypb.HistoryEvent) []*historypb.HistoryEvent {
			ev[3], ev[4] = ev[4], ev[3]
			return ev
		})
		requireVerifyError(t, evidence.Verify(dir, f.pub), evidence.ErrTampered, evidence.HistoryFile)
	})
	t.Run("reordered and re-signed", func(t *testing.T) {
		dir := edit(t, func(ev []*historypb.HistoryEvent) []*historypb.HistoryEvent {
			ev[3], ev[4] = ev[4], ev[3]
			return ev
		})
		resign(t, dir, f.priv)
		err := evidence.Verify(dir, f.pub)
		requireVerifyError(t, err, evidence.ErrTampered, evidence.HistoryFile)
		assert.Contains(t, err.Error(), "out of order")
	})
	t.Run("an activity renamed and re-signed", func(t *testing.T) {
		dir := edit(t, func(ev []*historypb.HistoryEvent) []*historypb.HistoryEvent {
			for _, e := range ev {
				if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "ApplyControl" {
					a.ActivityType.Name = "ApplyOtherControl"
					break
				}
			}
			return ev
		})
		resign(t, dir, f.priv)
		err := evidence.Verify(dir, f.pub)
		requireVerifyError(t, err, evidence.ErrReplay, evidence.HistoryFile)
		assert.Equal(t, evidence.ExitReplay, evidence.ExitCode(err))
	})
	t.Run("receipts changed and re-signed", func(t *testing.T) {
		dir := copyRun(t, src)
		p := filepath.Join(dir, evidence.ReceiptsFile)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, []byte(strings.Replace(string(b), `"outcome":"observed"`, `"outcome":"attested"`, 1)), 0o644))
		resign(t, dir, f.priv)
		requireVerifyError(t, evidence.Verify(dir, f.pub), evidence.ErrTampered, evidence.ReceiptsFile)
	})
}

// resign recomputes the manifest's digests and signs it again.
func resign(t *testing.T, dir string, key ed25519.PrivateKey) {
	t.Helper()
	m := readManifest(t, dir)
	content := snapshot(t, dir)
	for i, fd := range m.Files {
		b := []byte(content[fd.Name])
		m.Files[i] = evidence.DigestFile(fd.Name, b)
	}
	require.NoError(t, m.Sign(key))
	writeManifest(t, dir, m)
}

func writeManifest(t *testing.T, dir string, m evidence.Manifest) {
	t.Helper()
	b, err := evidence.CanonicalJSON(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, evidence.ManifestFile), append(b, '\n'), 0o644))
}

func TestVerifyUsageErrors(t *testing.T) {
	f := getFixture(t)
	err := evidence.Verify(filepath.Join(t.TempDir(), "nope"), f.pub)
	require.ErrorIs(t, err, evidence.ErrUsage)
	assert.Equal(t, evidence.ExitUsage, evidence.ExitCode(err))
	err = evidence.Verify(runDir(t, f.archived, f.completed), nil)
	assert.Equal(t, evidence.ExitUsage, evidence.ExitCode(err))
}

// A manifest re-indented (same content, other bytes) is refused too: only
// its canonical form is accepted, so no byte can change unnoticed.
func TestVerifyRefusesANonCanonicalManifest(t *testing.T) {
	f := getFixture(t)
	dir := copyRun(t, runDir(t, f.archived, f.completed))
	m := readManifest(t, dir)
	b, err := json.MarshalIndent(m, "", " ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, evidence.ManifestFile), b, 0o644))
	err = evidence.Verify(dir, f.pub)
	requireVerifyError(t, err, evidence.ErrTampered, evidence.ManifestFile)
	assert.Contains(t, err.Error(), "canonical")
}
