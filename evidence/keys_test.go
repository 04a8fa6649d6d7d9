package evidence_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/evidence"
)

func TestGenerateLoadAndKeyID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.pem")
	priv, err := evidence.GenerateKey(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	loaded, err := evidence.LoadPrivateKey(path)
	require.NoError(t, err)
	assert.True(t, priv.Equal(loaded))

	_, err = evidence.GenerateKey(path)
	assert.Error(t, err, "an existing key is never overwritten")

	pub := priv.Public().(ed25519.PublicKey)
	pem := evidence.MarshalPublicKey(pub)
	assert.True(t, strings.HasPrefix(string(pem), "-----BEGIN PUBLIC KEY-----"))
	back, err := evidence.ParsePublicKey(pem)
	require.NoError(t, err)
	assert.True(t, pub.Equal(back))
	fromPriv, err := evidence.LoadPublicKey(path)
	require.NoError(t, err)
	assert.True(t, pub.Equal(fromPriv), "a private key file gives its public half")

	sum := sha256.Sum256(pub)
	assert.Equal(t, "ed25519:"+hex.EncodeToString(sum[:8]), evidence.KeyID(pub))
	assert.Regexp(t, regexp.MustCompile(`^ed25519:[0-9a-f]{16}$`), evidence.KeyID(pub))

	_, err = evidence.ParsePrivateKey([]byte("not a key"))
	assert.Error(t, err)
	_, err = evidence.ParsePublicKey(pem[:20])
	assert.Error(t, err)
}

// Keys are the files OpenSSL reads and writes.
func TestKeysInteroperateWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	require.NoError(t, err, "openssl (Debian package openssl) is needed for this test")
	dir := t.TempDir()
	priv := filepath.Join(dir, "k.pem")
	out, err := exec.CommandContext(t.Context(), openssl, "genpkey", "-algorithm", "ed25519", "-out", priv).CombinedOutput()
	require.NoError(t, err, string(out))
	key, err := evidence.LoadPrivateKey(priv)
	require.NoError(t, err)
	pubOut, err := exec.CommandContext(t.Context(), openssl, "pkey", "-in", priv, "-pubout").Output()
	require.NoError(t, err)
	pub, err := evidence.ParsePublicKey(pubOut)
	require.NoError(t, err)
	assert.True(t, pub.Equal(key.Public()))
}

func TestCanonicalJSON(t *testing.T) {
	got, err := evidence.CanonicalJSON(map[string]any{"b": 1, "a": []any{"<x>", 2.5, nil}, "c": map[string]any{"z": true, "y": "é"}})
	require.NoError(t, err)
	assert.Equal(t, `{"a":["<x>",2.5,null],"b":1,"c":{"y":"é","z":true}}`, string(got))

	// Big integers keep their digits.
	got, err = evidence.CanonicalJSON(json.RawMessage(`{ "n" : 12345678901234567890, "f": 1.50 }`))
	require.NoError(t, err)
	assert.Equal(t, `{"f":1.50,"n":12345678901234567890}`, string(got))
}
