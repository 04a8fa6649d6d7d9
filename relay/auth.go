package relay

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/codec"
	"github.com/offboard/offboard/internal/config"
)

// hmacSource is a source that signs its deliveries; up to two secrets are
// valid at once so a key can be rotated without dropping a delivery.
type hmacSource[P any] struct {
	secrets [][]byte
	parser  P
}

func readSecrets(source string, ss []config.Secret) ([][]byte, error) {
	var out [][]byte
	for i, s := range ss {
		v, err := s.Value()
		if err != nil {
			return nil, fmt.Errorf("relay: %s secret %d (%s): %w", source, i, s, err)
		}
		if v == "" {
			return nil, fmt.Errorf("relay: %s secret %d (%s) is empty", source, i, s)
		}
		out = append(out, []byte(v))
	}
	return out, nil
}

var (
	errNoSignature = errors.New("missing signature or timestamp header")
	errBadSig      = errors.New("signature does not match")
	errStale       = errors.New("timestamp outside the allowed clock skew")
)

// macMatches compares the expected MAC under every secret with the one sent,
// in constant time, without stopping at the first match.
func macMatches(secrets [][]byte, sent []byte, message ...[]byte) bool {
	ok := 0
	for _, key := range secrets {
		m := hmac.New(sha256.New, key)
		for _, part := range message {
			m.Write(part)
		}
		ok |= subtle.ConstantTimeCompare(m.Sum(nil), sent)
	}
	return ok == 1
}

// verifyBambooHR checks BambooHR's scheme: X-BambooHR-Signature is the
// lowercase hex HMAC-SHA256 of the raw body immediately followed by the
// X-BambooHR-Timestamp header's value (Unix seconds or ISO 8601).
func verifyBambooHR(secrets [][]byte, body []byte, h http.Header, now time.Time, skew time.Duration) error {
	sig, ts := strings.TrimSpace(h.Get("X-BambooHR-Signature")), strings.TrimSpace(h.Get("X-BambooHR-Timestamp"))
	if sig == "" || ts == "" {
		return errNoSignature
	}
	sent, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
	if err != nil {
		return errBadSig
	}
	if !macMatches(secrets, sent, body, []byte(ts)) {
		return errBadSig
	}
	return checkSkew(ts, now, skew)
}

// verifyGeneric checks Offboard's own scheme: X-Offboard-Signature is
// "sha256=" + hex HMAC-SHA256 of timestamp + "." + body, X-Offboard-Timestamp
// is Unix seconds.
func verifyGeneric(secrets [][]byte, body []byte, h http.Header, now time.Time, skew time.Duration) error {
	sig, ts := strings.TrimSpace(h.Get("X-Offboard-Signature")), strings.TrimSpace(h.Get("X-Offboard-Timestamp"))
	if sig == "" || ts == "" {
		return errNoSignature
	}
	sent, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
	if err != nil {
		return errBadSig
	}
	if !macMatches(secrets, sent, []byte(ts), []byte("."), body) {
		return errBadSig
	}
	return checkSkew(ts, now, skew)
}

// SignGeneric returns the headers a sender of the generic format sets.
func SignGeneric(secret, body []byte, at time.Time) (timestamp, signature string) {
	timestamp = strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp + "."))
	m.Write(body)
	return timestamp, "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// SignBambooHR returns X-BambooHR-Signature for body and timestamp, as BambooHR computes it.
func SignBambooHR(secret, body []byte, timestamp string) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	m.Write([]byte(timestamp))
	return hex.EncodeToString(m.Sum(nil))
}

func checkSkew(ts string, now time.Time, skew time.Duration) error {
	var at time.Time
	if n, err := strconv.ParseInt(ts, 10, 64); err == nil {
		at = time.Unix(n, 0)
	} else {
		parsed := false
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700"} {
			if t, err := time.Parse(layout, ts); err == nil {
				at, parsed = t, true
				break
			}
		}
		if !parsed {
			return errStale
		}
	}
	if d := now.Sub(at); d > skew || d < -skew {
		return errStale
	}
	return nil
}

// basicUser keeps digests so every compare has the same length and time.
type basicUser struct {
	user, pass [32]byte
}

func newBasicUser(user, pass string) basicUser {
	return basicUser{user: sha256.Sum256([]byte(user)), pass: sha256.Sum256([]byte(pass))}
}

func basicAuthOK(users []basicUser, r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	gu, gp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	match := 0
	for _, want := range users {
		match |= subtle.ConstantTimeCompare(gu[:], want.user[:]) & subtle.ConstantTimeCompare(gp[:], want.pass[:])
	}
	return match == 1
}

// token is one operator identity; only the SHA-256 of its secret is known.
// Its name is the person the API signs decisions as, its roles are what the
// signed decision carries.
type token struct {
	name  string
	roles []string
	sum   []byte
}

// role names the token's roles for logs and metrics.
func (t token) role() string { return strings.Join(t.roles, "+") }

func parseTokens(ts []config.Token) ([]token, error) {
	var out []token
	for i, t := range ts {
		sum, err := hex.DecodeString(strings.ToLower(t.SHA256))
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("relay: token %d (%s): sha256 is not a SHA-256 hex digest", i, t.Name)
		}
		out = append(out, token{name: t.Name, roles: t.AllRoles(), sum: sum})
	}
	return out, nil
}

// TokenSHA256 is what the configuration stores for a bearer token.
func TokenSHA256(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

// identify finds the bearer token's identity, comparing with every
// configured digest in constant time.
func (rl *Relay) identify(r *http.Request) (token, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return token{}, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	found := -1
	for i, t := range rl.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum) == 1 {
			found = i
		}
	}
	if found < 0 {
		return token{}, false
	}
	return rl.tokens[found], true
}

func roleSet(roles ...string) map[string]bool {
	m := map[string]bool{}
	for _, r := range roles {
		m[r] = true
	}
	return m
}

// operatorOIDC checks identity-provider access tokens (relay.oidc).
type operatorOIDC struct {
	verify *codec.OIDC
	roles  map[string][]string // role → people
}

func newOperatorOIDC(o *config.RelayOIDC) *operatorOIDC {
	if o == nil {
		return nil
	}
	var people []string
	for _, role := range slices.Sorted(maps.Keys(o.Roles)) {
		people = append(people, o.Roles[role]...)
	}
	return &operatorOIDC{roles: o.Roles, verify: codec.NewOIDC(codec.OIDCOptions{Issuer: o.Issuer, Audience: o.Audience,
		UserClaim: o.UserClaim, Allow: people, HTTPClient: &http.Client{Timeout: 10 * time.Second}})}
}

// identify checks an access token; the status says why not (401 a bad
// token, 403 a person holding no role, 503 the provider unreachable).
func (o *operatorOIDC) identify(r *http.Request) (token, int, error) {
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || strings.Count(secret, ".") != 2 {
		return token{}, http.StatusUnauthorized, errors.New("a valid bearer token is required")
	}
	who, err := o.verify.Identify(r.Context(), secret)
	switch {
	case errors.Is(err, codec.ErrIdentityProvider):
		return token{}, http.StatusServiceUnavailable, errors.New("the identity provider cannot be reached to check the token")
	case errors.Is(err, codec.ErrNotAllowed):
		return token{}, http.StatusForbidden, fmt.Errorf("%s holds no operator role (relay.oidc.roles)", who)
	case err != nil:
		return token{}, http.StatusUnauthorized, errors.New("a valid bearer token is required")
	}
	tok := token{name: who}
	for _, role := range slices.Sorted(maps.Keys(o.roles)) {
		if slices.ContainsFunc(o.roles[role], func(p string) bool { return strings.EqualFold(p, who) }) {
			tok.roles = append(tok.roles, role)
		}
	}
	return tok, 0, nil
}

// operator authenticates the bearer token (a configured one, or an access
// token of relay.oidc's provider) and checks that it holds one of the
// allowed roles.
func (rl *Relay) operator(allowed map[string]bool, next func(http.ResponseWriter, *http.Request, token)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := rl.identify(r)
		if !ok && rl.oidc != nil {
			var status int
			var err error
			if tok, status, err = rl.oidc.identify(r); status != 0 {
				if status == http.StatusServiceUnavailable {
					w.Header().Set("Retry-After", "5")
				}
				if status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="offboard"`)
				}
				rl.log.Warn("operator token refused", "status", status, "error", err.Error(), "path", r.URL.Path)
				writeError(w, status, err.Error())
				return
			}
			ok = true
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="offboard"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		if !slices.ContainsFunc(tok.roles, func(r string) bool { return allowed[r] }) {
			rl.log.Warn("operator refused", "identity", tok.name, "role", tok.role(), "path", r.URL.Path)
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s holds the %s role, which may not do this (needs %s)", tok.name, tok.role(), roleList(allowed)))
			return
		}
		next(w, r, tok)
	}
}

func roleList(allowed map[string]bool) string {
	var names []string
	for r := range allowed {
		names = append(names, r)
	}
	slices.Sort(names)
	return strings.Join(names, " or ")
}
