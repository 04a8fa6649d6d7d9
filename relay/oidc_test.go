package relay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/workflows"
)

// idp is an OpenID Connect provider: discovery, one RS256 key, access tokens.
type idp struct {
	url string
	key *rsa.PrivateKey
	up  atomic.Bool
}

func newIDP(t *testing.T) *idp {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p := &idp{key: key}
	p.up.Store(true)
	b64 := base64.RawURLEncoding.EncodeToString
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.url, "jwks_uri": p.url + "/keys",
				"authorization_endpoint": p.url + "/authorize", "token_endpoint": p.url + "/token",
				"id_token_signing_alg_values_supported": []string{"RS256"}})
		case "/keys":
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
				"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// token is an access token for who, valid ten minutes.
func (p *idp) token(t *testing.T, who string, verified bool) string {
	b64 := base64.RawURLEncoding.EncodeToString
	now := time.Now()
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	body, _ := json.Marshal(map[string]any{"iss": p.url, "aud": "api://offboard", "sub": "00u1", "email": who, "email_verified": verified,
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	input := b64(head) + "." + b64(body)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, sum[:])
	require.NoError(t, err)
	return input + "." + b64(sig)
}

// People may use their identity provider's login instead of a configured
// token: the provider proves the person, relay.oidc.roles their roles.
func TestOperatorOIDC(t *testing.T) {
	p := newIDP(t)
	cfg := testConfig(t)
	cfg.Relay.OIDC = &config.RelayOIDC{Issuer: p.url, Audience: "api://offboard",
		Roles: map[string][]string{config.RoleApprover: {"Dana@Example.test"}, config.RoleHR: {"hal@example.test"}}}
	rl, ft := newTestRelay(t, cfg)
	ft.addRun(workflows.Termination{EmployeeID: "E1", EventID: "evt-1"})
	post := func(action, bearer, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1/"+action, bearer, body))
		return rec
	}

	rec := post("approve", p.token(t, "dana@example.test", true), `{"planDigest":"sha256:abc"}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Len(t, ft.sent(), 1)
	assert.Equal(t, workflows.Approve{Approver: "dana@example.test", Decision: "approve", PlanDigest: "sha256:abc"}, ft.sent()[0].Payload,
		"the provider's person, with the role relay.oidc.roles gives her")

	rec = post("approve", p.token(t, "hal@example.test", true), `{"planDigest":"sha256:abc"}`)
	assert.Equal(t, http.StatusForbidden, rec.Code, "hal holds hr, not approver: %s", rec.Body.String())
	rec = post("approve", p.token(t, "mallory@example.test", true), `{"planDigest":"sha256:abc"}`)
	assert.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "holds no operator role")
	rec = post("approve", p.token(t, "dana@example.test", false), `{"planDigest":"sha256:abc"}`)
	assert.Equal(t, http.StatusUnauthorized, rec.Code, "an e-mail the provider has not verified: %s", rec.Body.String())
	forged := p.token(t, "dana@example.test", true)
	rec = post("approve", forged[:len(forged)-4]+"AAAA", `{"planDigest":"sha256:abc"}`)
	assert.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
	rec = post("hold", "hr-token", `{"caseRef":"CASE-7"}`)
	assert.Equal(t, http.StatusOK, rec.Code, "configured tokens still work: %s", rec.Body.String())
	require.Len(t, ft.sent(), 2)

	p.up.Store(false)
	rl2, _ := newTestRelay(t, cfg) // nothing cached: the provider is asked now
	rec = httptest.NewRecorder()
	rl2.Handler().ServeHTTP(rec, operatorRequest(http.MethodPost, "/deprovisions/E1/approve", p.token(t, "dana@example.test", true), `{"planDigest":"x"}`))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
}
