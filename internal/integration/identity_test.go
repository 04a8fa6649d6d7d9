package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// TestScenariosIdentity runs who-the-run-is-about against the real targets:
// a leaver found nowhere waits as an exception until HR's corrected event
// arrives, and a termination supersedes a role change in flight. Both HR
// events reach the run signed by the relay's key (here the sandbox API key
// the configuration trusts). `make histories` records them, the first also
// while it is still waiting (a run in flight).
func TestScenariosIdentity(t *testing.T) {
	t.Run("found-nowhere", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[21]

		typo := func(t *workflows.Termination) { t.Email = "no.such.person@example.test" }
		started := s.terminate(ctx, p, typo)
		st := s.waitStatus(ctx, p.EmployeeID, "found-nowhere exception", func(st workflows.Status) bool {
			return controlState(st, "identity/resolve") == workflows.StateException
		})
		require.True(t, st.ContainedAt.IsZero(), "nothing is called contained")
		for _, a := range st.Accounts {
			require.Equal(t, "no_account", a.State, a.Target)
			require.NotEmpty(t, a.Searched, "%s: the no-account says what was searched", a.Target)
		}
		user, _ := s.okta.User(p.Email)
		require.Equal(t, "ACTIVE", user.Status, "nobody was contained under the wrong e-mail")
		s.recordHistory(ctx, "found-nowhere-in-flight", started)

		// HR sends the same event again with the e-mail fixed.
		fixed, err := runs.StartSigned(ctx, s.temporal.Client, s.termination(p, nil), apiKey)
		require.NoError(t, err)
		require.Equal(t, runs.OutcomeCorrected, fixed.Outcome, fixed.Note)
		require.Equal(t, started.RunID, fixed.RunID)
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		require.Len(t, res.Status.Corrections, 1)
		require.Equal(t, p.Email, res.Status.Corrections[0].Email)
		require.Equal(t, control.Observed, controlOutcome(res, "identity/resolve"))
		require.Equal(t, control.Observed, controlOutcome(res, "okta/suspend"))
		_, inOkta := s.okta.User(p.Email)
		require.False(t, inOkta, "deleted from Okta after retention, once the identity was right")
		s.recordHistory(ctx, "found-nowhere", started)
	})

	t.Run("supersede", func(t *testing.T) {
		s := newStack(t)
		s.startWorkerEdited(defaultPolicy(), func(y string) string {
			return y + "roles:\n  staff:\n    okta: [all-staff]\n"
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[22]

		// A role change for cause waits for its approval ...
		role := s.terminate(ctx, p, func(t *workflows.Termination) {
			t.EventID, t.Kind, t.NewRole, t.Reason = "evt-role-"+p.EmployeeID, workflows.KindRoleChange, "staff", workflows.ReasonForCause
		})
		s.waitStatus(ctx, p.EmployeeID, "the role change's approval gate", func(st workflows.Status) bool {
			return st.Phase == workflows.PhaseAwaitingApproval
		})
		// ... when HR terminates the person: the termination takes the run over.
		term, err := runs.StartSigned(ctx, s.temporal.Client, s.termination(p, nil), apiKey)
		require.NoError(t, err)
		require.Equal(t, runs.OutcomeSuperseded, term.Outcome, term.Note)
		require.Equal(t, role.RunID, term.RunID)
		res := s.result(ctx, role)

		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		require.Equal(t, workflows.KindTermination, res.Status.Kind)
		require.Equal(t, "evt-role-"+p.EmployeeID, res.Status.Superseded)
		require.Equal(t, control.Observed, controlOutcome(res, "okta/suspend"), "the leaver is contained")
		for _, c := range res.Status.Controls {
			require.NotEqual(t, control.RoleChange, c.Phase, "the role change's steps that never ran left the plan: %s", c.ID)
		}
		_, inOkta := s.okta.User(p.Email)
		require.False(t, inOkta, "deleted from Okta after retention")
		s.recordHistory(ctx, "supersede", role)
	})
}

func controlOutcome(res workflows.Result, id string) control.Outcome {
	for _, c := range res.Status.Controls {
		if c.ID == id {
			return c.Outcome
		}
	}
	return ""
}
