package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/retryafter"
)

const (
	patchOpSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	errorSchema   = "urn:ietf:params:scim:api:messages:2.0:Error"
	maxBody       = 4 << 20
)

// rawResponse is what came back from one successful call.
type rawResponse struct {
	status    int
	header    http.Header
	body      []byte
	requestID string
	method    string
}

func (r rawResponse) response() control.Response {
	return control.NewResponse(r.requestID, r.status, r.body)
}

// do sends one request and classifies any failure. body, when not nil, is sent as JSON.
func (c *Client) do(ctx context.Context, op, method, path string, body any, header http.Header) (control.Response, rawResponse, error) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return control.Response{}, rawResponse{}, &control.Error{Kind: control.ErrPermanent, Op: c.op(op), Err: err}
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return control.Response{}, rawResponse{}, &control.Error{Kind: control.ErrPermanent, Op: c.op(op), Err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	req.Header.Set("Accept", "application/scim+json, application/json")
	c.auth(req)

	resp, err := c.http.Do(req)
	if err != nil {
		// Timeouts, refused connections, resets: worth another try later.
		return control.Response{}, rawResponse{}, &control.Error{Kind: control.ErrTransient, Op: c.op(op), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	raw := rawResponse{status: resp.StatusCode, header: resp.Header, body: data, requestID: requestID(resp.Header), method: method}
	if err != nil {
		return raw.response(), raw, &control.Error{Kind: control.ErrTransient, Op: c.op(op), HTTPStatus: resp.StatusCode,
			RequestID: raw.requestID, Err: fmt.Errorf("reading response: %w", err)}
	}

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if len(bytes.TrimSpace(data)) > 0 && !isJSON(resp.Header.Get("Content-Type")) {
			return raw.response(), raw, c.garbage(op, raw, fmt.Errorf("content type %q is not SCIM JSON", resp.Header.Get("Content-Type")))
		}
		return raw.response(), raw, nil
	}
	return raw.response(), raw, c.failure(op, method, path, raw)
}

// userResource matches the path of one user, /Users/{id}, with no query.
var userResource = regexp.MustCompile(`^/Users/[^/?]+$`)

// failure turns a non-2xx response into a classified error. A 404 is "no
// such user" only when it is the app's own SCIM error (its error schema and
// status "404") for the user resource itself; any other 404 (a route the app
// lacks, a wrong base path, a proxy page) is an unexpected answer naming the
// endpoint.
func (c *Client) failure(op, method, path string, raw rawResponse) error {
	e := &control.Error{
		Kind:       control.ClassifyStatus(raw.status),
		Op:         c.op(op),
		HTTPStatus: raw.status,
		RequestID:  raw.requestID,
		Digest:     control.Digest(raw.body),
	}
	if raw.status == http.StatusPreconditionFailed {
		// If-Match lost a race with another writer: a fresh GET + PUT will do.
		e.Kind = control.ErrTransient
	}
	if raw.status == http.StatusTooManyRequests || raw.status == http.StatusServiceUnavailable {
		e.RetryAfter = retryafter.Header(raw.header, time.Now())
	}

	msg := http.StatusText(raw.status)
	se, isSCIM := parseError(raw.body)
	if isSCIM {
		msg = se.String()
	} else if len(raw.body) > 0 {
		msg += fmt.Sprintf(" (body is not a SCIM error: %q, %d bytes, %s)", raw.header.Get("Content-Type"), len(raw.body), control.Digest(raw.body))
	}
	if raw.status == http.StatusNotFound && isSCIM && se.HasSchema && se.Status == "404" && userResource.MatchString(path) {
		e.Kind = control.ErrNotFound
	}
	if e.Kind == control.ErrUnexpected {
		endpoint := method + " " + c.base + path
		e.Op += " (" + endpoint + ")"
		msg = fmt.Sprintf("%s answered %d, not the app's SCIM not-found for a user; check the base URL (it ends in the SCIM root, e.g. /scim/v2): %s", endpoint, raw.status, msg)
	}
	if e.Kind == control.ErrUnauthorized {
		msg += "; the credential needs SCIM provisioning rights to read and write /Users"
	}
	e.Err = errors.New(msg)
	return e
}

// garbage is the error for a 2xx response we cannot read. A read answered
// with something that is not JSON at all (a proxy's page, a cut-off body) is
// asked again; a well-formed wrong answer, or a write's, waits for a person.
func (c *Client) garbage(op string, raw rawResponse, err error) error {
	kind := control.ErrPermanent
	if raw.method == http.MethodGet && (!isJSON(raw.header.Get("Content-Type")) || !json.Valid(raw.body)) {
		kind = control.ErrTransient
	}
	return &control.Error{
		Kind:       kind,
		Op:         c.op(op),
		HTTPStatus: raw.status,
		RequestID:  raw.requestID,
		Digest:     control.Digest(raw.body),
		Err:        fmt.Errorf("unreadable response (%d bytes, %s): %w", len(raw.body), control.Digest(raw.body), err),
	}
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/scim+json" || mt == "application/json"
}

// requestID reads the request id SCIM apps commonly send; SCIM itself defines none.
func requestID(h http.Header) string {
	for _, k := range []string{"X-Request-Id", "Request-Id", "X-Correlation-Id", "X-Amzn-Requestid", "X-Github-Request-Id"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// quote writes s as a SCIM filter string literal: a JSON string (RFC 7644 §3.4.2.2).
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
