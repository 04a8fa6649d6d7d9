package codec_test

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/codec"
)

const audience = "api://offboard-codec"

// issuer is an OpenID Connect provider as the codec server sees one: a
// discovery document and a JWKS it can rotate, and RS256 access tokens.
type issuer struct {
	t    *testing.T
	url  string
	up   atomic.Bool
	mu   sync.Mutex
	keys map[string]*rsa.PrivateKey // kid → key, all published
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{t: t, keys: map[string]*rsa.PrivateKey{}}
	is.up.Store(true)
	is.addKey("k1")
	srv := httptest.NewServer(http.HandlerFunc(is.serve))
	t.Cleanup(srv.Close)
	is.url = srv.URL + "/oauth2/default"
	return is
}

func (is *issuer) addKey(kid string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(is.t, err)
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[kid] = k
}

func (is *issuer) serve(w http.ResponseWriter, r *http.Request) {
	if !is.up.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/oauth2/default/.well-known/openid-configuration":
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.url, "jwks_uri": is.url + "/v1/keys",
			"authorization_endpoint": is.url + "/v1/authorize", "token_endpoint": is.url + "/v1/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case "/oauth2/default/v1/keys":
		is.mu.Lock()
		defer is.mu.Unlock()
		var keys []map[string]string
		for kid, k := range is.keys {
			keys = append(keys, map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
				"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	default:
		http.NotFound(w, r)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// claims are an access token's, valid for ten minutes, for who.
func (is *issuer) claims(who string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": is.url, "aud": audience, "sub": "00u" + who, "email": who, "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "scp": []string{"openid", "email"}}
}

// sign makes an RS256 JWT with the issuer's key kid.
func (is *issuer) sign(kid string, claims map[string]any) string {
	is.mu.Lock()
	key := is.keys[kid]
	is.mu.Unlock()
	if key == nil { // a key the issuer never published
		var err error
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(is.t, err)
	}
	head, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	require.NoError(is.t, err)
	body, err := json.Marshal(claims)
	require.NoError(is.t, err)
	input := b64(head) + "." + b64(body)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	require.NoError(is.t, err)
	return input + "." + b64(sig)
}

// logBuffer is a slog handler's output that tests may read while the server writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestHandlerOIDC(t *testing.T) {
	is := newIssuer(t)
	logs := &logBuffer{}
	opts := defaultOpts()
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	opts.OIDC = codec.NewOIDC(codec.OIDCOptions{Issuer: is.url, Audience: audience,
		Allow: []string{"Alice@Example.test"}, GroupsClaim: "groups", AllowGroups: []string{"offboard-auditors"}})
	require.NoError(t, opts.Validate())
	srv, k := codecServer(t, opts)
	sealed, err := codec.NewCodec(k).Encode(plainPayloads(t))
	require.NoError(t, err)
	body := payloadsJSON(t, sealed)

	alice := is.sign("k1", is.claims("alice@example.test"))
	auditor := is.claims("bob@example.test")
	auditor["groups"] = []string{"everyone", "offboard-auditors"}
	with := func(edit func(map[string]any)) string {
		c := is.claims("alice@example.test")
		edit(c)
		return is.sign("k1", c)
	}
	hs256 := func() string { // signed with a shared secret: never taken from a browser
		head, body := b64([]byte(`{"alg":"HS256","typ":"JWT","kid":"k1"}`)), b64(must(json.Marshal(is.claims("alice@example.test"))))
		mac := hmac.New(sha256.New, []byte("guessable"))
		mac.Write([]byte(head + "." + body))
		return head + "." + body + "." + b64(mac.Sum(nil))
	}

	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"allowed person", alice, http.StatusOK},
		{"member of an allowed group", is.sign("k1", auditor), http.StatusOK},
		{"static token still works (the CLI)", token, http.StatusOK},
		{"valid token, person not allowed", is.sign("k1", is.claims("mallory@example.test")), http.StatusForbidden},
		{"expired", with(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), http.StatusUnauthorized},
		{"not yet valid", with(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), http.StatusUnauthorized},
		{"other audience", with(func(c map[string]any) { c["aud"] = "api://default" }), http.StatusUnauthorized},
		{"other issuer", with(func(c map[string]any) { c["iss"] = "https://evil.example/oauth2/default" }), http.StatusUnauthorized},
		{"no email claim", with(func(c map[string]any) { delete(c, "email") }), http.StatusUnauthorized},
		{"e-mail not verified", with(func(c map[string]any) { c["email_verified"] = false }), http.StatusUnauthorized},
		{"e-mail verification not stated", with(func(c map[string]any) { delete(c, "email_verified") }), http.StatusUnauthorized},
		{"e-mail verified as the string true", with(func(c map[string]any) { c["email_verified"] = "true" }), http.StatusOK},
		{"signed by a key the issuer never published", is.sign("k9", is.claims("alice@example.test")), http.StatusUnauthorized},
		{"HS256 with a guessed secret", hs256(), http.StatusUnauthorized},
		{"signature of another token", alice[:strings.LastIndex(alice, ".")] + is.sign("k1", auditor)[strings.LastIndex(is.sign("k1", auditor), "."):], http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, srv.URL+"/decode", body, map[string]string{"Authorization": "Bearer " + tt.token, "Origin": uiOrigin})
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tt.want, resp.StatusCode, string(b))
			if tt.want == http.StatusOK {
				assert.Contains(t, string(b), base64.StdEncoding.EncodeToString([]byte("json/plain")), "decoded")
				return
			}
			assert.NotContains(t, string(b), base64.StdEncoding.EncodeToString([]byte("json/plain")), "nothing decrypted")
			assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"), "the UI can show why")
		})
	}

	// Who read personal data is on record; no token ever is.
	out := logs.String()
	assert.Contains(t, out, `"who":"alice@example.test"`)
	assert.Contains(t, out, `"who":"bob@example.test"`)
	assert.Contains(t, out, `"who":"token 1"`, "a static token is named by its place in the list")
	assert.Contains(t, out, `"msg":"codec server: refused","who":"mallory@example.test"`)
	assert.NotContains(t, out, alice[strings.LastIndex(alice, ".")+1:], "no token signature in the log")
	assert.NotContains(t, out, token)

	// The issuer rotates its signing key: a token with the new kid makes the
	// server fetch the keys again.
	is.addKey("k2")
	resp := post(t, srv.URL+"/decode", body, map[string]string{"Authorization": "Bearer " + is.sign("k2", is.claims("alice@example.test"))})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestHandlerOIDCProviderDown(t *testing.T) {
	is := newIssuer(t)
	is.up.Store(false)
	opts := defaultOpts()
	opts.OIDC = codec.NewOIDC(codec.OIDCOptions{Issuer: is.url, Audience: audience, Allow: []string{"alice@example.test"}})
	srv, k := codecServer(t, opts)
	sealed, err := codec.NewCodec(k).Encode(plainPayloads(t))
	require.NoError(t, err)
	body := payloadsJSON(t, sealed)
	alice := map[string]string{"Authorization": "Bearer " + is.sign("k1", is.claims("alice@example.test"))}

	resp := post(t, srv.URL+"/decode", body, alice)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(b))
	assert.Equal(t, "30", resp.Header.Get("Retry-After"))
	assert.Equal(t, http.StatusOK, post(t, srv.URL+"/decode", body, map[string]string{"Authorization": "Bearer " + token}).StatusCode,
		"the CLI's static tokens do not depend on the identity provider")

	is.up.Store(true)
	assert.Equal(t, http.StatusOK, post(t, srv.URL+"/decode", body, alice).StatusCode, "discovery is tried again once the provider is back")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}
