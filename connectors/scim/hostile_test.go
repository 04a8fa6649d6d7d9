package scim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/scimapp"
)

// The app has two pages of users; the subject is on the second, so a scan
// that does not really page never sees them.
var (
	hostilePeople = demo.People(150)
	subject       = hostilePeople[120]
)

type scimCase struct {
	name     string
	noFilter bool   // the app advertises filter.supported=false: Resolve scans
	basePath string // the client's base URL path; "" is /scim/v2
	rules    func(base http.Handler) []hostile.Rule
	run      func(t *testing.T, h *scimEnv) (hostile.Verdict, string)
}

type scimEnv struct {
	app    *scimapp.App
	client *scim.Client
	acct   control.Account // the subject's account, resolved against the honest app
	ctx    context.Context
}

// TestHostile runs the SCIM connector against servers that behave unlike
// the elimity-backed app; every case must end in a true observation or a
// visible exception. make hostile sums the tally line this test prints.
func TestHostile(t *testing.T) {
	tally := hostile.NewTally(t, "scim")
	user := `/scim/v2/Users/[^/]+`
	users := `/scim/v2/Users`
	for _, tc := range append(emptyAnswerCases(), []scimCase{
		{name: "proxy HTML 404 on GET user", rules: one(hostile.Method(hostile.Path(user), "GET"), hostile.HTML(404)), run: observeCase(scim.Deactivate)},
		{name: "foreign JSON 404 on GET user", rules: one(hostile.Method(hostile.Path(user), "GET"), hostile.ForeignJSON404()), run: observeCase(scim.Deactivate)},
		{name: "SCIM-looking 404 without the error schema", rules: one(hostile.Method(hostile.Path(user), "GET"),
			hostile.Body(404, "application/scim+json", `{"status":"404","detail":"Not Found"}`)), run: observeCase(scim.Deactivate)},
		{name: "HTML 404 on PATCH user", rules: one(hostile.Method(hostile.Path(user), "PATCH"), hostile.HTML(404)), run: enforceCase(scim.Deactivate)},
		{name: "foreign 404 on DELETE user", rules: one(hostile.Method(hostile.Path(user), "DELETE"), hostile.ForeignJSON404()), run: enforceCase(scim.Delete)},
		{name: "HTML 500 on the Users family", rules: one(hostile.Path(users+`(/.*)?`), hostile.HTML(500)), run: enforceCase(scim.Deactivate)},
		{name: "429 on the Users family", rules: one(hostile.Path(users+`(/.*)?`), hostile.Body(429, "application/scim+json",
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429","detail":"slow down"}`)), run: resolveCase},
		{name: "wrong base path: resolve", basePath: "/scim", run: resolveCase},
		{name: "wrong base path: observe", basePath: "/scim", run: observeCase(scim.Deactivate)},
		{name: "wrong base path: unknown person", basePath: "/v2", run: resolveNobody},
		{name: "base URL is a proxy login page (200 HTML)", rules: one(hostile.Any(), hostile.Body(200, "text/html", "<html>sign in</html>")), run: resolveNobody},
		{name: "hint answered by a foreign 404", rules: one(hostile.Method(hostile.Path(user), "GET"), hostile.ForeignJSON404()), run: resolveByHint},
		{name: "hint answered by a proxy HTML 404", rules: one(hostile.Method(hostile.Path(user), "GET"), hostile.HTML(404)), run: resolveByHint},
		{name: "userName filter misses, email filter finds", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: filterStarts(users, "userName"),
				Handler: hostile.SetQuery(base, url.Values{"filter": {`userName eq "nobody@nowhere.test"`}})}}
		}, run: resolveCase},
		{name: "app ignores the filter", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Query(hostile.Path(users), "filter"), Handler: dropQuery(base, "filter")}}
		}, run: resolveNobody},
		{name: "scan: app ignores startIndex", noFilter: true, rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Query(hostile.Path(users), "startIndex"), Handler: dropQuery(base, "startIndex")}}
		}, run: resolveCase},
		{name: "scan: app ignores startIndex but echoes it", noFilter: true, rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Query(hostile.Path(users), "startIndex"), Handler: echoStartIndex(dropQuery(base, "startIndex"))}}
		}, run: resolveCase},
		{name: "scan: app ignores startIndex, unknown person", noFilter: true, rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Query(hostile.Path(users), "startIndex"), Handler: echoStartIndex(dropQuery(base, "startIndex"))}}
		}, run: resolveNobody},
		{name: "scan: honest paging", noFilter: true, run: resolveCase},
		{name: "slow answers past the deadline", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Path(user), Handler: hostile.Slow(5*time.Second, base)}}
		}, run: func(t *testing.T, h *scimEnv) (hostile.Verdict, string) {
			ctx, cancel := context.WithTimeout(h.ctx, 200*time.Millisecond)
			defer cancel()
			h.ctx = ctx
			return enforceCase(scim.Deactivate)(t, h)
		}},
		{name: "unknown person, honest app", run: resolveNobody},
		{name: "deleted user: the app's own SCIM 404", run: func(t *testing.T, h *scimEnv) (hostile.Verdict, string) {
			_, err := h.client.Enforce(h.ctx, scim.Delete, h.acct, control.Params{})
			require.NoError(t, err)
			return observeCase(scim.Deactivate)(t, h)
		}},
	}...) {
		t.Run(tc.name, func(t *testing.T) {
			app, err := scimapp.New(scimapp.Options{Name: "crm", Bearer: token, PatchSupported: true, People: hostilePeople, RequestsPerSecond: 10000})
			require.NoError(t, err)
			base := app.Handler()
			var spc []hostile.Rule // the app as one that cannot filter
			if tc.noFilter {
				spc = append(spc, hostile.Rule{Match: hostile.Path(`/scim/v2/ServiceProviderConfig`), Handler: hostile.Rewrite(base,
					func(_ *http.Request, status int, _ http.Header, body []byte) (int, []byte) {
						return status, bytes.Replace(body, []byte(`"filter":{"maxResults":100,"supported":true}`), []byte(`"filter":{"maxResults":100,"supported":false}`), 1)
					})})
			}
			var rules []hostile.Rule
			var hits atomic.Int64 // rules answer on the server's goroutines
			if tc.rules != nil {
				for _, r := range tc.rules(base) {
					h := r.Handler
					r.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { hits.Add(1); h.ServeHTTP(w, req) })
					rules = append(rules, r)
				}
			}
			srv := hostile.New(t, base, append(rules, spc...)...)
			honest := newClient(t, "scim-crm", hostile.New(t, base, spc...).URL+"/scim/v2", token)
			acct, err := honest.Resolve(t.Context(), control.Person{Email: subject.Email})
			require.NoError(t, err)
			path := "/scim/v2"
			if tc.basePath != "" {
				path = tc.basePath
			}
			c, err := scim.New(scim.Config{Name: "scim-crm", BaseURL: srv.URL + path, Bearer: token, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
			require.NoError(t, err)
			v, why := tc.run(t, &scimEnv{app: app, client: c, acct: acct, ctx: t.Context()})
			if tc.rules != nil && hits.Load() == 0 {
				t.Fatal("the hostile rule was never hit: the case tests nothing")
			}
			tally.Record(t, v, why)
		})
	}
}

func one(m hostile.Matcher, h http.Handler) func(http.Handler) []hostile.Rule {
	return func(http.Handler) []hostile.Rule { return []hostile.Rule{{Match: m, Handler: h}} }
}

func filterStarts(path, attr string) hostile.Matcher {
	m := hostile.Path(path)
	return func(r *http.Request) bool {
		return m(r) && regexp.MustCompile(`^`+attr+` `).MatchString(r.URL.Query().Get("filter"))
	}
}

func dropQuery(base http.Handler, key string) http.Handler { return hostile.DropQuery(base, key) }

// echoStartIndex reports the startIndex the client asked for, whatever page
// it serves: an app that lies about paging.
func echoStartIndex(base http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked := r.URL.Query().Get("startIndex")
		hostile.Rewrite(base, func(_ *http.Request, status int, _ http.Header, body []byte) (int, []byte) {
			return status, regexp.MustCompile(`"startIndex":\d+`).ReplaceAll(body, []byte(`"startIndex":`+asked))
		}).ServeHTTP(w, r)
	})
}

// --- judging ---

func appUser(h *scimEnv) (scimapp.User, bool) { return h.app.User(subject.Email) }

// judgeObservation: Gone and Holds claims must be true of the app.
func judgeObservation(h *scimEnv, name string, obs control.Observation, err error) (hostile.Verdict, string) {
	u, exists := appUser(h)
	holds := !exists || (name == scim.Deactivate && u.HasActive && !u.Active) || (name == scim.Reactivate && u.Active)
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case obs.Gone && exists:
		return hostile.FalseClaim, "observed gone, but the user exists: " + obs.Detail
	case obs.Holds && obs.Readable && !holds:
		return hostile.FalseClaim, "observed holding, but it does not: " + obs.Detail
	}
	return hostile.TrueObservation, obs.Detail
}

func observeCase(name string) func(*testing.T, *scimEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *scimEnv) (hostile.Verdict, string) {
		obs, err := h.client.Observe(h.ctx, name, h.acct, control.Params{})
		return judgeObservation(h, name, obs, err)
	}
}

// enforceCase enforces, then reads back as ApplyControl does; a not-found
// from Enforce claims the user is gone.
func enforceCase(name string) func(*testing.T, *scimEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *scimEnv) (hostile.Verdict, string) {
		_, err := h.client.Enforce(h.ctx, name, h.acct, control.Params{})
		if errors.Is(err, control.ErrNotFound) {
			if _, exists := appUser(h); exists {
				return hostile.FalseClaim, "enforce said not found, but the user exists: " + err.Error()
			}
			return hostile.TrueObservation, err.Error()
		}
		if err != nil {
			return hostile.VisibleException, err.Error()
		}
		obs, err := h.client.Observe(h.ctx, name, h.acct, control.Params{})
		if name == scim.Delete && err == nil && !obs.Gone {
			return hostile.VisibleException, "the user reads back after delete: " + obs.Detail
		}
		return judgeObservation(h, name, obs, err)
	}
}

func judgeResolve(h *scimEnv, acct control.Account, err error) (hostile.Verdict, string) {
	switch {
	case errors.Is(err, control.ErrNotFound):
		return hostile.FalseClaim, "no account, but the user exists: " + err.Error()
	case err != nil:
		return hostile.VisibleException, err.Error()
	case acct.ID != h.acct.ID:
		return hostile.FalseClaim, "resolved " + acct.ID + ", the user is " + h.acct.ID
	}
	return hostile.TrueObservation, "resolved " + acct.ID
}

func resolveCase(t *testing.T, h *scimEnv) (hostile.Verdict, string) {
	acct, err := h.client.Resolve(h.ctx, control.Person{Email: subject.Email})
	return judgeResolve(h, acct, err)
}

func resolveByHint(t *testing.T, h *scimEnv) (hostile.Verdict, string) {
	acct, err := h.client.Resolve(h.ctx, control.Person{Email: subject.Email, Hints: map[string]string{"scim-crm": h.acct.ID}})
	return judgeResolve(h, acct, err)
}

// resolveNobody: "no account" for a person with none is true only with a
// record of what was searched.
func resolveNobody(t *testing.T, h *scimEnv) (hostile.Verdict, string) {
	_, err := h.client.Resolve(h.ctx, control.Person{EmployeeID: "E0", Email: "nobody@example.test"})
	var cerr *control.Error
	switch {
	case errors.Is(err, control.ErrNotFound) && errors.As(err, &cerr) && len(cerr.Searched) > 0:
		return hostile.TrueObservation, fmt.Sprint("no account; searched ", cerr.Searched)
	case errors.Is(err, control.ErrNotFound):
		return hostile.FalseClaim, "no account without a record of what was searched: " + err.Error()
	case err != nil:
		return hostile.VisibleException, err.Error()
	}
	return hostile.FalseClaim, "found an account for a person who has none"
}

// emptyAnswerCases: a 200 with an empty body, null, {}, or a ListResponse
// without its Resources, where the app has users: none of them is "none".
// totalResults 0 alone (RFC 7644 allows it) still is.
func emptyAnswerCases() []scimCase {
	var cases []scimCase
	user := `/scim/v2/Users/[^/]+`
	lists := hostile.Query(hostile.Path(`/scim/v2/Users`), "startIndex")
	for _, b := range []struct{ name, body string }{{"empty body", ""}, {"null", "null"}, {"{}", "{}"},
		{"totalResults 3, no Resources", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":3}`},
		{"totalResults 3, Resources null", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":3,"Resources":null}`},
		{"Resources [], no totalResults", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"Resources":[]}`},
	} {
		answer := hostile.Body(200, "application/scim+json", b.body)
		cases = append(cases,
			scimCase{name: "200 " + b.name + " on the user filters", rules: one(lists, answer), run: resolveCase},
			scimCase{name: "scan: 200 " + b.name + " on the user list", noFilter: true, rules: one(lists, answer), run: resolveCase},
		)
		if !strings.Contains(b.body, "totalResults") && !strings.Contains(b.body, "Resources") {
			cases = append(cases,
				scimCase{name: "200 " + b.name + " on GET user", rules: one(hostile.Method(hostile.Path(user), "GET"), answer), run: observeCase(scim.Deactivate)},
				scimCase{name: "200 " + b.name + " on GET user by hint", rules: one(hostile.Method(hostile.Path(user), "GET"), answer), run: resolveByHint})
		}
	}
	for _, b := range []string{`{"totalResults":0}`, `{"totalResults":0,"Resources":[]}`} {
		cases = append(cases, scimCase{name: "unknown person, the app answers " + b, rules: one(lists, hostile.Body(200, "application/scim+json", b)), run: resolveNobody})
	}
	return cases
}
