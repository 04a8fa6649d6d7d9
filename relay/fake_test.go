package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/offboard/offboard/workflows"
)

// fakeTemporal is the part of Temporal the relay uses, in memory. Methods
// the relay must not call are left to the nil embedded client (they panic).
type fakeTemporal struct {
	client.Client
	mu      sync.Mutex
	runs    map[string]*fakeRun // workflow id → latest run
	order   []string            // runs ExecuteWorkflow started
	all     []string            // every run, started or added
	signals []sentSignal
	down    bool
	seq     int
	// refuse makes the workflow refuse signals of this name with this
	// reason; silent makes it never log them (a worker that is down).
	refuse map[string]string
	silent bool
}

type fakeRun struct {
	id, runID string
	t         workflows.Termination
	running   bool
	released  bool
	status    workflows.Status
}

type sentSignal struct {
	WorkflowID, RunID, Name string
	Payload                 any
}

func newFakeTemporal() *fakeTemporal { return &fakeTemporal{runs: map[string]*fakeRun{}} }

func (f *fakeTemporal) setDown(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = v
}

// started lists the terminations of every run started, in order.
func (f *fakeTemporal) started() []workflows.Termination {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []workflows.Termination
	for _, id := range f.order {
		out = append(out, f.runs[id].t)
	}
	return out
}

func (f *fakeTemporal) sent() []sentSignal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentSignal(nil), f.signals...)
}

// addRun puts a run in flight, as if started earlier.
func (f *fakeTemporal) addRun(t workflows.Termination) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := workflows.WorkflowID(t.EmployeeID)
	f.runs[id] = &fakeRun{id: id, runID: fmt.Sprintf("run-%d", f.seq), t: t, running: true,
		status: workflows.Status{WorkflowID: id, EmployeeID: t.EmployeeID, Kind: t.Kind, Phase: workflows.PhaseScheduled, EffectiveAt: t.EffectiveAt}}
	f.all = append(f.all, id)
}

func (f *fakeTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, serviceerror.NewUnavailable("connection refused")
	}
	r, ok := f.runs[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found for ID: " + id)
	}
	memo, err := converter.GetDefaultDataConverter().ToPayload(r.t.EventID)
	if err != nil {
		return nil, err
	}
	status := enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	if r.running {
		status = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: r.runID},
		Status:    status,
		Memo:      &commonpb.Memo{Fields: map[string]*commonpb.Payload{"eventId": memo}},
	}}, nil
}

// DescribeWorkflow is the newer form of DescribeWorkflowExecution; runs may use either.
func (f *fakeTemporal) DescribeWorkflow(ctx context.Context, id, runID string) (*client.WorkflowExecutionDescription, error) {
	raw, err := f.DescribeWorkflowExecution(ctx, id, runID)
	if err != nil {
		return nil, err
	}
	return &client.WorkflowExecutionDescription{RawResponse: raw}, nil
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, serviceerror.NewUnavailable("connection refused")
	}
	if wf != workflows.WorkflowType || opts.TaskQueue != workflows.TaskQueue || len(args) != 1 {
		return nil, fmt.Errorf("fake: unexpected start %v %s %d args", wf, opts.TaskQueue, len(args))
	}
	t, ok := args[0].(workflows.Termination)
	if !ok {
		return nil, fmt.Errorf("fake: argument is %T, not a Termination", args[0])
	}
	// Like the server: an existing run refuses the start when it is running
	// (conflict policy FAIL) or when the reuse policy rejects duplicates.
	if prev, ok := f.runs[opts.ID]; ok && (prev.running || opts.WorkflowIDReusePolicy == enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE) {
		return nil, serviceerror.NewWorkflowExecutionAlreadyStarted("workflow execution already started", "", prev.runID)
	}
	f.seq++
	r := &fakeRun{id: opts.ID, runID: fmt.Sprintf("run-%d", f.seq), t: t, running: true,
		status: workflows.Status{WorkflowID: opts.ID, EmployeeID: t.EmployeeID, Kind: t.Kind, Phase: workflows.PhaseScheduled, EffectiveAt: t.EffectiveAt}}
	if t.Quarantined {
		r.status.Phase = workflows.PhaseQuarantined
	}
	f.runs[opts.ID] = r
	f.order = append(f.order, opts.ID)
	f.all = append(f.all, opts.ID)
	return fakeWorkflowRun{id: r.id, runID: r.runID}, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, runID, name string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return serviceerror.NewUnavailable("connection refused")
	}
	r, ok := f.runs[id]
	if !ok || !r.running {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	f.signals = append(f.signals, sentSignal{WorkflowID: id, RunID: runID, Name: name, Payload: arg})
	// Like the workflow: every signal it checks is logged, accepted or not.
	if !f.silent {
		by := ""
		if b, err := json.Marshal(arg); err == nil {
			var v struct{ By, Approver string }
			_ = json.Unmarshal(b, &v)
			by = v.By + v.Approver
		}
		entry := workflows.LogEntry{Kind: name, By: by, Detail: name + " done", Accepted: true}
		if reason, ok := f.refuse[name]; ok {
			entry.Detail, entry.Accepted = "rejected: "+reason, false
		}
		r.status.Log = append(r.status.Log, entry)
	}
	if _, refused := f.refuse[name]; refused {
		return nil
	}
	if rs, ok := arg.(workflows.Reschedule); ok {
		r.status.EffectiveAt = rs.EffectiveAt
	}
	if a, ok := arg.(workflows.Approve); ok && a.PlanDigest == workflows.QuarantineDigest {
		r.released = true
		r.status.Phase = workflows.PhaseScheduled
	}
	return nil
}

func (f *fakeTemporal) QueryWorkflow(_ context.Context, id, _ string, query string, _ ...any) (converter.EncodedValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, serviceerror.NewUnavailable("connection refused")
	}
	r, ok := f.runs[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	if query != workflows.QueryStatus {
		return nil, fmt.Errorf("fake: unknown query %s", query)
	}
	b, err := json.Marshal(r.status)
	return jsonValue(b), err
}

func (f *fakeTemporal) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, serviceerror.NewUnavailable("connection refused")
	}
	if req.GetQuery() != QuarantineQuery {
		return nil, fmt.Errorf("fake: unexpected query %q", req.GetQuery())
	}
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for _, id := range f.all {
		r := f.runs[id]
		if r.running && r.t.Quarantined && !r.released {
			resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
				Execution: &commonpb.WorkflowExecution{WorkflowId: r.id, RunId: r.runID}})
		}
	}
	return resp, nil
}

func (f *fakeTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, serviceerror.NewUnavailable("connection refused")
	}
	return &client.CheckHealthResponse{}, nil
}

type fakeWorkflowRun struct{ id, runID string }

func (r fakeWorkflowRun) GetID() string                  { return r.id }
func (r fakeWorkflowRun) GetRunID() string               { return r.runID }
func (r fakeWorkflowRun) GetFirstExecutionRunID() string { return r.runID }
func (r fakeWorkflowRun) Get(context.Context, any) error { return nil }
func (r fakeWorkflowRun) GetWithOptions(context.Context, any, client.WorkflowRunGetOptions) error {
	return nil
}

type jsonValue []byte

func (v jsonValue) HasValue() bool         { return len(v) > 0 }
func (v jsonValue) Get(valuePtr any) error { return json.Unmarshal(v, valuePtr) }
