package runs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/workflows"
)

// Exception is one open exception or waiver of a Deprovision run, for the
// exception registry (`starter exceptions`, GET /exceptions). Temporal is the
// store: visibility finds the runs, the status query says what is open.
type Exception struct {
	Kind       string    `json:"kind"` // exception | waiver | finding (of the latest reconciliation)
	EmployeeID string    `json:"employeeId"`
	WorkflowID string    `json:"workflowId"`
	RunID      string    `json:"runId"`
	Control    string    `json:"control"` // "okta/suspend"
	Phase      string    `json:"phase"`
	Owner      string    `json:"owner"`              // who must act: the waiver's grantor, or the security team
	Since      time.Time `json:"since,omitzero"`     // when it failed (or the run started, when unknown)
	Age        string    `json:"age"`                // since then, for people
	ExpiresAt  time.Time `json:"expiresAt,omitzero"` // a waiver's expiry; an exception's SLA deadline
	Reason     string    `json:"reason"`             // the error, or the waiver's reason
	Action     string    `json:"action"`             // the command that acts on it
}

// Registry is every open exception and waiver, and the runs that could not be read.
type Registry struct {
	Exceptions []Exception `json:"exceptions"`
	Runs       int         `json:"runs"`                 // runs looked at
	Unreadable []string    `json:"unreadable,omitempty"` // "workflow id: error": never silently left out
	Complete   bool        `json:"complete"`             // every run found was read
}

// exceptionQueries: runs that show an open exception (open or closed), and
// every running run, since a waiver does not show in the search attribute.
var exceptionQueries = []string{
	fmt.Sprintf("WorkflowType = '%s' AND %s = 'exception'", workflows.WorkflowType, workflows.SAStatus.GetName()),
	fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.WorkflowType),
}

// Exceptions lists every open exception and waiver; owner names who owns an
// exception nobody has taken (the security team). now is for ages.
func Exceptions(ctx context.Context, c client.Client, owner string, now time.Time) (Registry, error) {
	type run struct {
		id, runID string
		start     time.Time
	}
	var found []run
	seen := map[string]bool{}
	for _, q := range exceptionQueries {
		var token []byte
		for {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token})
			if err != nil {
				return Registry{}, fmt.Errorf("exceptions: list runs: %w: %w", ErrUnavailable, err)
			}
			for _, e := range resp.GetExecutions() {
				key := e.GetExecution().GetWorkflowId() + "/" + e.GetExecution().GetRunId()
				if !seen[key] {
					seen[key] = true
					found = append(found, run{e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), e.GetStartTime().AsTime()})
				}
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
	}
	reg := Registry{Exceptions: []Exception{}, Runs: len(found)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, r := range found {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var st workflows.Status
			v, err := c.QueryWorkflow(ctx, r.id, r.runID, workflows.QueryStatus)
			if err == nil {
				err = v.Get(&st)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				reg.Unreadable = append(reg.Unreadable, r.id+"/"+r.runID+": "+err.Error())
				return
			}
			reg.Exceptions = append(reg.Exceptions, openOf(st, r.id, r.runID, r.start, owner, now)...)
		}()
	}
	wg.Wait()
	findings, err := reconcileFindings(ctx, c, now)
	if err != nil {
		reg.Unreadable = append(reg.Unreadable, "the latest reconciliation: "+err.Error())
	}
	reg.Exceptions = append(reg.Exceptions, findings...)
	slices.SortFunc(reg.Exceptions, func(a, b Exception) int {
		return strings.Compare(a.WorkflowID+a.Control+a.Kind, b.WorkflowID+b.Control+b.Kind)
	})
	slices.Sort(reg.Unreadable)
	reg.Complete = len(reg.Unreadable) == 0
	return reg, nil
}

// openOf lists a run's controls in exception and under a waiver not yet expired.
func openOf(st workflows.Status, id, runID string, start time.Time, owner string, now time.Time) []Exception {
	emp := st.EmployeeID
	if emp == "" {
		emp = strings.TrimPrefix(id, "deprovision-")
	}
	var out []Exception
	for _, c := range st.Controls {
		e := Exception{EmployeeID: emp, WorkflowID: id, RunID: runID, Control: c.ID, Phase: string(c.Phase), Since: start}
		if c.Receipt != nil && !c.Receipt.FinishedAt.IsZero() {
			e.Since = c.Receipt.FinishedAt
		}
		switch {
		case c.State == workflows.StateException:
			e.Kind, e.Owner, e.Reason = "exception", owner, c.Error
			for _, d := range st.Deadlines {
				if d.Phase == string(c.Phase) && d.MetAt.IsZero() {
					e.ExpiresAt = d.Due
				}
			}
			e.Action = fmt.Sprintf("starter retry -employee %s -control %s   or   starter waive -employee %s -control %s -reason \"...\" -expires 72h", emp, c.ID, emp, c.ID)
		case c.State == workflows.StateWaived && c.Waiver != nil && c.Waiver.ExpiresAt.After(now):
			e.Kind, e.Owner, e.Reason, e.ExpiresAt = "waiver", c.Waiver.By, c.Waiver.Reason, c.Waiver.ExpiresAt
			e.Action = fmt.Sprintf("re-opens at expiry; starter retry -employee %s -control %s to enforce it now", emp, c.ID)
		default:
			continue
		}
		if !e.Since.IsZero() {
			e.Age = now.Sub(e.Since).Round(time.Minute).String()
		}
		out = append(out, e)
	}
	return out
}

// reconcileFindings are the exceptions the latest completed reconciliation
// left for people: orphans, service accounts without owner, leavers never
// offboarded. The next reconciliation replaces them.
func reconcileFindings(ctx context.Context, c client.Client, now time.Time) ([]Exception, error) {
	// The newest by close time (not every visibility store takes ORDER BY).
	var e *workflowpb.WorkflowExecutionInfo
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{NextPageToken: token,
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed'", workflows.ReconcileWorkflowType)})
		if err != nil {
			return nil, err
		}
		for _, x := range resp.GetExecutions() {
			if e == nil || x.GetCloseTime().AsTime().After(e.GetCloseTime().AsTime()) {
				e = x
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	if e == nil {
		return nil, nil
	}
	var res workflows.ReconcileResult
	if err := c.GetWorkflow(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()).Get(ctx, &res); err != nil {
		return nil, err
	}
	var out []Exception
	for _, it := range res.Report.Items {
		if !strings.HasPrefix(it.Outcome, workflows.OutcomeException) {
			continue
		}
		x := Exception{Kind: "finding", EmployeeID: it.EmployeeID, WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
			Control: it.Target + "/" + it.Kind + ":" + it.Login, Phase: "reconcile", Owner: it.Owner, Since: res.Report.StartedAt,
			ExpiresAt: it.DueAt, Reason: it.Outcome, Action: it.Action}
		x.Age = now.Sub(x.Since).Round(time.Minute).String()
		out = append(out, x)
	}
	return out, nil
}
