package entra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphgocore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/retryafter"
)

// maxBody bounds how much of a response we read to digest it.
const maxBody = 4 << 20

// middlewares is the SDK's default chain minus the retry handler (Temporal
// owns retries; kiota would otherwise retry 429/503/504 itself) and minus
// the redirect handler (Graph does not redirect these calls; a redirect
// here means something between us and Graph is wrong).
func middlewares() []khttp.Middleware {
	opts := msgraphsdk.GetDefaultClientOptions()
	// No compression handler: our bodies are a few bytes ({"accountEnabled":false}),
	// and each gzip writer allocates about a megabyte; at 500 terminations in
	// flight that was most of the worker's peak memory (make bench).
	return []khttp.Middleware{
		msgraphgocore.NewGraphTelemetryHandler(&opts),
		khttp.NewUrlReplaceHandler(true, msgraphgocore.ReplacementPairs),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewHeadersInspectionHandler(),
	}
}

// httpClient builds the client the SDK sends through: the kiota middleware
// chain on top of a recorder on top of the caller's transport.
func httpClient(base *http.Client) *http.Client {
	c := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var rt http.RoundTripper = khttp.GetDefaultTransport()
	if base != nil {
		if base.Transport != nil {
			rt = base.Transport
		}
		if base.Timeout != 0 {
			c.Timeout = base.Timeout
		}
		c.Jar = base.Jar
	}
	c.Transport = khttp.NewCustomTransportWithParentTransport(recorder{next: rt}, middlewares()...)
	return c
}

// record is what the last response of one logical call looked like.
type record struct {
	mu     sync.Mutex
	status int
	header http.Header
	body   []byte
	method string // of the last request sent
	wrote  bool   // a request other than GET was sent
}

type recordKey struct{}

func withRecord(ctx context.Context) (context.Context, *record) {
	rec := &record{}
	return context.WithValue(ctx, recordKey{}, rec), rec
}

func (r *record) response() control.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return control.NewResponse(requestID(r.header), r.status, r.body)
}

func requestID(h http.Header) string {
	if h == nil {
		return ""
	}
	if id := h.Get("request-id"); id != "" {
		return id
	}
	return h.Get("client-request-id")
}

// recorder keeps each response's status, headers and body (for the receipt's
// request id and digest) in the record carried by the request's context.
type recorder struct{ next http.RoundTripper }

func (t recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec, _ := req.Context().Value(recordKey{}).(*record)
	if rec != nil {
		// A request that gets no response must not be judged by the previous
		// page's 200: forget it before sending.
		rec.mu.Lock()
		rec.status, rec.header, rec.body, rec.method = 0, nil, nil, req.Method
		rec.wrote = rec.wrote || req.Method != http.MethodGet
		rec.mu.Unlock()
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil || rec == nil {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rec.mu.Lock()
	rec.status, rec.header, rec.body = resp.StatusCode, resp.Header.Clone(), body
	rec.mu.Unlock()
	return resp, nil
}

// graphError carries Graph's error code and message. It does not call the
// SDK error's Error method, which panics on an ODataError without a body.
type graphError struct {
	code, message string
	cause         error
}

func (e *graphError) Error() string {
	if e.code == "" {
		return e.message
	}
	return e.code + ": " + e.message
}

func (e *graphError) Unwrap() error { return e.cause }

// classify turns an SDK error into a *control.Error of the right kind.
// permission is the Graph application permission the call needs, named in
// unauthorized errors so an operator knows what to grant.
func classify(ctx context.Context, op, permission string, rec *record, err error) error {
	rec.mu.Lock()
	status, header, body, readOnly := rec.status, rec.header, rec.body, rec.method == http.MethodGet && !rec.wrote
	rec.mu.Unlock()
	e := &control.Error{Op: op, HTTPStatus: status, RequestID: requestID(header), Digest: control.Digest(body), Err: err}

	code, message := "", ""
	var odata *odataerrors.ODataError
	if errors.As(err, &odata) {
		if status == 0 {
			e.HTTPStatus = odata.ResponseStatusCode
		}
		if m := odata.GetErrorEscaped(); m != nil {
			code, message = deref(m.GetCode()), deref(m.GetMessage())
		}
		e.Err = &graphError{code: code, message: message, cause: err}
	}
	var authErr *azidentity.AuthenticationFailedError
	var paging *pagingError
	switch status := e.HTTPStatus; {
	case errors.As(err, &paging):
		e.Kind = control.ErrUnexpected
	case errors.As(err, &authErr):
		// The token request failed, so no Graph call was made.
		e.Kind = control.ErrUnauthorized
		if authErr.RawResponse != nil && authErr.RawResponse.StatusCode >= 500 {
			e.Kind = control.ErrTransient
		}
		e.Err = fmt.Errorf("get an app-only token for https://graph.microsoft.com/.default: %w", err)
	case status == 0:
		// No response: connection refused, reset, timeout or our own deadline.
		e.Kind = control.ErrTransient
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			e.Err = fmt.Errorf("%w (%v)", err, ctxErr)
		}
	case status < 300 && readOnly && !json.Valid(body):
		// A read answered with something that is not JSON at all (a proxy's
		// page, a cut-off body): asking again may cure it, and nothing was changed.
		e.Kind = control.ErrTransient
		e.Err = fmt.Errorf("unreadable %d response to a read (%s, %d bytes): %w", status, e.Digest, len(body), err)
	case status < 300:
		// Graph said yes but the body was not what Graph sends; after a write
		// we cannot tell what it did, so a person looks.
		e.Kind = control.ErrPermanent
		e.Err = fmt.Errorf("unreadable %d response (%s, %d bytes): %w", status, e.Digest, len(body), err)
	case code == "Request_ResourceNotFound":
		// Graph's own not-found for the resource asked about. The caller
		// decides whether that resource is the user.
		e.Kind = control.ErrNotFound
	case status == http.StatusNotFound || status == http.StatusGone:
		// A 404 without Graph's not-found body: a wrong base URL, a proxy, a
		// route this server lacks. Never "gone".
		e.Kind = control.ErrUnexpected
		e.Err = fmt.Errorf("HTTP %d without Graph's Request_ResourceNotFound (%s, %d bytes): not Graph's not-found: %w", status, e.Digest, len(body), err)
	case status == http.StatusTooManyRequests:
		e.Kind = control.ErrRateLimited
		e.RetryAfter = retryafter.Header(header, time.Now())
	case status == http.StatusServiceUnavailable && header.Get("Retry-After") != "":
		e.Kind = control.ErrRateLimited
		e.RetryAfter = retryafter.Header(header, time.Now())
	case status == http.StatusUnauthorized:
		e.Kind = control.ErrUnauthorized
		e.Err = fmt.Errorf("%w (Graph refused the token: check the tenant, client id and secret, and that the app has the application permission %s with admin consent)", e.Err, permission)
	case status == http.StatusForbidden:
		e.Kind = control.ErrUnauthorized
		e.Err = fmt.Errorf("%w (the app registration needs the Microsoft Graph application permission %s with admin consent)", e.Err, permission)
	default:
		e.Kind = control.ClassifyStatus(status)
	}
	return e
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
