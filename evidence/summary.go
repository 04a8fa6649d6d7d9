package evidence

import (
	"context"
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is what the archived runs of a period show.
type Summary struct {
	From, To time.Time
	// Runs counts archived runs whose effective time is in [From, To);
	// Terminations those of kind termination or contract_end.
	Runs         int
	Terminations int
	ByKind       map[string]int
	ByClose      map[string]int
	SLAs         []SLAShare
	// TimeToContain runs from when Offboard could act (the later of the
	// effective time and the run's start) to when every containment control held.
	TimeToContain DurationStats
	Exceptions    []Item // controls left in exception
	Waivers       []Item // waivers still in force at To
	LegalHolds    []Item // holds in force when their run closed
	Points        []Point
}

// SLAShare is how often one phase's SLA was met. Deadlines a run never
// reached (rescinded, rejected) count in neither Met nor Missed.
type SLAShare struct {
	Phase  string
	Met    int
	Missed int
}

// Share is Met / (Met + Missed), or NaN when nothing was due.
func (s SLAShare) Share() float64 {
	if s.Met+s.Missed == 0 {
		return math.NaN()
	}
	return float64(s.Met) / float64(s.Met+s.Missed)
}

// DurationStats are a sample's count, median and 95th percentile.
type DurationStats struct {
	Count  int
	Median time.Duration // the mean of the two middle values for an even count
	P95    time.Duration // nearest rank: the ceil(0.95·n)-th smallest
	Max    time.Duration
}

// Item is one open thing in one run.
type Item struct {
	WorkflowID string
	EmployeeID string
	What       string
	By         string
	Until      time.Time
}

// Point is one run on the chart.
type Point struct {
	EmployeeID    string
	EffectiveAt   time.Time
	TimeToContain time.Duration // 0 when containment never completed
	Due           time.Duration // the containment SLA for this run
	Breached      bool
}

// Summarize computes the summary of the manifests whose effective time is in
// [from, to); a zero bound is open.
func Summarize(manifests []Manifest, from, to time.Time) Summary {
	s := Summary{From: from, To: to, ByKind: map[string]int{}, ByClose: map[string]int{}}
	shares := map[string]*SLAShare{}
	var ttc []time.Duration
	for _, m := range manifests {
		f := m.Facts
		if (!from.IsZero() && f.EffectiveAt.Before(from)) || (!to.IsZero() && !f.EffectiveAt.Before(to)) {
			continue
		}
		s.Runs++
		s.ByKind[f.Kind]++
		s.ByClose[m.CloseStatus]++
		if f.Kind == "termination" || f.Kind == "contract_end" {
			s.Terminations++
		}
		for _, d := range f.Deadlines {
			sh := shares[d.Phase]
			if sh == nil {
				sh = &SLAShare{Phase: d.Phase}
				shares[d.Phase] = sh
			}
			switch {
			case d.Breached:
				sh.Missed++
			case !d.MetAt.IsZero():
				sh.Met++
			}
		}
		p := Point{EmployeeID: f.EmployeeID, EffectiveAt: f.EffectiveAt}
		if !f.ContainedAt.IsZero() {
			begin := f.EffectiveAt
			if m.StartTime.After(begin) {
				begin = m.StartTime
			}
			p.TimeToContain = max(f.ContainedAt.Sub(begin), 0)
			ttc = append(ttc, p.TimeToContain)
		}
		for _, d := range f.Deadlines {
			if d.Phase == "containment" {
				begin := f.EffectiveAt
				if m.StartTime.After(begin) {
					begin = m.StartTime
				}
				p.Due, p.Breached = d.Due.Sub(begin), d.Breached
			}
		}
		s.Points = append(s.Points, p)
		for _, c := range f.OpenExceptions {
			s.Exceptions = append(s.Exceptions, Item{WorkflowID: m.WorkflowID, EmployeeID: f.EmployeeID, What: c, Until: m.CloseTime})
		}
		for _, w := range f.Waivers {
			if to.IsZero() || w.ExpiresAt.After(to) {
				s.Waivers = append(s.Waivers, Item{WorkflowID: m.WorkflowID, EmployeeID: f.EmployeeID, What: w.Control + ": " + w.Reason, By: w.By, Until: w.ExpiresAt})
			}
		}
		if h := f.LegalHold; h != nil {
			s.LegalHolds = append(s.LegalHolds, Item{WorkflowID: m.WorkflowID, EmployeeID: f.EmployeeID, What: h.CaseRef, By: h.By, Until: h.Since})
		}
	}
	for _, sh := range shares {
		s.SLAs = append(s.SLAs, *sh)
	}
	slices.SortFunc(s.SLAs, func(a, b SLAShare) int { return phaseOrder(a.Phase) - phaseOrder(b.Phase) })
	s.TimeToContain = stats(ttc)
	slices.SortFunc(s.Points, func(a, b Point) int { return a.EffectiveAt.Compare(b.EffectiveAt) })
	return s
}

func phaseOrder(p string) int {
	switch p {
	case "containment":
		return 0
	case "credentials":
		return 1
	}
	return 2
}

func stats(ds []time.Duration) DurationStats {
	if len(ds) == 0 {
		return DurationStats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	st := DurationStats{Count: n, Max: s[n-1]}
	if n%2 == 1 {
		st.Median = s[n/2]
	} else {
		st.Median = (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(0.95 * float64(n)))
	st.P95 = s[rank-1]
	return st
}

// LoadManifests reads every manifest in the store. Manifests are read, not
// verified: run Verify on the runs an audit relies on.
func LoadManifests(ctx context.Context, s Store) ([]Manifest, error) {
	runs, err := s.Runs(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]Manifest, 0, len(runs))
	for _, r := range runs {
		m, err := ReadManifest(ctx, s, r)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func pct(sh SLAShare) string {
	v := sh.Share()
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func period(t time.Time) string {
	if t.IsZero() {
		return "…"
	}
	return t.UTC().Format(time.RFC3339)
}

// WriteTable writes the summary for a terminal.
func (s Summary) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Period\t%s – %s\n", period(s.From), period(s.To))
	fmt.Fprintf(tw, "Runs archived\t%d\n", s.Runs)
	fmt.Fprintf(tw, "Terminations\t%d\n", s.Terminations)
	for _, sh := range s.SLAs {
		fmt.Fprintf(tw, "%s SLA met\t%s\t(%d met, %d missed)\n", sh.Phase, pct(sh), sh.Met, sh.Missed)
	}
	fmt.Fprintf(tw, "Time to contain, median\t%s\n", dur(s.TimeToContain.Median))
	fmt.Fprintf(tw, "Time to contain, p95\t%s\t(of %d runs)\n", dur(s.TimeToContain.P95), s.TimeToContain.Count)
	fmt.Fprintf(tw, "Open exceptions\t%d\n", len(s.Exceptions))
	for _, it := range s.Exceptions {
		fmt.Fprintf(tw, "  %s\t%s\n", it.EmployeeID, it.What)
	}
	fmt.Fprintf(tw, "Waivers in force\t%d\n", len(s.Waivers))
	for _, it := range s.Waivers {
		fmt.Fprintf(tw, "  %s\t%s\tby %s until %s\n", it.EmployeeID, it.What, it.By, it.Until.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "Active legal holds\t%d\n", len(s.LegalHolds))
	for _, it := range s.LegalHolds {
		fmt.Fprintf(tw, "  %s\t%s\tby %s\n", it.EmployeeID, it.What, it.By)
	}
	return tw.Flush()
}

// WriteCSV writes one metric per row: metric, key, value.
func (s Summary) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	rows := [][]string{
		{"metric", "key", "value"},
		{"period_from", "", period(s.From)},
		{"period_to", "", period(s.To)},
		{"runs", "", strconv.Itoa(s.Runs)},
		{"terminations", "", strconv.Itoa(s.Terminations)},
	}
	for _, sh := range s.SLAs {
		share := ""
		if v := sh.Share(); !math.IsNaN(v) {
			share = strconv.FormatFloat(v, 'f', 4, 64)
		}
		rows = append(rows,
			[]string{"sla_met_share", sh.Phase, share},
			[]string{"sla_met", sh.Phase, strconv.Itoa(sh.Met)},
			[]string{"sla_missed", sh.Phase, strconv.Itoa(sh.Missed)})
	}
	rows = append(rows,
		[]string{"time_to_contain_count", "", strconv.Itoa(s.TimeToContain.Count)},
		[]string{"time_to_contain_median_seconds", "", secs(s.TimeToContain.Median)},
		[]string{"time_to_contain_p95_seconds", "", secs(s.TimeToContain.P95)},
		[]string{"open_exceptions", "", strconv.Itoa(len(s.Exceptions))},
		[]string{"waivers_in_force", "", strconv.Itoa(len(s.Waivers))},
		[]string{"active_legal_holds", "", strconv.Itoa(len(s.LegalHolds))})
	for _, it := range s.Exceptions {
		rows = append(rows, []string{"open_exception", it.EmployeeID, it.What})
	}
	for _, it := range s.Waivers {
		rows = append(rows, []string{"waiver", it.EmployeeID, it.What + " (by " + it.By + " until " + it.Until.UTC().Format(time.RFC3339) + ")"})
	}
	for _, it := range s.LegalHolds {
		rows = append(rows, []string{"legal_hold", it.EmployeeID, it.What + " (by " + it.By + ")"})
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// chart is an inline SVG of time to contain per run, with each run's SLA.
type chart struct {
	W, H  int
	Bars  []bar
	Ticks []tick
	Empty bool
}

type bar struct {
	X, Y, W, H float64
	DueY       float64
	Class      string
	Title      string
}

type tick struct {
	Y     float64
	Label string
}

func (s Summary) chart() chart {
	c := chart{W: 760, H: 240}
	if len(s.Points) == 0 {
		c.Empty = true
		return c
	}
	top := time.Duration(0)
	for _, p := range s.Points {
		top = max(top, p.TimeToContain, p.Due)
	}
	if top <= 0 {
		top = time.Minute
	}
	const left, bottom, plotTop = 60.0, 20.0, 10.0
	plotH := float64(c.H) - bottom - plotTop
	plotW := float64(c.W) - left - 10
	step := plotW / float64(len(s.Points))
	y := func(d time.Duration) float64 { return plotTop + plotH - plotH*float64(d)/float64(top) }
	for i, p := range s.Points {
		class := "ok"
		switch {
		case p.TimeToContain == 0:
			class = "none"
		case p.Breached || (p.Due > 0 && p.TimeToContain > p.Due):
			class = "bad"
		}
		h := plotH * float64(p.TimeToContain) / float64(top)
		c.Bars = append(c.Bars, bar{X: left + float64(i)*step + step*0.15, W: step * 0.7, Y: plotTop + plotH - h, H: h, DueY: y(p.Due), Class: class,
			Title: fmt.Sprintf("%s, effective %s: contained in %s (SLA %s)", p.EmployeeID, p.EffectiveAt.UTC().Format(time.RFC3339), dur(p.TimeToContain), dur(p.Due))})
	}
	for i := 0; i <= 4; i++ {
		d := top * time.Duration(i) / 4
		c.Ticks = append(c.Ticks, tick{Y: y(d), Label: d.Round(time.Second).String()})
	}
	return c
}

// WriteHTML writes a self-contained page with the summary and an inline SVG chart.
func (s Summary) WriteHTML(w io.Writer) error {
	return summaryTmpl.Execute(w, struct {
		S     Summary
		Chart chart
	}{s, s.chart()})
}

var summaryTmpl = template.Must(template.New("summary").Funcs(template.FuncMap{
	"pct": pct, "dur": dur, "period": period,
	"f": func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04Z")
	},
	"join": strings.Join,
	"add":  func(a, b float64) float64 { return a + b },
}).Parse(summaryHTML))

const summaryHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Offboard evidence summary</title>
<style>` + reportCSS + `
svg .ok{fill:#3d9a62}svg .bad{fill:#c4314b}svg .none{fill:#b7bcc6}svg .due{stroke:#1d2330;stroke-dasharray:3 2;stroke-width:1.5}
svg text{font:11px system-ui,sans-serif;fill:#5a6375}svg .axis{stroke:#d5d9e0}
</style></head><body><main>
<h1>Offboard evidence summary</h1>
<div class="meta">Runs with an effective time from {{period .S.From}} to {{period .S.To}}, from their signed manifests.</div>
<div class="cards">
<div class="card"><b>Terminations</b><span>{{.S.Terminations}}</span> <small>of {{.S.Runs}} runs</small></div>
{{range .S.SLAs}}<div class="card"><b>{{.Phase}} SLA met</b><span>{{pct .}}</span> <small>{{.Met}} met, {{.Missed}} missed</small></div>{{end}}
<div class="card"><b>Time to contain</b><span>{{dur .S.TimeToContain.Median}}</span> <small>median; p95 {{dur .S.TimeToContain.P95}}</small></div>
<div class="card"><b>Open exceptions</b><span>{{len .S.Exceptions}}</span></div>
<div class="card"><b>Waivers in force</b><span>{{len .S.Waivers}}</span></div>
<div class="card"><b>Legal holds</b><span>{{len .S.LegalHolds}}</span></div>
</div>
<h2>Time to contain per run</h2>
{{if .Chart.Empty}}<p>No run in this period.</p>{{else}}
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Chart.W}}" height="{{.Chart.H}}" viewBox="0 0 {{.Chart.W}} {{.Chart.H}}" role="img" aria-label="time to contain per run">
{{range .Chart.Ticks}}<line class="axis" x1="60" x2="{{$.Chart.W}}" y1="{{f .Y}}" y2="{{f .Y}}"/><text x="54" y="{{f .Y}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>
{{end}}{{range .Chart.Bars}}<rect class="{{.Class}}" x="{{f .X}}" y="{{f .Y}}" width="{{f .W}}" height="{{f .H}}"><title>{{.Title}}</title></rect><line class="due" x1="{{f .X}}" x2="{{f (add .X .W)}}" y1="{{f .DueY}}" y2="{{f .DueY}}"/>
{{end}}</svg>
<p class="meta">Bars: time from when Offboard could act to full containment (green within SLA, red late, grey never contained). Dashes: the run's containment SLA.</p>{{end}}
<h2>Open exceptions</h2>
{{if .S.Exceptions}}<table><tr><th>Employee</th><th>Control</th><th>Workflow</th></tr>{{range .S.Exceptions}}<tr><td>{{.EmployeeID}}</td><td><code>{{.What}}</code></td><td><code>{{.WorkflowID}}</code></td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Waivers in force</h2>
{{if .S.Waivers}}<table><tr><th>Employee</th><th>Control and reason</th><th>By</th><th>Expires</th></tr>{{range .S.Waivers}}<tr><td>{{.EmployeeID}}</td><td>{{.What}}</td><td>{{.By}}</td><td class="t">{{ts .Until}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Active legal holds</h2>
{{if .S.LegalHolds}}<table><tr><th>Employee</th><th>Case</th><th>By</th><th>Since</th></tr>{{range .S.LegalHolds}}<tr><td>{{.EmployeeID}}</td><td>{{.What}}</td><td>{{.By}}</td><td class="t">{{ts .Until}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
</main></body></html>
`
