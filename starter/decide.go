package main

// The operator's decisions on a run in flight: approve or reject (and
// quarantine release), legal hold and its release, rescind, reschedule,
// retry and waive.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

const decideUsage = `  approve     approve or reject the removal plan    starter approve -employee E1001 -by alice@example.test -digest sha256:...
  hold        place a legal hold                    starter hold -employee E1001 -by legal@x -case CASE-7
  release     release the legal hold                starter release -employee E1001 -by legal@x -case CASE-7
  rescind     cancel the termination                starter rescind -employee E1001 -by hr@x -reason "..."
  reschedule  move the effective time               starter reschedule -employee E1001 -by hr@x -at 2026-12-01T17:00:00Z
  retry       retry a control in exception          starter retry -employee E1001 -by alice@x -control okta/suspend
  waive       waive a control in exception          starter waive -employee E1001 -by alice@x -control aws/deny_all_policy -reason "..." -expires 72h
`

var decisions = map[string]command{
	"approve":    {"approve or reject the removal plan", approveCmd},
	"hold":       {"place a legal hold", holdCmd},
	"release":    {"release the legal hold", releaseCmd},
	"rescind":    {"cancel the termination", rescindCmd},
	"reschedule": {"move the effective time", rescheduleCmd},
	"retry":      {"retry a control in exception", retryCmd},
	"waive":      {"waive a control in exception", waiveCmd},
}

// errRefused: the workflow logged the signal as rejected.
var errRefused = errors.New("refused by the workflow")

// sendSignal sends a signal and reports what the workflow made of it, by
// watching its log for the entry the signal adds.
func sendSignal(ctx context.Context, e *env, employee, name, by string, payload any) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	v, err := runs.SignalAndWait(ctx, c, employee, name, by, payload, 10*time.Second)
	switch {
	case err != nil:
		return err
	case !v.Processed:
		fmt.Fprintf(e.stdout, "sent %s to %s (not yet processed: see starter status)\n", name, workflows.WorkflowID(employee))
		return nil
	case !v.Accepted:
		return fmt.Errorf("%w: %s", errRefused, v.Detail)
	}
	fmt.Fprintf(e.stdout, "accepted: %s\n", v.Detail)
	return nil
}

func approveCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	by := fs.String("by", "", "approver identity (required; must hold the approver role)")
	decision := fs.String("decision", "approve", "approve or reject")
	digest := fs.String("digest", "", "plan digest being approved, from starter status (required); \"quarantine\" releases a quarantined run")
	reason := fs.String("reason", "", "why")
	return func(ctx context.Context, e *env) error {
		for _, r := range [][2]string{{"employee", *employee}, {"by", *by}, {"digest", *digest}} {
			if err := required(r[0], r[1]); err != nil {
				return err
			}
		}
		if *decision != "approve" && *decision != "reject" {
			return fmt.Errorf("%w: -decision must be approve or reject", errUsage)
		}
		return sendSignal(ctx, e, *employee, workflows.SignalApprove, *by, workflows.Approve{Approver: *by, Decision: *decision, PlanDigest: *digest, Reason: *reason})
	}
}

func holdCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	by := fs.String("by", "", "who places the hold (required)")
	caseRef := fs.String("case", "", "legal case reference (required)")
	reason := fs.String("reason", "", "why")
	return func(ctx context.Context, e *env) error {
		for _, r := range [][2]string{{"employee", *employee}, {"by", *by}, {"case", *caseRef}} {
			if err := required(r[0], r[1]); err != nil {
				return err
			}
		}
		return sendSignal(ctx, e, *employee, workflows.SignalLegalHold, *by, workflows.Hold{By: *by, CaseRef: *caseRef, Reason: *reason})
	}
}

func releaseCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	by := fs.String("by", "", "who releases the hold (required)")
	caseRef := fs.String("case", "", "the hold's case reference (required)")
	return func(ctx context.Context, e *env) error {
		for _, r := range [][2]string{{"employee", *employee}, {"by", *by}, {"case", *caseRef}} {
			if err := required(r[0], r[1]); err != nil {
				return err
			}
		}
		return sendSignal(ctx, e, *employee, workflows.SignalReleaseHold, *by, workflows.Release{By: *by, CaseRef: *caseRef})
	}
}

func rescindCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	by := fs.String("by", "", "who rescinds (required)")
	reason := fs.String("reason", "", "why")
	return func(ctx context.Context, e *env) error {
		for _, r := range [][2]string{{"employee", *employee}, {"by", *by}} {
			if err := required(r[0], r[1]); err != nil {
				return err
			}
		}
		return sendSignal(ctx, e, *employee, workflows.SignalRescind, *by, workflows.Rescind{By: *by, Reason: *reason})
	}
}

func rescheduleCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	by := fs.String("by", "", "who reschedules (required)")
	at := fs.String("at", "", "new effective time: +DURATION or RFC 3339 (required)")
	return func(ctx context.Context, e *env) error {
		for _, r := range [][2]string{{"employee", *employee}, {"by", *by}, {"at", *at}} {
			if err := required(r[0], r[1]); err != nil {
				return err
			}
		}
		t, err := parseTime("at", *at, time.Now().UTC())
		if err != nil {
			return err
		}
		return sendSignal(ctx, e, *employee, workflows.SignalReschedule, *by, workflows.Reschedule{By: *by, EffectiveAt: t.UTC()})
	}
}

func retryCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	by := fs.String("by", "", "who asks for the retry (required)")
	ctl := fs.String("control", "", "control id, e.g. okta/suspend (required)")
	return func(ctx context.Context, e *env) error {
		for _, r := range [][2]string{{"employee", *employee}, {"by", *by}, {"control", *ctl}} {
			if err := required(r[0], r[1]); err != nil {
				return err
			}
		}
		return sendSignal(ctx, e, *employee, workflows.SignalRetry, *by, workflows.Retry{By: *by, Control: *ctl})
	}
}

func waiveCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	by := fs.String("by", "", "security approver (required)")
	ctl := fs.String("control", "", "control id, e.g. okta/suspend (required)")
	reason := fs.String("reason", "", "why the risk is accepted (required)")
	expires := fs.String("expires", "", "when the waiver ends: +DURATION, DURATION or RFC 3339 (required)")
	return func(ctx context.Context, e *env) error {
		for _, r := range [][2]string{{"employee", *employee}, {"by", *by}, {"control", *ctl}, {"reason", *reason}, {"expires", *expires}} {
			if err := required(r[0], r[1]); err != nil {
				return err
			}
		}
		t, err := parseTime("expires", *expires, time.Now().UTC())
		if err != nil {
			return err
		}
		return sendSignal(ctx, e, *employee, workflows.SignalWaive, *by, workflows.Waive{By: *by, Control: *ctl, Reason: *reason, ExpiresAt: t.UTC()})
	}
}
