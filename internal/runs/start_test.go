package runs

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/workflows"
)

// stubDeprovision stands in for Deprovision: it keeps the HR events it is
// sent and runs until told to finish.
func stubDeprovision(ctx workflow.Context, t workflows.Termination) error {
	var got []workflows.HREvent
	if err := workflow.SetQueryHandler(ctx, "hr-events", func() ([]workflows.HREvent, error) { return got, nil }); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, workflows.QueryStatus, func() (workflows.Status, error) {
		return workflows.Status{Kind: t.Kind, EmployeeID: t.EmployeeID}, nil
	}); err != nil {
		return err
	}
	events := workflow.GetSignalChannel(ctx, workflows.SignalHREvent)
	finish := workflow.GetSignalChannel(ctx, "finish")
	for done := false; !done; {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(events, func(c workflow.ReceiveChannel, _ bool) {
			var ev workflows.HREvent
			c.Receive(ctx, &ev)
			got = append(got, ev)
		})
		sel.AddReceive(finish, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); done = true })
		sel.Select(ctx)
	}
	return nil
}

func devClient(t *testing.T) client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	c := devserver.Start(t).Client
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(stubDeprovision, workflow.RegisterOptions{Name: workflows.WorkflowType})
	w.RegisterWorkflowWithOptions(workflows.Guard, workflow.RegisterOptions{Name: workflows.GuardWorkflowType})
	w.RegisterWorkflowWithOptions(workflows.Delivery, workflow.RegisterOptions{Name: workflows.DeliveryWorkflowType})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return c
}

func hrEvents(t *testing.T, c client.Client, st Started) []workflows.HREvent {
	t.Helper()
	v, err := c.QueryWorkflow(t.Context(), st.WorkflowID, st.RunID, "hr-events")
	require.NoError(t, err)
	var got []workflows.HREvent
	require.NoError(t, v.Get(&got))
	return got
}

func termination(employee, event, email string, kind workflows.Kind) workflows.Termination {
	t := workflows.Termination{EventID: event, Source: "generic", EmployeeID: employee, Email: email, Kind: kind,
		EffectiveAt: time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)}
	if kind == workflows.KindRoleChange {
		t.NewRole = "analyst"
	}
	return t
}

// hrKey stands for the relay's key: what Start sends to a run in flight is signed by it.
var hrKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func signedStart(ctx context.Context, c client.Client, t workflows.Termination) (Started, error) {
	return StartSigned(ctx, c, t, hrKey)
}

func TestStartAnswersEveryLaterEvent(t *testing.T) {
	c := devClient(t)
	ctx := t.Context()

	// Issue 12: a termination while a role change is in flight is not a
	// duplicate: it reaches that run.
	role, err := signedStart(ctx, c, termination("E100", "evt-role", "ada@example.test", workflows.KindRoleChange))
	require.NoError(t, err)
	require.Equal(t, OutcomeStarted, role.Outcome)
	term := termination("E100", "evt-term", "ada@example.test", workflows.KindTermination)
	st, err := signedStart(ctx, c, term)
	require.NoError(t, err)
	assert.Equal(t, OutcomeSuperseded, st.Outcome)
	assert.False(t, st.Duplicate)
	assert.Equal(t, role.RunID, st.RunID)
	require.Eventually(t, func() bool { return len(hrEvents(t, c, st)) == 1 }, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, "evt-term", hrEvents(t, c, st)[0].Termination.EventID)
	signed := hrEvents(t, c, st)[0].Signed
	require.NotNil(t, signed, "the event reaches the run signed")
	v, err := decision.Verify(*signed, []decision.Key{{Public: hrKey.Public().(ed25519.PublicKey)}})
	require.NoError(t, err)
	assert.Equal(t, role.RunID, v.RunID, "signed for the run it was sent to")
	assert.Equal(t, decision.KindHREvent, v.Kind)

	// Without the relay's key nothing that changes the run is sent.
	_, err = Start(ctx, c, termination("E100", "evt-term-2", "ada@example.test", workflows.KindTermination))
	require.ErrorIs(t, err, ErrUnsigned)
	assert.Len(t, hrEvents(t, c, st), 1)

	// Issue 11: the same event with a corrected e-mail is applied to the run;
	// so is a new event that corrects the identity; a true redelivery is not.
	first, err := signedStart(ctx, c, termination("E200", "evt-1", "ada@exmaple.test", workflows.KindTermination))
	require.NoError(t, err)
	fixed := termination("E200", "evt-1", "ada@example.test", workflows.KindTermination)
	st, err = signedStart(ctx, c, fixed)
	require.NoError(t, err)
	assert.Equal(t, OutcomeCorrected, st.Outcome)
	assert.True(t, st.SameEvent)
	assert.Equal(t, first.RunID, st.RunID)

	again, err := signedStart(ctx, c, termination("E200", "evt-1", "ada@exmaple.test", workflows.KindTermination))
	require.NoError(t, err)
	assert.Equal(t, OutcomeDuplicate, again.Outcome, "the run's own identity again changes nothing")
	assert.True(t, again.Duplicate)

	renamed := termination("E200", "evt-2", "ada@exmaple.test", workflows.KindTermination)
	renamed.Accounts = map[string]string{"okta": "00u1ada"}
	st, err = signedStart(ctx, c, renamed)
	require.NoError(t, err)
	assert.Equal(t, OutcomeCorrected, st.Outcome, "a new event correcting the identity")
	st, err = signedStart(ctx, c, termination("E200", "evt-3", " ADA@exmaple.test ", workflows.KindTermination))
	require.NoError(t, err)
	assert.Equal(t, OutcomeDuplicate, st.Outcome, "the e-mail is compared trimmed and in lower case")
	require.Eventually(t, func() bool { return len(hrEvents(t, c, first)) == 2 }, 10*time.Second, 50*time.Millisecond)

	// A closed run gives way to a new one.
	require.NoError(t, c.SignalWorkflow(ctx, first.WorkflowID, first.RunID, "finish", nil))
	require.Eventually(t, func() bool {
		d, err := c.DescribeWorkflow(ctx, first.WorkflowID, first.RunID)
		return err == nil && d.RawResponse.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	}, 10*time.Second, 50*time.Millisecond)
	st, err = signedStart(ctx, c, termination("E200", "evt-4", "ada@example.test", workflows.KindTermination))
	require.NoError(t, err)
	assert.Equal(t, OutcomeStarted, st.Outcome)
	assert.NotEqual(t, first.RunID, st.RunID)
}

// Every relay replica and the CLI ask the same guard: however they race,
// exactly Max events escape quarantine, and a retried admission is counted once.
func TestAdmitIsExactUnderConcurrency(t *testing.T) {
	c := devClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	eff := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	free, held := 0, 0
	first := map[int]workflows.AdmitVerdict{}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := Admit(ctx, c, workflows.Admission{Key: fmt.Sprintf("start|E%d", i), Class: workflows.GuardRemoval,
				EmployeeID: fmt.Sprint("E", i), EffectiveAt: eff.Add(time.Duration(i) * time.Hour), Max: 5, Window: 10 * time.Minute})
			assert.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			first[i] = v
			if v.Quarantined {
				held++
			} else {
				free++
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 5, free)
	assert.Equal(t, 25, held)

	// A retry (the same key) gets the first verdict, even with other limits.
	for _, i := range []int{0, 29} {
		v, err := Admit(ctx, c, workflows.Admission{Key: fmt.Sprintf("start|E%d", i), Class: workflows.GuardRemoval, EmployeeID: fmt.Sprint("E", i),
			EffectiveAt: eff.Add(time.Duration(i) * time.Hour), Max: 100, Window: 10 * time.Minute})
		require.NoError(t, err)
		assert.Equal(t, first[i].Quarantined, v.Quarantined, "E%d", i)
	}
	var st workflows.GuardState
	q, err := c.QueryWorkflow(ctx, workflows.GuardWorkflowID, "", workflows.QueryGuard)
	require.NoError(t, err)
	require.NoError(t, q.Get(&st))
	assert.Len(t, st.Entries, 30, "counted once each")

	_, err = Admit(ctx, c, workflows.Admission{Key: "x", Class: "all", Max: 5, Window: time.Minute})
	assert.ErrorContains(t, err, "class")
	assert.NotErrorIs(t, err, ErrUnavailable, "a refused admission is not an outage")
}

func TestDeliveryMemory(t *testing.T) {
	c := devClient(t)
	ctx := t.Context()
	seen, err := DeliverySeen(ctx, c, "abc123")
	require.NoError(t, err)
	assert.False(t, seen)
	require.NoError(t, RememberDelivery(ctx, c, "abc123", time.Now().Add(10*time.Minute)))
	require.NoError(t, RememberDelivery(ctx, c, "abc123", time.Now().Add(10*time.Minute)), "remembering twice is harmless")
	seen, err = DeliverySeen(ctx, c, "abc123")
	require.NoError(t, err)
	assert.True(t, seen)
}
