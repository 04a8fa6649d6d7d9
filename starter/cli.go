package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/hris"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/tclient"
	"github.com/offboard/offboard/relay"
	"github.com/offboard/offboard/workflows"
)

// exit codes
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitRefused = 3 // the workflow rejected the signal
)

// errUsage marks a bad or missing argument.
var errUsage = errors.New("usage")

type env struct {
	stdout, stderr io.Writer
	cfg            config.Config
	json           bool
	c              client.Client
	closers        []func()
}

// client dials Temporal on first use, so argument errors come first.
func (e *env) client() (client.Client, error) {
	if e.c != nil {
		return e.c, nil
	}
	c, err := tclient.Dial(e.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	e.c = c
	e.closers = append(e.closers, c.Close)
	return c, nil
}

const usageHead = `usage: starter <command> [flags]

Operator commands (talk to Temporal directly):
  terminate   start deprovisioning a person        starter terminate -employee E1001 -email ada@example.test
  status      show a person's deprovisioning        starter status -employee E1001
`

const usageTail = `
Service:
  serve       run the HRIS webhook relay and operator API (default :8080)
  evidence    verify, fetch and summarise evidence (starter evidence -h)
  doctor      check every configured target: credentials, base URL, permissions (exit 0 only if all pass)

Every command takes -config FILE (or OFFBOARD_CONFIG); without one it uses the embedded sandbox configuration.
`

// usage: the decisions' lines live with them in decide.go.
var usage = usageHead + decideUsage + usageTail

type command struct {
	summary string
	flags   func(fs *flag.FlagSet) func(ctx context.Context, e *env) error
}

// commands are the operator commands besides the decisions (decide.go).
var commands = map[string]command{
	"terminate": {"start deprovisioning a person", terminateCmd},
	"status":    {"show a person's deprovisioning", statusCmd},
}

func lookup(name string) (command, bool) {
	if cmd, ok := commands[name]; ok {
		return cmd, true
	}
	cmd, ok := decisions[name]
	return cmd, ok
}

// run runs one command line (args without the program name) and returns
// its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	return runWith(ctx, args[0], args[1:], stdout, stderr, nil)
}

// runWith runs one command with its Temporal client injectable for tests.
func runWith(ctx context.Context, name string, args []string, stdout, stderr io.Writer, c client.Client) int {
	switch name {
	case "serve":
		return serveCmd(ctx, args, stderr)
	case "evidence":
		return evidenceCmd(ctx, args, stdout, stderr)
	case "doctor":
		return doctorCmd(ctx, args, stdout, stderr)
	}
	cmd, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "starter: unknown command %q\n\n%s", name, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("starter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("OFFBOARD_CONFIG"), "configuration file (default: embedded sandbox configuration)")
	asJSON := fs.Bool("json", false, "print JSON")
	action := cmd.flags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "starter %s: unexpected argument %q\n", name, fs.Arg(0))
		return exitUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return exitUsage
	}
	e := &env{stdout: stdout, stderr: stderr, cfg: cfg, c: c, json: *asJSON}
	defer func() {
		for _, close := range e.closers {
			close()
		}
	}()
	err = action(ctx, e)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "starter %s: %v\n", name, err)
		return exitUsage
	case errors.Is(err, errRefused):
		fmt.Fprintf(stderr, "starter %s: %v\n", name, err)
		return exitRefused
	default:
		fmt.Fprintf(stderr, "starter %s: %v\n", name, err)
		return exitFailed
	}
}

func required(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%w: -%s is required", errUsage, name)
	}
	return nil
}

// normalizeEmployee applies HR's employee-id rule (hris.NormalizeEmployeeID)
// to the -employee flag, so " e1001" names the run of E1001, as the relay does.
func normalizeEmployee(p *string) error {
	if err := required("employee", *p); err != nil {
		return err
	}
	id, err := hris.NormalizeEmployeeID(*p)
	if err != nil {
		return fmt.Errorf("%w: -employee %q %v", errUsage, *p, err)
	}
	*p = id
	return nil
}

// parseTime accepts "now", RFC 3339, or a offset like "+2h" / "72h".
func parseTime(name, v string, now time.Time) (time.Time, error) {
	switch {
	case v == "" || v == "now":
		return now, nil
	case strings.HasPrefix(v, "+"):
		d, err := time.ParseDuration(v[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: -%s %q: %v", errUsage, name, v, err)
		}
		return now.Add(d), nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: -%s %q is not now, +DURATION or RFC 3339 (2026-12-01T17:00:00Z)", errUsage, name, v)
	}
	return t, nil
}

type accountsFlag map[string]string

func (a accountsFlag) String() string { return fmt.Sprint(map[string]string(a)) }
func (a accountsFlag) Set(v string) error {
	target, id, ok := strings.Cut(v, "=")
	if !ok || target == "" || id == "" {
		return fmt.Errorf("want TARGET=ID, got %q", v)
	}
	a[target] = id
	return nil
}

func terminateCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	email := fs.String("email", "", "work e-mail, used to find accounts (required unless every -account is given)")
	name := fs.String("name", "", "display name")
	effective := fs.String("effective", "now", "effective time: now, +DURATION or RFC 3339")
	reason := fs.String("reason", "voluntary", "voluntary, involuntary or for_cause")
	kind := fs.String("kind", "termination", "termination, contract_end or role_change")
	privileged := fs.Bool("privileged", false, "the person holds privileged access (approval required by default policy)")
	manager := fs.String("manager", "", "manager's e-mail")
	newRole := fs.String("new-role", "", "role changes: the new role (see roles in the configuration)")
	by := fs.String("by", os.Getenv("USER"), "who requests this (may not approve it)")
	event := fs.String("event", "", "HR event id (default: derived from employee, kind and effective day, so a repeat is a duplicate)")
	hold := fs.String("legal-hold", "", "case reference of a legal hold to start under")
	accounts := accountsFlag{}
	fs.Var(accounts, "account", "known account id in a target, TARGET=ID (repeatable)")
	return func(ctx context.Context, e *env) error {
		if err := required("employee", *employee); err != nil {
			return err
		}
		if *email == "" && len(accounts) == 0 {
			return fmt.Errorf("%w: -email is required (or -account TARGET=ID)", errUsage)
		}
		at, err := parseTime("effective", *effective, time.Now().UTC())
		if err != nil {
			return err
		}
		t := workflows.Termination{
			EventID: *event, Source: "cli", EmployeeID: *employee, Email: *email, Name: *name,
			Kind: workflows.Kind(*kind), Reason: workflows.Reason(*reason), EffectiveAt: at.UTC(),
			Privileged: *privileged, Manager: *manager, NewRole: *newRole, RequestedBy: *by,
		}
		if len(accounts) > 0 {
			t.Accounts = accounts
		}
		if *hold != "" {
			t.LegalHold = &workflows.Hold{By: *by, CaseRef: *hold, Reason: "set when terminating"}
		}
		// The relay's rule for employee ids, so both reach the same run.
		if t.EmployeeID, err = hris.NormalizeEmployeeID(*employee); err != nil {
			return fmt.Errorf("%w: -employee %v", errUsage, err)
		}
		if t.EventID == "" {
			t.EventID = cliEventID(t)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		// The same cluster-wide blast-radius guard as the relay's.
		br := e.cfg.Relay.WithDefaults().BlastRadius
		v, err := runs.Admit(ctx, c, workflows.AdmissionFor("start", "cli", t, br.Max, br.Window.D()))
		if err != nil {
			return err
		}
		t.Quarantined = v.Quarantined
		// A correction or a supersession of the run in flight must be signed
		// by the relay's key; an operator without it is told to go through
		// the relay or `starter correct`.
		key, err := relay.LoadDecisionKey(e.cfg.Relay.DecisionKey)
		if err != nil {
			return err
		}
		started, err := runs.StartSigned(ctx, c, t, key)
		if err != nil {
			return err
		}
		if e.json {
			return json.NewEncoder(e.stdout).Encode(struct {
				runs.Started
				Quarantined bool `json:"quarantined,omitempty"`
			}{started, t.Quarantined})
		}
		switch started.Outcome {
		case runs.OutcomeDuplicate:
			fmt.Fprintf(e.stdout, "duplicate: %s run %s already exists (%s)\n", started.WorkflowID, started.RunID, started.Note)
		case runs.OutcomeSuperseded, runs.OutcomeCorrected:
			fmt.Fprintf(e.stdout, "%s: %s run %s: %s\n", started.Outcome, started.WorkflowID, started.RunID, started.Note)
		default:
			fmt.Fprintf(e.stdout, "started: %s run %s, effective %s\n", started.WorkflowID, started.RunID, t.EffectiveAt.Format(time.RFC3339))
		}
		if t.Quarantined {
			fmt.Fprintf(e.stdout, "quarantined by the blast-radius guard (%s): a security person must release it\n", v.Reason)
		}
		return nil
	}
}

// cliEventID makes a repeat of the same request on the same day a duplicate.
func cliEventID(t workflows.Termination) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{"cli", t.EmployeeID, string(t.Kind), t.NewRole, t.EffectiveAt.Format("2006-01-02")}, "|")))
	return "cli-" + hex.EncodeToString(sum[:8])
}

func statusCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	employee := fs.String("employee", "", "employee id (required)")
	return func(ctx context.Context, e *env) error {
		if err := normalizeEmployee(employee); err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		st, err := runs.Status(ctx, c, *employee)
		if err != nil {
			return err
		}
		if e.json {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printStatus(e.stdout, st)
		return nil
	}
}

func printStatus(w io.Writer, st workflows.Status) {
	fmt.Fprintf(w, "%s  %s  phase: %s", st.WorkflowID, st.Kind, st.Phase)
	if st.SLABreached {
		fmt.Fprint(w, "  SLA BREACHED")
	}
	fmt.Fprintf(w, "\neffective: %s", st.EffectiveAt.Format(time.RFC3339))
	if !st.ContainedAt.IsZero() {
		fmt.Fprintf(w, "   contained: %s (+%s)", st.ContainedAt.Format(time.RFC3339), st.ContainedAt.Sub(st.EffectiveAt).Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	if st.PlanDigest != "" {
		fmt.Fprintf(w, "plan digest: %s", st.PlanDigest)
		if st.ApprovalNeeded {
			fmt.Fprint(w, " (approval required)")
		}
		fmt.Fprintln(w)
	}
	printPlan(w, st) // decide.go: what the digest covers
	if st.LegalHold != nil {
		fmt.Fprintf(w, "legal hold: case %s by %s\n", st.LegalHold.CaseRef, st.LegalHold.By)
	}
	for _, g := range st.PendingGates {
		fmt.Fprintf(w, "waiting on %s: %s (since %s)\n", g.Kind, g.Detail, g.Since.Format(time.RFC3339))
	}
	for _, d := range st.Deadlines {
		state := "open"
		switch {
		case d.Breached && !d.MetAt.IsZero():
			state = "missed, met late " + d.MetAt.Format(time.RFC3339)
		case d.Breached:
			state = "MISSED"
		case !d.MetAt.IsZero():
			state = "met " + d.MetAt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "SLA %-12s due %s  %s\n", d.Phase, d.Due.Format(time.RFC3339), state)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nACCOUNT\tKIND\tSTATE\tID")
	for _, a := range st.Accounts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Target, a.Kind, a.State, firstOf(a.Login, a.ID, a.Error))
	}
	fmt.Fprintln(tw, "\nCONTROL\tPHASE\tSTATE\tOUTCOME\tTRIES\tDETAIL")
	for _, c := range st.Controls {
		detail := c.Error
		if detail == "" && c.Receipt != nil {
			detail = c.Receipt.Detail
		}
		if c.Waiver != nil {
			detail = "waived by " + c.Waiver.By + " until " + c.Waiver.ExpiresAt.Format(time.RFC3339) + ": " + c.Waiver.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", c.ID, c.Phase, c.State, c.Outcome, c.Attempts, truncate(detail, 90))
	}
	_ = tw.Flush()
	if len(st.Log) > 0 {
		fmt.Fprintln(w, "\nLOG")
		for _, l := range st.Log {
			mark := "✓"
			if !l.Accepted {
				mark = "✗"
			}
			fmt.Fprintf(w, "%s %s %-13s %s %s\n", l.At.Format(time.RFC3339), mark, l.Kind, l.By, l.Detail)
		}
	}
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
