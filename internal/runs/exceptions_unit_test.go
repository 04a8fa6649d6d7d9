package runs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/workflows"
)

// Waivers in force are listed with their grantor, reason and expiry; an
// expired one is not (the run re-opens it as an exception); done controls never.
func TestOpenOfWaivers(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	failed := now.Add(-3 * time.Hour)
	st := workflows.Status{EmployeeID: "E1", Controls: []workflows.ControlStatus{
		{ID: "aws/deny_all_policy", Phase: control.Containment, State: workflows.StateWaived,
			Receipt: &control.Receipt{FinishedAt: failed},
			Waiver:  &workflows.Waive{By: "sec@example.test", Reason: "SCP blocks it", ExpiresAt: now.Add(48 * time.Hour)}},
		{ID: "ad/disable", Phase: control.Containment, State: workflows.StateWaived,
			Waiver: &workflows.Waive{By: "sec@example.test", Reason: "old", ExpiresAt: now.Add(-time.Minute)}},
		{ID: "okta/suspend", Phase: control.Containment, State: workflows.StateDone},
	}}
	got := openOf(st, "deprovision-E1", "r1", now.Add(-5*time.Hour), "security", now)
	require.Len(t, got, 1)
	w := got[0]
	assert.Equal(t, "waiver", w.Kind)
	assert.Equal(t, "aws/deny_all_policy", w.Control)
	assert.Equal(t, "sec@example.test", w.Owner)
	assert.Equal(t, "SCP blocks it", w.Reason)
	assert.Equal(t, now.Add(48*time.Hour), w.ExpiresAt)
	assert.Equal(t, "3h0m0s", w.Age)
	assert.Contains(t, w.Action, "starter retry -employee E1 -control aws/deny_all_policy")
}
