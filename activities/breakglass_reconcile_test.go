package activities_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
)

// A break-glass registry account is declared in config: reconciliation
// counts it as owned, not as an orphan HR does not know, and only in its
// own target.
func TestReconcileCountsBreakGlassAccountsAsKnown(t *testing.T) {
	for name, tc := range map[string]struct {
		target         string
		orphans, owned int
	}{
		"in its target":     {target: "okta", orphans: 0, owned: 1},
		"in another target": {target: "entra", orphans: 1, owned: 0},
	} {
		t.Run(name, func(t *testing.T) {
			r := newReconcileOkta(t, 0)
			r.acts.Config.BreakGlass = []config.BreakGlass{{Name: "okta-emergency", Target: tc.target, Account: "Mallory.Orphan@example.test",
				Secret: "breakglass/okta", KnownBy: config.KnownBy{Groups: []string{"admins"}}}}
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(r.acts)
			val, err := env.ExecuteActivity(r.acts.ReconcileListPages, activities.ListPageInput{Target: "okta", MaxPages: 100, Limit: 4})
			require.NoError(t, err)
			var res activities.ListPageResult
			require.NoError(t, val.Get(&res))
			assert.Equal(t, tc.orphans, res.Counts.Orphans)
			assert.Equal(t, tc.owned, res.Counts.ServiceOwned)
			for _, f := range res.Findings {
				if tc.owned == 1 {
					assert.NotEqual(t, activities.FindingOrphan, f.Kind, "%+v", f)
				}
			}
		})
	}
}
