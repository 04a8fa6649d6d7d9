package evidence

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/workflows"
)

// Automatic archiving, in two ways that add little to the Web UI's list.
//
// At close: a Deprovision run, as it finishes, starts the Archiver for
// itself (ArchiverInput.Run, workflow id evidence-<its workflow id>, left
// running when the parent closes). Its one activity is retried until the
// parent's close is recorded, then archives it.
//
// The daily sweep, the safety net: a Temporal Schedule starts the Archiver
// once a day on the deprovision task queue. It lists the Deprovision runs
// that closed within the lookback window (completed, failed, terminated,
// timed out, canceled or continued as new: those close without finishing
// their story) and have no manifest in the store yet, and archives each in
// its own activity. Nothing is lost when a worker crashes: an activity that
// dies is retried, a run that is missed or whose archiving failed for good
// is found again by the next sweep, and Archive is idempotent.
const (
	ArchiverWorkflowType = "Archiver"
	ArchiverScheduleID   = "evidence-archiver"
	// SweepEvery is how often the safety-net sweep runs.
	SweepEvery = 24 * time.Hour
	// DefaultLookback is how far back the archiver looks for closed runs.
	DefaultLookback = 7 * 24 * time.Hour
	// MaxBatch bounds the runs one Archiver run handles; a full batch that
	// made progress continues as new with the rest.
	MaxBatch = 200
)

// Activities archive runs; the worker builds it once.
type Activities struct {
	Client client.Client
	Store  Store
	Key    ed25519.PrivateKey
	KeyID  string
	// The client's converters when payloads are encrypted (nil: the defaults).
	DataConverter    converter.DataConverter
	FailureConverter converter.FailureConverter
}

// Register registers everything a worker runs on the deprovision task
// queue: the workflows and the Deprovision activities (acts), the Archiver
// and its activities (archive). The worker, the integration tests and the
// test fixtures all call it, so no worker lacks a workflow the others
// schedule. It lives here, not in workflows, because this package imports
// workflows. A worker without a signing key passes an archive with no Key:
// the Archiver still runs there, and its activities refuse (noKey).
func Register(w worker.Registry, acts *activities.Activities, archive *Activities) {
	RegisterWorkflows(w)
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	w.RegisterActivityWithOptions(archive, activity.RegisterOptions{})
}

// RegisterWorkflows registers every workflow a worker runs: the ones of
// workflows.RegisterWorkflows, and the Archiver. Replayers call it.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	workflows.RegisterWorkflows(r)
	r.RegisterWorkflowWithOptions(Archiver, workflow.RegisterOptions{Name: ArchiverWorkflowType})
}

// noKey refuses archiving on a worker configured without a signing key. It
// is not retried: the run fails visibly, and the next sweep may land on a
// worker that has the key.
func (a *Activities) noKey() error {
	if a.Key != nil && a.Store != nil && a.Client != nil {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(
		"evidence: this worker has no evidence.signingKey, so it cannot archive: give every worker on the deprovision task queue the same evidence section",
		"NoSigningKey", nil)
}

// ArchiverInput tunes one sweep, or names the one run to archive at its close.
type ArchiverInput struct {
	Lookback time.Duration `json:"lookback,omitempty"` // default DefaultLookback
	// Run is the closing run that started this Archiver (workflows.archiveAtClose).
	Run *Run `json:"run,omitempty"`
}

// ArchiverResult says what one sweep did.
type ArchiverResult struct {
	Archived []Run `json:"archived"`
	Failed   []Run `json:"failed"`
}

// ListInput asks for unarchived runs closed after Since.
type ListInput struct {
	Since time.Time `json:"since"`
	Limit int       `json:"limit"`
}

var archiverActs *Activities

// Archiver archives the run of in.Run once it has closed, or else every
// recently closed Deprovision run without a manifest.
func Archiver(ctx workflow.Context, in ArchiverInput) (ArchiverResult, error) {
	if in.Run != nil {
		return archiveAtClose(ctx, *in.Run)
	}
	lookback := in.Lookback
	if lookback <= 0 {
		lookback = DefaultLookback
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second,
			MaximumInterval: 30 * time.Second,
			MaximumAttempts: 5,
		},
	})
	var runs []Run
	listCtx := workflow.WithActivityOptions(ctx, withSummary(ctx, "find closed runs without evidence"))
	if err := workflow.ExecuteActivity(listCtx, archiverActs.ListUnarchivedRuns, ListInput{Since: workflow.Now(ctx).Add(-lookback), Limit: MaxBatch}).Get(ctx, &runs); err != nil {
		return ArchiverResult{}, err
	}
	futures := make([]workflow.Future, len(runs))
	for i, r := range runs {
		actx := workflow.WithActivityOptions(ctx, withSummary(ctx, "archive "+r.WorkflowID))
		futures[i] = workflow.ExecuteActivity(actx, archiverActs.ArchiveRun, r)
	}
	res := ArchiverResult{Archived: []Run{}, Failed: []Run{}}
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("evidence not archived; the next sweep tries again", "run", runs[i].String(), "error", err)
			res.Failed = append(res.Failed, runs[i])
			continue
		}
		res.Archived = append(res.Archived, runs[i])
	}
	if len(runs) == MaxBatch && len(res.Archived) > 0 {
		return res, workflow.NewContinueAsNewError(ctx, ArchiverWorkflowType, in)
	}
	return res, nil
}

func withSummary(ctx workflow.Context, summary string) workflow.ActivityOptions {
	o := workflow.GetActivityOptions(ctx)
	o.Summary = summary
	return o
}

// archiveAtClose archives the run that started it. That run is closing, not
// closed, when it does: the first tries may find it open and are retried.
func archiveAtClose(ctx workflow.Context, r Run) (ArchiverResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		Summary:             "archive " + r.WorkflowID + " once it has closed",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    10,
		},
	})
	if err := workflow.ExecuteActivity(ctx, archiverActs.ArchiveWhenClosed, r).Get(ctx, nil); err != nil {
		return ArchiverResult{}, fmt.Errorf("evidence of %s not archived at close (the daily sweep tries again): %w", r, err)
	}
	return ArchiverResult{Archived: []Run{r}, Failed: []Run{}}, nil
}

// ListUnarchivedRuns lists closed Deprovision runs (oldest first) that have
// no manifest in the store.
func (a *Activities) ListUnarchivedRuns(ctx context.Context, in ListInput) ([]Run, error) {
	if err := a.noKey(); err != nil {
		return nil, err
	}
	query := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus != 'Running' AND CloseTime > '%s'",
		workflows.WorkflowType, in.Since.UTC().Format(time.RFC3339))
	var closed []Run
	var token []byte
	for {
		resp, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("evidence: list closed runs: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				continue
			}
			closed = append(closed, Run{WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId()})
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	slices.Reverse(closed) // visibility lists the newest first
	out := []Run{}
	for _, r := range closed {
		if in.Limit > 0 && len(out) >= in.Limit {
			break
		}
		names, err := a.Store.List(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("evidence: store: %w", err)
		}
		if !slices.Contains(names, ManifestFile) {
			out = append(out, r)
		}
		activity.RecordHeartbeat(ctx)
	}
	return out, nil
}

// ArchiveRun archives one closed run.
func (a *Activities) ArchiveRun(ctx context.Context, r Run) (Manifest, error) {
	if err := a.noKey(); err != nil {
		return Manifest{}, err
	}
	m, err := Archive(ctx, a.Client, r.WorkflowID, r.RunID, a.Store, a.Key, a.KeyID, WithConverters(a.DataConverter, a.FailureConverter))
	if errors.Is(err, ErrNotClosed) {
		return m, temporal.NewNonRetryableApplicationError(err.Error(), "NotClosed", err)
	}
	return m, err
}

// StartArchiving starts the Archiver of one run that is finishing (workflow
// id evidence-<its workflow id>, on the run's task queue); the run calls it
// as its last step. A retry after a start that succeeded finds it started.
func (a *Activities) StartArchiving(ctx context.Context, r Run) error {
	if err := a.noKey(); err != nil {
		return err
	}
	_, err := a.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       "evidence-" + r.WorkflowID,
		TaskQueue:                                activity.GetInfo(ctx).TaskQueue,
		WorkflowRunTimeout:                       30 * time.Minute,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            "archive the evidence of " + r.WorkflowID + " once it has closed",
	}, ArchiverWorkflowType, ArchiverInput{Run: &r})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evidence: start archiving %s: %w", r, err)
	}
	return nil
}

// ArchiveWhenClosed archives a run that was closing when it was asked: open
// is a retryable error here, unlike in ArchiveRun.
func (a *Activities) ArchiveWhenClosed(ctx context.Context, r Run) error {
	if err := a.noKey(); err != nil {
		return err
	}
	_, err := Archive(ctx, a.Client, r.WorkflowID, r.RunID, a.Store, a.Key, a.KeyID, WithConverters(a.DataConverter, a.FailureConverter))
	if errors.Is(err, ErrNotClosed) {
		return temporal.NewApplicationError(err.Error(), "NotClosedYet")
	}
	return err
}

// EnsureSchedule creates the daily sweep of the Archiver, or makes an
// existing schedule daily (earlier versions swept every minute, adding a
// workflow a minute to the Web UI's list). Overlapping sweeps are skipped.
func EnsureSchedule(ctx context.Context, c client.Client) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: SweepEvery}}}
	action := &client.ScheduleWorkflowAction{
		ID:                 ArchiverScheduleID,
		Workflow:           ArchiverWorkflowType,
		Args:               []any{ArchiverInput{}},
		TaskQueue:          workflows.TaskQueue,
		WorkflowRunTimeout: 10 * time.Minute,
		StaticSummary:      "daily sweep: evidence of closed runs not archived at close",
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      ArchiverScheduleID,
		Spec:    spec,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    "the safety net: archives the evidence of closed Deprovision runs that were not archived at close",
		Action:  action,
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		err = c.ScheduleClient().GetHandle(ctx, ArchiverScheduleID).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := in.Description.Schedule
				if s.Spec != nil && len(s.Spec.Intervals) == 1 && s.Spec.Intervals[0].Every == SweepEvery {
					return nil, temporal.ErrSkipScheduleUpdate
				}
				s.Spec, s.Action = &spec, action
				return &client.ScheduleUpdate{Schedule: &s}, nil
			},
		})
	}
	if err != nil {
		return fmt.Errorf("evidence: schedule %s: %w", ArchiverScheduleID, err)
	}
	return nil
}
