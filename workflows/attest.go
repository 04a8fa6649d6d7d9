package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Attest writes the signed attestation pack for a period (issue 14): every
// leaver with a link to their evidence, SLA met or missed per control,
// exceptions and waivers with owner, reason and expiry, reconciliation
// findings and how each was resolved, drills run. A quarterly schedule
// runs it for the quarter just ended; `starter attest -now` on demand.
// The work is reading Temporal and the store, so it is one activity of the
// evidence package, called by name.
const (
	AttestWorkflowType       = "Attest"
	AttestScheduleID         = "attest"
	ActivityWriteAttestation = "WriteAttestation"
)

// AttestInput is the period, [From, To); zero means the last full quarter.
type AttestInput struct {
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
}

// AttestRequest is what the activity is asked for.
type AttestRequest struct {
	ID   string    `json:"id"` // the pack's name in the store
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// AttestSummary is what the pack holds, in numbers, and where it is.
type AttestSummary struct {
	Where          string `json:"where"`
	Leavers        int    `json:"leavers"`
	SLAMissed      int    `json:"slaMissed"`
	OpenExceptions int    `json:"openExceptions"`
	Waivers        int    `json:"waivers"`
	Findings       int    `json:"findings"`
	FindingsOpen   int    `json:"findingsOpen"`
	Drills         int    `json:"drills"`
	DrillsFailed   int    `json:"drillsFailed"`
	// Gaps say what the pack could not cover (a run without evidence, an
	// unreadable run), so it never reads complete when it is not.
	Gaps []string `json:"gaps,omitempty"`
}

// Attest is the workflow.
func Attest(ctx workflow.Context, in AttestInput) (AttestSummary, error) {
	from, to := in.From, in.To
	if from.IsZero() || to.IsZero() {
		from, to = LastQuarter(workflow.Now(ctx))
	}
	if !from.Before(to) {
		return AttestSummary{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("attest: the period %s to %s is empty", from, to), "BadInput", nil)
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		Summary:             fmt.Sprintf("attestation pack %s to %s", from.Format(time.DateOnly), to.Format(time.DateOnly)),
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, MaximumInterval: 5 * time.Minute},
	})
	req := AttestRequest{ID: from.UTC().Format("20060102") + "-" + to.UTC().Format("20060102") + "-" + workflow.GetInfo(ctx).WorkflowExecution.RunID,
		From: from.UTC(), To: to.UTC()}
	var sum AttestSummary
	err := workflow.ExecuteActivity(ctx, ActivityWriteAttestation, req).Get(ctx, &sum)
	return sum, err
}

// LastQuarter is the last calendar quarter (UTC) that ended before now.
func LastQuarter(now time.Time) (time.Time, time.Time) {
	now = now.UTC()
	q := (int(now.Month()) - 1) / 3
	to := time.Date(now.Year(), time.Month(q*3+1), 1, 0, 0, 0, 0, time.UTC)
	return to.AddDate(0, -3, 0), to
}
