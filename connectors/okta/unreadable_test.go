package okta_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/internal/control"
)

// A later page that gets no answer at all is a lost connection, not "an
// unparseable 200": the first page's status must not judge it.
func TestLaterPageLostIsTransient(t *testing.T) {
	var srv *httptest.Server
	var dropped atomic.Int32
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("after") != "" {
			dropped.Add(1)
			panic(http.ErrAbortHandler) // the connection drops without an answer
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Link", "<"+srv.URL+r.URL.Path+"?after=00g1>; rel=\"next\"")
		_, _ = w.Write([]byte(`[{"id":"00g1","type":"OKTA_GROUP","profile":{"name":"everyone-else"}}]`))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, token)
	_, err := c.Observe(t.Context(), okta.RemoveGroups, control.Account{ID: "00u1"}, control.Params{})
	require.ErrorIs(t, err, control.ErrTransient)
	var cerr *control.Error
	require.ErrorAs(t, err, &cerr)
	assert.Zero(t, cerr.HTTPStatus, "no response arrived for the page that failed")
	assert.NotContains(t, err.Error(), "unparseable")
	// Go's transport may resend a GET once on a reused connection; the SDK
	// must not resend it in a loop (it did on EOF: a million requests in 20 s).
	assert.LessOrEqual(t, dropped.Load(), int32(2))
}

// A write's unparseable answer is not asked again: it may have done something.
func TestWriteGarbageIsPermanent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(`{"id":"00u1","status":"ACTIVE","profile":{"login":"a@example.test"}}`))
			return
		}
		_, _ = w.Write([]byte(`<html>proxy login page</html>`))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, token)
	_, err := c.Enforce(t.Context(), okta.Suspend, control.Account{ID: "00u1"}, control.Params{})
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "unparseable 200 response (")
}

// Okta's empty list is []: it still means none. A 200 with no list (an
// empty body, null, {}) on any page, or on the sweep's list, is an error:
// transient when it is not JSON, permanent when well-formed (as in entra).
func TestEmptyListOnlyWhenOktaSaysSo(t *testing.T) {
	for _, tc := range []struct{ name, page1, page2 string }{
		{"[]", "[]", ""}, {"empty body", "", ""}, {"null", "null", ""}, {"{}", "{}", ""},
		{"later page null", `[{"id":"00g1","type":"BUILT_IN","profile":{"name":"Everyone"}}]`, "null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Query().Get("after") != "" {
					_, _ = w.Write([]byte(tc.page2))
					return
				}
				if tc.page2 != "" {
					w.Header().Set("Link", "<"+srv.URL+r.URL.Path+"?after=00g1>; rel=\"next\"")
				}
				_, _ = w.Write([]byte(tc.page1))
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL, token)
			obs, err := c.Observe(t.Context(), okta.RemoveGroups, control.Account{ID: "00u1"}, control.Params{})
			_, lerr := c.ListActive(t.Context(), "", 10)
			if tc.name == "[]" {
				require.NoError(t, err)
				require.NoError(t, lerr)
				assert.True(t, obs.Holds && obs.Readable, obs.Detail)
				return
			}
			kind := map[bool]error{true: control.ErrTransient, false: control.ErrPermanent}[tc.page1 == ""]
			require.ErrorIs(t, err, kind)
			assert.Contains(t, err.Error(), "without a list")
			if tc.page2 == "" {
				require.ErrorIs(t, lerr, kind)
			}
		})
	}
}

// Discover's empty list is a claim ("owns no api token"): null is not one.
func TestDiscoverRefusesANullList(t *testing.T) {
	for _, body := range []string{"", "null", "{}"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}))
		c := newClient(t, srv.URL, token)
		owned, err := c.Discover(t.Context(), control.Account{ID: "00u1"})
		srv.Close()
		require.Error(t, err, "body %q", body)
		assert.Nil(t, owned)
		assert.Contains(t, err.Error(), "without a list")
	}
}
