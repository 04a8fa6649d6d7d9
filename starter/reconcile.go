package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// Issue 14's operator commands, registered beside the others.
func init() {
	commands["reconcile"] = command{"reconcile accounts with HR now, or show the schedule", reconcileCmd}
	commands["exceptions"] = command{"list every open exception and waiver", exceptionsCmd}
	commands["attest"] = command{"write the attestation pack now, or show the schedule", attestCmd}
	commands["drill"] = command{"run a termination drill now, or show the schedule", drillCmd}
	usage += reconcileUsage
}

const reconcileUsage = `
Keeping it proven (issue 14):
  reconcile   show the nightly reconciliation; -now runs one and prints progress   starter reconcile -now
  exceptions  every open exception and waiver, with owner, age, expiry and the command   starter exceptions
  attest      the quarterly attestation pack; -now writes one (-from/-to, default the last quarter)   starter attest -now
  drill       the quarterly termination drill of the canary; -now runs one   starter drill -now
`

// progressEvery is how often a long command prints progress.
const progressEvery = 2 * time.Second

func reconcileCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	now := fs.Bool("now", false, "run a reconciliation now and wait for it, printing progress")
	return func(ctx context.Context, e *env) error {
		c, err := e.client()
		if err != nil {
			return err
		}
		if !*now {
			return showSchedule(ctx, c, e.stdout, workflows.ReconcileScheduleID)
		}
		id := "reconcile-now-" + time.Now().UTC().Format("20060102T150405Z")
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue,
			StaticSummary: "reconciliation asked for with starter reconcile -now"}, workflows.ReconcileWorkflowType, workflows.ReconcileInput{})
		if err != nil {
			return fmt.Errorf("start %s: %w", id, err)
		}
		fmt.Fprintf(e.stderr, "started %s\n", id)
		var res workflows.ReconcileResult
		if err := waitPrinting(ctx, run, e.stderr, func() (string, error) { return reconcileProgress(ctx, c, id) }, &res); err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, res)
		}
		printReconcile(e.stdout, res)
		return nil
	}
}

// waitPrinting waits for run's result, printing progress() when it changes.
func waitPrinting(ctx context.Context, run client.WorkflowRun, w io.Writer, progress func() (string, error), out any) error {
	done := make(chan error, 1)
	go func() { done <- run.Get(ctx, out) }()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	last := ""
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if p, err := progress(); err == nil && p != last {
				fmt.Fprintln(w, p)
				last = p
			}
		}
	}
}

func reconcileProgress(ctx context.Context, c client.Client, id string) (string, error) {
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryReconcile)
	if err != nil {
		return "", err
	}
	var st workflows.ReconcileState
	if err := v.Get(&st); err != nil {
		return "", err
	}
	var parts []string
	for i, t := range st.Targets {
		state := "waiting"
		switch {
		case t.Error != "":
			state = "not covered"
		case t.Done:
			state = "done"
		case i == st.Next:
			state = "reading"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%d accounts)", t.Name, state, t.Counts.Accounts))
	}
	return fmt.Sprintf("%s  findings %d", strings.Join(parts, ", "), len(st.Findings)), nil
}

func printReconcile(w io.Writer, res workflows.ReconcileResult) {
	rep := res.Report
	fmt.Fprintf(w, "reconciliation %s, %s to %s; report in the evidence store at %s\n\n", rep.ID,
		rep.StartedAt.UTC().Format(time.RFC3339), rep.FinishedAt.UTC().Format(time.RFC3339), res.Where)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tACCOUNTS\tMATCHED\tLEAVERS ACTIVE\tORPHANS\tSERVICE W/O OWNER\tCOVERAGE")
	for _, t := range rep.Targets {
		cov := "whole"
		if t.Error != "" {
			cov = t.Error
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", t.Name, t.Counts.Accounts, t.Counts.Matched, t.Counts.LeaverActive, t.Counts.Orphans, t.Counts.ServiceNoOwner, cov)
	}
	_ = tw.Flush()
	if len(rep.Items) == 0 {
		fmt.Fprintln(w, "\nno findings")
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tFINDING\tACCOUNT\tHR\tOUTCOME\tOWNER\tDUE\tACT WITH")
	for _, it := range rep.Items {
		due := "—"
		if !it.DueAt.IsZero() {
			due = it.DueAt.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Target, it.Kind, it.Login, it.EmployeeID, it.Outcome, it.Owner, due, it.Action)
	}
	_ = tw.Flush()
}

// showSchedule prints a schedule's interval, next runs and recent actions.
func showSchedule(ctx context.Context, c client.Client, w io.Writer, id string) error {
	d, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
	if err != nil {
		return fmt.Errorf("schedule %s (a worker with evidence.signingKey creates it at start): %w", id, err)
	}
	fmt.Fprintf(w, "schedule %s", id)
	if d.Schedule.Spec != nil && len(d.Schedule.Spec.Intervals) > 0 {
		fmt.Fprintf(w, ": every %s", d.Schedule.Spec.Intervals[0].Every)
	}
	fmt.Fprintln(w)
	for _, t := range d.Info.NextActionTimes {
		fmt.Fprintf(w, "  next  %s\n", t.UTC().Format(time.RFC3339))
	}
	for _, a := range d.Info.RecentActions {
		fmt.Fprintf(w, "  ran   %s  %s\n", a.ActualTime.UTC().Format(time.RFC3339), a.StartWorkflowResult.WorkflowID)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func exceptionsCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		c, err := e.client()
		if err != nil {
			return err
		}
		reg, err := runs.Exceptions(ctx, c, strings.Join(e.cfg.People.Security, ", "), time.Now())
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, reg)
		}
		printExceptions(e.stdout, reg)
		if len(reg.Unreadable) > 0 {
			return errors.New("some runs could not be read (listed above): the list is not complete")
		}
		return nil
	}
}

func printExceptions(w io.Writer, reg runs.Registry) {
	fmt.Fprintf(w, "%d open (%d runs looked at)\n", len(reg.Exceptions), reg.Runs)
	if len(reg.Exceptions) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tEMPLOYEE\tCONTROL\tOWNER\tAGE\tEXPIRES\tREASON\tACT WITH")
		for _, x := range reg.Exceptions {
			exp := "—"
			if !x.ExpiresAt.IsZero() {
				exp = x.ExpiresAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Kind, x.EmployeeID, x.Control, x.Owner, x.Age, exp, truncate(x.Reason, 60), x.Action)
		}
		_ = tw.Flush()
	}
	for _, u := range reg.Unreadable {
		fmt.Fprintln(w, "unreadable:", u)
	}
}

func attestCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	now := fs.Bool("now", false, "write an attestation pack now and wait for it")
	from := fs.String("from", "", "start of the period (RFC 3339 or 2006-01-02); default the last full quarter")
	to := fs.String("to", "", "end of the period, exclusive")
	return func(ctx context.Context, e *env) error {
		c, err := e.client()
		if err != nil {
			return err
		}
		if !*now {
			return showSchedule(ctx, c, e.stdout, workflows.AttestScheduleID)
		}
		var in workflows.AttestInput
		if (*from == "") != (*to == "") {
			return fmt.Errorf("%w: give both -from and -to, or neither", errUsage)
		}
		if *from != "" {
			if in.From, err = parseDay(*from); err != nil {
				return err
			}
			if in.To, err = parseDay(*to); err != nil {
				return err
			}
		}
		var sum workflows.AttestSummary
		id := "attest-now-" + time.Now().UTC().Format("20060102T150405Z")
		if err := runNow(ctx, c, e, id, workflows.AttestWorkflowType, in, &sum); err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, sum)
		}
		fmt.Fprintf(e.stdout, "attestation pack in the evidence store at %s\n", sum.Where)
		fmt.Fprintf(e.stdout, "leavers %d, SLA missed %d, open exceptions %d, waivers %d, findings %d (%d open), drills %d (%d failed)\n",
			sum.Leavers, sum.SLAMissed, sum.OpenExceptions, sum.Waivers, sum.Findings, sum.FindingsOpen, sum.Drills, sum.DrillsFailed)
		for _, g := range sum.Gaps {
			fmt.Fprintln(e.stdout, "gap:", g)
		}
		return nil
	}
}

func drillCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	now := fs.Bool("now", false, "run a termination drill of the canary now and wait for it")
	return func(ctx context.Context, e *env) error {
		c, err := e.client()
		if err != nil {
			return err
		}
		if !*now {
			return showSchedule(ctx, c, e.stdout, workflows.DrillScheduleID)
		}
		var res workflows.DrillResult
		id := "drill-now-" + time.Now().UTC().Format("20060102T150405Z")
		if err := runNow(ctx, c, e, id, workflows.DrillWorkflowType, workflows.DrillInput{}, &res); err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, res)
		}
		verdict := "passed"
		if !res.Passed {
			verdict = "FAILED"
		}
		fmt.Fprintf(e.stdout, "drill %s of canary %s: %s; report at %s\n", res.ID, res.Canary, verdict, res.Where)
		for _, t := range res.Targets {
			fmt.Fprintf(e.stdout, "  %-12s contained %-5v verified %-5v restored %-5v %s\n", t.Name, t.Contained, t.Verified, t.Restored, t.Error)
		}
		if !res.Passed {
			return errors.New("the drill failed (notified through the webhook)")
		}
		return nil
	}
}

// runNow starts a workflow and waits for it, printing the activity it is on.
func runNow(ctx context.Context, c client.Client, e *env, id, wf string, arg, out any) error {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, wf, arg)
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	fmt.Fprintf(e.stderr, "started %s\n", id)
	return waitPrinting(ctx, run, e.stderr, func() (string, error) {
		d, err := c.DescribeWorkflow(ctx, id, "")
		if err != nil {
			return "", err
		}
		var parts []string
		for _, p := range d.RawResponse.GetPendingActivities() {
			parts = append(parts, fmt.Sprintf("%s (attempt %d)", p.GetActivityType().GetName(), p.GetAttempt()))
		}
		if len(parts) == 0 {
			return "working", nil
		}
		return "running " + strings.Join(parts, ", "), nil
	}, out)
}

func parseDay(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q is not RFC 3339 or 2006-01-02", errUsage, v)
}

// verifyReport checks a signed report (reconciliation, attestation, drill)
// exported to dir, for starter evidence verify.
func verifyReport(dir string, pub ed25519.PublicKey, stdout io.Writer) error {
	m, err := evidence.VerifyReport(dir, pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok %s: %s report %s made %s; signature by %s, %d files match\n",
		dir, m.Kind, m.ID, m.GeneratedAt.Format(time.RFC3339), m.KeyID, len(m.Files))
	return nil
}
