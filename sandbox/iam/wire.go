package iam

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/offboard/offboard/sandbox/sigv4"
)

const (
	iamVersion = "2010-05-08"
	stsVersion = "2011-06-15"
	iamNS      = "https://iam.amazonaws.com/doc/2010-05-08/"
	stsNS      = "https://sts.amazonaws.com/doc/2011-06-15/"
	dateFormat = "2006-01-02T15:04:05Z"
)

// apiError is an error in the Query API's own format.
type apiError struct {
	status         int
	typ, code, msg string
}

func sender(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, typ: "Sender", code: code, msg: fmt.Sprintf(format, args...)}
}

func noSuchUser(name string) *apiError {
	return sender(404, "NoSuchEntity", "The user with name %s cannot be found.", name)
}

func validation(format string, args ...any) *apiError {
	return sender(400, "ValidationError", format, args...)
}

// xb builds an XML fragment.
type xb struct{ strings.Builder }

func (b *xb) open(name string)  { b.WriteString("<" + name + ">") }
func (b *xb) close(name string) { b.WriteString("</" + name + ">") }
func (b *xb) el(name, value string) {
	b.open(name)
	_ = xml.EscapeText(b, []byte(value))
	b.close(name)
}
func (b *xb) date(name string, t time.Time) { b.el(name, t.UTC().Format(dateFormat)) }

func requestID() string {
	var raw [16]byte
	for i := range raw {
		raw[i] = byte(rand.Uint32())
	}
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	h := hex.EncodeToString(raw[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func namespace(version string) string {
	if version == stsVersion {
		return stsNS
	}
	return iamNS
}

// writeResult writes <ActionResponse><ActionResult>…</ActionResult><ResponseMetadata>.
func writeResult(w http.ResponseWriter, action, version string, result *xb) {
	id := requestID()
	var b xb
	b.WriteString(`<` + action + `Response xmlns="` + namespace(version) + `">`)
	if result != nil {
		b.open(action + "Result")
		b.WriteString(result.String())
		b.close(action + "Result")
	}
	b.open("ResponseMetadata")
	b.el("RequestId", id)
	b.close("ResponseMetadata")
	b.close(action + "Response")
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", id)
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, b.String())
}

// writeError writes an <ErrorResponse>; r's form must already be parsed (or empty).
func writeError(w http.ResponseWriter, r *http.Request, status int, typ, code, msg string) {
	id := requestID()
	var b xb
	b.WriteString(`<ErrorResponse xmlns="` + namespace(r.Form.Get("Version")) + `">`)
	b.open("Error")
	b.el("Type", typ)
	b.el("Code", code)
	b.el("Message", msg)
	b.close("Error")
	b.el("RequestId", id)
	b.close("ErrorResponse")
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", id)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, b.String())
}

// writeFault renders an injected failure the way IAM reports it.
func (s *Sim) writeFault(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration) {
	_ = r.ParseForm()
	action := r.Form.Get("Action")
	service := "iam"
	if r.Form.Get("Version") == stsVersion {
		service = "sts"
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	typ, code, msg := "Sender", "InvalidInput", "Injected failure."
	switch {
	case status == 401 || status == 403:
		code = "AccessDenied"
		msg = fmt.Sprintf("User: arn:aws:iam::%s:user/offboard is not authorized to perform: %s:%s on resource: arn:aws:iam::%s:user/%s because no identity-based policy allows the %s:%s action",
			s.opts.AccountID, service, action, s.opts.AccountID, r.Form.Get("UserName"), service, action)
	case status == 404:
		code, msg = "NoSuchEntity", fmt.Sprintf("The user with name %s cannot be found.", r.Form.Get("UserName"))
	case status == 409:
		code, msg = "ConcurrentModification", "Rate of concurrent modification exceeded."
	case status == 429:
		code, msg = "Throttling", "Rate exceeded"
	case status == 503:
		typ, code, msg = "Receiver", "ServiceUnavailable", "Service is unavailable."
	case status >= 500:
		typ, code, msg = "Receiver", "ServiceFailure", "The request processing has failed because of an unknown error, exception or failure."
	}
	writeError(w, r, status, typ, code, msg)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// page applies Marker/MaxItems to a list of n items. IAM may return fewer
// than MaxItems; the simulator caps pages at limit so callers must paginate.
func page(n int, f url.Values, limit int) (start, end int, err *apiError) {
	if m := f.Get("Marker"); m != "" {
		raw, decErr := base64.RawURLEncoding.DecodeString(m)
		off, convErr := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if decErr != nil || convErr != nil || off < 0 || !strings.HasPrefix(string(raw), "offset:") {
			return 0, 0, validation("Invalid Marker.")
		}
		start = min(off, n)
	}
	size := limit
	if v := f.Get("MaxItems"); v != "" {
		mi, convErr := strconv.Atoi(v)
		if convErr != nil || mi < 1 || mi > 1000 {
			return 0, 0, validation("1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000", v)
		}
		size = min(size, mi)
	}
	return start, min(n, start+size), nil
}

// truncation writes IsTruncated and, when there is more, the Marker.
func truncation(b *xb, end, n int) {
	if end < n {
		b.el("IsTruncated", "true")
		b.el("Marker", base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(end))))
		return
	}
	b.el("IsTruncated", "false")
}

// authenticate checks the SigV4 Authorization header: the key id must be the
// configured one (or a live AssumeRole session), and when a secret is known
// the signature must match.
func (s *Sim) authenticate(r *http.Request, body []byte) *apiError {
	h, err := sigv4.Parse(r)
	switch {
	case errors.Is(err, sigv4.ErrMissing):
		return sender(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
	case errors.Is(err, sigv4.ErrAlgorithm):
		return sender(400, "IncompleteSignature", "Unsupported signing algorithm.")
	case err != nil:
		return sender(400, "IncompleteSignature", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
	}
	secret := s.opts.SecretAccessKey
	s.mu.Lock()
	sess, isSession := s.sessions[h.KeyID]
	s.mu.Unlock()
	switch {
	case isSession:
		if r.Header.Get("X-Amz-Security-Token") != sess.token {
			return sender(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
		}
		if time.Now().After(sess.expires) {
			return sender(403, "ExpiredToken", "The security token included in the request is expired")
		}
		secret = sess.secret
	case s.opts.AccessKeyID != "" && h.KeyID != s.opts.AccessKeyID:
		return sender(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
	}
	if secret == "" {
		return nil
	}
	if !h.Verify(r, body, secret) {
		return sender(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}
