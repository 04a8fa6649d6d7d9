package activities_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
)

const simToken = "00-sim-reconcile-token"

// reconcileOkta is an Okta simulator holding the roster's 25 people, an
// orphan HR does not know and a service account; list calls are counted and
// the one numbered failAt (1-based, 0: none) answers 503, a crash mid-run.
type reconcileOkta struct {
	lists   atomic.Int32
	firsts  atomic.Int32 // list calls without a cursor
	failAt  int32
	acts    *activities.Activities
	sim     *oktasim.Sim
	srv     *httptest.Server
	roster  []demo.Person
	orphan  demo.Person
	service demo.Person
}

func newReconcileOkta(t *testing.T, failAt int32) *reconcileOkta {
	t.Helper()
	r := &reconcileOkta{failAt: failAt, roster: demo.People(25)}
	r.orphan = demo.Person{EmployeeID: "X1", First: "Mallory", Last: "Orphan", Login: "mallory.orphan", Email: "mallory.orphan@example.test"}
	r.service = demo.Person{EmployeeID: "S1", First: "Build", Last: "Bot", Login: "svc-build", Email: "svc-build@example.test"}
	r.sim = oktasim.New(oktasim.Options{Token: simToken, People: append(append([]demo.Person{}, r.roster...), r.orphan, r.service)})
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/api/v1/users" {
			n := r.lists.Add(1)
			if !req.URL.Query().Has("after") {
				r.firsts.Add(1)
			}
			if n == r.failAt {
				http.Error(w, `{"errorCode":"E0000009","errorSummary":"Internal Server Error"}`, http.StatusServiceUnavailable)
				return
			}
		}
		r.sim.Handler().ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	c, err := okta.New(t.Context(), okta.Config{Name: "okta", OrgURL: r.srv.URL, Token: simToken, AllowHTTP: true})
	require.NoError(t, err)
	cfg := config.Config{Reconcile: config.Reconcile{
		Roster:          config.RosterSource{Kind: "sandbox", SandboxSize: 25, SandboxLeavers: []string{"E1003"}},
		ServicePrefixes: []string{"svc-"},
	}}
	r.acts = activities.New(cfg, []control.Target{c})
	return r
}

func wantCounts() activities.ReconcileCounts {
	// 27 users, 4 a page: 7 pages.
	return activities.ReconcileCounts{Accounts: 27, Pages: 7, Matched: 24, LeaverActive: 1, Orphans: 1, ServiceNoOwner: 1}
}

func TestReconcileListPages(t *testing.T) {
	r := newReconcileOkta(t, 0)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(r.acts)
	val, err := env.ExecuteActivity(r.acts.ReconcileListPages, activities.ListPageInput{Target: "okta", MaxPages: 100, Limit: 4})
	require.NoError(t, err)
	var res activities.ListPageResult
	require.NoError(t, val.Get(&res))
	assert.True(t, res.Done)
	assert.Empty(t, res.Next)
	assert.Equal(t, wantCounts(), res.Counts)
	kinds := map[string]activities.Finding{}
	for _, f := range res.Findings {
		kinds[f.Kind] = f
	}
	require.Len(t, res.Findings, 3)
	assert.Equal(t, "E1003", kinds[activities.FindingLeaverActive].EmployeeID)
	assert.Equal(t, r.orphan.Email, kinds[activities.FindingOrphan].Login)
	assert.Equal(t, r.service.Email, kinds[activities.FindingServiceNoOwner].Login)

	// Two pages per activity: the workflow carries the cursor between them.
	env = s.NewTestActivityEnvironment()
	env.RegisterActivity(r.acts)
	val, err = env.ExecuteActivity(r.acts.ReconcileListPages, activities.ListPageInput{Target: "okta", MaxPages: 2, Limit: 4})
	require.NoError(t, err)
	require.NoError(t, val.Get(&res))
	assert.False(t, res.Done)
	assert.NotEmpty(t, res.Next)
	assert.Equal(t, 8, res.Counts.Accounts)
}

// A crash on the fourth page: the retry, given the last heartbeat as the
// server would, resumes at its cursor. The first page is never asked for
// again and the totals are those of a run that never crashed.
func TestReconcileResumesAtHeartbeatCursor(t *testing.T) {
	r := newReconcileOkta(t, 4)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(r.acts)
	var last converter.EncodedValues
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) { last = d })
	_, err := env.ExecuteActivity(r.acts.ReconcileListPages, activities.ListPageInput{Target: "okta", MaxPages: 100, Limit: 4})
	require.Error(t, err, "the fourth page fails")
	require.NotNil(t, last, "pages read before the crash were heartbeated")
	var saved activities.ListPageResult
	require.NoError(t, last.Get(&saved))
	assert.Equal(t, 3, saved.Counts.Pages)
	require.NotEmpty(t, saved.Next)

	env = s.NewTestActivityEnvironment()
	env.RegisterActivity(r.acts)
	env.SetHeartbeatDetails(saved)
	val, err := env.ExecuteActivity(r.acts.ReconcileListPages, activities.ListPageInput{Target: "okta", MaxPages: 100, Limit: 4})
	require.NoError(t, err)
	var res activities.ListPageResult
	require.NoError(t, val.Get(&res))
	assert.Equal(t, saved.Next, res.Resumed)
	assert.Equal(t, wantCounts(), res.Counts)
	assert.Len(t, res.Findings, 3)
	assert.Equal(t, int32(1), r.firsts.Load(), "the first page was read once")
	assert.Equal(t, int32(8), r.lists.Load(), "7 pages and the one that failed")
}

func TestReconcileRefusesAnUnreadableRoster(t *testing.T) {
	r := newReconcileOkta(t, 0)
	r.acts.Config.Reconcile.Roster = config.RosterSource{Kind: "csv", Path: t.TempDir() + "/missing.csv"}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(r.acts)
	_, err := env.ExecuteActivity(r.acts.ReconcileListPages, activities.ListPageInput{Target: "okta"})
	require.ErrorContains(t, err, "HR roster")
	assert.Zero(t, r.lists.Load(), "no account is judged against a roster that was not read")
}
