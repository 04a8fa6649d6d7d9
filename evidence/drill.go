package evidence

import (
	"bytes"
	"context"
	"fmt"
	"html/template"

	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/workflows"
)

// Files of a drill report.
const (
	DrillHTML = "drill.html"
	DrillJSON = "drill.json"
)

// WriteDrillReport signs a drill's record (JSON with every receipt, and
// HTML for people) into the store under drill/<id>; it returns where.
func (a *Activities) WriteDrillReport(ctx context.Context, res workflows.DrillResult) (string, error) {
	if err := a.noKey(); err != nil {
		return "", err
	}
	js, err := CanonicalJSON(res)
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError(err.Error(), "BadReport", err)
	}
	var h bytes.Buffer
	if err := drillTmpl.Execute(&h, res); err != nil {
		return "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("evidence: drill report: %v", err), "BadReport", err)
	}
	return WriteReport(ctx, a.Store, a.Key, "drill", res.ID, res.FinishedAt, map[string][]byte{DrillJSON: append(js, '\n'), DrillHTML: h.Bytes()})
}

var drillTmpl = template.Must(template.New("drill").Funcs(funcs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Termination drill {{.ID}}</title>
<style>` + reportCSS + `
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;font-size:13px}</style></head>
<body><main>
<h1>Termination drill: {{if .Passed}}passed{{else}}<b>FAILED</b>{{end}}</h1>
<p class="meta">Drill <code>{{.ID}}</code> on canary <code>{{.Canary}}</code>, {{ts .StartedAt}} to {{ts .FinishedAt}}.</p>
<table><tr><th>Target</th><th>Account</th><th>Contained</th><th>Verified</th><th>Restored</th><th>Error</th></tr>
{{range .Targets}}<tr><td>{{.Name}} ({{.Kind}})</td><td>{{.Account}}</td><td>{{.Contained}}</td><td>{{.Verified}}</td><td>{{.Restored}}</td><td>{{.Error}}</td></tr>
{{end}}</table>
<h2>Receipts</h2>
<table><tr><th>Control</th><th>Phase</th><th>Outcome</th><th>Finished</th><th>Detail</th></tr>
{{range .Targets}}{{range .Receipts}}<tr><td>{{.ControlID}}</td><td>{{.Phase}}</td><td>{{.Outcome}}</td><td>{{ts .FinishedAt}}</td><td>{{.Detail}}</td></tr>
{{end}}{{end}}</table>
</main></body></html>
`))
