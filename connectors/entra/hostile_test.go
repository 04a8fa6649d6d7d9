package entra_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/connectors/entra"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/sandbox/graph"
)

// Graph's own not-found, where these cases put it: on a sub-resource of a user that exists.
const graphNotFound = `{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist or one of its queried reference-property objects are not present.","innerError":{"date":"2026-11-29T12:00:00","request-id":"r","client-request-id":"c"}}}`

var hostileSubject = people[9] // privileged: Global Reader, all-staff, department, admins, dyn-all

type hostileEnv struct {
	sim    *graph.Sim
	srv    *hostile.Server
	client *entra.Client
	acts   *activities.Activities
	acct   control.Account // resolved against the honest simulator
	ctx    context.Context
}

type entraCase struct {
	name     string
	rules    func(base http.Handler) []hostile.Rule
	basePath string
	run      func(t *testing.T, h *hostileEnv) (hostile.Verdict, string)
}

// TestHostile runs the Entra connector, and the activities that turn its
// answers into receipts, against Graph servers that behave unlike the
// simulator. Every case must end in a true observation or a visible
// exception; make hostile sums the tally line this test prints.
func TestHostile(t *testing.T) {
	tally := hostile.NewTally(t, "entra")
	user := `/v1.0/users/[^/]+`
	for _, tc := range []entraCase{
		{name: "foreign 404 on memberOf", rules: one(hostile.Path(user+`/memberOf`), hostile.ForeignJSON404()),
			run: applyCase("remove_groups", groupsGone)},
		{name: "Graph's not-found on memberOf of a user that exists", rules: one(hostile.Path(user+`/memberOf`), hostile.Body(404, "application/json", graphNotFound)),
			run: applyCase("remove_directory_roles", rolesGone)},
		{name: "HTML 404 on revokeSignInSessions", rules: one(hostile.Path(user+`/revokeSignInSessions`), hostile.HTML(404)),
			run: applyCase("revoke_sessions", sessionsRevoked)},
		{name: "Graph's not-found on revokeSignInSessions of a user that exists", rules: one(hostile.Path(user+`/revokeSignInSessions`), hostile.Body(404, "application/json", graphNotFound)),
			run: applyCase("revoke_sessions", sessionsRevoked)},
		{name: "HTML 500 on the groups family", rules: one(hostile.Path(`/v1.0/groups/.*`), hostile.HTML(500)),
			run: applyCase("remove_groups", groupsGone)},
		{name: "plain 404 on group member removal", rules: one(hostile.Method(hostile.Path(`/v1.0/groups/.*`), "DELETE"), hostile.PlainNotFound()),
			run: applyCase("remove_groups", groupsGone)},
		{name: "proxy 404 on GET user: verify", rules: one(hostile.Method(hostile.Path(user), "GET"), hostile.HTML(404)),
			run: verifyCase("disable", disabled)},
		{name: "foreign 404 on PATCH user", rules: one(hostile.Method(hostile.Path(user), "PATCH"), hostile.ForeignJSON404()),
			run: applyCase("disable", disabled)},
		{name: "wrong base path: resolve", basePath: "/graph", run: resolveCase},
		{name: "wrong base path: apply", basePath: "/graph", run: applyCase("disable", disabled)},
		{name: "filter misses, direct GET finds", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Query(hostile.Path(`/v1.0/users`), "$filter"),
				Handler: hostile.SetQuery(base, url.Values{"$filter": {"mail eq 'nobody@nowhere.test'"}})}}
		}, run: resolveCase},
		{name: "filter answered HTML 404", rules: one(hostile.Path(`/v1.0/users`), hostile.HTML(404)), run: resolveCase},
		{name: "memberOf paging ignores $skiptoken", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Query(hostile.Path(user+`/memberOf`), "$skiptoken"), Handler: hostile.DropQuery(base, "$skiptoken")}}
		}, run: applyCase("remove_groups", groupsGone)},
		{name: "directory roles unreadable while resolving an admin", rules: one(hostile.Path(user+`/memberOf`), hostile.ForeignJSON404()), run: resolveCase},
		{name: "slow GET user past the deadline", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: hostile.Path(user), Handler: hostile.Slow(5*time.Second, base)}}
		}, run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			ctx, cancel := context.WithTimeout(h.ctx, 300*time.Millisecond)
			defer cancel()
			h.ctx = ctx
			return applyCase("disable", disabled)(t, h)
		}},
		{name: "honest server: found by otherMails", run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			require.True(t, h.sim.SetOtherMails(h.acct.ID, "d.alias@example.test"))
			return resolveAs(t, h, control.Person{EmployeeID: hostileSubject.EmployeeID, Email: "d.alias@example.test"})
		}},
		{name: "honest server: a person with no user", run: resolveNobody},
		{name: "honest server: a deleted user is gone, twice", run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			_, err := h.client.Enforce(h.ctx, "delete", h.acct, control.Params{})
			require.NoError(t, err)
			return applyCase("remove_groups", groupsGone)(t, h)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := graph.New(graph.Options{People: people, RequestsPerSecond: 10000})
			base := sim.Handler()
			var rules []hostile.Rule
			if tc.rules != nil {
				rules = tc.rules(base)
			}
			if tc.basePath != "" {
				rules = append(rules, hostile.Rule{Match: hostile.Any(), Handler: hostile.BasePath(tc.basePath, base)})
			}
			srv := hostile.New(t, base, rules...)
			c, err := entra.New(entra.Config{Name: "entra", BaseURL: srv.URL})
			require.NoError(t, err)
			honest, err := entra.New(entra.Config{Name: "entra", BaseURL: hostile.New(t, base).URL})
			require.NoError(t, err)
			acct, err := honest.Resolve(t.Context(), control.Person{Email: hostileSubject.Email})
			require.NoError(t, err)
			h := &hostileEnv{sim: sim, srv: srv, client: c, acts: activities.New(config.Config{}, []control.Target{c}), acct: acct, ctx: t.Context()}
			v, why := tc.run(t, h)
			if tc.rules != nil && srv.Hits() == 0 {
				t.Fatalf("the hostile rule was never hit: the case tests nothing")
			}
			tally.Record(t, v, why)
		})
	}
}

func one(m hostile.Matcher, h http.Handler) func(http.Handler) []hostile.Rule {
	return func(http.Handler) []hostile.Rule { return []hostile.Rule{{Match: m, Handler: h}} }
}

// --- the truth, read from the simulator ---

type truth func(h *hostileEnv) (holds, gone bool)

var since = time.Now().Add(-time.Minute)

func disabled(h *hostileEnv) (bool, bool) {
	u, ok := h.sim.User(h.acct.ID)
	return !ok || !u.AccountEnabled, !ok
}

func sessionsRevoked(h *hostileEnv) (bool, bool) {
	u, ok := h.sim.User(h.acct.ID)
	return !ok || !u.SignInSessionsValidFrom.Before(since.Truncate(time.Second)), !ok
}

func groupsGone(h *hostileEnv) (bool, bool) {
	u, ok := h.sim.User(h.acct.ID)
	return !ok || slices.Equal(u.Groups, []string{graph.DynamicGroup}), !ok
}

func rolesGone(h *hostileEnv) (bool, bool) {
	u, ok := h.sim.User(h.acct.ID)
	return !ok || len(u.Roles) == 0, !ok
}

// --- the questions asked, through the activities that make the claims ---

func input(h *hostileEnv, name string) activities.ControlInput {
	return activities.ControlInput{ControlID: "entra/" + name, Target: "entra", Control: name, Phase: control.Containment,
		Account: h.acct, Params: control.Params{Since: since}}
}

func judge(h *hostileEnv, r control.Receipt, err error, real truth) (hostile.Verdict, string) {
	holds, gone := real(h)
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case r.Gone && !gone:
		return hostile.FalseClaim, "receipt says gone, but the user exists: " + r.Detail
	case r.Outcome == control.Observed && !holds:
		return hostile.FalseClaim, "receipt says observed, but it does not hold: " + r.Detail
	}
	return hostile.TrueObservation, string(r.Outcome) + ": " + r.Detail
}

func applyCase(name string, real truth) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		r, err := h.acts.ApplyControl(h.ctx, input(h, name))
		return judge(h, r, err, real)
	}
}

func verifyCase(name string, real truth) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		r, err := h.acts.VerifyControl(h.ctx, input(h, name))
		return judge(h, r, err, real)
	}
}

func resolveCase(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	return resolveAs(t, h, control.Person{EmployeeID: hostileSubject.EmployeeID, Email: hostileSubject.Email})
}

// resolveAs: the person has a user; "no account" is false, and a found
// account must be theirs, with their directory role (or a word that the
// roles could not be read: never silence).
func resolveAs(t *testing.T, h *hostileEnv, p control.Person) (hostile.Verdict, string) {
	res, err := h.acts.ResolveAccount(h.ctx, activities.ResolveInput{Target: "entra", Person: p})
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case res.NoAccount:
		return hostile.FalseClaim, fmt.Sprint("no account, but the user exists; searched ", res.Searched)
	case res.Account.ID != h.acct.ID:
		return hostile.FalseClaim, "resolved " + res.Account.ID + ", the user is " + h.acct.ID
	case len(res.Account.Privileges) == 0:
		return hostile.FalseClaim, "resolved with no privileges, but the user holds " + graph.GlobalReader
	}
	return hostile.TrueObservation, fmt.Sprintf("resolved %s, privileges %v", res.Account.ID, res.Account.Privileges)
}

// resolveNobody: "no account" is true only with a record of what was searched.
func resolveNobody(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	res, err := h.acts.ResolveAccount(h.ctx, activities.ResolveInput{Target: "entra", Person: control.Person{EmployeeID: "E0", Email: "nobody@example.test"}})
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case res.NoAccount && len(res.Searched) >= 2:
		return hostile.TrueObservation, fmt.Sprint("no account; searched ", res.Searched)
	case res.NoAccount:
		return hostile.FalseClaim, fmt.Sprint("no account on too thin a search: ", res.Searched)
	}
	return hostile.FalseClaim, "found an account for a person who has none"
}
