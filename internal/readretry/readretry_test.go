package readretry

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// flaky fails the first n requests of each kind with status.
func flaky(n int32, status int) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= n {
			w.WriteHeader(status)
			return
		}
		_ = r.ParseForm()
		_, _ = w.Write([]byte("ok " + r.Form.Get("Action")))
	}))
	return srv, &calls
}

func client() *http.Client {
	return &http.Client{Transport: &Transport{Base: http.DefaultTransport, Tries: 3, Backoff: time.Millisecond}}
}

func TestRetriesReads(t *testing.T) {
	for name, tc := range map[string]struct {
		do        func(c *http.Client, url string) (*http.Response, error)
		failFirst int32
		status    int
		wantCode  int
		wantCalls int32
	}{
		"GET recovers after two 503s": {get, 2, 503, 200, 3},
		"GET gives up after three":    {get, 5, 503, 503, 3},
		"GET 429 is the workflow's":   {get, 1, 429, 429, 1},
		"GET 404 is an answer":        {get, 1, 404, 404, 1},
		"AWS List is a read":          {awsAction("ListAccessKeys"), 2, 500, 200, 3},
		"AWS Update is a change":      {awsAction("UpdateAccessKey"), 1, 500, 500, 1},
		"PATCH is a change":           {patch, 1, 503, 503, 1},
	} {
		t.Run(name, func(t *testing.T) {
			srv, calls := flaky(tc.failFirst, tc.status)
			defer srv.Close()
			resp, err := tc.do(client(), srv.URL)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tc.wantCode, resp.StatusCode)
			require.Equal(t, tc.wantCalls, calls.Load())
		})
	}
}

func TestResendsTheSameBody(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		bodies = append(bodies, r.Form.Encode())
		if len(bodies) == 1 {
			w.WriteHeader(502)
		}
	}))
	defer srv.Close()
	resp, err := awsAction("GetUser")(client(), srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Len(t, bodies, 2)
	require.Equal(t, bodies[0], bodies[1])
}

func get(c *http.Client, u string) (*http.Response, error) { return c.Get(u) }

func patch(c *http.Client, u string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodPatch, u, strings.NewReader(`{"active":false}`))
	return c.Do(req)
}

func awsAction(action string) func(c *http.Client, u string) (*http.Response, error) {
	return func(c *http.Client, u string) (*http.Response, error) {
		return c.PostForm(u, url.Values{"Action": {action}, "UserName": {"ada"}, "Version": {"2010-05-08"}})
	}
}
