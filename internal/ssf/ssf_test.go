package ssf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 11, 29, 15, 0, 0, 0, time.UTC)

func ecKey(t testing.TB) *Key {
	t.Helper()
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k, err := NewKey(pk)
	require.NoError(t, err)
	return k
}

func testSET() SET {
	body, _ := json.Marshal(EventBody{Subject: &Subject{Format: "email", Email: "ada@example.test"}, EventTimestamp: now.Unix()})
	return SET{Issuer: "https://idp.example.test", Audience: Audience{"https://offboard.example.test"}, IssuedAt: now.Unix(),
		JTI: "jti-1", Events: map[string]json.RawMessage{EventAccountDisabled: body}}
}

func verifier(keys *Keys) *Verifier {
	return &Verifier{Issuer: "https://idp.example.test", Audience: "https://offboard.example.test", Keys: keys, Now: func() time.Time { return now }}
}

func staticKeys(t testing.TB, k *Key) *Keys {
	t.Helper()
	b, err := json.Marshal(k.JWKS())
	require.NoError(t, err)
	keys, err := StaticKeys(b)
	require.NoError(t, err)
	return keys
}

func code(t *testing.T, err error) string {
	t.Helper()
	var e *Error
	require.True(t, errors.As(err, &e), "an RFC 8935 refusal, got %v", err)
	return e.Code
}

func TestSignVerifyES256AndRS256(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaKey, err := NewKey(rk)
	require.NoError(t, err)
	for _, k := range []*Key{ecKey(t), rsaKey} {
		tok, err := k.Sign(testSET())
		require.NoError(t, err)
		set, err := verifier(staticKeys(t, k)).Verify(t.Context(), tok)
		require.NoError(t, err, k.Algorithm())
		assert.Equal(t, "jti-1", set.JTI)
		sub, err := set.SubjectOf(EventAccountDisabled)
		require.NoError(t, err)
		assert.Equal(t, "ada@example.test", sub.Email)
	}
	assert.Equal(t, "RS256", rsaKey.Algorithm())
}

// unsigned builds a token by hand with any header and signature.
func unsigned(t *testing.T, hdr map[string]any, set SET, sign func(input string) []byte) string {
	h, err := json.Marshal(hdr)
	require.NoError(t, err)
	p, err := json.Marshal(set)
	require.NoError(t, err)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(input))
}

func TestVerifyRefuses(t *testing.T) {
	k := ecKey(t)
	v := verifier(staticKeys(t, k))
	sign := func(mut func(*SET)) string {
		s := testSET()
		mut(&s)
		tok, err := k.Sign(s)
		require.NoError(t, err)
		return tok
	}
	// An HMAC keyed with the public JWKS: the classic algorithm confusion.
	pub, _ := json.Marshal(k.JWKS().Keys[0])
	hs := unsigned(t, map[string]any{"alg": "HS256", "typ": TypeHeader, "kid": k.KeyID()}, testSET(), func(in string) []byte {
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(in))
		return m.Sum(nil)
	})
	other, err := ecKey(t).Sign(testSET())
	require.NoError(t, err)
	forged := other[:len(other)-10] + "AAAAAAAAAA"
	cases := map[string]struct{ token, code string }{
		"alg none":   {unsigned(t, map[string]any{"alg": "none", "typ": TypeHeader}, testSET(), func(string) []byte { return nil }), ErrInvalidKey},
		"HS256":      {hs, ErrInvalidKey},
		"wrong key":  {other, ErrInvalidKey}, // its kid is unknown here
		"forged sig": {forged, ErrInvalidKey},
		"wrong key, our kid": {unsigned(t, map[string]any{"alg": "ES256", "typ": TypeHeader, "kid": k.KeyID()}, testSET(), func(string) []byte {
			return make([]byte, 64)
		}), ErrInvalidKey},
		"typ JWT":   {unsigned(t, map[string]any{"alg": "ES256", "typ": "JWT", "kid": k.KeyID()}, testSET(), func(string) []byte { return nil }), ErrInvalidRequest},
		"wrong aud": {sign(func(s *SET) { s.Audience = Audience{"https://someone-else.test"} }), ErrInvalidAudience},
		"wrong iss": {sign(func(s *SET) { s.Issuer = "https://evil.test" }), ErrInvalidIssuer},
		"too old":   {sign(func(s *SET) { s.IssuedAt = now.Add(-11 * time.Minute).Unix() }), ErrInvalidRequest},
		"future":    {sign(func(s *SET) { s.IssuedAt = now.Add(5 * time.Minute).Unix() }), ErrInvalidRequest},
		"expired":   {sign(func(s *SET) { s.Expires = now.Add(-time.Second).Unix() }), ErrInvalidRequest},
		"no jti":    {sign(func(s *SET) { s.JTI = "" }), ErrInvalidRequest},
		"no events": {sign(func(s *SET) { s.Events = nil }), ErrInvalidRequest},
		"garbage":   {"not.a.jws", ErrInvalidRequest},
	}
	for name, c := range cases {
		_, err := v.Verify(t.Context(), c.token)
		assert.Equal(t, c.code, code(t, err), name)
	}
}

// A key rotated at the transmitter is fetched again on its first unknown
// kid; a made-up kid right after does not fetch again.
func TestRemoteKeysRefreshOnUnknownKid(t *testing.T) {
	first, second := ecKey(t), ecKey(t)
	var current atomic.Pointer[Key]
	current.Store(first)
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_ = json.NewEncoder(w).Encode(current.Load().JWKS())
	}))
	defer srv.Close()
	keys := RemoteKeys(srv.URL, srv.Client())
	keys.MinRefresh = time.Nanosecond
	v := verifier(keys)

	tok, _ := first.Sign(testSET())
	_, err := v.Verify(t.Context(), tok)
	require.NoError(t, err)
	_, err = v.Verify(t.Context(), tok)
	require.NoError(t, err)
	assert.Equal(t, int32(1), fetches.Load(), "cached")

	current.Store(second)
	tok, _ = second.Sign(testSET())
	_, err = v.Verify(t.Context(), tok)
	require.NoError(t, err, "the rotated key was fetched")
	assert.Equal(t, int32(2), fetches.Load())

	keys.MinRefresh = time.Hour
	bogus := unsigned(t, map[string]any{"alg": "ES256", "typ": TypeHeader, "kid": "made-up"}, testSET(), func(string) []byte { return make([]byte, 64) })
	_, err = v.Verify(t.Context(), bogus)
	assert.Equal(t, ErrInvalidKey, code(t, err))
	assert.Equal(t, int32(2), fetches.Load(), "no fetch within MinRefresh")

	srv.Close()
	keys2 := RemoteKeys(srv.URL, &http.Client{Timeout: time.Second})
	_, err = verifier(keys2).Verify(t.Context(), tok)
	assert.ErrorIs(t, err, ErrKeysUnavailable)
}

func TestParseKey(t *testing.T) {
	seed := sha256.Sum256([]byte("sandbox-ssf-key"))
	k, err := ParseKey(base64.StdEncoding.EncodeToString(seed[:]))
	require.NoError(t, err)
	assert.Equal(t, "ES256", k.Algorithm())
	again, _ := ParseKey(base64.StdEncoding.EncodeToString(seed[:]))
	assert.Equal(t, k.KeyID(), again.KeyID(), "the kid is the key's thumbprint")
	_, err = ParseKey("c2hvcnQ=")
	assert.Error(t, err)
	pk, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, err = NewKey(pk)
	assert.ErrorContains(t, err, "P-256")
	var set jose.JSONWebKeySet
	b, _ := json.Marshal(k.JWKS())
	require.NoError(t, json.Unmarshal(b, &set))
	assert.True(t, set.Keys[0].IsPublic(), "the JWKS holds no private part")
	assert.NotContains(t, string(b), `"d"`)
}

func TestPush(t *testing.T) {
	var got *http.Request
	var status atomic.Int32
	status.Store(http.StatusAccepted)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.WriteHeader(int(status.Load()))
		if status.Load() == http.StatusBadRequest {
			_, _ = w.Write([]byte(`{"err":"invalid_audience","description":"not me"}`))
		}
	}))
	defer srv.Close()
	require.NoError(t, Push(t.Context(), srv.Client(), srv.URL, "tok", "a.b.c"))
	assert.Equal(t, MediaType, got.Header.Get("Content-Type"))
	assert.Equal(t, "Bearer tok", got.Header.Get("Authorization"))
	status.Store(http.StatusBadRequest)
	err := Push(t.Context(), srv.Client(), srv.URL, "tok", "a.b.c")
	assert.ErrorIs(t, err, ErrRejected)
	assert.ErrorContains(t, err, "invalid_audience")
	status.Store(http.StatusServiceUnavailable)
	err = Push(t.Context(), srv.Client(), srv.URL, "tok", "a.b.c")
	assert.Error(t, err)
	assert.NotErrorIs(t, err, ErrRejected)
}
