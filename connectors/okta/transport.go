package okta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	oktasdk "github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/retryafter"
)

// maxBody bounds how much of a response we keep to digest it.
const maxBody = 4 << 20

// exchange is what the last HTTP response of one logical call looked like.
// The SDK hides it on failures (a 429 comes back as a bare "too many
// requests" error), so a transport under the SDK records it.
type exchange struct {
	mu       sync.Mutex
	endpoint string // "GET /api/v1/users/00u1", for errors that must name it
	status   int
	header   http.Header
	body     []byte
	wrote    bool // a request other than GET was sent
}

type exchangeKey struct{}

func withExchange(ctx context.Context) (context.Context, *exchange) {
	ex := &exchange{}
	return context.WithValue(ctx, exchangeKey{}, ex), ex
}

func (ex *exchange) snapshot() (int, http.Header, []byte) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.status, ex.header, ex.body
}

// readOnly: every request of the call was a GET.
func (ex *exchange) readOnly() bool {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return !ex.wrote && strings.HasPrefix(ex.endpoint, http.MethodGet+" ")
}

func (ex *exchange) lastEndpoint() string {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.endpoint
}

func (ex *exchange) response() control.Response {
	status, header, body := ex.snapshot()
	return control.NewResponse(header.Get("X-Okta-Request-Id"), status, body)
}

// recorder reads each response body once, keeps a copy in the request's
// exchange, and hands the SDK an identical body.
type recorder struct{ next http.RoundTripper }

func (rt recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	endpoint := req.Method + " " + req.URL.Path
	if ex != nil {
		// A request that gets no response must not be judged by the previous
		// page's 200: forget it before sending.
		ex.mu.Lock()
		ex.endpoint, ex.status, ex.header, ex.body = endpoint, 0, nil, nil
		ex.wrote = ex.wrote || req.Method != http.MethodGet
		ex.mu.Unlock()
	}
	resp, err := rt.next.RoundTrip(req)
	if errors.Is(err, io.EOF) {
		// The SDK resends on EOF with no limit and no pause (its retry count
		// only counts 429s): a server dropping connections got hammered until
		// the deadline. Hide the EOF; Temporal retries the call instead.
		return nil, fmt.Errorf("%s: connection closed without a response: %v", endpoint, err)
	}
	if err != nil {
		return nil, err
	}
	if ex == nil {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	ex.mu.Lock()
	ex.endpoint, ex.status, ex.header, ex.body = endpoint, resp.StatusCode, resp.Header.Clone(), body
	ex.mu.Unlock()
	return resp, nil
}

// httpClient is the caller's client (or a default one) with the recorder
// slipped under it. Redirects are not followed: the management API does not
// redirect these calls, and following one would resend the SSWS token.
func httpClient(base *http.Client) *http.Client {
	c := &http.Client{Timeout: 30 * time.Second}
	var rt http.RoundTripper = http.DefaultTransport
	if base != nil {
		if base.Transport != nil {
			rt = base.Transport
		}
		if base.Timeout != 0 {
			c.Timeout = base.Timeout
		}
		c.Jar = base.Jar
	}
	c.Transport = recorder{next: rt}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// Scopes (OAuth) and admin permissions each call needs; named in 401/403 errors.
const (
	scopeUsersRead    = "okta.users.read"
	scopeUsersManage  = "okta.users.manage"
	scopeGroupsManage = "okta.groups.manage"
	scopeRolesRead    = "okta.roles.read"
)

// classify turns a failed SDK call into a *control.Error.
func classify(ctx context.Context, op, scope string, ex *exchange, err error) error {
	status, header, body := ex.snapshot()
	cerr := &control.Error{Op: op, HTTPStatus: status, Digest: control.Digest(body), Err: err}
	if header != nil {
		cerr.RequestID = header.Get("X-Okta-Request-Id")
	}
	// The SDK makes an *okta.Error of any failed response; only one with
	// an errorCode is Okta's own answer.
	var oe *oktasdk.Error
	isOkta := errors.As(err, &oe) && oe.ErrorCode != ""
	if !isOkta && status >= 300 {
		// The SDK drops the body of a 429 ("too many requests"); read it ourselves.
		var parsed oktasdk.Error
		if json.Unmarshal(body, &parsed) == nil && parsed.ErrorCode != "" {
			oe, isOkta = &parsed, true
		}
	}
	switch {
	case status == 0:
		// No response: the connection failed, the deadline passed or the
		// caller gave up. Temporal decides whether to try again.
		cerr.Kind = control.ErrTransient
		if !isNetwork(ctx, err) {
			cerr.Kind = control.ErrPermanent
		}
	case status >= 200 && status < 300 && ex.readOnly() && !json.Valid(body):
		// A read answered with something that is not JSON at all (a proxy's
		// page, a cut-off body): asking again may cure it, and nothing was changed.
		cerr.Kind = control.ErrTransient
		cerr.Err = fmt.Errorf("unparseable %d response to a read (body %s, %d bytes): %w", status, cerr.Digest, len(body), err)
	case status >= 200 && status < 300:
		cerr.Kind = control.ErrPermanent
		cerr.Err = fmt.Errorf("unparseable %d response (body %s, %d bytes): %w", status, cerr.Digest, len(body), err)
	case status == http.StatusNotFound && isOkta && userNotFound(ex.lastEndpoint(), oe):
		cerr.Kind = control.ErrNotFound
	default:
		cerr.Kind = control.ClassifyStatus(status)
	}
	switch {
	case isOkta && status >= 300:
		cerr.Err = oktaErr{oe}
	case status >= 300:
		cerr.Err = fmt.Errorf("the body is not an Okta error (%q, %d bytes, %s)", header.Get("Content-Type"), len(body), cerr.Digest)
	}
	if cerr.Kind == control.ErrUnexpected {
		// A 404 that is not Okta's own "no such user" for the user resource:
		// a route the server lacks, a wrong org URL, a proxy. Name the endpoint.
		endpoint := ex.lastEndpoint()
		cerr.Op += " (" + endpoint + ")"
		cerr.Err = fmt.Errorf("%s answered %d, not Okta's not-found for a user; check the org URL: %w", endpoint, status, cerr.Err)
	}
	switch cerr.Kind {
	case control.ErrRateLimited:
		cerr.RetryAfter = max(retryafter.Header(header, time.Now()), time.Second)
		cerr.Err = fmt.Errorf("retry in %s: %w", cerr.RetryAfter, cerr.Err)
	case control.ErrUnauthorized:
		if status == http.StatusUnauthorized {
			cerr.Err = fmt.Errorf("token rejected; use an API token of an admin allowed %s: %w", scope, cerr.Err)
		} else {
			cerr.Err = fmt.Errorf("missing permission %s for this user or group: %w", scope, cerr.Err)
		}
	}
	return cerr
}

// userResource matches the path of one user (GET/DELETE /api/v1/users/{id}),
// whatever path the org URL has.
var userResource = regexp.MustCompile(`/api/v1/users/[^/]+$`)

// userNotFound is Okta's own answer that a user does not exist: errorCode
// E0000007 about a User ("Not found: Resource not found: x (User)"), from
// the user resource itself. The same code from a sub-resource or an unknown
// endpoint ("... (Endpoint)") says nothing about the account.
func userNotFound(endpoint string, oe *oktasdk.Error) bool {
	return oe.ErrorCode == "E0000007" && strings.HasSuffix(strings.TrimSpace(oe.ErrorSummary), "(User)") &&
		userResource.MatchString(endpoint) && !strings.HasSuffix(endpoint, "/users/me")
}

// oktaErr prints an *okta.Error with its code; errors.As still reaches it.
type oktaErr struct{ e *oktasdk.Error }

func (o oktaErr) Error() string {
	msg := strings.TrimSpace(o.e.ErrorCode + " " + o.e.ErrorSummary)
	if msg == "" {
		return o.e.Error()
	}
	var causes []string
	for _, c := range o.e.ErrorCauses {
		if s, ok := c["errorSummary"].(string); ok {
			causes = append(causes, s)
		}
	}
	if len(causes) > 0 {
		msg += " (" + strings.Join(causes, "; ") + ")"
	}
	return msg
}

func (o oktaErr) Unwrap() error { return o.e }

// isNetwork tells connection, timeout and cancellation failures from errors
// made before any request was sent (a bad URL, an SDK configuration error).
func isNetwork(ctx context.Context, err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	return ctx.Err() != nil ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &netErr) || errors.As(err, &opErr)
}
