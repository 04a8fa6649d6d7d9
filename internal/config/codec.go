package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// Codec encrypts workflow payloads before they reach Temporal (see
// internal/codec): the `codec:` section. It is off when no key is listed.
//
//	codec:
//	  keys:
//	    - {id: "2025-01", file: /run/secrets/offboard-codec-2025-01}
//	    - {id: "2025-07", file: /run/secrets/offboard-codec-2025-07}
//	  primary: "2025-07"         # new payloads; older keys only decrypt
//	  server:                    # the codec server for the Temporal Web UI
//	    listen: 127.0.0.1:8081
//	    allowedOrigins: [http://localhost:8233]
//	    tokenSHA256: [<hex SHA-256 of a bearer token>]
type Codec struct {
	Keys    []CodecKey  `yaml:"keys"`
	Primary string      `yaml:"primary"`
	Server  CodecServer `yaml:"server"`
}

// CodecKey is one AES-256 key: a file holding 32 bytes in standard base64
// (openssl rand -base64 32). The key itself is never in this file.
type CodecKey struct {
	ID   string `yaml:"id"`
	File string `yaml:"file"`
}

// CodecServer serves POST /encode and /decode for the Temporal Web UI and
// the temporal CLI (--codec-endpoint, --codec-auth "Bearer …"). It is off
// when Listen is empty.
type CodecServer struct {
	Listen         string   `yaml:"listen"`
	AllowedOrigins []string `yaml:"allowedOrigins"` // Web UI origins, e.g. http://localhost:8233
	TokenSHA256    []string `yaml:"tokenSHA256"`    // hex SHA-256 digests of the accepted bearer tokens
	// AllowCredentials answers CORS with credentials, for a UI set to includeCredentials.
	AllowCredentials bool `yaml:"allowCredentials"`
	// Anonymous takes requests without a token: the local dev UI sends none
	// (no login, and it passes a token only to an https endpoint). Loopback only.
	Anonymous bool `yaml:"anonymous"`
	// OIDC takes the access tokens of people logged in to the Web UI.
	OIDC *CodecOIDC `yaml:"oidc"`
}

// CodecOIDC lets people logged in to the Temporal Web UI through the
// company's identity provider decode payloads with their own access token
// (the UI's codec setting passAccessToken, over https), when they are allowed.
type CodecOIDC struct {
	Issuer   string `yaml:"issuer"`   // exactly the tokens' iss, e.g. https://acme.okta.com/oauth2/default
	Audience string `yaml:"audience"` // must be in the tokens' aud, e.g. api://default
	// UserClaim names the person: "email" by default.
	UserClaim string `yaml:"userClaim"`
	// Allow lists the people who may read payloads (UserClaim values).
	Allow []string `yaml:"allow"`
	// GroupsClaim and AllowGroups: members of these groups may too.
	GroupsClaim string   `yaml:"groupsClaim"`
	AllowGroups []string `yaml:"allowGroups"`
}

var codecKeyID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Enabled reports whether payloads are encrypted.
func (c Codec) Enabled() bool { return len(c.Keys) > 0 }

// KeyFiles maps key id → file, as codec.LoadKeyring takes them.
func (c Codec) KeyFiles() map[string]string {
	files := make(map[string]string, len(c.Keys))
	for _, k := range c.Keys {
		files[k.ID] = k.File
	}
	return files
}

// Validate names the first bad field.
func (c Codec) Validate() error {
	if !c.Enabled() {
		if c.Primary != "" || c.Server.Listen != "" {
			return fmt.Errorf("codec.keys: list at least one key (primary or server is set without keys)")
		}
		return nil
	}
	ids := map[string]bool{}
	files := map[string]string{}
	for i, k := range c.Keys {
		at := fmt.Sprintf("codec.keys.%d", i)
		if !codecKeyID.MatchString(k.ID) {
			return fmt.Errorf("%s.id: %q: use 1-64 letters, digits, '.', '_' or '-'", at, k.ID)
		}
		if ids[k.ID] {
			return fmt.Errorf("%s.id: %q is used twice", at, k.ID)
		}
		ids[k.ID] = true
		if strings.TrimSpace(k.File) == "" {
			return fmt.Errorf("%s.file: is required (a file holding the base64 key; never the key itself)", at)
		}
		if other, ok := files[k.File]; ok {
			return fmt.Errorf("%s.file: %s is also key %q's file", at, k.File, other)
		}
		files[k.File] = k.ID
	}
	if c.Primary == "" {
		return fmt.Errorf("codec.primary: name the key id new payloads are encrypted with")
	}
	if !ids[c.Primary] {
		return fmt.Errorf("codec.primary: %q is not one of codec.keys", c.Primary)
	}
	return c.Server.validate()
}

func (s CodecServer) validate() error {
	if s.Listen == "" {
		if len(s.AllowedOrigins) > 0 || len(s.TokenSHA256) > 0 || s.Anonymous || s.AllowCredentials || s.OIDC != nil {
			return fmt.Errorf("codec.server.listen: is required when the codec server is configured")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(s.Listen)
	if err != nil {
		return fmt.Errorf("codec.server.listen: %q is not host:port (like 127.0.0.1:8081)", s.Listen)
	}
	for i, o := range s.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			return fmt.Errorf("codec.server.allowedOrigins.%d: %q: %v", i, o, err)
		}
	}
	for i, d := range s.TokenSHA256 {
		if b, err := hex.DecodeString(d); err != nil || len(b) != 32 {
			return fmt.Errorf("codec.server.tokenSHA256.%d: must be the 64-hex-digit SHA-256 of the token, never the token itself", i)
		}
	}
	if err := s.OIDC.validate(); err != nil {
		return err
	}
	switch {
	case s.Anonymous && (len(s.TokenSHA256) > 0 || s.OIDC != nil):
		return fmt.Errorf("codec.server.anonymous: tokens are accepted too; choose one")
	case s.Anonymous && !isLoopback(host):
		return fmt.Errorf("codec.server.anonymous: only on a loopback listen address (127.0.0.1, ::1, localhost), not %q: it decrypts for anyone who reaches it", s.Listen)
	case !s.Anonymous && len(s.TokenSHA256) == 0 && s.OIDC == nil:
		return fmt.Errorf("codec.server.tokenSHA256: list the SHA-256 of at least one bearer token, or set oidc for the Web UI's logged-in users (or anonymous: true on loopback for the local dev UI)")
	}
	return nil
}

func (o *CodecOIDC) validate() error {
	if o == nil {
		return nil
	}
	u, err := url.Parse(o.Issuer)
	switch {
	case o.Issuer == "" || err != nil || u.Host == "":
		return fmt.Errorf("codec.server.oidc.issuer: is required: the identity provider's issuer URL, as in its tokens' iss claim")
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())):
		return fmt.Errorf("codec.server.oidc.issuer: %q: use https (the keys that sign the tokens are fetched from it)", o.Issuer)
	case strings.TrimSpace(o.Audience) == "":
		return fmt.Errorf("codec.server.oidc.audience: is required: the aud of the access tokens the Web UI gets (e.g. api://default)")
	case len(o.Allow) == 0 && len(o.AllowGroups) == 0:
		return fmt.Errorf("codec.server.oidc.allow: list the people (or allowGroups the groups) who may read decrypted payloads")
	case len(o.AllowGroups) > 0 && o.GroupsClaim == "":
		return fmt.Errorf("codec.server.oidc.groupsClaim: is required with allowGroups (the claim listing the person's groups, e.g. groups)")
	}
	return nil
}

// checkOrigin accepts an exact browser origin: scheme://host[:port].
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("name an origin like https://temporal-ui.example.com")
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("an origin is scheme://host[:port] only, without a path or a trailing slash")
	}
	if strings.Contains(u.Host, "*") {
		return fmt.Errorf("wildcards would let any web page decrypt payloads")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
