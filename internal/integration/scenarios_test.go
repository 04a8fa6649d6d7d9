package integration

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/workflows"
)

// TestScenarios runs one termination per branch of the policy against a real
// dev server, worker and simulators. `make histories` records each run's
// history into testdata/histories for the replay tests.
func TestScenarios(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[0]

		started := s.terminate(ctx, p, nil)
		// Contained, and past the wait for the rights and non-human discovery read beside it.
		st := s.waitStatus(ctx, p.EmployeeID, "containment", func(st workflows.Status) bool {
			return !st.ContainedAt.IsZero() && st.Phase != workflows.PhaseContaining
		})
		require.Contains(t, []workflows.Phase{workflows.PhaseRemoving, workflows.PhaseRetention, workflows.PhaseDeleting, workflows.PhaseCompleted}, st.Phase)
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		require.False(t, res.SLABreached)
		_, inOkta := s.okta.User(p.Email)
		require.False(t, inOkta, "deleted from Okta after retention")
		_, inCRM := s.crm.User(p.Email)
		require.False(t, inCRM, "deleted from the SCIM app after retention")
		outcomes := map[string]control.Outcome{}
		for _, r := range res.Receipts {
			outcomes[r.ControlID] = r.Outcome
		}
		require.Equal(t, control.Observed, outcomes["okta/suspend"])
		require.Equal(t, control.Acknowledged, outcomes["okta/clear_sessions"])
		require.Equal(t, control.Observed, outcomes["scim-wiki/deactivate"])
		require.Equal(t, control.Observed, outcomes["scim-crm/delete"])
		require.Equal(t, control.Observed, outcomes["aws/deny_all_policy"])
		require.Equal(t, control.Observed, outcomes["aws/delete_user"])
		require.Equal(t, control.Observed, outcomes["ad/disable"])
		require.Equal(t, control.Observed, outcomes["entra/disable"])
		require.Equal(t, control.Observed, outcomes["entra/revoke_sessions"], "read back signInSessionsValidFromDateTime")
		_, inEntra := s.graph.User(p.Email)
		require.False(t, inEntra, "the Entra user is deleted after retention")
		_, inAWS := s.aws.User(p.Login)
		require.False(t, inAWS, "the IAM user is deleted after retention")
		entry, inAD := s.ad.User(p.Login)
		require.False(t, inAD, "the AD user is deleted after retention: %v", entry)
		sa := s.searchAttributes(ctx, started)
		require.Equal(t, p.EmployeeID, sa["EmployeeId"])
		require.Equal(t, "completed", sa["DeprovisionStatus"])
		require.Equal(t, "false", sa["SLABreached"])

		again, err := runs.Start(ctx, s.temporal.Client, s.termination(p, nil))
		require.NoError(t, err)
		require.True(t, again.Duplicate, "the same HR event never starts a second run")
		require.Equal(t, started.RunID, again.RunID)

		// Targets with limits run on their own queues; the others on the workflow's.
		queues := s.scheduledQueues(ctx, started)
		require.Equal(t, []string{"deprovision", "deprovision-ad", "deprovision-okta"}, slices.Sorted(maps.Keys(queues)))
		// Okta: resolve, its rights read beside containment, 3 containment,
		// the non-human discovery, 2 removal, delete, 3 re-verifications.
		require.Equal(t, 12, queues["deprovision-okta"], "%v", queues)
		require.Equal(t, 6, queues["deprovision-ad"], "resolve, disable, non-human discovery, remove_groups, delete, re-verification: %v", queues)
		s.recordHistory(ctx, "plain", started)
	})

	t.Run("approval", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[9] // privileged

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Privileged = true })
		st := s.waitStatus(ctx, p.EmployeeID, "approval gate", func(st workflows.Status) bool { return st.Phase == workflows.PhaseAwaitingApproval })
		user, _ := s.okta.User(p.Email)
		require.Equal(t, "SUSPENDED", user.Status, "contained before approval")
		require.NotEmpty(t, user.Groups, "removal waits for approval")
		s.waitSearchAttribute(ctx, started, "DeprovisionStatus", "awaiting_approval")
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateApprove, "alice@example.test", st.PlanDigest, workflows.ApproveRequest{Decision: "approve"})
		require.True(t, v.Accepted, "%+v", v)
		res := s.result(ctx, started)
		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		require.Len(t, res.Status.Approvals, 1)
		require.Equal(t, st.PlanDigest, res.Status.Approvals[0].PlanDigest)
		s.recordHistory(ctx, "approval", started)
	})

	t.Run("hold", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[3] // people[1] owns non-human identities (demo.ServiceOwner): their run waits for an approval

		started := s.terminate(ctx, p, func(t *workflows.Termination) {
			t.LegalHold = &workflows.Hold{By: "legal@example.test", CaseRef: "CASE-7"}
		})
		s.waitStatus(ctx, p.EmployeeID, "on hold", func(st workflows.Status) bool { return st.Phase == workflows.PhaseOnHold })
		user, _ := s.okta.User(p.Email)
		require.Equal(t, "SUSPENDED", user.Status, "containment runs under a hold")
		s.waitSearchAttribute(ctx, started, "LegalHold", "true")
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateReleaseHold, "legal@example.test", "", workflows.Release{CaseRef: "CASE-7"})
		require.True(t, v.Accepted, "%+v", v)
		res := s.result(ctx, started)
		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		s.waitSearchAttribute(ctx, started, "LegalHold", "false")
		s.recordHistory(ctx, "hold", started)
	})

	t.Run("exception-waive", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[2]
		// Okta refuses the suspend once with 403: non-retryable, so an exception.
		s.okta.Faults().Add(fault.Rule{Method: "POST", PathPrefix: "/api/v1/users/", Status: 403, Count: 1})

		started := s.terminate(ctx, p, nil)
		// Other controls keep going while one waits for a person.
		s.waitStatus(ctx, p.EmployeeID, "exception beside finished controls", func(st workflows.Status) bool {
			return controlState(st, "okta/suspend") == workflows.StateException &&
				controlState(st, "scim-crm/deactivate") == workflows.StateDone && controlState(st, "aws/deny_all_policy") == workflows.StateDone
		})
		s.waitSearchAttribute(ctx, started, "DeprovisionStatus", "exception")
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateWaive, "alice@example.test", "", workflows.Waive{
			Control: "okta/suspend", Reason: "break-glass account, SEC-12", ExpiresAt: time.Now().Add(2 * time.Second)})
		require.True(t, v.Accepted, "%+v", v)
		res := s.result(ctx, started)
		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		var waived bool
		for _, l := range res.Status.Log {
			waived = waived || (l.Kind == workflows.UpdateWaive && l.Accepted && l.By == "alice@example.test")
		}
		require.True(t, waived)
		require.Equal(t, workflows.StateDone, controlState(res.Status, "okta/suspend"), "the expired waiver re-opened it and it then held")
		s.recordHistory(ctx, "exception-waive", started)
	})

	t.Run("rescind", func(t *testing.T) {
		s := newStack(t)
		s.startWorker(defaultPolicy())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[3]

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.EffectiveAt = time.Now().Add(time.Hour).UTC() })
		st := s.waitStatus(ctx, p.EmployeeID, "scheduled", func(st workflows.Status) bool { return st.Phase == workflows.PhaseScheduled })
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateRescind, "hr@example.test", "", workflows.Rescind{Reason: "offer accepted", EventID: st.EventID})
		require.True(t, v.Accepted, "%+v", v)
		require.Equal(t, "rescinded: offer accepted", v.Detail)
		require.Equal(t, started.RunID, v.RunID)
		res := s.result(ctx, started)
		require.Equal(t, workflows.PhaseRescinded, res.Phase)
		user, _ := s.okta.User(p.Email)
		require.Equal(t, "ACTIVE", user.Status)
		require.Empty(t, s.okta.Transitions(user.ID), "nothing touched")
		s.recordHistory(ctx, "rescind", started)

		// A later, different HR event for the same person starts a new run.
		again, err := runs.Start(ctx, s.temporal.Client, s.termination(p, func(t *workflows.Termination) {
			t.EventID, t.EffectiveAt = "evt-later-"+p.EmployeeID, time.Now().Add(time.Hour).UTC()
		}))
		require.NoError(t, err)
		require.False(t, again.Duplicate)
		require.NotEqual(t, started.RunID, again.RunID)
		// A decision the run refuses comes back with its reason; the earlier
		// rescind, naming the earlier event, does not reach the newer run.
		v = s.decide(ctx, p.EmployeeID, workflows.UpdateApprove, "mallory@example.test", "sha256:whatever", workflows.ApproveRequest{Decision: "approve"})
		require.False(t, v.Accepted)
		require.Contains(t, v.Reason, "mallory@example.test")
		v = s.decide(ctx, p.EmployeeID, workflows.UpdateRescind, "hr@example.test", "", workflows.Rescind{EventID: st.EventID})
		require.False(t, v.Accepted)
		require.Contains(t, v.Reason, "not this run's event")
		v = s.decide(ctx, p.EmployeeID, workflows.UpdateRescind, "hr@example.test", "", workflows.Rescind{EventID: "evt-later-" + p.EmployeeID})
		require.True(t, v.Accepted, "%+v", v)
		require.Equal(t, again.RunID, v.RunID)
	})

	t.Run("flaky-targets", func(t *testing.T) {
		s := newStack(t)
		pol := defaultPolicy()
		pol.attempts, pol.retryInitial = 30, "50ms"
		s.startWorker(pol)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p := s.people[6]
		// 30% of every HTTP target's calls fail transiently, as a bad day looks.
		for _, f := range []*fault.Injector{s.okta.Faults(), s.graph.Faults(), s.crm.Faults(), s.wiki.Faults(), s.aws.Faults()} {
			f.Add(fault.Rule{Status: 503, Probability: 0.3})
		}

		started := s.terminate(ctx, p, nil)
		res := s.result(ctx, started)
		require.Equal(t, workflows.PhaseCompleted, res.Phase)
		var retried int
		for _, c := range res.Status.Controls {
			require.Equal(t, workflows.StateDone, c.State, c.ID)
			require.Contains(t, []control.Outcome{control.Observed, control.Acknowledged}, c.Outcome, c.ID)
			if c.Receipt != nil && c.Receipt.Attempt > 1 {
				retried++
			}
		}
		require.Positive(t, retried, "the faults were really hit")
		user, _ := s.okta.User(p.Email)
		require.Empty(t, user.ID, "deleted in the end")
		s.recordHistory(ctx, "flaky-targets", started)
	})

	t.Run("sla-breach", func(t *testing.T) {
		s := newStack(t)
		pol := defaultPolicy()
		pol.containmentSLA = "1s"
		s.startWorker(pol)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[4]
		// The suspend call is slow: containment finishes after its SLA.
		s.okta.Faults().Add(fault.Rule{Method: "POST", PathPrefix: "/api/v1/users/", Latency: 1500 * time.Millisecond, Count: 1})

		started := s.terminate(ctx, p, nil)
		res := s.result(ctx, started)
		require.True(t, res.SLABreached)
		// The containment deadline, wherever it is listed (its watcher may
		// start after the credentials one, once admin rights are read).
		i := slices.IndexFunc(res.Status.Deadlines, func(d workflows.Deadline) bool { return d.Phase == "containment" })
		require.GreaterOrEqual(t, i, 0, "a containment deadline")
		require.True(t, res.Status.Deadlines[i].Breached)
		require.False(t, res.Status.Deadlines[i].MetAt.IsZero(), "met late, and when is recorded")
		s.waitSearchAttribute(ctx, started, "SLABreached", "true")
		s.recordHistory(ctx, "sla-breach", started)
	})

	t.Run("rejected", func(t *testing.T) {
		s := newStack(t)
		pol := defaultPolicy()
		pol.reverify = "[5s]"
		s.startWorker(pol)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := s.people[19] // privileged

		started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Privileged = true })
		st := s.waitStatus(ctx, p.EmployeeID, "approval gate", func(st workflows.Status) bool { return st.Phase == workflows.PhaseAwaitingApproval })
		// While the plan waits, an Okta admin unsuspends the user; then the
		// approver rejects the removal. Access must stay contained all the same.
		user, _ := s.okta.User(p.Email)
		s.oktaLifecycle(ctx, user.ID, "unsuspend")
		user, _ = s.okta.User(p.Email)
		require.Equal(t, "ACTIVE", user.Status)
		v := s.decide(ctx, p.EmployeeID, workflows.UpdateApprove, "alice@example.test", st.PlanDigest, workflows.ApproveRequest{Decision: "reject", Reason: "wrong person"})
		require.True(t, v.Accepted, "%+v", v)
		res := s.result(ctx, started)

		require.Equal(t, workflows.PhaseRejected, res.Phase)
		user, _ = s.okta.User(p.Email)
		require.Equal(t, "SUSPENDED", user.Status, "the re-verification after the rejection re-contained the drift")
		require.NotEmpty(t, user.Groups, "a rejected plan removes nothing")
		require.Len(t, res.Status.Drift, 1, "%v", res.Status.Drift)
		require.Contains(t, res.Status.Drift[0], "okta/suspend drifted")
		require.Equal(t, "rejected", s.searchAttributes(ctx, started)["DeprovisionStatus"])
		s.recordHistory(ctx, "rejected", started)
	})
}

// oktaLifecycle changes a user's status through the Okta API, as an admin would.
func (s *stack) oktaLifecycle(ctx context.Context, userID, op string) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.oktaURL+"/api/v1/users/"+userID+"/lifecycle/"+op, nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "SSWS "+oktaToken)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode, "okta %s %s", op, userID)
}

func controlState(st workflows.Status, id string) workflows.ControlState {
	for _, c := range st.Controls {
		if c.ID == id {
			return c.State
		}
	}
	return ""
}
