package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// Issue 14's operator commands, registered beside the others.
func init() {
	commands["reconcile"] = command{"reconcile accounts with HR now, or show the schedule", reconcileCmd}
	commands["exceptions"] = command{"list every open exception and waiver", exceptionsCmd}
	usage += reconcileUsage
}

const reconcileUsage = `
Keeping it proven (issue 14):
  reconcile   show the nightly reconciliation; -now runs one and prints progress   starter reconcile -now
  exceptions  every open exception and waiver, with owner, age, expiry and the command   starter exceptions
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
