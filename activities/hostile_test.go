package activities

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/scimapp"
)

// The claims a receipt makes are made here, in ApplyControl and
// ResolveAccount: these cases run the real connectors, against servers that
// behave unlike the simulators, through the activities.

const (
	hostileToken = "hostile-token"
	scimName     = "scim-crm"
)

var hostilePeople = demo.People(150) // two SCIM pages; people[9] is an Okta admin

// world is one Okta simulator and one SCIM app behind hostile servers,
// with the activities over both connectors.
type world struct {
	sim  *oktasim.Sim
	app  *scimapp.App
	acts *Activities
	env  *testsuite.TestActivityEnvironment
}

type worldOpts struct {
	// okta and scim give the rules in front of each simulator's handler.
	okta, scim func(base http.Handler) []hostile.Rule
	oktaPath   string // appended to the Okta server URL: a wrong org URL
	scimPath   string // the SCIM base path; "" is /scim/v2
	scimScan   bool   // the app cannot filter: Resolve scans every page
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	sim := oktasim.New(oktasim.Options{Token: hostileToken, People: hostilePeople[:20]})
	app, err := scimapp.New(scimapp.Options{Name: "crm", Bearer: hostileToken, PatchSupported: true, People: hostilePeople, RequestsPerSecond: 10000})
	require.NoError(t, err)
	var oktaRules, scimRules []hostile.Rule
	if o.okta != nil {
		oktaRules = o.okta(sim.Handler())
	}
	if o.scim != nil {
		scimRules = o.scim(app.Handler())
	}
	if o.scimScan {
		scimRules = append(scimRules, hostile.Rule{Match: hostile.Path(`/scim/v2/ServiceProviderConfig`), Handler: hostile.Rewrite(app.Handler(),
			func(_ *http.Request, status int, _ http.Header, body []byte) (int, []byte) {
				return status, []byte(strings.Replace(string(body), `"filter":{"maxResults":100,"supported":true}`, `"filter":{"maxResults":100,"supported":false}`, 1))
			})})
	}
	oktaSrv := hostile.New(t, sim.Handler(), oktaRules...)
	scimSrv := hostile.New(t, app.Handler(), scimRules...)
	oc, err := okta.New(t.Context(), okta.Config{Name: "okta", OrgURL: oktaSrv.URL + o.oktaPath, Token: hostileToken, AllowHTTP: true})
	require.NoError(t, err)
	base := scimSrv.URL + "/scim/v2"
	if o.scimPath != "" {
		base = scimSrv.URL + o.scimPath
	}
	sc, err := scim.New(scim.Config{Name: scimName, BaseURL: base, Bearer: hostileToken, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	require.NoError(t, err)
	cfg, err := config.Default()
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := New(cfg, []control.Target{oc, sc})
	env.RegisterActivity(acts)
	return &world{sim: sim, app: app, acts: acts, env: env}
}

func (w *world) apply(in ControlInput) (control.Receipt, error) {
	v, err := w.env.ExecuteActivity(w.acts.ApplyControl, in)
	var r control.Receipt
	if err == nil {
		err = v.Get(&r)
	}
	return r, err
}

func (w *world) resolve(target string, p control.Person) (Resolution, error) {
	v, err := w.env.ExecuteActivity(w.acts.ResolveAccount, ResolveInput{Target: target, Person: p})
	var res Resolution
	if err == nil {
		err = v.Get(&res)
	}
	return res, err
}

// oktaInput names a control on the subject's real Okta account.
func (w *world) oktaInput(t *testing.T, name string, p control.Params) ControlInput {
	u, ok := w.sim.User(oktaSubject.Email)
	require.True(t, ok)
	return ControlInput{ControlID: "okta/" + name, Target: "okta", Control: name, Phase: control.Containment,
		Account: control.Account{Target: "okta", ID: u.ID, Login: u.Login}, Params: p}
}

func (w *world) scimInput(t *testing.T, name string) ControlInput {
	u, ok := w.app.User(scimSubject.Email)
	require.True(t, ok)
	return ControlInput{ControlID: scimName + "/" + name, Target: scimName, Control: name, Phase: control.Containment,
		Account: control.Account{Target: scimName, ID: u.ID, Login: u.UserName}}
}

var (
	oktaSubject = hostilePeople[9]   // an Okta admin
	scimSubject = hostilePeople[120] // on the SCIM app's second page
	nobody      = control.Person{EmployeeID: "E0", Email: "nobody@example.test"}
)

// --- what is true in the simulators ---

func (w *world) oktaHolds(name string, keep []string) (holds, exists bool) {
	u, ok := w.sim.User(oktaSubject.Email)
	if !ok {
		return true, false
	}
	switch name {
	case okta.Suspend:
		return u.Status == "SUSPENDED" || u.Status == "DEPROVISIONED", true
	case okta.ClearSessions:
		return u.Sessions == 0, true
	case okta.RevokeGrants:
		return u.Grants == 0, true
	case okta.RemoveGroups:
		left := slices.DeleteFunc(slices.Clone(u.Groups), func(g string) bool { return g == "Everyone" || slices.Contains(keep, g) })
		return len(left) == 0, true
	}
	panic("no truth for " + name)
}

func (w *world) scimHolds() (holds, exists bool) {
	u, ok := w.app.User(scimSubject.Email)
	if !ok {
		return true, false
	}
	return u.HasActive && !u.Active, true
}

// judgeReceipt: an error is a visible exception (and must be an
// ApplicationError); "gone" and "observed" must be true.
func judgeReceipt(t *testing.T, r control.Receipt, err error, holds, exists bool) (hostile.Verdict, string) {
	if err != nil {
		appError(t, err)
		return hostile.VisibleException, err.Error()
	}
	switch {
	case r.Gone && exists:
		return hostile.FalseClaim, "receipt says gone, but the account exists: " + r.Detail
	case r.Outcome == control.Observed && !holds:
		return hostile.FalseClaim, "receipt says observed, but the control does not hold: " + r.Detail
	case r.Outcome == control.Acknowledged && !holds:
		return hostile.FalseClaim, "receipt says the system accepted the call, but nothing changed: " + r.Detail
	}
	return hostile.TrueObservation, string(r.Outcome) + ": " + r.Detail
}

// judgeResolution: "no account" for a person who has one is false, and so
// is one without a record of what was searched; a found account must be theirs.
func judgeResolution(res Resolution, err error, wantID string) (hostile.Verdict, string) {
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case res.NoAccount && wantID != "":
		return hostile.FalseClaim, fmt.Sprint("no account, but the person has ", wantID, "; searched ", res.Searched)
	case res.NoAccount && len(res.Searched) == 0:
		return hostile.FalseClaim, "no account without a record of what was searched"
	case res.NoAccount:
		return hostile.TrueObservation, fmt.Sprint("no account; searched ", res.Searched)
	case res.Account.ID != wantID:
		return hostile.FalseClaim, "resolved " + res.Account.ID + ", want " + wantID
	}
	return hostile.TrueObservation, fmt.Sprintf("resolved %s %v", res.Account.ID, res.Account.Privileges)
}

func rule(m hostile.Matcher, h http.Handler) func(http.Handler) []hostile.Rule {
	return func(http.Handler) []hostile.Rule { return []hostile.Rule{{Match: m, Handler: h}} }
}

// wrap is a rule whose answer is made from the simulator's own.
func wrap(m hostile.Matcher, h func(base http.Handler) http.Handler) func(http.Handler) []hostile.Rule {
	return func(base http.Handler) []hostile.Rule { return []hostile.Rule{{Match: m, Handler: h(base)}} }
}

// TestHostile runs ApplyControl and ResolveAccount over the Okta and SCIM
// connectors against hostile servers; make hostile sums the line it prints.
func TestHostile(t *testing.T) {
	tally := hostile.NewTally(t, "activities")
	oktaUser := `/api/v1/users/[^/]+`
	scimUser := `/scim/v2/Users/[^/]+`
	e0000007 := `{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: 00uX (User)","errorLink":"E0000007","errorId":"oaeX","errorCauses":[]}`

	type tcase struct {
		name string
		opts worldOpts
		run  func(t *testing.T, w *world) (hostile.Verdict, string)
	}
	oktaControl := func(name string, keep []string) func(*testing.T, *world) (hostile.Verdict, string) {
		return func(t *testing.T, w *world) (hostile.Verdict, string) {
			r, err := w.apply(w.oktaInput(t, name, control.Params{KeepGroups: keep}))
			holds, exists := w.oktaHolds(name, keep)
			return judgeReceipt(t, r, err, holds, exists)
		}
	}
	scimDeactivate := func(t *testing.T, w *world) (hostile.Verdict, string) {
		r, err := w.apply(w.scimInput(t, scim.Deactivate))
		holds, exists := w.scimHolds()
		return judgeReceipt(t, r, err, holds, exists)
	}
	resolve := func(target string, p control.Person, want func(w *world) string) func(*testing.T, *world) (hostile.Verdict, string) {
		return func(t *testing.T, w *world) (hostile.Verdict, string) {
			res, err := w.resolve(target, p)
			return judgeResolution(res, err, want(w))
		}
	}
	oktaID := func(w *world) string { u, _ := w.sim.User(oktaSubject.Email); return u.ID }
	scimID := func(w *world) string { u, _ := w.app.User(scimSubject.Email); return u.ID }
	none := func(*world) string { return "" }
	oktaPerson := control.Person{EmployeeID: oktaSubject.EmployeeID, Email: oktaSubject.Email}
	scimPerson := control.Person{EmployeeID: scimSubject.EmployeeID, Email: scimSubject.Email}

	for _, tc := range []tcase{
		// The bug this table was written for: a route 404 recorded "already gone".
		{"okta clear_sessions: foreign 404 on DELETE sessions", worldOpts{okta: rule(hostile.Method(hostile.Path(oktaUser+`/sessions`), "DELETE"), hostile.ForeignJSON404())},
			oktaControl(okta.ClearSessions, nil)},
		{"okta revoke_grants: E0000007 (User) on DELETE grants of a live user", worldOpts{okta: rule(hostile.Method(hostile.Path(oktaUser+`/grants`), "DELETE"), hostile.Body(404, "application/json", e0000007))},
			oktaControl(okta.RevokeGrants, nil)},
		{"okta revoke_grants: plain 404 on GET grants", worldOpts{okta: rule(hostile.Path(oktaUser+`/grants`), hostile.PlainNotFound())},
			oktaControl(okta.RevokeGrants, nil)},
		{"okta remove_groups: HTML 404 on the groups family", worldOpts{okta: rule(hostile.Path(`/api/v1/(users/[^/]+/)?groups(/.*)?`), hostile.HTML(404))},
			oktaControl(okta.RemoveGroups, nil)},
		{"okta suspend: proxy 404 on GET user", worldOpts{okta: rule(hostile.Method(hostile.Path(oktaUser), "GET"), hostile.HTML(404))},
			oktaControl(okta.Suspend, nil)},
		{"okta suspend: wrong org URL", worldOpts{oktaPath: "/oauth2"}, oktaControl(okta.Suspend, nil)},
		{"okta suspend: HTML 500 on lifecycle", worldOpts{okta: rule(hostile.Path(oktaUser+`/lifecycle/.*`), hostile.HTML(500))},
			oktaControl(okta.Suspend, nil)},
		{"okta role change: groups paged one by one", worldOpts{okta: wrap(hostile.Path(oktaUser+`/groups`), linkPagedOne)},
			oktaControl(okta.RemoveGroups, []string{"all-staff"})},
		{"okta suspend: honest server", worldOpts{}, oktaControl(okta.Suspend, nil)},
		{"okta suspend: user deleted", worldOpts{}, func(t *testing.T, w *world) (hostile.Verdict, string) {
			in := w.oktaInput(t, okta.Suspend, control.Params{})
			for range 2 { // Okta's two-step delete
				req := httptest.NewRequest(http.MethodDelete, "/api/v1/users/"+in.Account.ID, nil)
				req.Header.Set("Authorization", "SSWS "+hostileToken)
				rec := httptest.NewRecorder()
				w.sim.Handler().ServeHTTP(rec, req)
				require.Equal(t, http.StatusNoContent, rec.Code)
			}
			r, err := w.apply(in)
			holds, exists := w.oktaHolds(okta.Suspend, nil)
			v, why := judgeReceipt(t, r, err, holds, exists)
			require.Equal(t, hostile.TrueObservation, v, why)
			require.True(t, r.Gone, "a deleted user is observed gone")
			require.Contains(t, r.Detail, "a second lookup agrees")
			return v, why
		}},
		{"okta resolve: filter misses, direct GET finds", worldOpts{okta: wrap(hostile.Query(hostile.Path(`/api/v1/users`), "filter"), func(base http.Handler) http.Handler {
			return hostile.SetQuery(base, url.Values{"filter": {`profile.login eq "x@nowhere.test"`}})
		})},
			resolve("okta", oktaPerson, oktaID)},
		{"okta resolve: direct GET answered HTML 404", worldOpts{okta: rule(hostile.Method(hostile.Path(`/api/v1/users/[^/]+@[^/]+`), "GET"), hostile.HTML(404))},
			resolve("okta", nobody, none)},
		{"okta resolve: wrong org URL", worldOpts{oktaPath: "/oauth2"}, resolve("okta", nobody, none)},
		{"okta resolve: nobody, honest server", worldOpts{}, resolve("okta", nobody, none)},
		{"okta resolve: admin found with their role", worldOpts{}, resolve("okta", oktaPerson, oktaID)},
		{"scim deactivate: proxy 404 on GET user", worldOpts{scim: rule(hostile.Method(hostile.Path(scimUser), "GET"), hostile.HTML(404))}, scimDeactivate},
		{"scim deactivate: foreign 404 on PATCH user", worldOpts{scim: rule(hostile.Method(hostile.Path(scimUser), "PATCH"), hostile.ForeignJSON404())}, scimDeactivate},
		{"scim deactivate: wrong base path", worldOpts{scimPath: "/scim"}, scimDeactivate},
		{"scim deactivate: honest app", worldOpts{}, scimDeactivate},
		{"scim resolve: scan whose app ignores startIndex", worldOpts{scimScan: true, scim: wrap(hostile.Query(hostile.Path(`/scim/v2/Users`), "startIndex"), func(base http.Handler) http.Handler {
			return hostile.DropQuery(base, "startIndex")
		})},
			resolve(scimName, scimPerson, scimID)},
		{"scim resolve: scan with honest paging", worldOpts{scimScan: true}, resolve(scimName, scimPerson, scimID)},
		{"scim resolve: wrong base path", worldOpts{scimPath: "/v2"}, resolve(scimName, nobody, none)},
		{"scim resolve: hint answered by a foreign 404", worldOpts{scim: rule(hostile.Method(hostile.Path(scimUser), "GET"), hostile.ForeignJSON404())},
			func(t *testing.T, w *world) (hostile.Verdict, string) {
				res, err := w.resolve(scimName, control.Person{EmployeeID: "E0", Email: "nobody@example.test", Hints: map[string]string{scimName: scimID(w)}})
				return judgeResolution(res, err, scimID(w))
			}},
		{"scim resolve: nobody, honest app", worldOpts{}, resolve(scimName, nobody, none)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts)
			v, why := tc.run(t, w)
			tally.Record(t, v, why)
		})
	}
}

// linkPagedOne serves a JSON array answer one item a page, with Okta's
// Link rel="next" headers (the cursor is the index of the next item).
func linkPagedOne(base http.Handler) http.Handler {
	return hostile.Rewrite(base, func(r *http.Request, status int, h http.Header, body []byte) (int, []byte) {
		var all []json.RawMessage
		if status != http.StatusOK || json.Unmarshal(body, &all) != nil || len(all) == 0 {
			return status, body
		}
		start, _ := strconv.Atoi(r.URL.Query().Get("after"))
		h.Del("Link")
		if start+1 < len(all) {
			q := r.URL.Query()
			q.Set("after", strconv.Itoa(start+1))
			h.Add("Link", fmt.Sprintf(`<http://%s%s?%s>; rel="next"`, r.Host, r.URL.Path, q.Encode()))
		}
		out, _ := json.Marshal(all[start : start+1])
		return status, out
	})
}
