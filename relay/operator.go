package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// QuarantineQuery lists the runs the blast-radius guard is holding.
const QuarantineQuery = `DeprovisionStatus = "quarantined" AND ExecutionStatus = "Running"`

// signalRequest is every field an operator may send; identity fields
// ("by", "approver") are not among them: the bearer token says who.
type signalRequest struct {
	Decision    string    `json:"decision"`
	PlanDigest  string    `json:"planDigest"`
	Reason      string    `json:"reason"`
	CaseRef     string    `json:"caseRef"`
	EffectiveAt time.Time `json:"effectiveAt"`
	Control     string    `json:"control"`
	ExpiresAt   time.Time `json:"expiresAt"`
}

// operatorAction is one POST /deprovisions/{employeeId}/{action}.
type operatorAction struct {
	signal string
	roles  map[string]bool
	build  func(by string, r signalRequest) (any, error)
}

var operatorActions = map[string]operatorAction{
	"approve": {workflows.SignalApprove, roleSet(config.RoleSecurity), func(by string, r signalRequest) (any, error) {
		if r.Decision == "" {
			r.Decision = "approve"
		}
		if r.Decision != "approve" && r.Decision != "reject" {
			return nil, fmt.Errorf("decision %q is not approve or reject", r.Decision)
		}
		if r.PlanDigest == "" {
			return nil, errors.New("planDigest is required: an approval is bound to the plan it approves")
		}
		return workflows.Approve{Approver: by, Decision: r.Decision, PlanDigest: r.PlanDigest, Reason: r.Reason}, nil
	}},
	"hold": {workflows.SignalLegalHold, roleSet(config.RoleHR), func(by string, r signalRequest) (any, error) {
		if r.CaseRef == "" {
			return nil, errors.New("caseRef is required")
		}
		return workflows.Hold{By: by, CaseRef: r.CaseRef, Reason: r.Reason}, nil
	}},
	"release": {workflows.SignalReleaseHold, roleSet(config.RoleHR), func(by string, r signalRequest) (any, error) {
		if r.CaseRef == "" {
			return nil, errors.New("caseRef is required")
		}
		return workflows.Release{By: by, CaseRef: r.CaseRef}, nil
	}},
	"rescind": {workflows.SignalRescind, roleSet(config.RoleHR), func(by string, r signalRequest) (any, error) {
		return workflows.Rescind{By: by, Reason: r.Reason}, nil
	}},
	"reschedule": {workflows.SignalReschedule, roleSet(config.RoleHR), func(by string, r signalRequest) (any, error) {
		if r.EffectiveAt.IsZero() {
			return nil, errors.New("effectiveAt is required (RFC 3339)")
		}
		return workflows.Reschedule{By: by, EffectiveAt: r.EffectiveAt}, nil
	}},
	"retry": {workflows.SignalRetry, roleSet(config.RoleSecurity), func(by string, r signalRequest) (any, error) {
		if r.Control == "" {
			return nil, errors.New(`control is required (e.g. "okta/suspend")`)
		}
		return workflows.Retry{By: by, Control: r.Control}, nil
	}},
	"waive": {workflows.SignalWaive, roleSet(config.RoleSecurity), func(by string, r signalRequest) (any, error) {
		switch {
		case r.Control == "":
			return nil, errors.New("control is required")
		case strings.TrimSpace(r.Reason) == "":
			return nil, errors.New("reason is required")
		case r.ExpiresAt.IsZero():
			return nil, errors.New("expiresAt is required (RFC 3339)")
		}
		return workflows.Waive{By: by, Control: r.Control, Reason: r.Reason, ExpiresAt: r.ExpiresAt}, nil
	}},
}

func (rl *Relay) handleSignal(w http.ResponseWriter, r *http.Request) {
	action, ok := operatorActions[r.PathValue("action")]
	if !ok {
		names := make([]string, 0, len(operatorActions))
		for n := range operatorActions {
			names = append(names, n)
		}
		slices.Sort(names)
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q; one of %s", r.PathValue("action"), strings.Join(names, ", ")))
		return
	}
	rl.operator(action.roles, func(w http.ResponseWriter, r *http.Request, tok token) {
		employee := r.PathValue("employeeId")
		var req signalRequest
		if !decodeOperatorBody(w, r, &req) {
			return
		}
		payload, err := action.build(tok.name, req)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		v, err := runs.SignalAndWait(r.Context(), rl.c, employee, action.signal, tok.name, payload, rl.signalWait)
		if err != nil {
			if errors.Is(err, runs.ErrUnavailable) {
				w.Header().Set("Retry-After", "5")
				writeError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		rl.metrics.signals.WithLabelValues(action.signal, tok.role).Inc()
		rl.log.Info("operator signal", "signal", action.signal, "employee", employee, "by", tok.name, "role", tok.role,
			"processed", v.Processed, "accepted", v.Accepted)
		reply := map[string]string{"signal": action.signal, "workflowId": workflows.WorkflowID(employee), "by": tok.name}
		switch {
		case !v.Processed:
			// Delivered and durable; the workflow will check it when a worker runs it.
			reply["status"] = "signalled"
			reply["note"] = "the workflow has not processed the signal yet; GET /deprovisions/" + employee + " shows whether it was accepted"
			writeJSON(w, http.StatusAccepted, reply)
		case !v.Accepted:
			reply["status"], reply["reason"] = "refused", v.Detail
			writeJSON(w, http.StatusConflict, reply)
		default:
			reply["status"], reply["detail"] = "accepted", v.Detail
			writeJSON(w, http.StatusOK, reply)
		}
	})(w, r)
}

func (rl *Relay) handleStatus(w http.ResponseWriter, r *http.Request, _ token) {
	employee := r.PathValue("employeeId")
	st, err := runs.Status(r.Context(), rl.c, employee)
	if err != nil {
		if errors.Is(err, runs.ErrNotFound) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

type releaseRequest struct {
	Decision    string   `json:"decision"` // approve (default) | reject
	Reason      string   `json:"reason"`
	EmployeeIDs []string `json:"employeeIds"` // only these; empty = every quarantined run
}

// Released names one run the release reached.
type Released struct {
	EmployeeID string `json:"employeeId"`
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	Error      string `json:"error,omitempty"`
}

func (rl *Relay) handleReleaseQuarantine(w http.ResponseWriter, r *http.Request, tok token) {
	var req releaseRequest
	if !decodeOperatorBody(w, r, &req) {
		return
	}
	if req.Decision == "" {
		req.Decision = "approve"
	}
	if req.Decision != "approve" && req.Decision != "reject" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("decision %q is not approve or reject", req.Decision))
		return
	}
	payload := workflows.Approve{Approver: tok.name, Decision: req.Decision, PlanDigest: workflows.QuarantineDigest, Reason: req.Reason}
	released, failed := []Released{}, []Released{}
	var page []byte
	for {
		resp, err := rl.c.ListWorkflow(r.Context(), &workflowservice.ListWorkflowExecutionsRequest{Query: QuarantineQuery, PageSize: 100, NextPageToken: page})
		if err != nil {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "listing quarantined runs: "+err.Error())
			return
		}
		for _, ex := range resp.GetExecutions() {
			id, run := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
			employee := strings.TrimPrefix(id, workflows.WorkflowID(""))
			if len(req.EmployeeIDs) > 0 && !slices.Contains(req.EmployeeIDs, employee) {
				continue
			}
			rel := Released{EmployeeID: employee, WorkflowID: id, RunID: run}
			if err := rl.c.SignalWorkflow(r.Context(), id, run, workflows.SignalApprove, payload); err != nil {
				rel.Error = err.Error()
				failed = append(failed, rel)
				continue
			}
			released = append(released, rel)
		}
		page = resp.GetNextPageToken()
		if len(page) == 0 {
			break
		}
	}
	rl.metrics.signals.WithLabelValues("release-quarantine", tok.role).Add(float64(len(released)))
	rl.log.Warn("quarantine released", "by", tok.name, "decision", req.Decision, "released", len(released), "failed", len(failed))
	code := http.StatusOK
	if len(failed) > 0 {
		code = http.StatusMultiStatus
	}
	writeJSON(w, code, map[string]any{"status": req.Decision + "d", "by": tok.name, "released": released, "failed": failed})
}

// decodeOperatorBody reads an optional JSON body; unknown fields are ignored.
func decodeOperatorBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body is over the 64 KiB limit")
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "send application/json")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return false
	}
	return true
}
