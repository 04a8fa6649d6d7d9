package codec

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// HandlerOptions configure the codec server.
//
// The Temporal Web UI calls the codec endpoint from the browser:
// POST <endpoint>/decode (and /encode when a person sends a signal or starts
// a workflow from the UI) with Content-Type: application/json and
// X-Namespace: <namespace>, so the browser sends a CORS preflight first. The
// UI adds Authorization: Bearer <the UI user's access token> only when the
// UI's codec setting passAccessToken is on AND the endpoint is https; it
// sends cookies only with includeCredentials. The temporal CLI sends a fixed
// header: temporal workflow show --codec-endpoint URL --codec-auth "Bearer TOKEN".
type HandlerOptions struct {
	// AllowedOrigins are the Web UI origins, e.g. http://localhost:8233.
	// Browser requests from any other origin are refused.
	AllowedOrigins []string
	// AllowCredentials answers Access-Control-Allow-Credentials: true, for a
	// UI configured with includeCredentials.
	AllowCredentials bool
	// TokenSHA256 are the hex SHA-256 digests of the accepted bearer tokens.
	TokenSHA256 []string
	// OIDC takes the Web UI users' own access tokens (JWTs), for the people
	// or groups it allows; static tokens still serve the CLI.
	OIDC *OIDC
	// Anonymous accepts requests without a token. The local dev server's UI
	// sends none (no login, plain http); only serve it on loopback.
	Anonymous bool
	// Logger records who decoded or encoded payloads, never a token; nil
	// logs nothing.
	Logger *slog.Logger
	// MaxBodyBytes caps a request body; 0 means 8 MiB.
	MaxBodyBytes int64
}

// Validate reports a digest that is not 64 hex digits or a bad origin.
func (o HandlerOptions) Validate() error {
	for i, d := range o.TokenSHA256 {
		if b, err := hex.DecodeString(strings.TrimSpace(d)); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("codec server: token digest %d: must be the 64-hex-digit SHA-256 of the token, never the token", i)
		}
	}
	for _, origin := range o.AllowedOrigins {
		if origin == "*" || origin == "" || strings.HasSuffix(origin, "/") {
			return fmt.Errorf("codec server: allowed origin %q: name an exact origin like http://localhost:8233", origin)
		}
	}
	if !o.Anonymous && len(o.TokenSHA256) == 0 && o.OIDC == nil {
		return fmt.Errorf("codec server: list token digests or an identity provider, or allow anonymous access (loopback only)")
	}
	return nil
}

const defaultMaxBody = 8 << 20

// corsAllowHeaders are the request headers the UI and the CLI send.
const corsAllowHeaders = "content-type,x-namespace,authorization"

// Handler serves POST …/encode and POST …/decode for the Temporal Web UI and
// CLI, behind CORS for the UI origins and a bearer-token check. Digests that
// are not valid hex never match (fail closed); call opts.Validate at startup.
func Handler(k *Keyring, opts HandlerOptions) http.Handler {
	s := &server{
		codec:     converter.NewPayloadCodecHTTPHandler(NewCodec(k)),
		origins:   slices.Clone(opts.AllowedOrigins),
		creds:     opts.AllowCredentials,
		anonymous: opts.Anonymous,
		oidc:      opts.OIDC,
		logger:    opts.Logger,
		maxBody:   opts.MaxBodyBytes,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = defaultMaxBody
	}
	for _, d := range opts.TokenSHA256 {
		if b, err := hex.DecodeString(strings.TrimSpace(d)); err == nil && len(b) == sha256.Size {
			s.digests = append(s.digests, b)
		}
	}
	return s
}

type server struct {
	codec     http.Handler
	origins   []string
	creds     bool
	anonymous bool
	digests   [][]byte
	oidc      *OIDC
	logger    *slog.Logger
	maxBody   int64
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin := r.Header.Get("Origin"); origin != "" {
		if !slices.Contains(s.origins, origin) {
			http.Error(w, "codec server: origin not allowed", http.StatusForbidden)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if s.creds {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	// A preflight carries no credentials; it only learns what is allowed.
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
		// Chrome asks before a page reaches a more private address (a public
		// UI calling a codec server inside the network); the origin is allowed.
		if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
			h.Set("Access-Control-Allow-Private-Network", "true")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	who := "anonymous"
	if !s.anonymous {
		var err error
		who, err = s.authorize(r)
		switch {
		case errors.Is(err, ErrNotAllowed):
			s.logger.Warn("codec server: refused", "who", who, "path", r.URL.Path, "namespace", r.Header.Get("X-Namespace"))
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		case errors.Is(err, ErrIdentityProvider):
			s.logger.Error("codec server: identity provider", "err", err)
			h.Set("Retry-After", "30")
			http.Error(w, "codec server: the identity provider cannot be reached to check the token", http.StatusServiceUnavailable)
			return
		case err != nil:
			s.logger.Info("codec server: bad token", "path", r.URL.Path, "err", err)
			h.Set("WWW-Authenticate", `Bearer realm="offboard-codec"`)
			http.Error(w, "codec server: a valid bearer token is required", http.StatusUnauthorized)
			return
		}
	}
	if r.Method != http.MethodPost {
		h.Set("Allow", "POST, OPTIONS")
		http.Error(w, "codec server: use POST", http.StatusMethodNotAllowed)
		return
	}
	// Reading a payload is reading personal data: say who did.
	s.logger.Info("codec server: "+path.Base(r.URL.Path), "who", who, "namespace", r.Header.Get("X-Namespace"))
	r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
	s.codec.ServeHTTP(w, r)
}

// errNoToken is a request without a usable bearer token.
var errNoToken = errors.New("codec server: no bearer token")

// authorize names who sent the request: a static token ("token N", by its
// place in the list) or the person an identity provider's token names.
func (s *server) authorize(r *http.Request) (string, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", errNoToken
	}
	if i := s.staticToken(token); i >= 0 {
		return fmt.Sprintf("token %d", i), nil
	}
	if s.oidc != nil && isJWT(token) {
		return s.oidc.Identify(r.Context(), token)
	}
	return "", errors.New("codec server: unknown token")
}

// staticToken compares the token's digest with every accepted digest in
// constant time, so neither the match nor its position leaks through timing;
// it returns the matching digest's index, or -1.
func (s *server) staticToken(token string) int {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i, d := range s.digests {
		found = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(sum[:], d), i, found)
	}
	return found
}
