package workflows

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

var guardT0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func admission(key, class string, effective time.Time) Admission {
	return Admission{Key: key, Class: class, EmployeeID: key, Source: "generic", EffectiveAt: effective, Max: 2, Window: 10 * time.Minute}
}

func TestGuardCounts(t *testing.T) {
	var st GuardState
	at := func(d time.Duration) time.Time { return guardT0.Add(d) }
	eff := guardT0.Add(24 * time.Hour)
	tests := []struct {
		name      string
		a         Admission
		now       time.Time
		want      bool
		wantWhy   string
		wantAgain bool
	}{
		{"first", admission("E1", GuardRemoval, eff), at(0), false, "", false},
		{"second, effective with E1", admission("E2", GuardRemoval, eff), at(time.Minute), false, "", false},
		{"third within the window", admission("E3", GuardRemoval, eff.Add(5*time.Hour)), at(2 * time.Minute), true, "arrived within", false},
		{"the same key again: the first verdict, not counted", admission("E1", GuardRemoval, eff), at(3 * time.Minute), false, "", true},
		{"role changes have their own budget", admission("R1", GuardRoleChange, eff), at(3 * time.Minute), false, "", false},
		{"rescinds too", admission("X1", GuardReversal, at(3*time.Minute)), at(3 * time.Minute), false, "", false},
		{"after the window, another time: free", admission("E4", GuardRemoval, eff.Add(48*time.Hour)), at(20 * time.Minute), false, "", false},
		{"after the window, but effective with E1 and E2", admission("E5", GuardRemoval, eff.Add(5*time.Minute)), at(30 * time.Minute), true, "take effect within", false},
		{"effective with E1 and E2, an hour later still", admission("E6", GuardRemoval, eff.Add(5*time.Minute)), at(90 * time.Minute), true, "take effect within", false},
		{"a day later the effective-time count is forgotten", admission("E7", GuardRemoval, eff.Add(5*time.Minute)), at(25 * time.Hour), false, "", false},
	}
	for _, tt := range tests {
		v := st.Admit(tt.a, tt.now)
		assert.Equal(t, tt.want, v.Quarantined, tt.name)
		assert.Equal(t, tt.wantAgain, v.Repeat, tt.name)
		if tt.wantWhy != "" {
			assert.Contains(t, v.Reason, tt.wantWhy, tt.name)
		}
	}
}

func TestGuardFailsSafeWhenFull(t *testing.T) {
	var st GuardState
	for i := range guardMaxEntries {
		st.Entries = append(st.Entries, GuardEntry{Key: fmt.Sprint(i), Class: GuardReversal, ArrivedAt: guardT0, EffectiveAt: guardT0.Add(-time.Hour)})
	}
	v := st.Admit(admission("E1", GuardRemoval, guardT0.Add(time.Hour)), guardT0)
	assert.True(t, v.Quarantined)
	assert.Contains(t, v.Reason, "limit")
	assert.Len(t, st.Entries, guardMaxEntries, "the state does not grow past the limit")
}

// Through the workflow: admissions are Updates; a bad one is refused by the
// validator (never in the history); the guard continues as new with its
// entries once it has admitted enough.
func TestGuardWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Guard, workflow.RegisterOptions{Name: GuardWorkflowType})
	env.SetStartTime(guardT0)
	verdicts := map[string]AdmitVerdict{}
	var refused error
	send := func(id string, a Admission) {
		env.UpdateWorkflow(UpdateAdmit, id, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { refused = err },
			OnAccept: func() {},
			OnComplete: func(v any, err error) {
				require.NoError(t, err)
				verdicts[id] = v.(AdmitVerdict)
			},
		}, a)
	}
	env.RegisterDelayedCallback(func() {
		send("u1", admission("E1", GuardRemoval, guardT0))
		send("u2", admission("E2", GuardRemoval, guardT0))
		send("u3", admission("E3", GuardRemoval, guardT0))
		send("bad", Admission{Key: "E4", Class: "everything"})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		for i := range guardContinueAfter {
			send(fmt.Sprintf("fill-%d", i), Admission{Key: fmt.Sprint("fill-", i), Class: GuardReversal, EffectiveAt: guardT0.Add(time.Duration(i) * time.Hour), Max: 1 << 20, Window: time.Minute})
		}
	}, 2*time.Second)
	env.ExecuteWorkflow(GuardWorkflowType, GuardState{})

	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "continued as new: %v", env.GetWorkflowError())
	assert.False(t, verdicts["u1"].Quarantined)
	assert.False(t, verdicts["u2"].Quarantined)
	assert.True(t, verdicts["u3"].Quarantined)
	require.Error(t, refused)
	assert.Contains(t, refused.Error(), "class")
	assert.NotContains(t, verdicts, "bad")
}
