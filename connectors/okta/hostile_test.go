package okta_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	oktasim "github.com/offboard/offboard/sandbox/okta"
)

// Okta-shaped bodies a simulator never sends where these cases put them.
const (
	endpointNotFound = `{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: /api/v1/users/x/sessions (Endpoint)","errorLink":"E0000007","errorId":"oaeX","errorCauses":[]}`
	userNotFoundBody = `{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: 00uX (User)","errorLink":"E0000007","errorId":"oaeX","errorCauses":[]}`
	rateLimitedBody  = `{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests.","errorLink":"E0000047","errorId":"oaeX","errorCauses":[]}`
)

// hostileCase is one server that behaves unlike the simulator, and what is
// asked of it. run returns the verdict: a claim (gone, holds, no account,
// found) checked against the simulator's real state, or an exception.
type hostileCase struct {
	name    string
	rules   func(base http.Handler) []hostile.Rule
	orgPath string // appended to the server URL: a wrong org URL
	run     func(t *testing.T, h *hostileEnv) (hostile.Verdict, string)
}

type hostileEnv struct {
	*env
	srv  *hostile.Server
	acct control.Account // the account of subject, resolved against the honest simulator
	ctx  context.Context
}

var subject = people[9] // an admin: every group, grant and role to lose

// TestHostile runs the Okta connector against servers that behave unlike
// the simulator. Every case must end in a true observation or a visible
// exception; make hostile sums the tally line this test prints.
func TestHostile(t *testing.T) {
	tally := hostile.NewTally(t, "okta")
	userRe := `/api/v1/users/[^/]+`
	for _, tc := range append(emptyAnswerCases(), []hostileCase{
		{name: "foreign 404 on DELETE sessions", rules: one(hostile.Method(hostile.Path(userRe+`/sessions`), "DELETE"), hostile.ForeignJSON404()),
			run: enforceCase(okta.ClearSessions, nil)},
		{name: "Okta E0000007 (Endpoint) on DELETE sessions", rules: one(hostile.Path(userRe+`/sessions`), hostile.Body(404, "application/json", endpointNotFound)),
			run: enforceCase(okta.ClearSessions, nil)},
		{name: "Okta E0000007 (User) on DELETE grants of a user that exists", rules: one(hostile.Method(hostile.Path(userRe+`/grants`), "DELETE"), hostile.Body(404, "application/json", userNotFoundBody)),
			run: enforceCase(okta.RevokeGrants, grantsGone)},
		{name: "plain 404 on GET grants", rules: one(hostile.Path(userRe+`/grants`), hostile.PlainNotFound()),
			run: observeCase(okta.RevokeGrants, grantsGone)},
		{name: "foreign 404 on DELETE grants", rules: one(hostile.Method(hostile.Path(userRe+`/grants`), "DELETE"), hostile.ForeignJSON404()),
			run: enforceCase(okta.RevokeGrants, grantsGone)},
		{name: "HTML 404 on the groups family", rules: one(hostile.Path(`/api/v1/(users/[^/]+/)?groups(/.*)?`), hostile.HTML(404)),
			run: observeCase(okta.RemoveGroups, groupsGone(nil))},
		{name: "HTML 404 on group removal", rules: one(hostile.Method(hostile.Path(`/api/v1/groups/.*`), "DELETE"), hostile.HTML(404)),
			run: enforceCase(okta.RemoveGroups, groupsGone(nil))},
		{name: "HTML 500 on the user's groups", rules: one(hostile.Path(userRe+`/groups`), hostile.HTML(500)),
			run: enforceCase(okta.RemoveGroups, groupsGone(nil))},
		{name: "foreign 404 on lifecycle suspend", rules: one(hostile.Path(userRe+`/lifecycle/.*`), hostile.ForeignJSON404()),
			run: enforceCase(okta.Suspend, statusIs("SUSPENDED"))},
		{name: "proxy 404 on GET user", rules: one(hostile.Method(hostile.Path(userRe), "GET"), hostile.HTML(404)),
			run: observeCase(okta.Suspend, statusIs("SUSPENDED"))},
		{name: "Okta E0000007 (Endpoint) on GET user", rules: one(hostile.Method(hostile.Path(userRe), "GET"), hostile.Body(404, "application/json", endpointNotFound)),
			run: observeCase(okta.Deactivate, statusIs("DEPROVISIONED"))},
		{name: "HTML 200 login page on GET user", rules: one(hostile.Method(hostile.Path(userRe), "GET"), hostile.Body(200, "text/html", "<html>sign in</html>")),
			run: observeCase(okta.Suspend, statusIs("SUSPENDED"))},
		{name: "429 on grants", rules: one(hostile.Path(userRe+`/grants`), rateLimited()),
			run: observeCase(okta.RevokeGrants, grantsGone)},
		{name: "wrong org URL path: resolve", orgPath: "/okta", run: resolveCase},
		{name: "wrong org URL path: observe", orgPath: "/okta", run: observeCase(okta.Suspend, statusIs("SUSPENDED"))},
		{name: "org URL is a proxy answering HTML", rules: one(hostile.Any(), hostile.HTML(404)), run: resolveCase},
		{name: "filter misses, direct GET finds", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Query(hostile.Path(`/api/v1/users`), "filter"),
				Handler: hostile.SetQuery(base, url.Values{"filter": {`profile.login eq "nobody@nowhere.test"`}})}}
		}, run: resolveCase},
		{name: "direct GET misses (E0000007), filter finds", rules: one(hostile.Method(hostile.Path(`/api/v1/users/[^/]+@[^/]+`), "GET"), hostile.Body(404, "application/json", userNotFoundBody)),
			run: resolveCase},
		{name: "filter answered foreign 404", rules: one(hostile.Path(`/api/v1/users`), hostile.ForeignJSON404()), run: resolveCase},
		{name: "direct GET by login answered HTML 404", rules: one(hostile.Method(hostile.Path(`/api/v1/users/[^/]+@[^/]+`), "GET"), hostile.HTML(404)),
			run: resolveCase},
		{name: "filter and GET miss on HTML for an unknown person", rules: one(hostile.Method(hostile.Path(`/api/v1/users/[^/]+@[^/]+`), "GET"), hostile.HTML(404)),
			run: resolveNobody},
		{name: "unknown person, honest server", run: resolveNobody},
		{name: "roles answered foreign 404", rules: one(hostile.Path(userRe+`/roles`), hostile.ForeignJSON404()), run: resolveCase},
		{name: "groups paged by Link rel=next", rules: one(hostile.Path(userRe+`/groups`), nil), run: roleChange},
		// A role change whose first page holds only a kept group: a server
		// that ignores the cursor must not read as "no groups left".
		{name: "groups paging ignores the cursor", rules: one(hostile.Path(userRe+`/groups`), nil), run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			keep := []string{"all-staff"}
			obs, err := h.client.Observe(h.ctx, okta.RemoveGroups, h.acct, control.Params{KeepGroups: keep})
			return judgeObservation(h, obs, err, groupsGone(keep))
		}},
		{name: "slow answers past the deadline", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Path(userRe + `(/.*)?`), Handler: hostile.Slow(5*time.Second, base)}}
		}, run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			ctx, cancel := context.WithTimeout(h.ctx, 200*time.Millisecond)
			defer cancel()
			h.ctx = ctx
			return enforceCase(okta.Suspend, statusIs("SUSPENDED"))(t, h)
		}},
		{name: "deleted user: GET answers E0000007 (User)", run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			_, err := h.client.Enforce(h.ctx, okta.Delete, h.acct, control.Params{})
			require.NoError(t, err)
			return observeCase(okta.RevokeGrants, grantsGone)(t, h)
		}},
	}...) {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, oktasim.Options{})
			honest := e.client
			var rules []hostile.Rule
			if tc.rules != nil {
				rules = tc.rules(e.sim.Handler())
			}
			rules = pagingRules(tc.name, e.sim.Handler(), rules)
			srv := hostile.New(t, e.sim.Handler(), rules...)
			e.client = newClient(t, srv.URL+tc.orgPath, token)
			acct, err := honest.Resolve(t.Context(), subjectPerson())
			require.NoError(t, err)
			v, why := tc.run(t, &hostileEnv{env: e, srv: srv, acct: acct, ctx: t.Context()})
			if len(rules) > 0 && srv.Hits() == 0 && tc.orgPath == "" {
				t.Fatalf("the hostile rule was never hit: the case tests nothing")
			}
			tally.Record(t, v, why)
		})
	}
}

func one(m hostile.Matcher, h http.Handler) func(http.Handler) []hostile.Rule {
	return func(http.Handler) []hostile.Rule { return []hostile.Rule{{Match: m, Handler: h}} }
}

func subjectPerson() control.Person {
	return control.Person{EmployeeID: subject.EmployeeID, Email: subject.Email}
}

func rateLimited() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(time.Now().Add(30*time.Second).Unix(), 10))
		hostile.Body(429, "application/json", rateLimitedBody).ServeHTTP(w, r)
	})
}

// pagingRules fills in the paging cases: a list served two items a page
// with Link rel="next" (honest), or a next link that serves page 1 again.
func pagingRules(name string, base http.Handler, rules []hostile.Rule) []hostile.Rule {
	ignore := name == "groups paging ignores the cursor"
	for i := range rules {
		if rules[i].Handler == nil {
			rules[i].Handler = linkPaged(base, 1, ignore)
		}
	}
	return rules
}

// linkPaged cuts a JSON array answer into pages of size items, with Okta's
// Link headers; ignoreCursor serves the first page whatever `after` says.
func linkPaged(base http.Handler, size int, ignoreCursor bool) http.Handler {
	return hostile.Rewrite(base, func(r *http.Request, status int, h http.Header, body []byte) (int, []byte) {
		var all []json.RawMessage
		if status != 200 || json.Unmarshal(body, &all) != nil {
			return status, body
		}
		start, _ := strconv.Atoi(r.URL.Query().Get("after"))
		if ignoreCursor {
			start = 0
		}
		end := min(start+size, len(all))
		h.Del("Link")
		h.Add("Link", fmt.Sprintf(`<http://%s%s>; rel="self"`, r.Host, r.URL.RequestURI()))
		if end < len(all) {
			q := r.URL.Query()
			q.Set("after", strconv.Itoa(end))
			h.Add("Link", fmt.Sprintf(`<http://%s%s?%s>; rel="next"`, r.Host, r.URL.Path, q.Encode()))
		}
		out, _ := json.Marshal(all[start:end])
		return status, out
	})
}

// --- the questions asked, and how each answer is judged ---

// truth reads the simulator: does the control really hold, and is the user gone?
type truth func(h *hostileEnv) (holds, gone bool)

func userState(h *hostileEnv) (oktasim.User, bool) { return h.sim.User(h.acct.ID) }

func statusIs(status string) truth {
	return func(h *hostileEnv) (bool, bool) {
		u, ok := userState(h)
		return !ok || u.Status == status || (status == "SUSPENDED" && u.Status == "DEPROVISIONED"), !ok
	}
}

func grantsGone(h *hostileEnv) (bool, bool) {
	u, ok := userState(h)
	return !ok || u.Grants == 0, !ok
}

func groupsGone(keep []string) truth {
	return func(h *hostileEnv) (bool, bool) {
		u, ok := userState(h)
		if !ok {
			return true, true
		}
		left := slices.DeleteFunc(slices.Clone(u.Groups), func(g string) bool { return g == "Everyone" || slices.Contains(keep, g) })
		return len(left) == 0, false
	}
}

// judgeObservation: a Gone or Holds claim must be true of the simulator.
func judgeObservation(h *hostileEnv, obs control.Observation, err error, real truth) (hostile.Verdict, string) {
	holds, gone := real(h)
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case obs.Gone && !gone:
		return hostile.FalseClaim, "observed gone, but the user exists: " + obs.Detail
	case obs.Holds && obs.Readable && !holds:
		return hostile.FalseClaim, "observed holding, but it does not: " + obs.Detail
	}
	return hostile.TrueObservation, obs.Detail
}

func observeCase(name string, real truth) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		obs, err := h.client.Observe(h.ctx, name, h.acct, control.Params{})
		return judgeObservation(h, obs, err, real)
	}
}

// enforceCase enforces and reads back the way ApplyControl does: a
// not-found from Enforce claims the user is gone; a success is then
// observed, and what the read-back claims must be true.
func enforceCase(name string, real truth) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	if real == nil {
		real = func(h *hostileEnv) (bool, bool) { _, ok := userState(h); return true, !ok } // sessions: unreadable
	}
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		_, err := h.client.Enforce(h.ctx, name, h.acct, control.Params{})
		if errors.Is(err, control.ErrNotFound) {
			if _, gone := real(h); !gone {
				return hostile.FalseClaim, "enforce said not found, but the user exists: " + err.Error()
			}
			return hostile.TrueObservation, err.Error()
		}
		if err != nil {
			return hostile.VisibleException, err.Error()
		}
		obs, err := h.client.Observe(h.ctx, name, h.acct, control.Params{})
		return judgeObservation(h, obs, err, real)
	}
}

// resolveCase: the subject exists; "no account" is false, and a found
// account must be theirs, with the admin role they hold (or a word that
// their roles could not be read: never silence).
func resolveCase(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	acct, err := h.client.Resolve(h.ctx, subjectPerson())
	switch {
	case errors.Is(err, control.ErrNotFound):
		return hostile.FalseClaim, "no account, but the user exists: " + err.Error()
	case err != nil:
		return hostile.VisibleException, err.Error()
	case acct.ID != h.acct.ID:
		return hostile.FalseClaim, "resolved " + acct.ID + ", the user is " + h.acct.ID
	case len(acct.Privileges) == 0:
		return hostile.FalseClaim, "resolved with no privileges, but the user holds SUPER_ADMIN"
	}
	return hostile.TrueObservation, fmt.Sprintf("resolved %s, privileges %v", acct.ID, acct.Privileges)
}

// resolveNobody: a person with no user; "no account" is true only with a
// record of what was searched.
func resolveNobody(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	_, err := h.client.Resolve(h.ctx, control.Person{EmployeeID: "E0", Email: "nobody@example.test"})
	var cerr *control.Error
	switch {
	case errors.Is(err, control.ErrNotFound) && errors.As(err, &cerr) && len(cerr.Searched) >= 2:
		return hostile.TrueObservation, fmt.Sprint("no account; searched ", cerr.Searched)
	case errors.Is(err, control.ErrNotFound):
		return hostile.FalseClaim, "no account without a record of what was searched: " + err.Error()
	case err != nil:
		return hostile.VisibleException, err.Error()
	}
	return hostile.FalseClaim, "found an account for a person who has none"
}

// roleChange removes the groups a new role does not grant, over paged
// group lists, and checks the read-back against the simulator, detail included.
func roleChange(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	keep := []string{"all-staff", "admins"}
	params := control.Params{KeepGroups: keep}
	if _, err := h.client.Enforce(h.ctx, okta.RemoveGroups, h.acct, params); err != nil {
		return hostile.VisibleException, err.Error()
	}
	obs, err := h.client.Observe(h.ctx, okta.RemoveGroups, h.acct, params)
	v, why := judgeObservation(h, obs, err, groupsGone(keep))
	if v == hostile.TrueObservation {
		u, _ := userState(h)
		want := regexp.MustCompile(`^no groups left to remove; kept 2 groups the new role grants: (all-staff, admins|admins, all-staff); Everyone stays \(Okta's built-in group, not removable\)$`)
		if !slices.Equal(u.Groups, []string{"Everyone", "admins", "all-staff"}) || !want.MatchString(obs.Detail) {
			return hostile.FalseClaim, fmt.Sprintf("groups %v, detail %q", u.Groups, obs.Detail)
		}
	}
	return v, why
}

// emptyAnswerCases: a 200 whose body is empty, null or {} where Okta sends
// a JSON array. The SDK reads empty and null as an empty list: "no groups
// left", "no grants", "no admin roles", "no user" must not rest on it.
func emptyAnswerCases() []hostileCase {
	var cases []hostileCase
	userRe := `/api/v1/users/[^/]+`
	for _, b := range []struct{ name, body string }{{"empty body", ""}, {"null", "null"}, {"{}", "{}"}} {
		answer := hostile.Body(200, "application/json", b.body)
		cases = append(cases,
			hostileCase{name: "200 " + b.name + " on the user's groups", rules: one(hostile.Method(hostile.Path(userRe+`/groups`), "GET"), answer),
				run: observeCase(okta.RemoveGroups, groupsGone(nil))},
			hostileCase{name: "200 " + b.name + " on GET grants", rules: one(hostile.Method(hostile.Path(userRe+`/grants`), "GET"), answer),
				run: observeCase(okta.RevokeGrants, grantsGone)},
			hostileCase{name: "200 " + b.name + " on the user's roles", rules: one(hostile.Path(userRe+`/roles`), answer), run: resolveCase},
			hostileCase{name: "200 " + b.name + " on the filter, direct GET misses (E0000007)", rules: func(http.Handler) []hostile.Rule {
				return []hostile.Rule{
					{Match: hostile.Query(hostile.Path(`/api/v1/users`), "filter"), Handler: answer},
					{Match: hostile.Method(hostile.Path(`/api/v1/users/[^/]+@[^/]+`), "GET"), Handler: hostile.Body(404, "application/json", userNotFoundBody)},
				}
			}, run: resolveCase},
		)
	}
	return cases
}
