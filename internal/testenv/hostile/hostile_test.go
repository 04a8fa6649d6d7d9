package hostile

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRulesOverrideOneRouteFamily(t *testing.T) {
	base := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "base "+r.URL.Path+"?"+r.URL.RawQuery)
	})
	s := New(t, base,
		Rule{Method(Path(`/users/[^/]+/sessions`), http.MethodDelete, http.MethodGet), ForeignJSON404()},
		Rule{Path(`/groups(/.*)?`), HTML(500)},
		Rule{Query(Path(`/list`), "startIndex"), DropQuery(base, "startIndex")},
		Rule{Path(`/api/.*`), BasePath("/api", base)},
	)
	cases := []struct {
		path   string
		status int
		body   string
	}{
		{"/users/u1", 200, "base /users/u1?"},
		{"/users/u1/sessions", 404, `"error":"Not Found"`},
		{"/groups/g1", 500, "<center>nginx</center>"},
		{"/list?startIndex=3&count=2", 200, "base /list?count=2"},
		{"/list?count=2", 200, "base /list?count=2"},
		{"/api/users", 200, "base /users?"},
		{"/apix", 200, "base /apix?"},
	}
	for _, c := range cases {
		status, body := get(t, s.URL+c.path)
		if status != c.status || !strings.Contains(body, c.body) {
			t.Errorf("%s: %d %q, want %d with %q", c.path, status, body, c.status, c.body)
		}
	}
	if s.Hits() != 4 {
		t.Errorf("rules answered %d requests, want 4", s.Hits())
	}
}

func TestBasePathRefusesOtherPaths(t *testing.T) {
	s := New(t, BasePath("/scim/v2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "scim "+r.URL.Path)
	})))
	if status, body := get(t, s.URL+"/scim/v2/Users"); status != 200 || body != "scim /Users" {
		t.Errorf("under the base path: %d %q", status, body)
	}
	for _, p := range []string{"/Users", "/scim/v2x/Users", "/v2/Users"} {
		if status, body := get(t, s.URL+p); status != 404 || !strings.HasPrefix(body, "<html>") {
			t.Errorf("%s: %d %q, want an HTML 404", p, status, body)
		}
	}
}

func TestSlowGivesUpWithTheClient(t *testing.T) {
	s := New(t, Slow(time.Hour, http.NotFoundHandler()))
	c := &http.Client{Timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := c.Get(s.URL)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("slow answer: err %v after %s", err, time.Since(start))
	}
}

func TestJudge(t *testing.T) {
	cases := []struct {
		err            error
		claimed, holds bool
		want           Verdict
	}{
		{nil, true, true, TrueObservation},
		{nil, false, false, TrueObservation},
		{nil, true, false, FalseClaim},
		{errors.New("boom"), true, false, VisibleException},
	}
	for _, c := range cases {
		if got := Judge(c.err, c.claimed, c.holds); got != c.want {
			t.Errorf("Judge(%v, %v, %v) = %s, want %s", c.err, c.claimed, c.holds, got, c.want)
		}
	}
}

func TestTallyFailsOnAFalseClaim(t *testing.T) {
	rec := &recordTB{TB: t}
	ta := &Tally{pkg: "x"}
	ta.Record(rec, TrueObservation, "ok")
	ta.Record(rec, FalseClaim, "gone while the user exists")
	if ta.cases != 2 || ta.falseClaims != 1 || !rec.failed {
		t.Fatalf("tally %d cases %d false, failed=%v", ta.cases, ta.falseClaims, rec.failed)
	}
}

// recordTB notes Errorf instead of failing the real test.
type recordTB struct {
	testing.TB
	failed bool
}

func (r *recordTB) Errorf(string, ...any) { r.failed = true }
func (r *recordTB) Helper()               {}
