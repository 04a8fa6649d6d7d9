package tclient

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/offboard/offboard/internal/codec"
	"github.com/offboard/offboard/internal/config"
)

func withCodec(t *testing.T, keyFile string) config.Config {
	t.Helper()
	cfg, err := config.Default()
	require.NoError(t, err)
	cfg.Codec = config.Codec{Keys: []config.CodecKey{{ID: "k1", File: keyFile}}, Primary: "k1"}
	return cfg
}

func TestOptionsCodec(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "codec.key")
	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600))

	opts, err := Options(withCodec(t, keyFile), nil)
	require.NoError(t, err)
	require.NotNil(t, opts.DataConverter)
	require.NotNil(t, opts.FailureConverter)
	p, err := opts.DataConverter.ToPayload("ada@example.test")
	require.NoError(t, err)
	assert.Equal(t, codec.Encoding, string(p.GetMetadata()[converter.MetadataEncoding]))
	assert.NotContains(t, string(p.GetData()), "ada@example.test")
	var back string
	require.NoError(t, opts.DataConverter.FromPayload(p, &back))
	assert.Equal(t, "ada@example.test", back)

	off := withCodec(t, keyFile)
	off.Codec = config.Codec{}
	opts, err = Options(off, nil)
	require.NoError(t, err)
	assert.Nil(t, opts.DataConverter, "no codec section: the SDK default")
	assert.Nil(t, opts.FailureConverter)
}

func TestOptionsMissingKeyFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.key")
	_, err := Options(withCodec(t, missing), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "codec.keys")
	assert.Contains(t, err.Error(), missing)
	_, _, err = Converters(withCodec(t, missing))
	require.Error(t, err)
}
