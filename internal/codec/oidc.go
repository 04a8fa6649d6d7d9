package codec

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// OIDCOptions say whose access tokens the codec server takes: the Temporal
// Web UI, logged in through the company's identity provider with its codec
// setting passAccessToken on, sends the person's access token as a bearer.
type OIDCOptions struct {
	// Issuer is the identity provider's issuer URL, exactly as in its tokens'
	// iss claim (its /.well-known/openid-configuration names the keys).
	Issuer string
	// Audience must be among the token's aud (Okta: api://default, Entra:
	// the API's application ID URI, Auth0: the API identifier).
	Audience string
	// UserClaim names the person in the token: "email" by default.
	UserClaim string
	// Allow lists the people (UserClaim values) who may read payloads.
	Allow []string
	// GroupsClaim and AllowGroups: anyone in one of these groups may too.
	GroupsClaim string
	AllowGroups []string
	// HTTPClient reaches the identity provider; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Now is the clock for the token's expiry; time.Now when nil.
	Now func() time.Time
}

// ErrNotAllowed is a valid token of someone who may not read payloads.
var ErrNotAllowed = errors.New("not allowed to read payloads")

// ErrUnverifiedEmail is a token that names a person by an e-mail address its
// provider has not verified.
var ErrUnverifiedEmail = errors.New("e-mail address not verified")

// OIDC checks access tokens against an OpenID Connect provider's published
// keys. The provider's discovery document is read on first use, not at
// startup, so an identity provider that is down stops decoding in the Web UI,
// not the service: the starter also runs the HR relay.
type OIDC struct {
	opts OIDCOptions

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

// NewOIDC returns the checker; nothing is fetched yet.
func NewOIDC(o OIDCOptions) *OIDC {
	if o.UserClaim == "" {
		o.UserClaim = "email"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &OIDC{opts: o}
}

// Identify verifies the token (signature by one of the issuer's keys, iss,
// aud, exp, nbf) and returns the person it names. A valid token of a person
// neither allowed nor in an allowed group wraps ErrNotAllowed.
func (o *OIDC) Identify(ctx context.Context, token string) (string, error) {
	v, err := o.load(ctx)
	if err != nil {
		return "", err
	}
	t, err := v.Verify(oidc.ClientContext(ctx, o.opts.HTTPClient), token)
	if err != nil {
		return "", fmt.Errorf("codec server: access token: %w", err)
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return "", fmt.Errorf("codec server: access token claims: %w", err)
	}
	who, _ := claims[o.opts.UserClaim].(string)
	if who == "" {
		return "", fmt.Errorf("codec server: access token has no %q claim naming the person", o.opts.UserClaim)
	}
	// An address the provider has not verified may belong to anyone who
	// typed it at sign-up: identifying by e-mail needs email_verified true.
	if o.opts.UserClaim == "email" && !verified(claims["email_verified"]) {
		return "", fmt.Errorf("codec server: access token names %s without email_verified true: identify people by a claim the provider verifies (codec.server.oidc.userClaim): %w", who, ErrUnverifiedEmail)
	}
	if slices.ContainsFunc(o.opts.Allow, func(a string) bool { return strings.EqualFold(a, who) }) {
		return who, nil
	}
	if o.opts.GroupsClaim != "" {
		groups, _ := claims[o.opts.GroupsClaim].([]any)
		for _, g := range groups {
			if s, ok := g.(string); ok && slices.Contains(o.opts.AllowGroups, s) {
				return who, nil
			}
		}
	}
	return who, fmt.Errorf("codec server: %s: %w", who, ErrNotAllowed)
}

// verified reads email_verified as a JSON boolean, or the string "true"
// some providers send.
func verified(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return strings.EqualFold(b, "true")
	}
	return false
}

// load discovers the issuer's keys once; a failure is tried again on the
// next request.
func (o *OIDC) load(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.opts.HTTPClient), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, o.opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrIdentityProvider, o.opts.Issuer, err)
	}
	var meta struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	_ = p.Claims(&meta)
	// The key set outlives this request: it refetches the keys when a token
	// names one it does not know (key rotation).
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), o.opts.HTTPClient), jwksURL(p))
	o.verifier = oidc.NewVerifier(o.opts.Issuer, keys, &oidc.Config{
		ClientID:             o.opts.Audience,
		SupportedSigningAlgs: signingAlgs(meta.Algs),
		Now:                  o.opts.Now,
	})
	return o.verifier, nil
}

// ErrIdentityProvider is an identity provider that could not be reached.
var ErrIdentityProvider = errors.New("codec server: identity provider unavailable")

func jwksURL(p *oidc.Provider) string {
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	_ = p.Claims(&meta)
	return meta.JWKS
}

// signingAlgs keeps the asymmetric algorithms go-oidc verifies; HS* would
// mean a shared secret, never acceptable for a token from the browser.
func signingAlgs(advertised []string) []string {
	supported := []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}
	var out []string
	for _, a := range advertised {
		if slices.Contains(supported, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return []string{oidc.RS256} // access tokens are often signed with RS256 even when id tokens list none
	}
	return out
}

// isJWT tells a JWT (three base64url parts) from an opaque static token.
func isJWT(token string) bool {
	return strings.Count(token, ".") == 2
}
