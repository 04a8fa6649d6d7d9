package ssf

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// RFC 8935 section 2.4 error codes.
const (
	ErrInvalidRequest       = "invalid_request"
	ErrInvalidKey           = "invalid_key"
	ErrInvalidIssuer        = "invalid_issuer"
	ErrInvalidAudience      = "invalid_audience"
	ErrAuthenticationFailed = "authentication_failed"
)

// Error is a SET refused, with the RFC 8935 code the receiver answers.
type Error struct {
	Code        string `json:"err"`
	Description string `json:"description"`
}

func (e *Error) Error() string { return "ssf: " + e.Code + ": " + e.Description }

func refuse(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
}

// ErrKeysUnavailable means the transmitter's JWKS could not be read: the
// SET may be good, so the receiver asks for it again later.
var ErrKeysUnavailable = errors.New("ssf: the transmitter's keys cannot be read")

// Keys are a transmitter's public keys: configured inline, or read from its
// jwks_uri and read again when a SET names a key id not yet seen (a key
// rotation), at most once per MinRefresh.
type Keys struct {
	uri        string
	http       *http.Client
	MinRefresh time.Duration // default 10 s
	mu         sync.Mutex
	set        jose.JSONWebKeySet
	fetched    time.Time
}

// StaticKeys are keys configured inline (a JWKS document).
func StaticKeys(jwks []byte) (*Keys, error) {
	k := &Keys{}
	if err := json.Unmarshal(jwks, &k.set); err != nil {
		return nil, fmt.Errorf("ssf: jwks: %w", err)
	}
	if len(k.set.Keys) == 0 {
		return nil, errors.New("ssf: jwks holds no key")
	}
	return k, nil
}

// RemoteKeys are read from uri when first needed.
func RemoteKeys(uri string, hc *http.Client) *Keys {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Keys{uri: uri, http: hc}
}

// candidates are the keys that may have signed with kid and alg.
func (k *Keys) candidates(ctx context.Context, kid, alg string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	find := func() []jose.JSONWebKey {
		var out []jose.JSONWebKey
		for _, key := range k.set.Keys {
			if (kid == "" || key.KeyID == kid) && (key.Algorithm == "" || key.Algorithm == alg) && key.Use != "enc" && key.IsPublic() {
				out = append(out, key)
			}
		}
		return out
	}
	if found := find(); len(found) > 0 || k.uri == "" {
		return found, nil
	}
	minRefresh := k.MinRefresh
	if minRefresh <= 0 {
		minRefresh = 10 * time.Second
	}
	if !k.fetched.IsZero() && time.Since(k.fetched) < minRefresh {
		return nil, nil // a flood of made-up key ids must not become a flood of fetches
	}
	if err := k.fetch(ctx); err != nil {
		return nil, err
	}
	return find(), nil
}

func (k *Keys) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.uri, nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeysUnavailable, k.uri, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: HTTP %d", ErrKeysUnavailable, k.uri, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) == 0 {
		return fmt.Errorf("%w: GET %s: not a JWKS with keys", ErrKeysUnavailable, k.uri)
	}
	k.set, k.fetched = set, time.Now()
	return nil
}

// Verifier checks SETs from one transmitter.
type Verifier struct {
	Issuer   string
	Audience string
	Keys     *Keys
	MaxAge   time.Duration // how old iat may be; default 10 min
	Skew     time.Duration // how far ahead iat may be; default 1 min
	Now      func() time.Time
}

// Verify checks a SET's type, signature, issuer, audience, age and shape,
// and returns its claims. A refusal is an *Error; ErrKeysUnavailable means
// it could not be checked now.
func (v *Verifier) Verify(ctx context.Context, token string) (SET, error) {
	token = strings.TrimSpace(token)
	hdr, err := header(token)
	if err != nil {
		return SET{}, refuse(ErrInvalidRequest, "not a compact JWS: %v", err)
	}
	if !slices.Contains(Algorithms, jose.SignatureAlgorithm(hdr.Alg)) {
		return SET{}, refuse(ErrInvalidKey, "alg %q is not accepted: only RS256 and ES256", hdr.Alg)
	}
	if typ := strings.TrimPrefix(strings.ToLower(hdr.Typ), "application/"); typ != TypeHeader {
		return SET{}, refuse(ErrInvalidRequest, "typ %q is not %s: not a Security Event Token", hdr.Typ, TypeHeader)
	}
	jws, err := jose.ParseSignedCompact(token, Algorithms)
	if err != nil {
		return SET{}, refuse(ErrInvalidRequest, "not a compact JWS: %v", err)
	}
	keys, err := v.Keys.candidates(ctx, hdr.Kid, hdr.Alg)
	if err != nil {
		return SET{}, err
	}
	if len(keys) == 0 {
		return SET{}, refuse(ErrInvalidKey, "no %s key with kid %q among the transmitter's keys", hdr.Alg, hdr.Kid)
	}
	var payload []byte
	for _, key := range keys {
		if payload, err = jws.Verify(key); err == nil {
			break
		}
	}
	if err != nil {
		return SET{}, refuse(ErrInvalidKey, "the signature does not verify with the transmitter's key %q", hdr.Kid)
	}
	var set SET
	if err := json.Unmarshal(payload, &set); err != nil {
		return SET{}, refuse(ErrInvalidRequest, "claims: %v", err)
	}
	return set, v.checkClaims(set)
}

func (v *Verifier) checkClaims(set SET) error {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	maxAge, skew := v.MaxAge, v.Skew
	if maxAge <= 0 {
		maxAge = 10 * time.Minute
	}
	if skew <= 0 {
		skew = time.Minute
	}
	iat := time.Unix(set.IssuedAt, 0)
	switch {
	case set.Issuer != v.Issuer:
		return refuse(ErrInvalidIssuer, "iss %q is not the configured transmitter %q", set.Issuer, v.Issuer)
	case !slices.Contains(set.Audience, v.Audience):
		return refuse(ErrInvalidAudience, "aud %q does not name this receiver (%q)", []string(set.Audience), v.Audience)
	case set.JTI == "" || len(set.JTI) > 256:
		return refuse(ErrInvalidRequest, "jti is missing or over 256 characters")
	case set.IssuedAt == 0:
		return refuse(ErrInvalidRequest, "iat is missing")
	case iat.Before(now.Add(-maxAge)):
		return refuse(ErrInvalidRequest, "iat %s is more than %s old", iat.UTC().Format(time.RFC3339), maxAge)
	case iat.After(now.Add(skew)):
		return refuse(ErrInvalidRequest, "iat %s is in the future", iat.UTC().Format(time.RFC3339))
	case set.Expires != 0 && !now.Before(time.Unix(set.Expires, 0)):
		return refuse(ErrInvalidRequest, "the SET expired at %s", time.Unix(set.Expires, 0).UTC().Format(time.RFC3339))
	case len(set.Events) == 0:
		return refuse(ErrInvalidRequest, "events is empty")
	}
	return nil
}

type jwsHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

// header reads the protected header before anything else, so an
// algorithm we refuse is named as such.
func header(token string) (jwsHeader, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return jwsHeader{}, fmt.Errorf("%d parts, not 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return jwsHeader{}, fmt.Errorf("header: %w", err)
	}
	var h jwsHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return jwsHeader{}, fmt.Errorf("header: %w", err)
	}
	return h, nil
}
