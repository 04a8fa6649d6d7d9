package workflows

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/activities"
)

// Findings beyond MaxReconcileFindings are counted, not carried: the
// report says how many were not itemised, and the counts stay whole. A
// target whose listing fails for good is reported not covered, never clean.
func TestReconcileBoundsFindingsAndReportsUncoveredTargets(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	env.RegisterActivity(a)
	var written ReconcileReport
	env.RegisterActivityWithOptions(func(_ context.Context, rep ReconcileReport) (string, error) {
		written = rep
		return "reconcile/" + rep.ID, nil
	}, activity.RegisterOptions{Name: ActivityReconcileReport})
	env.OnActivity(a.LoadReconcilePlan, mock.Anything).Return(activities.ReconcilePlan{
		Targets: []activities.ReconcileTargetPlan{{Name: "okta", Kind: "okta", Listable: true}, {Name: "ad", Kind: "ldap", Listable: true}, {Name: "old", Kind: "x"}},
	}, nil)
	page := func(n int, next string) activities.ListPageResult {
		r := activities.ListPageResult{Target: "okta", Next: next, Done: next == "", Counts: activities.ReconcileCounts{Accounts: n, Orphans: n, Pages: 1}}
		for i := range n {
			r.Findings = append(r.Findings, activities.Finding{Kind: activities.FindingOrphan, Target: "okta", AccountID: fmt.Sprintf("%s-%d", next, i)})
		}
		return r
	}
	env.OnActivity(a.ReconcileListPages, mock.Anything, activities.ListPageInput{Target: "okta", MaxPages: 5}).Return(page(3000, "c1"), nil)
	env.OnActivity(a.ReconcileListPages, mock.Anything, activities.ListPageInput{Target: "okta", Cursor: "c1", MaxPages: 5}).Return(page(3000, ""), nil)
	env.OnActivity(a.ReconcileListPages, mock.Anything, activities.ListPageInput{Target: "ad", MaxPages: 5}).
		Return(activities.ListPageResult{}, fmt.Errorf("ldap: the base DN does not exist"))
	env.ExecuteWorkflow(Reconcile, ReconcileInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.Len(t, written.Items, MaxReconcileFindings)
	assert.Equal(t, 6000-MaxReconcileFindings, written.NotItemised)
	assert.Equal(t, 6000, written.Targets[0].Counts.Orphans)
	assert.True(t, written.Targets[0].Done)
	assert.Contains(t, written.Targets[1].Error, "not covered")
	assert.False(t, written.Targets[1].Done)
	assert.Contains(t, written.Targets[2].Error, "cannot list accounts")
}
