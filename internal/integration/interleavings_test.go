package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/workflows"
)

// TestScenariosInterleavings runs the branches of the policy that the
// simulation (workflows/simulation_test.go) exercises and no recorded
// history covered: restore after containment, retry, reschedule, role
// change, approval expiry, and a rescind while a control is in exception.
// `make histories` records each into testdata/histories.
func TestScenariosInterleavings(t *testing.T) {
	t.Run("restore-after-containment", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[11] // privileged: the run waits for approval, contained

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Privileged = true })
		st := s.waitStatus(ctx, p.EmployeeID, "approval gate", func(st workflows.Status) bool { return st.Phase == workflows.PhaseAwaitingApproval })
		user, _ := s.okta.User(p.Email)
		require.Equal(t, "SUSPENDED", user.Status, "contained before approval")
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateRescind, "hr@example.test", "", workflows.Rescind{Reason: "resignation withdrawn", EventID: st.EventID})
		require.True(t, v.Accepted, "%+v", v)
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseRescinded, res.Phase)
		user, _ = s.okta.User(p.Email)
		require.Equal(t, "ACTIVE", user.Status, "restored")
		require.NotEmpty(t, user.Groups, "nothing was removed")
		require.Equal(t, workflows.StateDone, controlState(res.Status, "okta/restore/unsuspend"))
		s.recordHistory(ctx, "restore-after-containment", started)
	})

	t.Run("retry", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[12]
		// Okta refuses the suspend once with 403: an exception until a person retries.
		s.okta.Faults().Add(fault.Rule{Method: "POST", PathPrefix: "/api/v1/users/", Status: 403, Count: 1})

		started := s.terminate(ctx, p, nil)
		s.waitStatus(ctx, p.EmployeeID, "exception", func(st workflows.Status) bool {
			return controlState(st, "okta/suspend") == workflows.StateException
		})
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateRetry, "alice@example.test", "", workflows.Retry{Control: "okta/suspend"})
		require.True(t, v.Accepted, "%+v", v)
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		require.Equal(t, workflows.StateDone, controlState(res.Status, "okta/suspend"))
		s.recordHistory(ctx, "retry", started)
	})

	t.Run("reschedule", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[13]

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.EffectiveAt = time.Now().Add(time.Hour).UTC() })
		st := s.waitStatus(ctx, p.EmployeeID, "scheduled", func(st workflows.Status) bool { return st.Phase == workflows.PhaseScheduled })
		// Moved earlier: sessions are revoked from the new time, and the
		// retention counts from it too.
		moved := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second)
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateReschedule, "hr@example.test", "", workflows.Reschedule{EffectiveAt: moved, EventID: st.EventID})
		require.True(t, v.Accepted, "%+v", v)
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		require.False(t, res.Status.Deadlines[0].Breached, "the containment SLA counts from the new time")
		require.False(t, res.Status.ContainedAt.Before(moved), "nothing before the new effective time")
		require.Equal(t, workflows.StateDone, controlState(res.Status, "entra/revoke_sessions"), "read back against the new time")
		for _, r := range res.Receipts {
			if r.Action == "delete" || r.Action == "delete_user" {
				require.False(t, r.StartedAt.Before(moved.Add(3*time.Second)), "%s deleted before the retention from the new time", r.ControlID)
			}
		}
		s.recordHistory(ctx, "reschedule", started)
	})

	t.Run("role-change", func(t *testing.T) {
		s := newStack(t)
		s.startWorkerEdited(defaultPolicy(), func(y string) string {
			return y + "roles:\n  staff:\n    okta: [all-staff]\n"
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[14]

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Kind, t.NewRole = workflows.KindRoleChange, "staff" })
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		user, _ := s.okta.User(p.Email)
		require.Equal(t, "ACTIVE", user.Status, "a role change disables nothing")
		require.Contains(t, user.Groups, "all-staff", "the group the new role grants stays")
		require.NotContains(t, user.Groups, p.Department, "the others go")
		for _, c := range res.Status.Controls {
			require.NotEqual(t, "suspend", c.Control, "no containment in a role change")
		}
		s.recordHistory(ctx, "role-change", started)
	})

	t.Run("approval-expired", func(t *testing.T) {
		s := newStack(t)
		s.startWorkerEdited(defaultPolicy(), func(y string) string {
			return strings.Replace(y, "timeout: 1h}", "timeout: 2s}", 1)
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[15]

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Privileged = true })
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseApprovalExpired, res.Phase)
		user, _ := s.okta.User(p.Email)
		require.Equal(t, "SUSPENDED", user.Status, "access stays contained")
		require.NotEmpty(t, user.Groups, "nothing removed without an approval")
		s.recordHistory(ctx, "approval-expired", started)
	})

	t.Run("rescind-open-exception", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[16]
		user, _ := s.okta.User(p.Email)
		// Okta refuses every suspend of this user: an exception that stays open.
		s.okta.Faults().Add(fault.Rule{Method: "POST", PathPrefix: "/api/v1/users/" + user.ID + "/lifecycle/suspend", Status: 403})

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Privileged = true })
		st := s.waitStatus(ctx, p.EmployeeID, "exception beside contained targets", func(st workflows.Status) bool {
			return controlState(st, "okta/suspend") == workflows.StateException && controlState(st, "ad/disable") == workflows.StateDone
		})
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateRescind, "hr@example.test", "", workflows.Rescind{Reason: "mistake", EventID: st.EventID})
		require.True(t, v.Accepted, "%+v", v)
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseRescinded, res.Phase, "a rescind ends even with a control in exception")
		entry, ok := s.ad.User(p.Login)
		require.True(t, ok)
		require.Equal(t, workflows.StateDone, controlState(res.Status, "ad/restore/enable"), "AD restored: %v", entry)
		user, _ = s.okta.User(p.Email)
		require.Equal(t, "ACTIVE", user.Status, "never suspended, still active")
		require.Empty(t, res.Status.PendingGates)
		s.recordHistory(ctx, "rescind-open-exception", started)
	})
}

// TestScenariosInFlight records runs that are still waiting: the replay
// tests then prove that a run in flight when the worker is upgraded goes on
// replaying on the new code, not only runs that closed.
func TestScenariosInFlight(t *testing.T) {
	t.Run("inflight-awaiting-approval", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[17] // privileged

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Privileged = true })
		s.waitStatus(ctx, p.EmployeeID, "approval gate, contained", func(st workflows.Status) bool {
			return st.Phase == workflows.PhaseAwaitingApproval && !st.ContainedAt.IsZero()
		})
		s.recordHistory(ctx, "inflight-awaiting-approval", started)
		require.NoError(t, s.temporal.Client.TerminateWorkflow(ctx, started.WorkflowID, started.RunID, "recorded in flight"))
	})

	t.Run("inflight-exception", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[18]
		user, _ := s.okta.User(p.Email)
		s.okta.Faults().Add(fault.Rule{Method: "POST", PathPrefix: "/api/v1/users/" + user.ID + "/lifecycle/suspend", Status: 403})

		started := s.terminate(ctx, p, nil)
		s.waitStatus(ctx, p.EmployeeID, "an exception waiting for a person", func(st workflows.Status) bool {
			for _, g := range st.PendingGates {
				if g.Kind == "exception:okta/suspend" {
					return true
				}
			}
			return false
		})
		s.recordHistory(ctx, "inflight-exception", started)
		require.NoError(t, s.temporal.Client.TerminateWorkflow(ctx, started.WorkflowID, started.RunID, "recorded in flight"))
	})
}
