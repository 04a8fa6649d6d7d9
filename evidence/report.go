package evidence

import (
	"bytes"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/workflows"
)

// ReportData is what report.html shows; every fact comes from the history.
type ReportData struct {
	Manifest  Manifest
	X         Extracted
	Timeline  []TimelineEntry
	Controls  []ControlRow
	Deadlines []SLAFact
	Waivers   []WaiverFact
	Failures  []ControlRow
	Start     time.Time // the HR event reached Offboard: the run's start
}

// TimelineEntry is one line of the report's timeline.
type TimelineEntry struct {
	At     time.Time
	Kind   string // hr, effective, control, approval, hold, waiver, sla, log, close
	Text   string
	Status string // ok, bad, warn, "" for neutral
}

// ControlRow is one control in the report.
type ControlRow struct {
	workflows.ControlStatus
	ObservedAt time.Time
	SLA        string // the deadline that applies (containment, credentials), or ""
	SLAMet     string // met, missed, waived, "" when no SLA applies
}

// slaFor names the deadline a control's phase counts against.
func slaFor(p control.Phase) string {
	switch p {
	case control.Containment:
		return "containment"
	case control.Removal, control.RoleChange:
		return "credentials"
	}
	return ""
}

func buildReport(m Manifest, x Extracted) ReportData {
	d := ReportData{Manifest: m, X: x, Start: x.StartTime, Deadlines: m.Facts.Deadlines, Waivers: m.Facts.Waivers}
	due := map[string]time.Time{}
	for _, dl := range m.Facts.Deadlines {
		due[dl.Phase] = dl.Due
	}
	add := func(at time.Time, kind, status, format string, args ...any) {
		if at.IsZero() {
			return
		}
		d.Timeline = append(d.Timeline, TimelineEntry{At: at.UTC(), Kind: kind, Status: status, Text: fmt.Sprintf(format, args...)})
	}
	t := x.Termination
	add(x.StartTime, "hr", "", "HR event %s from %s: %s %s of %s (%s)", t.EventID, t.Source, t.Reason, t.Kind, t.EmployeeID, t.Email)
	add(t.EffectiveAt, "effective", "", "effective time")
	for _, c := range x.Status.Controls {
		row := ControlRow{ControlStatus: c, SLA: slaFor(c.Phase)}
		if c.Receipt != nil {
			row.ObservedAt = c.Receipt.FinishedAt.UTC()
		}
		if row.SLA != "" {
			if dl, ok := due[row.SLA]; ok {
				switch {
				case c.State == workflows.StateWaived:
					row.SLAMet = "waived"
				case c.State == workflows.StateDone && !row.ObservedAt.After(dl):
					row.SLAMet = "met"
				default:
					row.SLAMet = "missed"
				}
			}
		}
		d.Controls = append(d.Controls, row)
		if c.State == workflows.StateException {
			d.Failures = append(d.Failures, row)
		}
		if c.Receipt != nil {
			status := "ok"
			switch c.Outcome {
			case control.Failed:
				status = "bad"
			case control.Waived:
				status = "warn"
			}
			add(row.ObservedAt, "control", status, "%s: %s%s", c.ID, c.Outcome, detailSuffix(c.Receipt))
		}
	}
	for _, a := range x.Status.Approvals {
		add(a.At, "approval", "", "%s %s plan %s", a.Approver, a.Decision+"d", a.PlanDigest)
	}
	for _, h := range x.Status.Holds {
		add(h.PlacedAt, "hold", "warn", "legal hold %s placed by %s", h.CaseRef, h.By)
		add(h.ReleasedAt, "hold", "", "legal hold %s released by %s", h.CaseRef, h.ReleasedBy)
	}
	for _, w := range m.Facts.Waivers {
		add(w.ExpiresAt, "waiver", "warn", "waiver of %s by %s expires", w.Control, w.By)
	}
	for _, dl := range m.Facts.Deadlines {
		switch {
		case dl.Breached:
			add(dl.Due, "sla", "bad", "%s SLA breached", dl.Phase)
			add(dl.MetAt, "sla", "warn", "%s done, late", dl.Phase)
		case !dl.MetAt.IsZero():
			add(dl.MetAt, "sla", "ok", "%s SLA met (due %s)", dl.Phase, dl.Due.UTC().Format(time.RFC3339))
		}
	}
	for _, l := range x.Status.Log {
		if l.Kind == workflows.SignalApprove && x.Source == "result" {
			continue // accepted approvals are listed above
		}
		status := ""
		if !l.Accepted && x.Source == "result" {
			status = "warn"
		}
		by := ""
		if l.By != "" {
			by = " (" + l.By + ")"
		}
		add(l.At, "log", status, "%s%s: %s", l.Kind, by, l.Detail)
	}
	add(x.CloseTime, "close", "", "run closed: %s, phase %s", x.CloseStatus, x.Phase)
	slices.SortStableFunc(d.Timeline, func(a, b TimelineEntry) int { return a.At.Compare(b.At) })
	return d
}

func detailSuffix(r *control.Receipt) string {
	var parts []string
	if r.AlreadyHeld {
		parts = append(parts, "already held")
	}
	if r.Gone {
		parts = append(parts, "account gone")
	}
	if r.Drift {
		parts = append(parts, "drift re-contained")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// RenderReport writes report.html: self-contained, no scripts, no network.
// It depends only on the run's history, so archiving twice writes the same bytes.
func RenderReport(m Manifest, x Extracted) ([]byte, error) {
	var buf bytes.Buffer
	if err := reportTmpl.Execute(&buf, buildReport(m, x)); err != nil {
		return nil, fmt.Errorf("evidence: report: %w", err)
	}
	return buf.Bytes(), nil
}

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"offset": func(start, t time.Time) string {
		if t.IsZero() || start.IsZero() {
			return ""
		}
		d := t.Sub(start).Round(time.Second)
		if d < 0 {
			return "−" + (-d).String()
		}
		return "+" + d.String()
	},
	"short": func(s string) string {
		if len(s) > 19 {
			return s[:19] + "…"
		}
		return s
	},
}

var reportTmpl = template.Must(template.New("report").Funcs(funcs).Parse(reportHTML))

const reportCSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
.meta{color:#5a6375;font-size:13px}.meta code{color:#1d2330}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:16px}
.card{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:10px 14px;min-width:170px}
.card b{display:block;font-size:12px;color:#5a6375;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.card span{font-size:16px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d5d9e0}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e8ec;vertical-align:top;font-size:13px}
th{background:#eef0f4;font-weight:600}
td.t{white-space:nowrap;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.ok{color:#17603a}.bad{color:#a1182b;font-weight:600}.warn{color:#8a5300}
.pill{display:inline-block;border-radius:9px;padding:0 8px;font-size:12px;background:#e6e8ec}
.pill.ok{background:#dcf2e4}.pill.bad{background:#f8dde1}.pill.warn{background:#fbecd2}
.note{background:#fff8e5;border:1px solid #f0d48a;padding:8px 12px;border-radius:6px;margin-top:12px}
footer{margin-top:32px;color:#5a6375;font-size:12px}
`

const reportHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Offboard evidence — {{.X.Termination.EmployeeID}}</title>
<style>` + reportCSS + `</style></head>
<body><main>
<h1>Deprovisioning evidence — {{.X.Termination.EmployeeID}}{{with .X.Termination.Name}} ({{.}}){{end}}</h1>
<div class="meta">Workflow <code>{{.Manifest.WorkflowID}}</code> · run <code>{{.Manifest.RunID}}</code> · closed <b>{{.Manifest.CloseStatus}}</b> · phase <b>{{.X.Phase}}</b> · signing key <code>{{.Manifest.KeyID}}</code></div>
{{if eq .X.Source "history"}}<div class="note">This run did not complete. Its status was reconstructed from the history: receipts from the ApplyControl activities, approvals, holds and waivers from the signals received (whether the workflow accepted each signal is not recorded).{{with .X.Failure}} Close reason: {{.}}{{end}}</div>{{end}}
<div class="cards">
<div class="card"><b>HR event</b><span>{{ts .Start}}</span></div>
<div class="card"><b>Effective</b><span>{{ts .X.Termination.EffectiveAt}}</span></div>
<div class="card"><b>Contained</b><span>{{ts .Manifest.Facts.ContainedAt}}</span></div>
{{range .Deadlines}}<div class="card"><b>{{.Phase}} SLA</b><span class="{{if .Breached}}bad{{else if .MetAt.IsZero}}warn{{else}}ok{{end}}">{{if .Breached}}missed{{else if .MetAt.IsZero}}open{{else}}met{{end}}</span> <small>due {{ts .Due}}</small></div>{{end}}
<div class="card"><b>Closed</b><span>{{ts .X.CloseTime}}</span></div>
</div>

<h2>Timeline</h2>
<table><tr><th>Time (UTC)</th><th>Since HR event</th><th>What happened</th></tr>
{{range .Timeline}}<tr><td class="t">{{ts .At}}</td><td class="t">{{offset $.Start .At}}</td><td class="{{.Status}}">{{.Text}}</td></tr>
{{end}}</table>

<h2>Controls</h2>
<table><tr><th>Control</th><th>Phase</th><th>Outcome</th><th>Observed</th><th>SLA</th><th>Attempts</th><th>Request / HTTP</th><th>Response digest</th><th>Detail</th></tr>
{{range .Controls}}<tr><td><code>{{.ID}}</code></td><td>{{.Phase}}</td>
<td><span class="pill {{if eq .Outcome "failed"}}bad{{else if eq .Outcome "waived"}}warn{{else if .Outcome}}ok{{end}}">{{if .Outcome}}{{.Outcome}}{{else}}{{.State}}{{end}}</span></td>
<td class="t">{{ts .ObservedAt}}</td>
<td>{{if .SLA}}<span class="{{if eq .SLAMet "met"}}ok{{else if eq .SLAMet "missed"}}bad{{else}}warn{{end}}">{{.SLA}}: {{.SLAMet}}</span>{{else}}—{{end}}</td>
<td>{{.Attempts}}</td>
<td>{{with .Receipt}}{{with .RequestID}}<code>{{.}}</code>{{end}}{{with .HTTPStatus}} {{.}}{{end}}{{end}}</td>
<td>{{with .Receipt}}<code title="{{.Digest}}">{{short .Digest}}</code>{{end}}</td>
<td>{{with .Receipt}}{{.Detail}}{{end}}{{with .Error}} <span class="bad">{{.}}</span>{{end}}</td></tr>
{{end}}</table>

<h2>Approvals</h2>
{{if .X.Status.Approvals}}<table><tr><th>When</th><th>Approver</th><th>Decision</th><th>Plan digest</th><th>Reason</th></tr>
{{range .X.Status.Approvals}}<tr><td class="t">{{ts .At}}</td><td>{{.Approver}}</td><td>{{.Decision}}</td><td><code>{{.PlanDigest}}</code></td><td>{{.Reason}}</td></tr>
{{end}}</table>{{else}}<p>No approval was {{if .X.Status.ApprovalNeeded}}given{{else}}needed by policy{{end}}.</p>{{end}}

<h2>Legal holds</h2>
{{if .X.Status.Holds}}<table><tr><th>Case</th><th>Placed</th><th>By</th><th>Reason</th><th>Released</th><th>By</th></tr>
{{range .X.Status.Holds}}<tr><td>{{.CaseRef}}</td><td class="t">{{ts .PlacedAt}}</td><td>{{.By}}</td><td>{{.Reason}}</td><td class="t">{{ts .ReleasedAt}}</td><td>{{.ReleasedBy}}</td></tr>
{{end}}</table>{{else}}<p>No legal hold.</p>{{end}}

<h2>Waivers</h2>
{{if .Waivers}}<table><tr><th>Control</th><th>By</th><th>Reason</th><th>Expires</th></tr>
{{range .Waivers}}<tr><td><code>{{.Control}}</code></td><td>{{.By}}</td><td>{{.Reason}}</td><td class="t">{{ts .ExpiresAt}}</td></tr>
{{end}}</table>{{else}}<p>No waiver.</p>{{end}}

<h2>Exceptions</h2>
{{if .Failures}}<table><tr><th>Control</th><th>Error</th></tr>
{{range .Failures}}<tr><td><code>{{.ID}}</code></td><td class="bad">{{.Error}}</td></tr>
{{end}}</table>{{else}}<p>No control was left in exception.</p>{{end}}

<h2>Drift</h2>
{{if .X.Status.Drift}}<ul>{{range .X.Status.Drift}}<li class="warn">{{.}}</li>{{end}}</ul>{{else}}<p>No drift was found on re-verification.</p>{{end}}

<footer>Generated from the run's Temporal history. Check this archive without trusting its producer:
<code>starter evidence verify &lt;this directory&gt; --public-key offboard-evidence.pub</code> verifies the Ed25519 signature of manifest.json, the SHA-256 of every file, and replays history.json against the workflow code.</footer>
</main></body></html>
`
