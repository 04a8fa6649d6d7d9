package fault

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A garbage answer is marked, unreadable as JSON, and applies nothing.
func TestGarbageIsMarkedAndAppliesNothing(t *testing.T) {
	for _, status := range []int{0, http.StatusBadGateway} {
		f := New()
		f.Add(Rule{Garbage: true, Status: status})
		applied := 0
		h := f.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { applied++ }), nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/api/v1/users/1", nil))

		want := status
		if want == 0 {
			want = http.StatusOK
		}
		assert.Equal(t, want, rec.Code)
		assert.Equal(t, "garbage", rec.Header().Get(FaultHeader))
		assert.Zero(t, applied, "the request must not reach the API")
		var v any
		assert.Error(t, json.Unmarshal(rec.Body.Bytes(), &v), "the body must not parse as JSON")
	}
}

// An injected status is marked; a request no rule fires on is not.
func TestInjectedStatusIsMarked(t *testing.T) {
	f := New()
	f.Add(Rule{PathPrefix: "/fail", Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	h := f.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		func(w http.ResponseWriter, _ *http.Request, status int, _ time.Duration) { w.WriteHeader(status) })

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fail", nil))
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	assert.Equal(t, "status", rec.Header().Get(FaultHeader))

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ok", nil))
	require.Equal(t, http.StatusNoContent, rec.Code)
	assert.Empty(t, rec.Header().Get(FaultHeader))
}

// A hung POST ends when the server closes its connections: a simulator's
// Close must not wait for ever on a request whose body nobody read (make
// chaos hung at its end on them).
func TestHungPostEndsAtClose(t *testing.T) {
	f := New()
	f.Add(Rule{Hang: true})
	srv := httptest.NewUnstartedServer(f.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), nil))
	active := make(chan struct{}, 1)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateActive {
			select {
			case active <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	go func() {
		resp, err := http.Post(srv.URL, "application/x-amz-json-1.1", strings.NewReader(`{"SecretId":"x"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-active
	closed := make(chan struct{})
	go func() {
		srv.CloseClientConnections()
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waits on the hung POST after 10 s")
	}
}
