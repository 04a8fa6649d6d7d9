// Package hostile builds test servers that behave unlike our simulators, the
// way real targets, proxies and misconfigurations do: a 404 from a route the
// server lacks, an HTML error page on one API family, a wrong base path, a
// search that misses what a direct GET finds, paging that ignores startIndex,
// slow answers. A test wraps a well-behaved handler (a sandbox simulator or
// a real peer) and overrides one route family; a Tally then counts how each
// case ended, and fails the test on any claim that was not true.
//
// A connector's table, in short (make hostile runs every TestHostile* and
// sums the tally lines):
//
//	func TestHostile(t *testing.T) {
//		tally := hostile.NewTally(t, "okta")
//		for _, tc := range cases {
//			t.Run(tc.name, func(t *testing.T) {
//				srv := hostile.New(t, sim.Handler(), hostile.Rule{
//					Match:   hostile.Method(hostile.Path(`/api/v1/users/[^/]+/sessions`), "DELETE"),
//					Handler: hostile.ForeignJSON404(),
//				})
//				_, err := clientFor(srv.URL).Enforce(ctx, "clear_sessions", acct, params)
//				claimedGone := errors.Is(err, control.ErrNotFound)
//				if claimedGone {
//					err = nil
//				}
//				tally.Record(t, hostile.Judge(err, claimedGone, userIsGone()), fmt.Sprint(err))
//			})
//		}
//	}
package hostile

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Matcher picks the requests a Rule overrides.
type Matcher func(r *http.Request) bool

// Rule answers the requests Match picks with Handler instead of the base.
type Rule struct {
	Match   Matcher
	Handler http.Handler
}

// Server is an httptest.Server over a base handler with rules in front of
// it; the first rule that matches answers. Hits counts the requests rules answered.
type Server struct {
	*httptest.Server
	rules []Rule
	hits  atomic.Int64
}

// New starts a server over base with rules, closed when the test ends.
func New(t testing.TB, base http.Handler, rules ...Rule) *Server {
	t.Helper()
	s := &Server{rules: rules}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rule := range s.rules {
			if rule.Match(r) {
				s.hits.Add(1)
				rule.Handler.ServeHTTP(w, r)
				return
			}
		}
		base.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// Hits is how many requests the rules answered: a case whose rule was never
// hit did not test what it says, and the test should say so.
func (s *Server) Hits() int64 { return s.hits.Load() }

// Wrap is New's handler without a server, for tests that mount it themselves.
func Wrap(base http.Handler, rules ...Rule) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rule := range rules {
			if rule.Match(r) {
				rule.Handler.ServeHTTP(w, r)
				return
			}
		}
		base.ServeHTTP(w, r)
	})
}

// --- matchers ---

// Path matches a request whose URL path matches the regular expression
// pattern in full (it is anchored): Path(`/api/v1/users/[^/]+/sessions`).
func Path(pattern string) Matcher {
	re := regexp.MustCompile("^(?:" + pattern + ")$")
	return func(r *http.Request) bool { return re.MatchString(r.URL.Path) }
}

// Method narrows m to requests with one of the methods.
func Method(m Matcher, methods ...string) Matcher {
	return func(r *http.Request) bool {
		for _, x := range methods {
			if r.Method == x {
				return m(r)
			}
		}
		return false
	}
}

// Query narrows m to requests carrying the query parameter key (any value).
func Query(m Matcher, key string) Matcher {
	return func(r *http.Request) bool { return r.URL.Query().Has(key) && m(r) }
}

// Not matches what m does not.
func Not(m Matcher) Matcher { return func(r *http.Request) bool { return !m(r) } }

// Any matches every request.
func Any() Matcher { return func(*http.Request) bool { return true } }

// --- answers ---

// Body answers status with a fixed content type and body.
func Body(status int, contentType, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
}

// HTML answers status with a proxy's HTML error page (nginx's shape).
func HTML(status int) http.Handler {
	text := http.StatusText(status)
	return Body(status, "text/html",
		"<html>\r\n<head><title>"+strconv.Itoa(status)+" "+text+"</title></head>\r\n<body>\r\n<center><h1>"+
			strconv.Itoa(status)+" "+text+"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
}

// ForeignJSON404 is a 404 in JSON that is not the target's own not-found
// for a user: a web framework's "no route" body (Spring's shape).
func ForeignJSON404() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"timestamp":"2026-11-29T12:00:00.000+00:00","status":404,"error":"Not Found","path":"` +
			strings.ReplaceAll(r.URL.Path, `"`, "") + `"}`))
	})
}

// PlainNotFound is Go's own 404: what a server without the route answers.
func PlainNotFound() http.Handler { return http.NotFoundHandler() }

// BasePath serves base only under prefix (the real API's base path); any
// other path gets the proxy's HTML 404. Point a client at the server's URL
// without the prefix to test a wrong base path.
func BasePath(prefix string, base http.Handler) http.Handler {
	prefix = strings.TrimRight(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			HTML(http.StatusNotFound).ServeHTTP(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		r2.URL.RawPath = ""
		base.ServeHTTP(w, r2)
	})
}

// DropQuery passes the request to base without the named query parameters:
// a server that ignores startIndex serves page 1 again.
func DropQuery(base http.Handler, keys ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for _, k := range keys {
			q.Del(k)
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = q.Encode()
		base.ServeHTTP(w, r2)
	})
}

// SetQuery passes the request to base with query parameters replaced:
// SetQuery(base, url.Values{"search": {`profile.login eq "nobody"`}}) makes a
// search that misses.
func SetQuery(base http.Handler, set url.Values) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for k, v := range set {
			q[k] = v
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = q.Encode()
		base.ServeHTTP(w, r2)
	})
}

// Slow waits d (or until the client gives up) before base answers. The
// request body is read first (and handed on), so the server notices a
// client that hangs up.
func Slow(d time.Duration, base http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			base.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
}

// Rewrite lets base answer, then hands its status, header and body to edit,
// which returns what the client gets: for bodies a simulator would never send.
func Rewrite(base http.Handler, edit func(r *http.Request, status int, header http.Header, body []byte) (int, []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		base.ServeHTTP(rec, r)
		status, body := edit(r, rec.Code, rec.Header(), rec.Body.Bytes())
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}
