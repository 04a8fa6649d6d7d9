package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/workflows"
)

// TestScenariosQuarantine: a termination the blast-radius guard held touches
// nothing until security releases it, then runs as any other. `make
// histories` records it (the quarantine branch), also while it waits.
func TestScenariosQuarantine(t *testing.T) {
	s := newStack(t)
	s.startWorker(defaultPolicy())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s.people[23]

	started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Quarantined = true })
	s.waitStatus(ctx, p.EmployeeID, "quarantine gate", func(st workflows.Status) bool { return st.Phase == workflows.PhaseQuarantined })
	user, _ := s.okta.User(p.Email)
	require.Equal(t, "ACTIVE", user.Status, "nothing is touched while quarantined")
	s.recordHistory(ctx, "quarantine-in-flight", started)

	// Someone without the security role cannot release it.
	v := s.decide(ctx, p.EmployeeID, workflows.UpdateQuarantineRelease, "hr@example.test", "", workflows.ApproveRequest{Decision: "approve", Reason: "looks fine"})
	require.False(t, v.Accepted)
	v = s.decide(ctx, p.EmployeeID, workflows.UpdateQuarantineRelease, "alice@example.test", "", workflows.ApproveRequest{Decision: "approve", Reason: "layoff list confirmed"})
	require.True(t, v.Accepted, "%+v", v)
	res := s.result(ctx, started)

	require.Equal(t, workflows.PhaseCompleted, res.Phase)
	require.Equal(t, control.Observed, controlOutcome(res, "okta/suspend"))
	_, inOkta := s.okta.User(p.Email)
	require.False(t, inOkta, "deleted from Okta after retention")
	s.recordHistory(ctx, "quarantine", started)
}
