package evidence

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// Files of an attestation pack.
const (
	AttestHTML = "attestation.html"
	AttestCSV  = "attestation.csv"
	AttestJSON = "attestation.json"
)

// Attestation is everything the pack says for its period.
type Attestation struct {
	ID          string                  `json:"id"`
	From        time.Time               `json:"from"`
	To          time.Time               `json:"to"`
	GeneratedAt time.Time               `json:"generatedAt"`
	Leavers     []AttestLeaver          `json:"leavers"`
	Open        []runs.Exception        `json:"open"` // exceptions and waivers open when the pack was made
	Findings    []AttestFinding         `json:"findings"`
	Drills      []AttestDrill           `json:"drills"`
	Summary     workflows.AttestSummary `json:"summary"`
}

// AttestLeaver is one Deprovision run closed in the period.
type AttestLeaver struct {
	EmployeeID     string       `json:"employeeId"`
	Kind           string       `json:"kind"`
	CloseStatus    string       `json:"closeStatus"`
	ClosedAt       time.Time    `json:"closedAt"`
	Evidence       string       `json:"evidence"`       // <workflow id>/<run id> in the store
	ManifestSHA256 string       `json:"manifestSha256"` // binds the pack to that exact bundle
	SLA            []SLAFact    `json:"sla"`
	OpenExceptions []string     `json:"openExceptions"`
	Waivers        []WaiverFact `json:"waivers"`
}

// AttestFinding is one reconciliation finding and how it was resolved.
type AttestFinding struct {
	workflows.ReconcileItem
	Reconcile  string `json:"reconcile"` // the reconciliation that found it
	Resolution string `json:"resolution"`
}

// AttestDrill is one drill run in the period.
type AttestDrill struct {
	WorkflowID string    `json:"workflowId"`
	RunID      string    `json:"runId"`
	ClosedAt   time.Time `json:"closedAt"`
	Passed     bool      `json:"passed"`
	Detail     string    `json:"detail"`
	Evidence   string    `json:"evidence,omitempty"`
}

// WriteAttestation builds the pack for req's period from the store (the
// runs' signed manifests) and Temporal (open exceptions, reconciliations,
// drills), signs it and writes it under attestation/<id>.
func (a *Activities) WriteAttestation(ctx context.Context, req workflows.AttestRequest) (workflows.AttestSummary, error) {
	if err := a.noKey(); err != nil {
		return workflows.AttestSummary{}, err
	}
	at, err := a.buildAttestation(ctx, req)
	if err != nil {
		return workflows.AttestSummary{}, err
	}
	files, err := RenderAttestation(at)
	if err != nil {
		return workflows.AttestSummary{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadReport", err)
	}
	where, err := WriteReport(ctx, a.Store, a.Key, "attestation", at.ID, at.GeneratedAt, files)
	at.Summary.Where = where
	return at.Summary, err
}

func (a *Activities) buildAttestation(ctx context.Context, req workflows.AttestRequest) (Attestation, error) {
	at := Attestation{ID: req.ID, From: req.From, To: req.To, GeneratedAt: time.Now().UTC(),
		Leavers: []AttestLeaver{}, Findings: []AttestFinding{}, Drills: []AttestDrill{}}
	sum := &at.Summary
	in := func(t time.Time) bool { return !t.Before(req.From) && t.Before(req.To) }

	// Leavers: the signed manifests of runs closed in the period.
	manifests, err := LoadManifests(ctx, a.Store)
	if err != nil {
		return at, fmt.Errorf("attest: read manifests: %w", err)
	}
	archived := map[string]bool{}
	for _, m := range manifests {
		if m.WorkflowType != workflows.WorkflowType || !in(m.CloseTime) {
			continue
		}
		run := Run{WorkflowID: m.WorkflowID, RunID: m.RunID}
		archived[run.String()] = true
		raw, err := a.Store.Get(ctx, run, ManifestFile)
		if err != nil {
			return at, fmt.Errorf("attest: %s: %w", run, err)
		}
		l := AttestLeaver{EmployeeID: m.Facts.EmployeeID, Kind: m.Facts.Kind, CloseStatus: m.CloseStatus, ClosedAt: m.CloseTime,
			Evidence: run.String(), ManifestSHA256: DigestFile(ManifestFile, raw).SHA256, SLA: m.Facts.Deadlines,
			OpenExceptions: m.Facts.OpenExceptions, Waivers: m.Facts.Waivers}
		for _, d := range l.SLA {
			if d.Breached {
				sum.SLAMissed++
			}
		}
		sum.Waivers += len(l.Waivers)
		at.Leavers = append(at.Leavers, l)
		activity.RecordHeartbeat(ctx)
	}
	slices.SortFunc(at.Leavers, func(x, y AttestLeaver) int { return x.ClosedAt.Compare(y.ClosedAt) })
	sum.Leavers = len(at.Leavers)
	period := fmt.Sprintf("CloseTime >= '%s' AND CloseTime < '%s'", req.From.Format(time.RFC3339), req.To.Format(time.RFC3339))
	closed, err := a.list(ctx, fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus != 'Running' AND %s", workflows.WorkflowType, period))
	if err != nil {
		return at, err
	}
	for _, r := range closed {
		if !archived[r.WorkflowID+"/"+r.RunID] {
			sum.Gaps = append(sum.Gaps, fmt.Sprintf("%s/%s closed in the period but has no evidence in the store", r.WorkflowID, r.RunID))
		}
	}

	// Exceptions and waivers open now.
	reg, err := runs.Exceptions(ctx, a.Client, "security (people.security)", at.GeneratedAt)
	if err != nil {
		return at, err
	}
	at.Open = reg.Exceptions
	for _, u := range reg.Unreadable {
		sum.Gaps = append(sum.Gaps, "run not readable for open exceptions: "+u)
	}
	for _, x := range reg.Exceptions {
		if x.Kind == "exception" {
			sum.OpenExceptions++
		}
	}

	// Reconciliation findings of the period, each resolved or not by the latest one.
	recs, err := a.list(ctx, fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed' AND %s", workflows.ReconcileWorkflowType, period))
	if err != nil {
		return at, err
	}
	slices.SortFunc(recs, func(x, y listed) int { return x.closed.Compare(y.closed) })
	var results []workflows.ReconcileResult
	for _, r := range recs {
		var res workflows.ReconcileResult
		if err := a.Client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &res); err != nil {
			sum.Gaps = append(sum.Gaps, fmt.Sprintf("reconciliation %s/%s not readable: %v", r.WorkflowID, r.RunID, err))
			continue
		}
		results = append(results, res)
	}
	latest := map[string]bool{}
	if len(results) > 0 {
		for _, it := range results[len(results)-1].Report.Items {
			latest[it.Target+"\x00"+it.AccountID] = true
		}
	}
	for i, res := range results {
		for _, it := range res.Report.Items {
			f := AttestFinding{ReconcileItem: it, Reconcile: res.Where}
			switch {
			case it.Outcome == workflows.OutcomeDrift || it.Outcome == workflows.OutcomeContained:
				f.Resolution = "re-contained by " + it.WorkflowID
			case it.Outcome == workflows.OutcomeInFlight:
				f.Resolution = "handled by its run in flight " + it.WorkflowID
			case latest[it.Target+"\x00"+it.AccountID] && i < len(results)-1:
				f.Resolution = "open: still found by the latest reconciliation"
				sum.FindingsOpen++
			case i == len(results)-1:
				f.Resolution = "open"
				sum.FindingsOpen++
			default:
				f.Resolution = "resolved: not found by the latest reconciliation (" + results[len(results)-1].Where + ")"
			}
			at.Findings = append(at.Findings, f)
		}
	}
	sum.Findings = len(at.Findings)

	// Drills of the period.
	drills, err := a.list(ctx, fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus != 'Running' AND %s", workflows.DrillWorkflowType, period))
	if err != nil {
		return at, err
	}
	for _, r := range drills {
		d := AttestDrill{WorkflowID: r.WorkflowID, RunID: r.RunID, ClosedAt: r.closed, Detail: strings.ToLower(strings.TrimPrefix(r.status.String(), "WORKFLOW_EXECUTION_STATUS_"))}
		if r.status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			var res workflows.DrillResult
			if err := a.Client.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &res); err != nil {
				d.Detail = "result not readable: " + err.Error()
			} else {
				d.Passed, d.Evidence = res.Passed, res.Where
				d.Detail = drillDetail(res)
			}
		}
		if !d.Passed {
			sum.DrillsFailed++
		}
		at.Drills = append(at.Drills, d)
	}
	sum.Drills = len(at.Drills)
	return at, nil
}

func drillDetail(res workflows.DrillResult) string {
	var parts []string
	for _, t := range res.Targets {
		s := t.Name + ": passed"
		if !t.Passed() {
			s = fmt.Sprintf("%s: FAILED (contained %v, verified %v, restored %v) %s", t.Name, t.Contained, t.Verified, t.Restored, t.Error)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no target drilled"
	}
	return strings.Join(parts, "; ")
}

type listed struct {
	Run
	closed time.Time
	status enumspb.WorkflowExecutionStatus
}

func (a *Activities) list(ctx context.Context, query string) ([]listed, error) {
	var out []listed
	var token []byte
	for {
		resp, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("attest: list %q: %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			out = append(out, listed{Run: Run{WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId()},
				closed: e.GetCloseTime().AsTime(), status: e.GetStatus()})
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// RenderAttestation is the pack's files.
func RenderAttestation(at Attestation) (map[string][]byte, error) {
	js, err := CanonicalJSON(at)
	if err != nil {
		return nil, err
	}
	var c bytes.Buffer
	w := csv.NewWriter(&c)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	_ = w.Write([]string{"section", "employee_id", "kind", "item", "state", "owner", "reason", "expires_or_due", "evidence"})
	for _, l := range at.Leavers {
		_ = w.Write([]string{"leaver", l.EmployeeID, l.Kind, l.CloseStatus, ts(l.ClosedAt), "", "", "", l.Evidence + " (manifest sha256 " + l.ManifestSHA256 + ")"})
		for _, d := range l.SLA {
			state := "met"
			switch {
			case d.Breached:
				state = "missed"
			case d.MetAt.IsZero():
				state = "not met"
			}
			_ = w.Write([]string{"sla", l.EmployeeID, d.Phase, "due " + ts(d.Due), state, "", "", ts(d.MetAt), l.Evidence})
		}
		for _, v := range l.Waivers {
			_ = w.Write([]string{"waiver", l.EmployeeID, "", v.Control, "waived", csvSafe(v.By), csvSafe(v.Reason), ts(v.ExpiresAt), l.Evidence})
		}
	}
	for _, x := range at.Open {
		_ = w.Write([]string{"open", x.EmployeeID, x.Kind, x.Control, "open " + x.Age, csvSafe(x.Owner), csvSafe(x.Reason), ts(x.ExpiresAt), x.WorkflowID + "/" + x.RunID})
	}
	for _, f := range at.Findings {
		_ = w.Write([]string{"finding", f.EmployeeID, f.Kind, f.Target + " " + csvSafe(f.Login), csvSafe(f.Resolution), csvSafe(f.Owner), f.Outcome, ts(f.DueAt), f.Reconcile})
	}
	for _, d := range at.Drills {
		state := "failed"
		if d.Passed {
			state = "passed"
		}
		_ = w.Write([]string{"drill", "", "", d.WorkflowID, state, "", csvSafe(d.Detail), ts(d.ClosedAt), d.Evidence})
	}
	for _, g := range at.Summary.Gaps {
		_ = w.Write([]string{"gap", "", "", "", "", "", csvSafe(g), "", ""})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, err
	}
	var h bytes.Buffer
	if err := attestTmpl.Execute(&h, at); err != nil {
		return nil, fmt.Errorf("evidence: attestation: %w", err)
	}
	return map[string][]byte{AttestJSON: append(js, '\n'), AttestCSV: c.Bytes(), AttestHTML: h.Bytes()}, nil
}

var attestTmpl = template.Must(template.New("attest").Funcs(funcs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Access attestation {{ts .From}} to {{ts .To}}</title>
<style>` + reportCSS + `
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;font-size:13px;vertical-align:top}</style></head>
<body><main>
<h1>Access attestation</h1>
<p class="meta">Period {{ts .From}} to {{ts .To}}; pack <code>{{.ID}}</code> made {{ts .GeneratedAt}}. Each leaver links to its signed evidence bundle; <code>starter evidence verify</code> checks this pack's manifest.</p>
<div class="cards">
<div class="card"><b>Leavers</b>{{.Summary.Leavers}}</div><div class="card"><b>SLA missed</b>{{.Summary.SLAMissed}}</div>
<div class="card"><b>Open exceptions</b>{{.Summary.OpenExceptions}}</div><div class="card"><b>Waivers</b>{{.Summary.Waivers}}</div>
<div class="card"><b>Findings (open)</b>{{.Summary.Findings}} ({{.Summary.FindingsOpen}})</div><div class="card"><b>Drills (failed)</b>{{.Summary.Drills}} ({{.Summary.DrillsFailed}})</div>
</div>
{{if .Summary.Gaps}}<h2>Gaps: what this pack could not cover</h2><ul>{{range .Summary.Gaps}}<li>{{.}}</li>{{end}}</ul>{{end}}
<h2>Leavers</h2>
<table><tr><th>Employee</th><th>Kind</th><th>Closed</th><th>SLA per phase</th><th>Waivers</th><th>Open at close</th><th>Evidence</th></tr>
{{range .Leavers}}<tr><td>{{.EmployeeID}}</td><td>{{.Kind}} ({{.CloseStatus}})</td><td>{{ts .ClosedAt}}</td>
<td>{{range .SLA}}{{.Phase}}: {{if .Breached}}<b>missed</b>{{else if .MetAt.IsZero}}not met{{else}}met {{ts .MetAt}}{{end}}<br>{{end}}</td>
<td>{{range .Waivers}}{{.Control}} by {{.By}}: {{.Reason}} (until {{ts .ExpiresAt}})<br>{{end}}</td>
<td>{{range .OpenExceptions}}{{.}}<br>{{end}}</td>
<td><code>{{.Evidence}}</code><br><small>manifest sha256 {{.ManifestSHA256}}</small></td></tr>
{{end}}</table>
<h2>Exceptions and waivers open now</h2>
<table><tr><th>Kind</th><th>Employee</th><th>Control</th><th>Owner</th><th>Age</th><th>Expiry / due</th><th>Reason</th></tr>
{{range .Open}}<tr><td>{{.Kind}}</td><td>{{.EmployeeID}}</td><td>{{.Control}}</td><td>{{.Owner}}</td><td>{{.Age}}</td><td>{{ts .ExpiresAt}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>
<h2>Reconciliation findings</h2>
<table><tr><th>Target</th><th>Finding</th><th>Account</th><th>Owner</th><th>Outcome</th><th>Resolution</th><th>Report</th></tr>
{{range .Findings}}<tr><td>{{.Target}}</td><td>{{.Kind}}</td><td>{{.Login}}</td><td>{{.Owner}}</td><td>{{.Outcome}}</td><td>{{.Resolution}}</td><td><code>{{.Reconcile}}</code></td></tr>
{{end}}</table>
<h2>Termination drills</h2>
<table><tr><th>Drill</th><th>Closed</th><th>Result</th><th>Detail</th><th>Evidence</th></tr>
{{range .Drills}}<tr><td>{{.WorkflowID}}</td><td>{{ts .ClosedAt}}</td><td>{{if .Passed}}passed{{else}}<b>FAILED</b>{{end}}</td><td>{{.Detail}}</td><td><code>{{.Evidence}}</code></td></tr>
{{else}}<tr><td colspan="5"><b>No drill ran in this period.</b></td></tr>{{end}}</table>
</main></body></html>
`))
