// Package sigv4 checks AWS Signature Version 4 requests for the sandbox's
// AWS simulators (IAM, Secrets Manager): each maps a failure to the error
// code its own service answers with.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The ways an Authorization header can be unusable.
var (
	ErrMissing    = errors.New("no Authorization header")
	ErrAlgorithm  = errors.New("not AWS4-HMAC-SHA256")
	ErrIncomplete = errors.New("credential, signed headers or signature missing")
)

// Header is a parsed SigV4 Authorization header.
type Header struct {
	KeyID string
	// Scope is the credential scope: key id, date, region, service, "aws4_request".
	Scope         []string
	SignedHeaders string
	Signature     string
}

// Service is the service the request was signed for.
func (h Header) Service() string { return h.Scope[3] }

// Parse reads r's Authorization header.
func Parse(r *http.Request) (Header, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return Header{}, ErrMissing
	}
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return Header{}, ErrAlgorithm
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return Header{}, ErrIncomplete
	}
	return Header{KeyID: scope[0], Scope: scope, SignedHeaders: fields["SignedHeaders"], Signature: fields["Signature"]}, nil
}

// Verify recomputes the signature over the headers the client signed and
// compares it with the one sent, in constant time.
func (h Header) Verify(r *http.Request, body []byte, secret string) bool {
	want := signature(r, body, secret, h.Scope, h.SignedHeaders)
	return hmac.Equal([]byte(want), []byte(h.Signature))
}

func signature(r *http.Request, body []byte, secret string, scope []string, signedHeaders string) string {
	var canon strings.Builder
	for _, h := range strings.Split(signedHeaders, ";") {
		var values []string
		switch h {
		case "host":
			values = []string{r.Host}
		case "content-length":
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		default:
			values = r.Header.Values(h)
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		canon.WriteString(h + ":" + strings.Join(values, ",") + "\n")
	}
	payload := sha256.Sum256(body)
	creq := strings.Join([]string{
		r.Method, r.URL.EscapedPath(), canonicalQuery(r.URL.Query()),
		canon.String(), signedHeaders, hex.EncodeToString(payload[:]),
	}, "\n")
	creqHash := sha256.Sum256([]byte(creq))
	toSign := strings.Join([]string{
		"AWS4-HMAC-SHA256", r.Header.Get("X-Amz-Date"), strings.Join(scope[1:], "/"), hex.EncodeToString(creqHash[:]),
	}, "\n")
	key := []byte("AWS4" + secret)
	for _, part := range scope[1:] {
		key = hmacSHA256(key, part)
	}
	return hex.EncodeToString(hmacSHA256(key, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func canonicalQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}
