package secrets

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/offboard/offboard/sandbox/sigv4"
)

// apiError is an error in the JSON protocol's own format.
type apiError struct {
	status   int
	typ, msg string
}

func errorf(typ, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func notFound() *apiError {
	return errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

func markedForDeletion() *apiError {
	return errorf("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
}

func invalidParameter(format string, args ...any) *apiError {
	return errorf("InvalidParameterException", format, args...)
}

func validation(format string, args ...any) *apiError {
	return errorf("ValidationException", format, args...)
}

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

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", requestID())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError answers as Secrets Manager does: {"__type": ..., "Message": ...}.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]string{"__type": e.typ, "Message": e.msg})
}

// writeFault renders an injected failure the way Secrets Manager reports it.
func (s *Sim) writeFault(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	e := &apiError{status: status, typ: "InternalServiceError", msg: "Injected failure."}
	switch {
	case status == 401 || status == 403:
		e.status, e.typ = 400, "AccessDeniedException"
		e.msg = fmt.Sprintf("User: arn:aws:iam::%s:user/offboard is not authorized to perform: secretsmanager:%s because no identity-based policy allows the secretsmanager:%s action", s.opts.AccountID, op, op)
	case status == 404:
		e.status, e.typ, e.msg = 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."
	case status == 429:
		e.status, e.typ, e.msg = 400, "ThrottlingException", "Rate exceeded"
	case status == 503:
		e.typ, e.msg = "ServiceUnavailable", "Service is unavailable."
	}
	writeError(w, e)
}

// readBody reads the whole request body up front: only then does net/http
// notice a client hanging up, which an injected hang waits for.
func readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"__type": "RequestEntityTooLarge", "Message": "Request body too large."})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// authenticate checks the SigV4 Authorization header: scoped to this
// service, the key id the configured one, and when a secret is known the
// signature must match. Secrets Manager answers every one of these 400.
func (s *Sim) authenticate(r *http.Request, body []byte) *apiError {
	h, err := sigv4.Parse(r)
	switch {
	case errors.Is(err, sigv4.ErrMissing):
		return errorf("MissingAuthenticationTokenException", "Missing Authentication Token")
	case errors.Is(err, sigv4.ErrAlgorithm):
		return errorf("IncompleteSignatureException", "Unsupported signing algorithm.")
	case err != nil:
		return errorf("IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
	}
	if h.Service() != "secretsmanager" {
		return errorf("InvalidSignatureException", "Credential should be scoped to correct service: 'secretsmanager'.")
	}
	if s.opts.AccessKeyID != "" && h.KeyID != s.opts.AccessKeyID {
		return errorf("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	if s.opts.SecretAccessKey == "" {
		return nil
	}
	if !h.Verify(r, body, s.opts.SecretAccessKey) {
		return errorf("InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

// epoch is how the JSON protocol writes a timestamp: seconds since 1970.
func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func epochPtr(t *time.Time) *float64 {
	if t == nil {
		return nil
	}
	e := epoch(*t)
	return &e
}
