package evidence

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
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

// Automatic archiving. A Temporal Schedule starts the Archiver workflow every
// minute on the deprovision task queue. It lists the Deprovision runs that
// closed within the lookback window (completed, failed, terminated, timed
// out, canceled or continued as new) and have no manifest in the store yet,
// and archives each in its own activity. Nothing is lost when a worker
// crashes: an activity that dies is retried, a run that is missed or whose
// archiving failed for good is simply found again a minute later, and Archive
// is idempotent.
const (
	ArchiverWorkflowType = "Archiver"
	ArchiverScheduleID   = "evidence-archiver"
	// DefaultLookback is how far back the archiver looks for closed runs.
	DefaultLookback = 7 * 24 * time.Hour
	// MaxBatch bounds the runs one Archiver run handles; the rest wait a minute.
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

// ArchiverInput tunes one sweep.
type ArchiverInput struct {
	Lookback time.Duration `json:"lookback,omitempty"` // default DefaultLookback
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

// Archiver archives every recently closed Deprovision run without a manifest.
func Archiver(ctx workflow.Context, in ArchiverInput) (ArchiverResult, error) {
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
	if err := workflow.ExecuteActivity(ctx, archiverActs.ListUnarchivedRuns, ListInput{Since: workflow.Now(ctx).Add(-lookback), Limit: MaxBatch}).Get(ctx, &runs); err != nil {
		return ArchiverResult{}, err
	}
	futures := make([]workflow.Future, len(runs))
	for i, r := range runs {
		futures[i] = workflow.ExecuteActivity(ctx, archiverActs.ArchiveRun, r)
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
	return res, nil
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

// EnsureSchedule creates the every-minute schedule of the Archiver, unless it
// already exists. Overlapping sweeps are skipped.
func EnsureSchedule(ctx context.Context, c client.Client) error {
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      ArchiverScheduleID,
		Spec:    client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Minute}}},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    "archives the evidence of closed Deprovision runs",
		Action: &client.ScheduleWorkflowAction{
			ID:                 ArchiverScheduleID,
			Workflow:           ArchiverWorkflowType,
			Args:               []any{ArchiverInput{}},
			TaskQueue:          workflows.TaskQueue,
			WorkflowRunTimeout: 10 * time.Minute,
		},
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evidence: create schedule %s: %w", ArchiverScheduleID, err)
	}
	return nil
}
