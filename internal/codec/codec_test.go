package codec_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/offboard/offboard/internal/codec"
)

const email = "ada.lovelace1001@example.test"

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, codec.KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func keyring(t *testing.T, keys map[string][]byte, primary string) *codec.Keyring {
	t.Helper()
	k, err := codec.NewKeyring(keys, primary)
	require.NoError(t, err)
	return k
}

// plainPayloads are what the default data converter makes of a termination.
func plainPayloads(t *testing.T) []*commonpb.Payload {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(
		map[string]string{"name": "Ada Lovelace", "email": email}, "okta-00u1001", nil)
	require.NoError(t, err)
	return ps.Payloads
}

func TestRoundTrip(t *testing.T) {
	k := keyring(t, map[string][]byte{"k1": newKey(t)}, "k1")
	c := codec.NewCodec(k)
	in := plainPayloads(t)

	enc, err := c.Encode(in)
	require.NoError(t, err)
	require.Len(t, enc, len(in))
	for _, p := range enc {
		assert.Equal(t, codec.Encoding, string(p.Metadata[converter.MetadataEncoding]))
		assert.Equal(t, "k1", string(p.Metadata[codec.MetadataKeyID]))
		assert.Len(t, p.Metadata, 2, "only the encoding and the key id are in the clear")
		assert.NotContains(t, string(p.Data), email)
		assert.NotContains(t, string(p.Data), "json/plain", "the original metadata is sealed too")
	}

	dec, err := c.Decode(enc)
	require.NoError(t, err)
	require.Len(t, dec, len(in))
	for i := range in {
		assert.True(t, proto.Equal(in[i], dec[i]), "payload %d", i)
	}

	// Through the data converter, as the worker and the client use it.
	dc := codec.DataConverter(k)
	p, err := dc.ToPayload(email)
	require.NoError(t, err)
	assert.Equal(t, codec.Encoding, string(p.Metadata[converter.MetadataEncoding]))
	var got string
	require.NoError(t, dc.FromPayload(p, &got))
	assert.Equal(t, email, got)
}

func TestNoncesDiffer(t *testing.T) {
	c := codec.NewCodec(keyring(t, map[string][]byte{"k1": newKey(t)}, "k1"))
	in := plainPayloads(t)[:1]
	a, err := c.Encode(in)
	require.NoError(t, err)
	b, err := c.Encode(in)
	require.NoError(t, err)
	assert.NotEqual(t, a[0].Data, b[0].Data, "the same payload sealed twice must not repeat")
	assert.NotEqual(t, a[0].Data[:12], b[0].Data[:12], "fresh nonce each time")
}

func TestRotation(t *testing.T) {
	old, next := newKey(t), newKey(t)
	before := codec.NewCodec(keyring(t, map[string][]byte{"2024": old}, "2024"))
	sealedOld, err := before.Encode(plainPayloads(t))
	require.NoError(t, err)

	after := codec.NewCodec(keyring(t, map[string][]byte{"2024": old, "2025": next}, "2025"))
	dec, err := after.Decode(sealedOld)
	require.NoError(t, err, "payloads sealed before the rotation still open")
	assert.True(t, proto.Equal(plainPayloads(t)[0], dec[0]))

	sealedNew, err := after.Encode(plainPayloads(t))
	require.NoError(t, err)
	assert.Equal(t, "2025", string(sealedNew[0].Metadata[codec.MetadataKeyID]), "new payloads use the new primary")

	// Retiring the old key too early is loud, not silent.
	retired := codec.NewCodec(keyring(t, map[string][]byte{"2025": next}, "2025"))
	_, err = retired.Decode(sealedOld)
	require.ErrorIs(t, err, codec.ErrUnknownKey)
	_, err = retired.Decode(sealedNew)
	require.NoError(t, err)
}

func TestDecodeFailures(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	c := codec.NewCodec(keyring(t, map[string][]byte{"k1": k1, "k2": k2}, "k1"))
	sealed := func() *commonpb.Payload {
		ps, err := c.Encode(plainPayloads(t)[:1])
		require.NoError(t, err)
		return ps[0]
	}
	tests := []struct {
		name   string
		mutate func(p *commonpb.Payload)
		want   error
		msg    string
	}{
		{"flipped ciphertext bit", func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 1 }, codec.ErrTampered, `key "k1"`},
		{"flipped nonce bit", func(p *commonpb.Payload) { p.Data[0] ^= 0x80 }, codec.ErrTampered, ""},
		{"flipped tag bit", func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 1 }, codec.ErrTampered, ""},
		{"truncated", func(p *commonpb.Payload) { p.Data = p.Data[:20] }, codec.ErrTampered, "shorter than nonce and tag"},
		{"empty data", func(p *commonpb.Payload) { p.Data = nil }, codec.ErrTampered, ""},
		// The key id is additional data: pointing at another known key fails authentication.
		{"key id swapped to another known key", func(p *commonpb.Payload) { p.Metadata[codec.MetadataKeyID] = []byte("k2") }, codec.ErrTampered, `key "k2"`},
		{"unknown key id", func(p *commonpb.Payload) { p.Metadata[codec.MetadataKeyID] = []byte("k9") }, codec.ErrUnknownKey, `"k9"`},
		{"no key id", func(p *commonpb.Payload) { delete(p.Metadata, codec.MetadataKeyID) }, nil, "names no encryption-key-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sealed()
			tt.mutate(p)
			_, err := c.Decode([]*commonpb.Payload{p})
			require.Error(t, err)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			}
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestDecodePassesPlainPayloadsThrough(t *testing.T) {
	c := codec.NewCodec(keyring(t, map[string][]byte{"k1": newKey(t)}, "k1"))
	plain := plainPayloads(t)
	nilPayload, err := converter.GetDefaultDataConverter().ToPayload(nil)
	require.NoError(t, err)
	sealed, err := c.Encode(plain[:1])
	require.NoError(t, err)

	// An old history mixes with new payloads in one batch.
	in := []*commonpb.Payload{plain[0], sealed[0], nilPayload, plain[1], {}}
	out, err := c.Decode(in)
	require.NoError(t, err)
	require.Len(t, out, len(in))
	assert.Same(t, plain[0], out[0], "plaintext payload returned as is")
	assert.True(t, proto.Equal(plain[0], out[1]))
	assert.Same(t, nilPayload, out[2])
	assert.Same(t, plain[1], out[3])
	assert.Same(t, in[4], out[4], "a payload without metadata passes through")
}

func TestNewKeyringRefuses(t *testing.T) {
	k := newKey(t)
	tests := []struct {
		name    string
		keys    map[string][]byte
		primary string
		msg     string
	}{
		{"no keys", nil, "k1", "no key"},
		{"short key", map[string][]byte{"k1": k[:16]}, "k1", `key "k1" is 16 bytes; an AES-256 key is 32`},
		{"primary missing", map[string][]byte{"k1": k}, "k2", `primary key id "k2" is not in the keyring (ids: k1)`},
		{"empty primary", map[string][]byte{"k1": k}, "", `primary key id ""`},
		{"bad id", map[string][]byte{"k 1": k}, "k 1", `key id "k 1"`},
		{"same key twice", map[string][]byte{"a": k, "b": bytes.Clone(k)}, "a", `keys "a" and "b" are the same key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.NewKeyring(tt.keys, tt.primary)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := newKey(t), newKey(t)
	files := map[string]string{
		"2024": writeFile(t, dir, "2024.key", base64.StdEncoding.EncodeToString(k1)+"\n"),
		"2025": writeFile(t, dir, "2025.key", "  "+base64.StdEncoding.EncodeToString(k2)+"\r\n"),
	}
	k, err := codec.LoadKeyring(files, "2025")
	require.NoError(t, err)
	assert.Equal(t, "2025", k.Primary())
	assert.Equal(t, []string{"2024", "2025"}, k.IDs())

	// The loaded keys are the ones in the files: a payload sealed with raw k1 opens.
	sealed, err := codec.NewCodec(keyring(t, map[string][]byte{"2024": k1}, "2024")).Encode(plainPayloads(t))
	require.NoError(t, err)
	_, err = codec.NewCodec(k).Decode(sealed)
	require.NoError(t, err)

	for _, s := range []string{k.String(), strings.ReplaceAll(k.GoString(), " ", "")} {
		assert.NotContains(t, s, base64.StdEncoding.EncodeToString(k1))
	}
}

func TestLoadKeyringRefuses(t *testing.T) {
	dir := t.TempDir()
	key := newKey(t)
	b64 := base64.StdEncoding.EncodeToString(key)
	short := base64.StdEncoding.EncodeToString(key[:24])
	hexKey := hex.EncodeToString(key)
	tests := []struct {
		name    string
		content string // "" means no file
		msg     string
	}{
		{"missing file", "", "no such file"},
		{"wrong size", short, "holds 24 bytes after base64 decoding; an AES-256 key is 32"},
		{"hex", hexKey, "holds hex; write the key as base64"},
		{"not base64", "not a key at all!", "is not standard base64"},
		{"two keys in one file", b64 + "\n" + b64, "is not standard base64"},
		{"empty file", "\n", "holds 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".key")
			if tt.content != "" {
				writeFile(t, dir, filepath.Base(path), tt.content)
			}
			_, err := codec.LoadKeyring(map[string]string{"k1": path}, "k1")
			require.Error(t, err)
			msg := err.Error()
			assert.Contains(t, msg, tt.msg)
			assert.Contains(t, msg, path, "the error names the file")
			assert.Contains(t, msg, `key "k1"`, "the error names the key id")
			for _, secret := range []string{b64, short, hexKey, b64[:16], hexKey[:16]} {
				assert.NotContains(t, msg, secret, "the error never shows the key")
			}
		})
	}
	_, err := codec.LoadKeyring(nil, "k1")
	require.ErrorContains(t, err, "no key files")
	_, err = codec.LoadKeyring(map[string]string{"k1": ""}, "k1")
	require.ErrorContains(t, err, "no key file named")
}
