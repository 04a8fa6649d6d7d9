package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memSim is a simulator whose whole state is one string.
type memSim struct{ state string }

func (m *memSim) SaveState(w io.Writer) error {
	_, err := io.WriteString(w, m.state)
	return err
}

func (m *memSim) LoadState(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if strings.HasPrefix(string(b), "bad") {
		return io.ErrUnexpectedEOF
	}
	m.state = string(b)
	return nil
}

func TestStateStoreKeepsStateAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	okta, ad := &memSim{state: "okta: suspended"}, &memSim{state: "ad: disabled"}
	first := stateStore{dir: dir, logger: logger, sims: map[string]stateful{"okta": okta, "ad": ad}}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // save once, as on shutdown
	require.NoError(t, first.keep(ctx, time.Hour))
	b, err := os.ReadFile(filepath.Join(dir, "okta.json"))
	require.NoError(t, err)
	assert.Equal(t, "okta: suspended", string(b))
	_, err = os.Stat(filepath.Join(dir, "okta.json.tmp"))
	assert.ErrorIs(t, err, os.ErrNotExist, "written through a temporary file, renamed into place")

	// Unchanged state is not written again.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ad.json"), []byte("touched"), 0o600))
	okta.state = "okta: deactivated"
	require.NoError(t, first.save())
	b, _ = os.ReadFile(filepath.Join(dir, "ad.json"))
	assert.Equal(t, "touched", string(b), "ad did not change, so its file was left alone")
	b, _ = os.ReadFile(filepath.Join(dir, "okta.json"))
	assert.Equal(t, "okta: deactivated", string(b))

	// A restart: seeded simulators take the saved state; one without a file keeps its seed.
	okta2, ad2, aws2 := &memSim{state: "seed"}, &memSim{state: "seed"}, &memSim{state: "seed"}
	second := stateStore{dir: dir, logger: logger, sims: map[string]stateful{"okta": okta2, "ad": ad2, "aws": aws2}}
	require.NoError(t, second.load())
	assert.Equal(t, "okta: deactivated", okta2.state)
	assert.Equal(t, "touched", ad2.state)
	assert.Equal(t, "seed", aws2.state)

	// A state file the simulator refuses stops the start, naming the file.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "aws.json"), []byte("bad"), 0o600))
	err = second.load()
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, "aws.json"))
	assert.Contains(t, err.Error(), "make clean")
}
