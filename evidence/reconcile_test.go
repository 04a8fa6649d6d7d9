package evidence_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/scimapp"
	"github.com/offboard/offboard/workflows"
)

const reconcileConfig = `
sandbox: true
policy:
  containmentSLA: 15m
  credentialsSLA: 24h
  approval: {privileged: true, forCause: true, timeout: 1h}
  retention: 24h
  reverify: []
  controlAttempts: 2
people:
  approvers: [alice@example.test]
  security: [sec@example.test]
evidence: {dir: unused}
relay: {blastRadius: {max: 1, window: 10m}}
reconcile:
  roster: {kind: sandbox, sandboxSize: 25, sandboxLeavers: [E1003, E1004, E1005, E1006]}
  servicePrefixes: [svc-]
  serviceOwners: {svc-deploy@example.test: ops@example.test}
  dueIn: 72h
targets:
  - name: okta
    kind: okta
    okta: {orgURL: http://127.0.0.1:1, token: "sandbox:x"}
`

// The sandbox company of 25 (E1003 and E1004 have left) with, in Okta, an
// orphan HR does not know, a service account nobody owns and one that ops
// owns; in a SCIM app, the first 10 people and the orphan. E1003 left
// before: their run is closed, yet their accounts are active again (drift).
// E1004 was never offboarded. E1005 leaves tomorrow: their run is in flight.
// E1006 drifted too, but the blast-radius guard (max 1) quarantines that
// second re-containment: it waits for security. One Reconcile on a real dev server, two pages
// per run before it continues as new.
func TestReconcileOnDevServer(t *testing.T) {
	srv := devserver.Start(t)
	ctx := t.Context()
	cfg, err := config.Parse([]byte(reconcileConfig), "reconcile test")
	require.NoError(t, err)

	roster := demo.People(25)
	orphan := demo.Person{EmployeeID: "X1", First: "Mallory", Last: "Orphan", Login: "mallory.orphan", Email: "mallory.orphan@example.test"}
	svc := demo.Person{EmployeeID: "S1", First: "Build", Last: "Bot", Login: "svc-build", Email: "svc-build@example.test"}
	owned := demo.Person{EmployeeID: "S2", First: "Deploy", Last: "Bot", Login: "svc-deploy", Email: "svc-deploy@example.test"}
	osim := oktasim.New(oktasim.Options{Token: "tok", People: append(append([]demo.Person{}, roster...), orphan, svc, owned)})
	osrv := httptest.NewServer(osim.Handler())
	t.Cleanup(osrv.Close)
	oc, err := okta.New(ctx, okta.Config{Name: "okta", OrgURL: osrv.URL, Token: "tok", AllowHTTP: true})
	require.NoError(t, err)
	app, err := scimapp.New(scimapp.Options{Name: "crm", Bearer: "tok", PatchSupported: true, People: append(append([]demo.Person{}, roster[:10]...), orphan)})
	require.NoError(t, err)
	ssrv := httptest.NewServer(app.Handler())
	t.Cleanup(ssrv.Close)
	sc, err := scim.New(scim.Config{Name: "crm", BaseURL: ssrv.URL + "/scim/v2", Bearer: "tok"})
	require.NoError(t, err)

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	store := evidence.Dir{Root: t.TempDir()}
	w := worker.New(srv.Client, workflows.TaskQueue, worker.Options{})
	evidence.Register(w, activities.New(cfg, []control.Target{oc, sc}),
		&evidence.Activities{Client: srv.Client, Store: store, Key: priv, KeyID: evidence.KeyID(pub)})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	// E1003's and E1006's earlier runs, closed.
	leaver := roster[2]
	var old client.WorkflowRun
	for _, p := range []demo.Person{roster[5], leaver} {
		old, err = srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.WorkflowID(p.EmployeeID), TaskQueue: workflows.TaskQueue},
			workflows.WorkflowType, workflows.Termination{EventID: "evt-old", Source: "cli", EmployeeID: p.EmployeeID, Email: p.Email,
				Kind: workflows.KindTermination, EffectiveAt: time.Now().Add(time.Hour).UTC()})
		require.NoError(t, err)
		require.NoError(t, srv.Client.TerminateWorkflow(ctx, old.GetID(), old.GetRunID(), "closed for the test"))
	}
	tomorrow := roster[4]
	_, err = srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.WorkflowID(tomorrow.EmployeeID), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowType, workflows.Termination{EventID: "evt-tomorrow", Source: "cli", EmployeeID: tomorrow.EmployeeID, Email: tomorrow.Email,
			Kind: workflows.KindTermination, EffectiveAt: time.Now().Add(24 * time.Hour).UTC()})
	require.NoError(t, err)
	leaverUser, ok := osim.User(leaver.Email)
	require.True(t, ok)

	run, err := srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reconcile-test", TaskQueue: workflows.TaskQueue},
		workflows.ReconcileWorkflowType, workflows.ReconcileInput{PagesPerActivity: 1, Limit: 5, ActivitiesPerRun: 2})
	require.NoError(t, err)
	firstRun := run.GetRunID()
	var res workflows.ReconcileResult
	require.NoError(t, run.Get(ctx, &res))
	rep := res.Report

	require.Len(t, rep.Targets, 2)
	assert.Equal(t, activities.ReconcileCounts{Accounts: 28, Pages: 6, Matched: 21, ServiceOwned: 1, LeaverActive: 4, Orphans: 1, ServiceNoOwner: 1}, rep.Targets[0].Counts)
	assert.Equal(t, activities.ReconcileCounts{Accounts: 11, Pages: 3, Matched: 6, LeaverActive: 4, Orphans: 1}, rep.Targets[1].Counts)
	assert.True(t, rep.Targets[0].Done && rep.Targets[1].Done)
	assert.Equal(t, map[string]int{activities.FindingLeaverActive: 8, activities.FindingOrphan: 2, activities.FindingServiceNoOwner: 1}, rep.FindingTally)

	// It continued as new: more than one run in the chain.
	desc, err := srv.Client.DescribeWorkflow(ctx, "reconcile-test", "")
	require.NoError(t, err)
	assert.NotEqual(t, firstRun, desc.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId())
	recordHistory(t, srv.Client, "reconcile-test", firstRun, "reconcile-continued.v1")
	recordHistory(t, srv.Client, "reconcile-test", desc.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "reconcile-drift.v1")

	byKey := map[string]workflows.ReconcileItem{}
	for _, it := range rep.Items {
		byKey[it.Target+"/"+it.Kind+"/"+it.EmployeeID+it.Login] = it
	}
	drift := byKey["okta/leaver_active/E1003"+leaver.Email]
	assert.Equal(t, workflows.OutcomeDrift, drift.Outcome)
	assert.Equal(t, workflows.WorkflowID("E1003"), drift.WorkflowID)
	assert.Equal(t, workflows.OutcomeInFlight, byKey["okta/leaver_active/E1005"+tomorrow.Email].Outcome)
	never := byKey["crm/leaver_active/E1004"+roster[3].Email]
	assert.Equal(t, workflows.OutcomeNeverOffboard, never.Outcome)
	assert.Equal(t, "sec@example.test", never.Owner)
	assert.Equal(t, rep.StartedAt.Add(72*time.Hour), never.DueAt)
	assert.Contains(t, never.Action, "starter terminate -employee E1004")
	o := byKey["okta/orphan/"+orphan.Email]
	assert.Contains(t, o.Outcome, "no active HR record")
	assert.Equal(t, "sec@example.test", o.Owner)
	assert.False(t, o.DueAt.IsZero())
	s := byKey["okta/service_without_owner/"+svc.Email]
	assert.Contains(t, s.Outcome, "without owner")

	// Drift: a new run re-contains E1003, and does: Okta suspends them.
	now, err := srv.Client.DescribeWorkflow(ctx, workflows.WorkflowID("E1003"), "")
	require.NoError(t, err)
	assert.NotEqual(t, old.GetRunID(), now.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId())
	if !assert.Eventually(t, func() bool {
		return slices.ContainsFunc(osim.Transitions(leaverUser.ID), func(tr oktasim.Transition) bool { return tr.Action == "suspend" })
	}, 30*time.Second, 100*time.Millisecond, "the drifted leaver is contained again") {
		v, err := srv.Client.QueryWorkflow(ctx, workflows.WorkflowID("E1003"), "", workflows.QueryStatus)
		require.NoError(t, err)
		var st workflows.Status
		require.NoError(t, v.Get(&st))
		t.Fatalf("the re-containment run: phase %s, gates %+v, controls %+v", st.Phase, st.PendingGates, st.Controls)
	}
	// E1006's re-containment was started, quarantined: it waits for security.
	assert.Equal(t, workflows.OutcomeDrift, byKey["okta/leaver_active/E1006"+roster[5].Email].Outcome)
	st6, err := runs.Status(ctx, srv.Client, "E1006")
	require.NoError(t, err)
	assert.Equal(t, workflows.PhaseQuarantined, st6.Phase)
	// E1004 was not offboarded: policy "report" leaves it to a person.
	_, err = srv.Client.DescribeWorkflow(ctx, workflows.WorkflowID("E1004"), "")
	require.Error(t, err)

	// The signed report: verifies, and a changed byte does not.
	assert.Equal(t, "reconcile/"+rep.ID, res.Where)
	assert.Equal(t, firstRun, rep.ID, "named after the first run of the chain")
	dir := t.TempDir()
	require.NoError(t, evidence.ExportReport(ctx, store, "reconcile", rep.ID, dir))
	m, err := evidence.VerifyReport(dir, pub)
	require.NoError(t, err)
	assert.Len(t, m.Files, 3)
	csv, err := os.ReadFile(filepath.Join(dir, evidence.ReconcileCSV))
	require.NoError(t, err)
	assert.Contains(t, string(csv), "mallory.orphan@example.test")
	require.NoError(t, os.WriteFile(filepath.Join(dir, evidence.ReconcileCSV), append(csv, 'x'), 0o644))
	_, err = evidence.VerifyReport(dir, pub)
	require.ErrorIs(t, err, evidence.ErrTampered)

	// Once the re-containment has removed access, a second reconciliation
	// finds E1003 active nowhere: the drift is gone.
	require.Eventually(t, func() bool {
		v, err := srv.Client.QueryWorkflow(ctx, workflows.WorkflowID("E1003"), "", workflows.QueryStatus)
		var st workflows.Status
		return err == nil && v.Get(&st) == nil && st.Phase == workflows.PhaseRetention
	}, 30*time.Second, 100*time.Millisecond, "the re-containment run reaches retention")
	run2, err := srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reconcile-test-2", TaskQueue: workflows.TaskQueue},
		workflows.ReconcileWorkflowType, workflows.ReconcileInput{})
	require.NoError(t, err)
	var res2 workflows.ReconcileResult
	require.NoError(t, run2.Get(ctx, &res2))
	assert.Equal(t, 6, res2.Report.FindingTally[activities.FindingLeaverActive], "E1004, E1005 and the quarantined E1006, in both targets")
	for _, it := range res2.Report.Items {
		assert.NotEqual(t, "E1003", it.EmployeeID, "%s still active in %s", it.Login, it.Target)
	}
}

// The worker creates the schedule idempotently; a changed interval updates it.
func TestEnsureReconcileSchedule(t *testing.T) {
	srv := devserver.Start(t)
	ctx := t.Context()
	require.NoError(t, evidence.EnsureReconcileSchedule(ctx, srv.Client, 24*time.Hour))
	require.NoError(t, evidence.EnsureReconcileSchedule(ctx, srv.Client, 24*time.Hour))
	h := srv.Client.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID)
	d, err := h.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, 24*time.Hour, d.Schedule.Spec.Intervals[0].Every)
	assert.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, d.Schedule.Policy.Overlap)
	require.NoError(t, evidence.EnsureReconcileSchedule(ctx, srv.Client, 12*time.Hour))
	d, err = h.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, 12*time.Hour, d.Schedule.Spec.Intervals[0].Every)
}
