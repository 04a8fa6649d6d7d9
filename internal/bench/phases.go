package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/offboard/offboard/workflows"
)

// phase is one step of one run on the way to containment, in ms after the
// run's t0 (the start call, or the webhook's arrival at the relay).
type phase struct {
	Step    string   `json:"step"`
	AtMS    float64  `json:"atMs"`              // when it began
	TookMS  float64  `json:"tookMs"`            // how long it lasted (0: an instant)
	Calls   int      `json:"calls,omitempty"`   // simulated API calls made meanwhile (HTTP targets)
	CallLog []string `json:"callLog,omitempty"` // those calls: "+offset method path (duration)"
}

// breakdown is where one run's time to contain went, read from its workflow
// history (event timestamps) and the simulators' call log.
type breakdown struct {
	Run           string  `json:"run"`
	From          string  `json:"from"` // "start call" or "webhook at the relay"
	ContainedMS   float64 `json:"containedMs"`
	WorkflowTasks int     `json:"workflowTasksUntilContained"`
	Phases        []phase `json:"phases"`
}

// traceRun reads run's history and the calls each target received between
// t0 and contained, and lays them out phase by phase.
func traceRun(ctx context.Context, c client.Client, calls *callLog, run, from string, t0, contained time.Time) (breakdown, error) {
	b := breakdown{Run: run, From: from, ContainedMS: ms(contained.Sub(t0))}
	at := func(t time.Time) float64 { return ms(t.Sub(t0)) }
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, run, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return b, fmt.Errorf("history of %s: %w", run, err)
		}
		events = append(events, e)
	}
	type activity struct {
		name                         string
		scheduled, started, finished time.Time
	}
	acts := map[int64]*activity{}
	var order []int64
	var wftStarted time.Time
	for _, e := range events {
		t := e.GetEventTime().AsTime()
		if t.After(contained) {
			break
		}
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			b.Phases = append(b.Phases, phase{Step: "workflow execution started (server)", AtMS: at(t)})
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			if b.WorkflowTasks == 0 {
				b.Phases = append(b.Phases, phase{Step: "first workflow task scheduled", AtMS: at(t)})
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			wftStarted = t
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			b.WorkflowTasks++
			b.Phases = append(b.Phases, phase{Step: fmt.Sprintf("workflow task %d (started → completed)", b.WorkflowTasks), AtMS: at(wftStarted), TookMS: ms(t.Sub(wftStarted))})
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			// Version markers and the plan's local activity: one line for a run of them.
			if n := len(b.Phases); n > 0 && strings.HasSuffix(b.Phases[n-1].Step, markers) {
				b.Phases[n-1].Calls++
				b.Phases[n-1].TookMS = at(t) - b.Phases[n-1].AtMS
				continue
			}
			b.Phases = append(b.Phases, phase{Step: markers, AtMS: at(t), Calls: 1})
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := &activity{name: summary(e), scheduled: t}
			if a.name == "" {
				a.name = e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			}
			acts[e.GetEventId()] = a
			order = append(order, e.GetEventId())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if a := acts[e.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]; a != nil {
				a.started = t
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if a := acts[e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]; a != nil {
				a.finished = t
			}
		}
	}
	// An activity's target is its summary's first word ("okta · suspend").
	// Calls are a target's, not an activity's: the target's calls while
	// its activities of one kind (find, rights, controls) ran are said once.
	type window struct{ from, to time.Time }
	spans := map[string]*window{}
	var firsts []string
	kindOf := func(a *activity) string {
		target, rest, _ := strings.Cut(a.name, " ")
		switch {
		case strings.Contains(rest, "find the account"), strings.Contains(rest, "rights"):
			return a.name
		}
		return target + " · containment"
	}
	for _, id := range order {
		a := acts[id]
		if a.finished.IsZero() {
			a.finished = contained // still running when the run was contained
		}
		if a.started.IsZero() {
			a.started = a.finished
		}
		k := kindOf(a)
		if w := spans[k]; w == nil {
			spans[k] = &window{a.started, a.finished}
			firsts = append(firsts, k)
		} else {
			w.from, w.to = minTime(w.from, a.started), maxTime(w.to, a.finished)
		}
		b.Phases = append(b.Phases, phase{Step: "activity " + a.name + ": scheduled +" + fmt.Sprintf("%.0f", at(a.scheduled)) + " ms, started", AtMS: at(a.started), TookMS: ms(a.finished.Sub(a.started))})
	}
	for i, p := range b.Phases {
		if p.Step == markers {
			b.Phases[i].Step, b.Phases[i].Calls = fmt.Sprintf("%d %s", p.Calls, markers), 0
		}
	}
	for _, k := range firsts {
		w := spans[k]
		target, _, _ := strings.Cut(k, " ")
		p := phase{Step: "calls to " + target + " during " + k, AtMS: at(w.from), TookMS: ms(w.to.Sub(w.from))}
		for _, call := range calls.between(target, w.from, w.to) {
			p.Calls++
			p.CallLog = append(p.CallLog, fmt.Sprintf("+%.0f %s (%.0f ms)", at(call.at), call.what, ms(call.took)))
		}
		if p.Calls > 0 {
			b.Phases = append(b.Phases, p)
		}
	}
	b.Phases = append(b.Phases, phase{Step: "contained (the workflow's record)", AtMS: b.ContainedMS})
	slices.SortStableFunc(b.Phases, func(x, y phase) int {
		switch {
		case x.AtMS < y.AtMS:
			return -1
		case x.AtMS > y.AtMS:
			return 1
		}
		return 0
	})
	return b, nil
}

// markers names a run of marker events in the breakdown.
const markers = "markers recorded (version changes, the plan's local activity)"

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// summary is an activity's summary ("okta · find the account"), decoded
// with the default converter (the bench runs without the codec).
func summary(e *historypb.HistoryEvent) string {
	p := e.GetUserMetadata().GetSummary()
	if p == nil {
		return ""
	}
	var s string
	if converter.GetDefaultDataConverter().FromPayload(p, &s) != nil {
		return ""
	}
	return s
}

func printBreakdown(w io.Writer, b breakdown) {
	fmt.Fprintf(w, "\nwhere the time went: %s, from the %s (contained after %.0f ms, %d workflow tasks)\n", b.Run, b.From, b.ContainedMS, b.WorkflowTasks)
	for _, p := range b.Phases {
		took := ""
		if p.TookMS > 0 {
			took = fmt.Sprintf(", %.0f ms", p.TookMS)
		}
		fmt.Fprintf(w, "  +%5.0f ms  %s%s\n", p.AtMS, p.Step, took)
		if p.Calls > 0 {
			fmt.Fprintf(w, "             %d calls: %s\n", p.Calls, strings.Join(p.CallLog, "; "))
		}
	}
}

// callLog records every call each HTTP simulator received: when, what, how long.
type callLog struct {
	mu    sync.Mutex
	calls map[string][]call // target name → calls in arrival order
}

type call struct {
	at   time.Time
	took time.Duration
	what string
}

func (l *callLog) wrap(target string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		what := r.Method + " " + r.URL.Path
		if action := r.URL.Query().Get("Action"); action != "" {
			what += "?Action=" + action
		}
		if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			// IAM names its action in the form body: read it, and hand the handler a copy.
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") != "" {
				what = "IAM " + form.Get("Action")
			}
		}
		h.ServeHTTP(w, r)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.calls == nil {
			l.calls = map[string][]call{}
		}
		l.calls[target] = append(l.calls[target], call{at: start, took: time.Since(start), what: what})
	})
}

// between returns target's calls that began in [from, to].
func (l *callLog) between(target string, from, to time.Time) []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []call
	for _, c := range l.calls[target] {
		if !c.at.Before(from) && !c.at.After(to) {
			out = append(out, c)
		}
	}
	return out
}

// medianRun is the run whose time to contain is the median of lat.
func medianRun(lat []time.Duration) int {
	idx := make([]int, len(lat))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(lat[a], lat[b]) })
	return idx[len(idx)/2]
}

// runID is the workflow id of an employee's run.
func runID(employee string) string { return workflows.WorkflowID(employee) }
