package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const codecDigest = "d7b345d6e2cf97d8150854412bfe76a7658464c708d250c351a129db6fd46cb6"

func TestCodecYAML(t *testing.T) {
	src := `
keys:
  - {id: "2025-01", file: /run/secrets/codec-2025-01}
  - {id: "2025-07", file: /run/secrets/codec-2025-07}
primary: "2025-07"
server:
  listen: 127.0.0.1:8081
  allowedOrigins: [http://localhost:8233, http://127.0.0.1:8233]
  tokenSHA256: [` + codecDigest + `]
  allowCredentials: true
`
	var c Codec
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&c))
	require.NoError(t, c.Validate())
	assert.True(t, c.Enabled())
	assert.Equal(t, map[string]string{"2025-01": "/run/secrets/codec-2025-01", "2025-07": "/run/secrets/codec-2025-07"}, c.KeyFiles())
	assert.Equal(t, "2025-07", c.Primary)
	assert.Equal(t, CodecServer{
		Listen:           "127.0.0.1:8081",
		AllowedOrigins:   []string{"http://localhost:8233", "http://127.0.0.1:8233"},
		TokenSHA256:      []string{codecDigest},
		AllowCredentials: true,
	}, c.Server)

	// A key written inline is an unknown field, so it cannot slip into the file.
	dec = yaml.NewDecoder(strings.NewReader("keys: [{id: a, key: c2VjcmV0}]\nprimary: a\n"))
	dec.KnownFields(true)
	require.ErrorContains(t, dec.Decode(&Codec{}), "field key not found")
}

func TestCodecValidate(t *testing.T) {
	key := func(id, file string) CodecKey { return CodecKey{ID: id, File: file} }
	one := []CodecKey{key("k1", "/k1")}
	tests := []struct {
		name string
		c    Codec
		msg  string // "" means valid
	}{
		{"off", Codec{}, ""},
		{"keys without server", Codec{Keys: one, Primary: "k1"}, ""},
		{"dev UI on loopback", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "127.0.0.1:8081", AllowedOrigins: []string{"http://localhost:8233"}, Anonymous: true}}, ""},
		{"anonymous on localhost", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "localhost:8081", Anonymous: true}}, ""},
		{"anonymous on ::1", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "[::1]:8081", Anonymous: true}}, ""},
		{"tokens on all interfaces", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", TokenSHA256: []string{codecDigest}}}, ""},

		{"primary without keys", Codec{Primary: "k1"}, "codec.keys: list at least one key"},
		{"server without keys", Codec{Server: CodecServer{Listen: ":8081"}}, "codec.keys:"},
		{"no primary", Codec{Keys: one}, "codec.primary: name the key id"},
		{"unknown primary", Codec{Keys: one, Primary: "k2"}, `codec.primary: "k2" is not one of codec.keys`},
		{"empty id", Codec{Keys: []CodecKey{key("", "/k")}, Primary: "k1"}, `codec.keys.0.id: ""`},
		{"bad id", Codec{Keys: []CodecKey{key("k1", "/k1"), key("k 2", "/k2")}, Primary: "k1"}, `codec.keys.1.id: "k 2"`},
		{"duplicate id", Codec{Keys: []CodecKey{key("k1", "/a"), key("k1", "/b")}, Primary: "k1"}, `codec.keys.1.id: "k1" is used twice`},
		{"no file", Codec{Keys: []CodecKey{key("k1", "")}, Primary: "k1"}, "codec.keys.0.file: is required"},
		{"same file twice", Codec{Keys: []CodecKey{key("k1", "/k"), key("k2", "/k")}, Primary: "k2"}, `codec.keys.1.file: /k is also key "k1"'s file`},
		{"server options without listen", Codec{Keys: one, Primary: "k1", Server: CodecServer{Anonymous: true}}, "codec.server.listen: is required"},
		{"listen without port", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "localhost", Anonymous: true}}, "codec.server.listen:"},
		{"no tokens", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "127.0.0.1:8081"}}, "codec.server.tokenSHA256: list the SHA-256"},
		{"token not digest", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", TokenSHA256: []string{"sandbox-alice-token"}}}, "codec.server.tokenSHA256.0: must be the 64-hex-digit SHA-256"},
		{"anonymous on all interfaces", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", Anonymous: true}}, "codec.server.anonymous: only on a loopback"},
		{"anonymous on a LAN address", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "10.0.0.5:8081", Anonymous: true}}, "codec.server.anonymous: only on a loopback"},
		{"anonymous and tokens", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "127.0.0.1:8081", Anonymous: true, TokenSHA256: []string{codecDigest}}}, "codec.server.anonymous: tokens are accepted too"},
		{"oidc only", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", OIDC: &CodecOIDC{Issuer: "https://acme.okta.com/oauth2/default", Audience: "api://default", Allow: []string{"alice@acme.test"}}}}, ""},
		{"oidc without issuer", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", OIDC: &CodecOIDC{Audience: "a", Allow: []string{"x"}}}}, "codec.server.oidc.issuer: is required"},
		{"oidc issuer over http", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", OIDC: &CodecOIDC{Issuer: "http://idp.example", Audience: "a", Allow: []string{"x"}}}}, "codec.server.oidc.issuer: \"http://idp.example\": use https"},
		{"oidc without audience", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", OIDC: &CodecOIDC{Issuer: "https://idp.example", Allow: []string{"x"}}}}, "codec.server.oidc.audience: is required"},
		{"oidc allows nobody", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", OIDC: &CodecOIDC{Issuer: "https://idp.example", Audience: "a"}}}, "codec.server.oidc.allow: list the people"},
		{"oidc groups without claim", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: ":8081", OIDC: &CodecOIDC{Issuer: "https://idp.example", Audience: "a", AllowGroups: []string{"g"}}}}, "codec.server.oidc.groupsClaim: is required"},
		{"oidc and anonymous", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "127.0.0.1:8081", Anonymous: true, OIDC: &CodecOIDC{Issuer: "https://acme.okta.com/oauth2/default", Audience: "api://default", Allow: []string{"alice@acme.test"}}}}, "codec.server.anonymous: tokens are accepted too"},
		{"oidc without listen", Codec{Keys: one, Primary: "k1", Server: CodecServer{OIDC: &CodecOIDC{Issuer: "https://acme.okta.com/oauth2/default", Audience: "api://default", Allow: []string{"alice@acme.test"}}}}, "codec.server.listen: is required"},
		{"wildcard origin", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "127.0.0.1:8081", Anonymous: true, AllowedOrigins: []string{"*"}}}, "codec.server.allowedOrigins.0"},
		{"wildcard host", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "127.0.0.1:8081", Anonymous: true, AllowedOrigins: []string{"https://*.example.com"}}}, "wildcards"},
		{"origin with slash", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "127.0.0.1:8081", Anonymous: true, AllowedOrigins: []string{"http://localhost:8233/"}}}, "without a path or a trailing slash"},
		{"origin without scheme", Codec{Keys: one, Primary: "k1", Server: CodecServer{Listen: "127.0.0.1:8081", Anonymous: true, AllowedOrigins: []string{"localhost:8233"}}}, "codec.server.allowedOrigins.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.msg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.msg)
			assert.NotContains(t, err.Error(), "sandbox-alice-token", "a token typed as a digest is not echoed")
		})
	}
}

func TestConfigCodecSection(t *testing.T) {
	cfg, err := Default()
	require.NoError(t, err, "parsing the default never reads the key file")
	assert.True(t, cfg.Codec.Enabled())
	assert.Equal(t, map[string]string{"sandbox-1": ".offboard/codec.key"}, cfg.Codec.KeyFiles())
	assert.Equal(t, "127.0.0.1:8081", cfg.Codec.Server.Listen)

	bad := strings.Replace(string(defaultYAML), "primary: sandbox-1", "primary: nope", 1)
	_, err = Parse([]byte(bad), "bad.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad.yaml:")
	assert.Contains(t, err.Error(), "codec.primary")
}
