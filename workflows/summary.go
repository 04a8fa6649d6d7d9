// What the Web UI shows of a run: a summary on every activity and timer, the
// run's static summary, and its current details. Temporal keeps these as
// user metadata, through the data converter, so the codec encrypts them like
// any payload; they carry no name or e-mail all the same (targets, controls,
// phases, times, the plan digest), should a deployment run without a codec.

package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// StaticSummary is the run's one line in the Web UI, set when it starts.
func StaticSummary(t Termination) string {
	s := string(t.Kind)
	if t.Reason != "" && t.Kind != KindRoleChange {
		s += " (" + string(t.Reason) + ")"
	}
	return s + " of " + t.EmployeeID + ", effective " + at(t.EffectiveAt)
}

// at is a time as the summaries show it.
func at(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// controlName is a control as people read it: "okta · suspend".
func controlName(target, ctl string) string { return target + " · " + ctl }

// controlIDName is a control id ("okta/suspend") as people read it. A
// non-human step ("aws/owned/service-user/<id>/create_key") is said by
// kind and step: its id may be an account's login or distinguished name.
func controlIDName(id string) string {
	target, rest, _ := strings.Cut(id, "/")
	if kindID, ok := strings.CutPrefix(rest, "owned/"); ok {
		kind, _, ok := strings.Cut(kindID, "/")
		if !ok {
			return target + " · non-human " + kind // "okta · non-human discover"
		}
		return target + " · " + kind + " · " + rest[strings.LastIndex(rest, "/")+1:]
	}
	return strings.Replace(id, "/", " · ", 1)
}

// withSummary labels the next activity started with ctx.
func withSummary(ctx workflow.Context, summary string) workflow.Context {
	o := workflow.GetActivityOptions(ctx)
	o.Summary = summary
	return workflow.WithActivityOptions(ctx, o)
}

// awaitFor is workflow.AwaitWithTimeout with a label on its timer (the
// Web UI otherwise shows every such timer as "AwaitWithTimeout").
func awaitFor(ctx workflow.Context, d time.Duration, summary string, cond func() bool) (bool, error) {
	return workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: d, TimerOptions: workflow.TimerOptions{Summary: summary}}, cond)
}

// keepDetails keeps the run's current details in step with its status. It
// adds no command: a coroutine that wakes whenever the details change.
func (wf *deprovision) keepDetails(ctx workflow.Context) {
	shown := wf.details()
	workflow.SetCurrentDetails(ctx, shown)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			_ = workflow.Await(ctx, func() bool { return wf.details() != shown })
			shown = wf.details()
			workflow.SetCurrentDetails(ctx, shown)
		}
	})
}

// details is the run's current details (Markdown): phase, open gates and who
// they wait for, controls by state.
func (wf *deprovision) details() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Phase:** %s · %s effective %s\n", wf.status.Phase, wf.t.Kind, at(wf.effectiveAt))
	if len(wf.status.PendingGates) == 0 {
		b.WriteString("\n**Waiting for:** nobody\n")
	}
	for _, g := range wf.status.PendingGates {
		fmt.Fprintf(&b, "\n**Waiting for:** %s, since %s\n", gateWaitsFor(g, wf.status.PlanDigest), at(g.Since))
	}
	for _, d := range wf.status.Deadlines {
		switch {
		case d.Breached:
			fmt.Fprintf(&b, "\n**SLA %s:** breached (due %s)\n", d.Phase, at(d.Due))
		case d.MetAt.IsZero():
			fmt.Fprintf(&b, "\n**SLA %s:** due %s\n", d.Phase, at(d.Due))
		}
	}
	for _, st := range []ControlState{StateException, StateRunning, StatePending, StateWaived, StateDone} {
		var names []string
		for _, c := range wf.status.Controls {
			if c.State == st {
				names = append(names, controlName(c.Target, c.Control))
			}
		}
		if len(names) > 0 {
			fmt.Fprintf(&b, "\n**Controls %s (%d):** %s\n", st, len(names), strings.Join(names, ", "))
		}
	}
	return b.String()
}

// gateWaitsFor says who a gate waits for, by role: a gate's own detail may
// quote a target's error, which can hold personal data.
func gateWaitsFor(g Gate, planDigest string) string {
	switch {
	case g.Kind == "approval":
		return "an approver other than the requester, for plan " + shortDigest(planDigest)
	case g.Kind == "quarantine":
		return "security, to release the quarantine (too many terminations at once)"
	case g.Kind == "legal_hold":
		return "legal, to release the hold (destructive steps wait)"
	case strings.HasPrefix(g.Kind, "exception:"):
		return "security, to retry or waive " + controlIDName(strings.TrimPrefix(g.Kind, "exception:"))
	}
	return g.Kind
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12] + "…"
	}
	return d
}
