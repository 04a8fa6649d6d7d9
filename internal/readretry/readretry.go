// Package readretry retries safe reads in place when a target answers with a
// transient failure.
//
// Temporal owns the retries of a control: a control that fails is tried again
// after a fresh observation, so a change is never repeated blindly. But one
// control can take a dozen reads (paged lists), and on a flaky API a dozen
// reads in a row rarely all succeed; retrying the whole control from scratch
// then never converges. So reads, and only reads, are retried here a few
// times with a short backoff. Changes (POST/PATCH/PUT/DELETE, AWS mutating
// actions) pass through untouched, and so do 429s: a rate limit's delay is
// the workflow's to honour.
package readretry

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Transport retries safe requests on connection errors, 408 and 5xx (not 501).
type Transport struct {
	Base    http.RoundTripper
	Tries   int           // attempts per read, including the first; default 3
	Backoff time.Duration // before the second attempt, doubled after; default 50 ms
}

// New wraps base (http.DefaultTransport when nil).
func New(base http.RoundTripper) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Transport{Base: base, Tries: 3, Backoff: 50 * time.Millisecond}
}

// Client returns an http.Client over a retrying transport.
func Client(timeout time.Duration) *http.Client {
	return &http.Client{Transport: New(nil), Timeout: timeout}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, safe := safeRead(req)
	if !safe {
		if body != nil {
			// safeRead read the body: send a copy.
			req = req.Clone(req.Context())
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		return t.Base.RoundTrip(req)
	}
	tries, wait := max(t.Tries, 1), t.Backoff
	for attempt := 1; ; attempt++ {
		r := req
		if body != nil {
			r = req.Clone(req.Context())
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := t.Base.RoundTrip(r)
		if attempt >= tries || !transient(req.Context(), resp, err) {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// safeRead reports whether req only reads, and returns its body to resend.
// GET and HEAD are reads; so is an AWS Query API call whose Action is a
// List*, Get* or Describe*.
func safeRead(req *http.Request) ([]byte, bool) {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return nil, true
	case http.MethodPost:
	default:
		return nil, false
	}
	if !strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || req.Body == nil {
		return nil, false
	}
	// The body is read once here and resent from memory on every attempt.
	var b []byte
	var err error
	if req.GetBody != nil {
		rc, gerr := req.GetBody()
		if gerr != nil {
			return nil, false
		}
		b, err = io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
	} else {
		b, err = io.ReadAll(io.LimitReader(req.Body, 1<<20))
		req.Body.Close()
	}
	if err != nil {
		return nil, false
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return b, false
	}
	action := form.Get("Action")
	for _, p := range []string{"List", "Get", "Describe"} {
		if strings.HasPrefix(action, p) {
			return b, true
		}
	}
	return b, false
}

func transient(ctx context.Context, resp *http.Response, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		return true
	}
	return resp.StatusCode == http.StatusRequestTimeout ||
		(resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented)
}
