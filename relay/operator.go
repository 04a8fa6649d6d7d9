package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/internal/hris"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/workflows"
)

// QuarantineQuery lists the runs the blast-radius guard is holding.
const QuarantineQuery = `DeprovisionStatus = "quarantined" AND ExecutionStatus = "Running"`

// DecisionRequest is every field an operator may send. Identity fields
// ("by", "approver") are not among them and are refused: the bearer token
// says who, and the API signs that.
type DecisionRequest struct {
	RunID       string            `json:"runId,omitempty"` // the run decided on; default: the person's running run
	Decision    string            `json:"decision,omitempty"`
	PlanDigest  string            `json:"planDigest,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	CaseRef     string            `json:"caseRef,omitempty"`
	EventID     string            `json:"eventId,omitempty"`
	EffectiveAt time.Time         `json:"effectiveAt,omitzero"`
	From        time.Time         `json:"from,omitzero"`
	Control     string            `json:"control,omitempty"`
	ExpiresAt   time.Time         `json:"expiresAt,omitzero"`
	Email       string            `json:"email,omitempty"`
	Name        string            `json:"name,omitempty"`
	Accounts    map[string]string `json:"accounts,omitempty"`
}

// operatorAction is one POST /deprovisions/{employeeId}/{action}: the
// Update it becomes, the roles that may ask for it, and its payload.
type operatorAction struct {
	kind  string
	roles map[string]bool
	build func(r DecisionRequest) (any, error)
}

var operatorActions = map[string]operatorAction{
	"approve": {workflows.UpdateApprove, roleSet(config.RoleApprover), func(r DecisionRequest) (any, error) {
		if r.Decision == "" {
			r.Decision = "approve"
		}
		if r.Decision != "approve" && r.Decision != "reject" {
			return nil, fmt.Errorf("decision %q is not approve or reject", r.Decision)
		}
		if r.PlanDigest == "" {
			return nil, errors.New("planDigest is required: an approval is bound to the plan it approves (GET /deprovisions/{employeeId} shows the plan and its digest)")
		}
		return workflows.ApproveRequest{Decision: r.Decision, Reason: r.Reason}, nil
	}},
	"release-quarantine": {workflows.UpdateQuarantineRelease, roleSet(config.RoleSecurity), func(r DecisionRequest) (any, error) {
		if r.Decision == "" {
			r.Decision = "approve"
		}
		if r.Decision != "approve" && r.Decision != "reject" {
			return nil, fmt.Errorf("decision %q is not approve or reject", r.Decision)
		}
		return workflows.ApproveRequest{Decision: r.Decision, Reason: r.Reason}, nil
	}},
	"hold": {workflows.UpdateLegalHold, roleSet(config.RoleHR), func(r DecisionRequest) (any, error) {
		if r.CaseRef == "" {
			return nil, errors.New("caseRef is required")
		}
		return workflows.Hold{CaseRef: r.CaseRef, Reason: r.Reason}, nil
	}},
	"release": {workflows.UpdateReleaseHold, roleSet(config.RoleHR), func(r DecisionRequest) (any, error) {
		if r.CaseRef == "" {
			return nil, errors.New("caseRef is required")
		}
		return workflows.Release{CaseRef: r.CaseRef}, nil
	}},
	"rescind": {workflows.UpdateRescind, roleSet(config.RoleHR), func(r DecisionRequest) (any, error) {
		if r.EventID == "" && r.EffectiveAt.IsZero() {
			return nil, errors.New("name the event (eventId) or the effective time (effectiveAt, RFC 3339) the rescind refers to")
		}
		return workflows.Rescind{Reason: r.Reason, EventID: r.EventID, EffectiveAt: r.EffectiveAt}, nil
	}},
	"reschedule": {workflows.UpdateReschedule, roleSet(config.RoleHR), func(r DecisionRequest) (any, error) {
		if r.EffectiveAt.IsZero() {
			return nil, errors.New("effectiveAt is required (RFC 3339)")
		}
		if r.EventID == "" && r.From.IsZero() {
			return nil, errors.New("name the event (eventId) or the effective time it moves (from, RFC 3339)")
		}
		return workflows.Reschedule{EffectiveAt: r.EffectiveAt, EventID: r.EventID, From: r.From}, nil
	}},
	"retry": {workflows.UpdateRetry, roleSet(config.RoleSecurity), func(r DecisionRequest) (any, error) {
		if r.Control == "" {
			return nil, errors.New(`control is required (e.g. "okta/suspend")`)
		}
		return workflows.Retry{Control: r.Control}, nil
	}},
	"waive": {workflows.UpdateWaive, roleSet(config.RoleSecurity), func(r DecisionRequest) (any, error) {
		switch {
		case r.Control == "":
			return nil, errors.New("control is required")
		case strings.TrimSpace(r.Reason) == "":
			return nil, errors.New("reason is required")
		case r.ExpiresAt.IsZero():
			return nil, errors.New("expiresAt is required (RFC 3339)")
		}
		return workflows.Waive{Control: r.Control, Reason: r.Reason, ExpiresAt: r.ExpiresAt}, nil
	}},
	"correct-identity": {workflows.UpdateIdentityCorrection, roleSet(config.RoleHR, config.RoleSecurity), func(r DecisionRequest) (any, error) {
		if r.Email == "" && r.Name == "" && len(r.Accounts) == 0 {
			return nil, errors.New("name the corrected email, name or accounts")
		}
		return workflows.IdentityCorrection{Email: r.Email, Name: r.Name, Accounts: r.Accounts, Reason: r.Reason}, nil
	}},
}

// Decision is what an action asks the run for: the Update's kind and its
// payload (the break-glass CLI builds the same decisions without the API).
func Decision(action string, r DecisionRequest) (kind string, payload any, err error) {
	a, ok := operatorActions[action]
	if !ok {
		return "", nil, fmt.Errorf("unknown action %q", action)
	}
	payload, err = a.build(r)
	return a.kind, payload, err
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 200

func (rl *Relay) handleDecision(w http.ResponseWriter, r *http.Request) {
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
		employee, ok := pathEmployee(w, r)
		if !ok {
			return
		}
		var req DecisionRequest
		if !decodeStrict(w, r, &req) {
			return
		}
		key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
		if len(key) > maxIdempotencyKey {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key is over %d characters", maxIdempotencyKey))
			return
		}
		payload, err := action.build(req)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		rl.decide(w, r, tok, runs.Request{EmployeeID: employee, RunID: req.RunID, Kind: action.kind, PlanDigest: req.PlanDigest,
			Payload: payload, IdempotencyKey: key})
	})(w, r)
}

// decide signs the request as the token's person and roles, sends it, and
// answers with the run's verdict: 200 accepted, 409 refused with the reason,
// 404 no such run running, 503 no answer (retry with the same Idempotency-Key).
func (rl *Relay) decide(w http.ResponseWriter, r *http.Request, tok token, req runs.Request) {
	if rl.decisionKey == nil {
		writeError(w, http.StatusServiceUnavailable, "the operator API has no decision signing key (relay.decisionKey): it cannot sign decisions")
		return
	}
	req.Person, req.Roles = tok.name, tok.roles
	v, err := runs.Decide(r.Context(), rl.c, rl.decisionKey, req, rl.now(), rl.signalWait)
	switch {
	case errors.Is(err, runs.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	rl.metrics.signals.WithLabelValues(req.Kind, tok.role()).Inc()
	rl.emitDecision(req, v)
	rl.log.Info("operator decision", "kind", req.Kind, "employee", req.EmployeeID, "run", v.RunID, "by", tok.name, "role", tok.role(),
		"accepted", v.Accepted, "reason", v.Reason, "update", v.UpdateID)
	if !v.Accepted {
		writeJSON(w, http.StatusConflict, decisionReply{Status: "refused", Kind: req.Kind, Verdict: v})
		return
	}
	writeJSON(w, http.StatusOK, decisionReply{Status: "accepted", Kind: req.Kind, Verdict: v})
}

// decisionReply is the API's typed verdict.
type decisionReply struct {
	Status string `json:"status"` // accepted | refused
	Kind   string `json:"kind"`
	runs.Verdict
}

// hrDecide sends an HR system's decision (a rescind, a reschedule) signed as
// "hris:<source>" with the hr role: the webhook's signature authenticated it.
func (rl *Relay) hrDecide(ctx context.Context, source string, req runs.Request) (runs.Verdict, error) {
	if rl.decisionKey == nil {
		return runs.Verdict{}, fmt.Errorf("no decision signing key (relay.decisionKey): %w", runs.ErrUnavailable)
	}
	req.Person, req.Roles = "hris:"+source, []string{config.RoleHR}
	v, err := runs.Decide(ctx, rl.c, rl.decisionKey, req, rl.now(), rl.signalWait)
	if err == nil {
		rl.emitDecision(req, v)
	}
	return v, err
}

// emitDecision sends a decision the run answered, accepted or refused, to
// the SIEM: an Update runs no activity, so the API is where it is seen.
func (rl *Relay) emitDecision(req runs.Request, v runs.Verdict) {
	rl.events.Emit(DecisionEvent(req, v, rl.now()))
}

// DecisionEvent is the SIEM event of a decision the run answered; the
// break-glass CLI sends the same one.
func DecisionEvent(req runs.Request, v runs.Verdict, at time.Time) siem.Event {
	d := siem.Decision{Kind: req.Kind, By: req.Person, Roles: req.Roles, EmployeeID: req.EmployeeID, WorkflowID: v.WorkflowID, RunID: v.RunID,
		UpdateID: v.UpdateID, Digest: v.Digest, Accepted: v.Accepted, Reason: v.Reason, Detail: v.Detail, BreakGlass: v.BreakGlass}
	switch p := req.Payload.(type) {
	case workflows.Waive:
		d.Control = p.Control
	case workflows.Retry:
		d.Control = p.Control
	}
	return siem.DecisionEvent(d, at)
}

// hrRescind rescinds the run an HR rescind or rehire refers to: the event
// it names, or else the run that was in flight when HR made the change,
// never a run started after it.
func (rl *Relay) hrRescind(ctx context.Context, source string, ev hris.Event) (runs.Verdict, error) {
	t := ev.Termination
	run, err := runs.InFlight(ctx, rl.c, t.EmployeeID)
	if err != nil {
		return runs.Verdict{}, err
	}
	p := workflows.Rescind{Reason: ev.Reason, EventID: ev.RefersTo}
	if p.EventID == "" {
		refused := runs.Verdict{By: "hris:" + source, WorkflowID: run.WorkflowID, RunID: run.RunID}
		switch {
		case !t.EffectiveAt.IsZero() && run.StartedAt.After(t.EffectiveAt.Add(rl.cfg.MaxSkew.D())):
			refused.Reason = fmt.Sprintf("the run in flight (event %s) started at %s, after HR's change at %s: it is not the one rescinded",
				run.EventID, run.StartedAt.UTC().Format(time.RFC3339), t.EffectiveAt.UTC().Format(time.RFC3339))
			return refused, nil
		case run.EventID == "":
			refused.Reason = "the run in flight does not say which event started it, and the rescind names none"
			return refused, nil
		}
		p.EventID = run.EventID
	}
	return rl.hrDecide(ctx, source, runs.Request{EmployeeID: t.EmployeeID, RunID: run.RunID, Kind: workflows.UpdateRescind,
		Payload: p, IdempotencyKey: t.EventID})
}

// CheckDecisionKey makes sure the runs will trust what the API signs: the
// public half of relay.decisionKey must be among people.decisionKeys, and
// not as a break-glass key. No key configured is not an error (the API then
// refuses decisions with 503).
func CheckDecisionKey(r config.Relay, people config.People) error {
	key, err := LoadDecisionKey(r.DecisionKey)
	if err != nil || key == nil {
		return err
	}
	id := decision.KeyID(key.Public().(ed25519.PublicKey))
	for _, k := range people.DecisionKeys {
		if pub, err := decision.ParsePublicKey(k.PublicKey); err == nil && decision.KeyID(pub) == id {
			if k.BreakGlass {
				return fmt.Errorf("relay.decisionKey (%s) is listed as a break-glass key in people.decisionKeys: the API needs its own key", id)
			}
			return nil
		}
	}
	return fmt.Errorf("relay.decisionKey (%s): its public key is not in people.decisionKeys, so every run would refuse what the API signs", id)
}

// LoadDecisionKey reads the relay's signing key (relay.decisionKey), when
// configured: it signs people's decisions and the HR events sent to runs
// in flight; nil when none is set.
func LoadDecisionKey(s config.Secret) (ed25519.PrivateKey, error) {
	if !s.IsSet() {
		return nil, nil
	}
	v, err := s.Value()
	if err != nil {
		return nil, fmt.Errorf("relay: decisionKey (%s): %w", s, err)
	}
	k, err := decision.ParsePrivateKey(v)
	if err != nil {
		return nil, fmt.Errorf("relay: decisionKey (%s): %w", s, err)
	}
	return k, nil
}

// pathEmployee reads the employee id of the path under HR's rule
// (hris.NormalizeEmployeeID), so /deprovisions/e1001 names the run of E1001.
func pathEmployee(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := hris.NormalizeEmployeeID(r.PathValue("employeeId"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "employee id "+strconv.Quote(r.PathValue("employeeId"))+" "+err.Error())
		return "", false
	}
	return id, true
}

func (rl *Relay) handleStatus(w http.ResponseWriter, r *http.Request, _ token) {
	employee, ok := pathEmployee(w, r)
	if !ok {
		return
	}
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
	if !decodeStrict(w, r, &req) {
		return
	}
	if req.Decision == "" {
		req.Decision = "approve"
	}
	if req.Decision != "approve" && req.Decision != "reject" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("decision %q is not approve or reject", req.Decision))
		return
	}
	if rl.decisionKey == nil {
		writeError(w, http.StatusServiceUnavailable, "the operator API has no decision signing key (relay.decisionKey): it cannot sign decisions")
		return
	}
	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	payload := workflows.ApproveRequest{Decision: req.Decision, Reason: req.Reason}
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
			v, err := runs.Decide(r.Context(), rl.c, rl.decisionKey, runs.Request{EmployeeID: employee, RunID: run,
				Kind: workflows.UpdateQuarantineRelease, Person: tok.name, Roles: tok.roles, Payload: payload, IdempotencyKey: key}, rl.now(), rl.signalWait)
			if err == nil {
				rl.emitDecision(runs.Request{EmployeeID: employee, Kind: workflows.UpdateQuarantineRelease, Person: tok.name, Roles: tok.roles}, v)
			}
			switch {
			case err != nil:
				rel.Error = err.Error()
			case !v.Accepted:
				rel.Error = "refused: " + v.Reason
			}
			if rel.Error != "" {
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
	rl.metrics.signals.WithLabelValues("release-quarantine", tok.role()).Add(float64(len(released)))
	rl.log.Warn("quarantine released", "by", tok.name, "decision", req.Decision, "released", len(released), "failed", len(failed))
	code := http.StatusOK
	if len(failed) > 0 {
		code = http.StatusMultiStatus
	}
	writeJSON(w, code, map[string]any{"status": req.Decision + "d", "by": tok.name, "released": released, "failed": failed})
}

// decodeStrict reads an optional JSON body; an unknown field (such as "by")
// is refused, so nobody believes it was used.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error()+" (who decides is the bearer token's person, never a field)")
		return false
	}
	return true
}
