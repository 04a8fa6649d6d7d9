package evidence

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadRegularRefusesWhatIsNotAPlainFile(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, []byte("12345"), 0o600))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(plain, link))
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, make([]byte, 11), 0o600))

	b, err := readRegular(plain, 10)
	require.NoError(t, err)
	assert.Equal(t, "12345", string(b))

	for _, path := range []string{fifo, link, dir, big} {
		done := make(chan error, 1)
		go func() { _, err := readRegular(path, 10); done <- err }()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, ErrTampered, path)
		case <-time.After(5 * time.Second):
			t.Fatalf("reading %s blocked", path)
		}
	}
	_, err = readRegular(filepath.Join(dir, "absent"), 10)
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

func TestVerifyDoesNotBlockOnAFIFOManifest(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, ManifestFile), 0o600))
	done := make(chan error, 1)
	go func() { _, err := verifyManifest(dir, make([]byte, 32)); done <- err }()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ErrTampered)
	case <-time.After(5 * time.Second):
		t.Fatal("verify blocked on a FIFO manifest")
	}
}
