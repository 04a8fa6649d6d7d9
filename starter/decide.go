package main

// The operator's decisions on a run in flight: approve or reject (and
// quarantine release), legal hold and its release, rescind, reschedule,
// retry, waive and identity correction. They go through the operator API
// with the operator's own token: the API knows who holds it and signs the
// decision; there is no flag to say who you are. Without the API, a
// break-glass key signs instead, and the run marks the decision as such.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/relay"
	"github.com/offboard/offboard/workflows"
)

const decideUsage = `
Decisions (through the operator API, as the person holding the token in OFFBOARD_TOKEN or -token-file):
  approve     approve or reject the removal plan    starter approve -employee E1001 -digest sha256:...  (without -digest: shows the plan)
  hold        place a legal hold                    starter hold -employee E1001 -case CASE-7
  release     release the legal hold                starter release -employee E1001 -case CASE-7
  rescind     cancel the termination                starter rescind -employee E1001 -event EVT-1 -reason "..."
  reschedule  move the effective time               starter reschedule -employee E1001 -event EVT-1 -at 2026-12-01T17:00:00Z
  retry       retry a control in exception          starter retry -employee E1001 -control okta/suspend
  waive       waive a control in exception          starter waive -employee E1001 -control aws/deny_all_policy -reason "..." -expires 72h
  correct     correct who the run is about          starter correct -employee E1001 -email ada@example.test -reason "..."
  decision-keygen  a key that signs decisions (relay.decisionKey, or break-glass); prints its public key for people.decisionKeys
`

var decisions = map[string]command{
	"approve":    {"approve or reject the removal plan", approveCmd},
	"hold":       {"place a legal hold", holdCmd},
	"release":    {"release the legal hold", releaseCmd},
	"rescind":    {"cancel the termination", rescindCmd},
	"reschedule": {"move the effective time", rescheduleCmd},
	"retry":      {"retry a control in exception", retryCmd},
	"waive":      {"waive a control in exception", waiveCmd},
	"correct":    {"correct who the run is about", correctCmd},
	// Not a decision: the key that signs them (relay.decisionKey) or a break-glass key.
	"decision-keygen": {"make an Ed25519 key for signing decisions", keygenCmd},
}

// errRefused: the run (or the API, for the token's roles) refused the decision.
var errRefused = errors.New("refused")

// apiFlags are how a decision reaches the run.
type apiFlags struct {
	api, tokenFile, breakGlass, run *string
}

func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		api:        fs.String("api", os.Getenv("OFFBOARD_API"), "operator API base URL (default: $OFFBOARD_API, else http://127.0.0.1 on starter.listen's port)"),
		tokenFile:  fs.String("token-file", os.Getenv("OFFBOARD_TOKEN_FILE"), "file holding your operator API token (default: $OFFBOARD_TOKEN_FILE; or the token itself in $OFFBOARD_TOKEN)"),
		breakGlass: fs.String("break-glass-key", "", "sign with this break-glass private key and go straight to Temporal, without the API (marked in the evidence)"),
		run:        fs.String("run", "", "the run id decided on (default: the person's running run)"),
	}
}

// decide sends one decision and prints the run's verdict.
func (f apiFlags) decide(ctx context.Context, e *env, employee, action string, req relay.DecisionRequest) error {
	if err := normalizeEmployee(&employee); err != nil { // as the API and the relay read it
		return err
	}
	req.RunID = *f.run
	if *f.breakGlass != "" {
		return f.breakGlassDecide(ctx, e, employee, action, req)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var reply struct {
		Status, Kind, Error string
		runs.Verdict
	}
	path := "/deprovisions/" + url.PathEscape(employee) + "/" + action
	code, err := f.call(ctx, e, http.MethodPost, path, body, &reply)
	if err != nil {
		return err
	}
	switch code {
	case http.StatusOK:
		return printVerdict(e, reply.Verdict, reply)
	case http.StatusConflict:
		return fmt.Errorf("%w: %s", errRefused, reply.Reason)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %s", errRefused, reply.Error)
	case http.StatusBadRequest:
		return fmt.Errorf("%w: %s", errUsage, reply.Error)
	}
	return fmt.Errorf("operator API answered %d: %s", code, reply.Error)
}

func printVerdict(e *env, v runs.Verdict, raw any) error {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(raw)
	}
	glass := ""
	if v.BreakGlass {
		glass = " (break-glass)"
	}
	fmt.Fprintf(e.stdout, "accepted%s: %s (by %s, %s run %s)\n", glass, v.Detail, v.By, v.WorkflowID, v.RunID)
	return nil
}

// call makes one operator API request with the token and an idempotency
// key, trying again once (the same key: the same decision) when the API
// or a worker did not answer.
func (f apiFlags) call(ctx context.Context, e *env, method, path string, body []byte, into any) (int, error) {
	token, err := f.token()
	if err != nil {
		return 0, err
	}
	base := *f.api
	if base == "" {
		base = "http://127.0.0.1:" + listenPort(e.cfg.Starter.Listen)
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	hc := &http.Client{Timeout: 30 * time.Second}
	var lastErr error
	for attempt := range 2 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, bytes.NewReader(body))
		if err != nil {
			return 0, fmt.Errorf("%w: -api %q: %v", errUsage, base, err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", hex.EncodeToString(key))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			lastErr = fmt.Errorf("operator API %s: %w", base, err)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			lastErr = fmt.Errorf("operator API answered 503: %s", strings.TrimSpace(string(b)))
			continue
		}
		if err := json.Unmarshal(b, into); err != nil {
			return resp.StatusCode, fmt.Errorf("operator API answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return resp.StatusCode, nil
	}
	return 0, lastErr
}

func (f apiFlags) token() (string, error) {
	if *f.tokenFile != "" {
		b, err := os.ReadFile(*f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("%w: -token-file: %v", errUsage, err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("%w: -token-file %s is empty", errUsage, *f.tokenFile)
	}
	if t := strings.TrimSpace(os.Getenv("OFFBOARD_TOKEN")); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("%w: your operator API token is required: -token-file FILE or OFFBOARD_TOKEN (the API knows whose it is)", errUsage)
}

func listenPort(listen string) string {
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "" {
		return port
	}
	return "8080"
}

// breakGlassDecide signs with a break-glass key the configuration lists and
// sends the Update straight to Temporal: for when the API is down.
func (f apiFlags) breakGlassDecide(ctx context.Context, e *env, employee, action string, req relay.DecisionRequest) error {
	b, err := os.ReadFile(*f.breakGlass)
	if err != nil {
		return fmt.Errorf("%w: -break-glass-key: %v", errUsage, err)
	}
	key, err := decision.ParsePrivateKey(string(b))
	if err != nil {
		return fmt.Errorf("%w: -break-glass-key: %v", errUsage, err)
	}
	id := decision.KeyID(key.Public().(ed25519.PublicKey))
	person := ""
	for _, k := range e.cfg.People.DecisionKeys {
		pub, err := decision.ParsePublicKey(k.PublicKey)
		if err == nil && k.BreakGlass && decision.KeyID(pub) == id {
			person = "break-glass:" + k.Name
		}
	}
	if person == "" {
		return fmt.Errorf("%w: -break-glass-key %s is not a break-glass key of people.decisionKeys", errUsage, id)
	}
	kind, payload, err := relay.Decision(action, req)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	r := runs.Request{EmployeeID: employee, RunID: req.RunID, Kind: kind, Person: person,
		Roles: []string{decision.RoleHR, decision.RoleSecurity, decision.RoleApprover}, PlanDigest: req.PlanDigest, Payload: payload}
	v, err := runs.Decide(ctx, c, key, r, time.Now(), 30*time.Second)
	if err != nil {
		return err
	}
	// The run has answered: a SIEM that is down is said, never a reason to fail.
	if err := emitBreakGlass(ctx, e, r, v); err != nil {
		fmt.Fprintf(e.stderr, "warning: the SIEM did not get this break-glass decision (%s, update %s on %s run %s): %v; tell the SOC\n",
			kind, v.UpdateID, v.WorkflowID, v.RunID, err)
	}
	if !v.Accepted {
		return fmt.Errorf("%w: %s", errRefused, v.Reason)
	}
	return printVerdict(e, v, v)
}

// siemWait bounds how long a break-glass decision waits for the SIEM.
const siemWait = 10 * time.Second

// emitBreakGlass sends the decision's SIEM event, the one the operator API
// sends, marked as break-glass, and waits for the sinks to take it: a CLI
// has no sender left running after it exits.
func emitBreakGlass(ctx context.Context, e *env, r runs.Request, v runs.Verdict) error {
	sc := e.cfg.SIEM
	sc.SSF = nil // decisions are not Shared Signals events
	if !sc.Enabled() {
		return nil
	}
	events, err := siem.FromConfig(sc)
	if err != nil {
		return err
	}
	v.BreakGlass = true // signed here with a break-glass key, whatever the run says
	ev := relay.DecisionEvent(r, v, time.Now())
	ev.Actor.AppName = "offboard-starter-break-glass"
	ev.Message += " (break-glass, without the operator API)"
	events.Emit(ev)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), siemWait)
	defer cancel()
	_ = events.Close(ctx) // a sink's close error loses nothing already sent
	if events.Dropped() > 0 {
		return fmt.Errorf("a sink did not take the event within %s (every retry failed or the time ran out)", siemWait)
	}
	return nil
}

// showPlan prints the plan an approver is asked to approve.
func (f apiFlags) showPlan(ctx context.Context, e *env, employee string) error {
	var st workflows.Status
	if *f.breakGlass != "" {
		c, err := e.client()
		if err != nil {
			return err
		}
		if st, err = runs.Status(ctx, c, employee); err != nil {
			return err
		}
	} else {
		var reply struct {
			workflows.Status
			Error string `json:"error"`
		}
		code, err := f.call(ctx, e, http.MethodGet, "/deprovisions/"+url.PathEscape(employee), nil, &reply)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("operator API answered %d: %s", code, reply.Error)
		}
		st = reply.Status
	}
	printPlan(e.stdout, st)
	return fmt.Errorf("%w: -digest is required: approve the plan above with -digest %s", errUsage, st.PlanDigest)
}

// printPlan lists what the plan digest covers: each destructive step with
// its account and what it removes (groups, roles, keys), one per line.
func printPlan(w io.Writer, st workflows.Status) {
	if st.PlanDigest == "" {
		return
	}
	fmt.Fprintf(w, "plan %s (run %s, event %s):\n", st.PlanDigest, st.RunID, st.EventID)
	for _, p := range st.Plan {
		fmt.Fprintf(w, "  %-9s %-28s account %s", p.Phase, p.Control, p.Account)
		if p.Login != "" && p.Login != p.Account {
			fmt.Fprintf(w, " (%s)", p.Login)
		}
		if len(p.Privileges) > 0 {
			fmt.Fprintf(w, "  privileges: %s", strings.Join(p.Privileges, ", "))
		}
		if len(p.Params.KeepGroups) > 0 {
			fmt.Fprintf(w, "  keeps: %s", strings.Join(p.Params.KeepGroups, ", "))
		}
		fmt.Fprintln(w)
		verb := "removes"
		if p.Owned != nil {
			verb = "does" // a non-human step: the identity and what happens to it
		}
		for _, r := range p.Removes {
			fmt.Fprintf(w, "            %s %s\n", verb, r)
		}
	}
}

func requireAll(pairs ...[2]string) error {
	for _, r := range pairs {
		if err := required(r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

func approveCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	f := addAPIFlags(fs)
	employee := fs.String("employee", "", "employee id (required)")
	verdict := fs.String("decision", "approve", "approve or reject")
	digest := fs.String("digest", "", "digest of the plan approved, with or without sha256: (without it the plan is shown); \"quarantine\" releases a quarantined run")
	reason := fs.String("reason", "", "why")
	return func(ctx context.Context, e *env) error {
		if err := normalizeEmployee(employee); err != nil {
			return err
		}
		if *verdict != "approve" && *verdict != "reject" {
			return fmt.Errorf("%w: -decision must be approve or reject", errUsage)
		}
		switch *digest {
		case "":
			return f.showPlan(ctx, e, *employee)
		case workflows.QuarantineDigest:
			return f.decide(ctx, e, *employee, "release-quarantine", relay.DecisionRequest{Decision: *verdict, Reason: *reason})
		}
		return f.decide(ctx, e, *employee, "approve", relay.DecisionRequest{Decision: *verdict, PlanDigest: *digest, Reason: *reason})
	}
}

func holdCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	f := addAPIFlags(fs)
	employee := fs.String("employee", "", "employee id (required)")
	caseRef := fs.String("case", "", "legal case reference (required)")
	reason := fs.String("reason", "", "why")
	return func(ctx context.Context, e *env) error {
		if err := requireAll([2]string{"employee", *employee}, [2]string{"case", *caseRef}); err != nil {
			return err
		}
		return f.decide(ctx, e, *employee, "hold", relay.DecisionRequest{CaseRef: *caseRef, Reason: *reason})
	}
}

func releaseCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	f := addAPIFlags(fs)
	employee := fs.String("employee", "", "employee id (required)")
	caseRef := fs.String("case", "", "the hold's case reference (required)")
	return func(ctx context.Context, e *env) error {
		if err := requireAll([2]string{"employee", *employee}, [2]string{"case", *caseRef}); err != nil {
			return err
		}
		return f.decide(ctx, e, *employee, "release", relay.DecisionRequest{CaseRef: *caseRef})
	}
}

func rescindCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	f := addAPIFlags(fs)
	employee := fs.String("employee", "", "employee id (required)")
	event := fs.String("event", "", "the event id of the termination rescinded (this, or -effective)")
	effective := fs.String("effective", "", "the effective time of the termination rescinded, RFC 3339 (this, or -event)")
	reason := fs.String("reason", "", "why")
	return func(ctx context.Context, e *env) error {
		if err := normalizeEmployee(employee); err != nil {
			return err
		}
		req := relay.DecisionRequest{EventID: *event, Reason: *reason}
		if *effective != "" {
			t, err := time.Parse(time.RFC3339, *effective)
			if err != nil {
				return fmt.Errorf("%w: -effective %q is not RFC 3339", errUsage, *effective)
			}
			req.EffectiveAt = t.UTC()
		}
		if req.EventID == "" && req.EffectiveAt.IsZero() {
			return fmt.Errorf("%w: name the termination rescinded: -event ID or -effective TIME (starter status shows both)", errUsage)
		}
		return f.decide(ctx, e, *employee, "rescind", req)
	}
}

func rescheduleCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	f := addAPIFlags(fs)
	employee := fs.String("employee", "", "employee id (required)")
	at := fs.String("at", "", "new effective time: +DURATION or RFC 3339 (required)")
	event := fs.String("event", "", "the event id of the termination moved (this, or -from)")
	from := fs.String("from", "", "the effective time being moved, RFC 3339 (this, or -event)")
	return func(ctx context.Context, e *env) error {
		if err := requireAll([2]string{"employee", *employee}, [2]string{"at", *at}); err != nil {
			return err
		}
		t, err := parseTime("at", *at, time.Now().UTC())
		if err != nil {
			return err
		}
		req := relay.DecisionRequest{EffectiveAt: t.UTC(), EventID: *event}
		if *from != "" {
			ft, err := time.Parse(time.RFC3339, *from)
			if err != nil {
				return fmt.Errorf("%w: -from %q is not RFC 3339", errUsage, *from)
			}
			req.From = ft.UTC()
		}
		if req.EventID == "" && req.From.IsZero() {
			return fmt.Errorf("%w: name the termination moved: -event ID or -from TIME (starter status shows both)", errUsage)
		}
		return f.decide(ctx, e, *employee, "reschedule", req)
	}
}

func retryCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	f := addAPIFlags(fs)
	employee := fs.String("employee", "", "employee id (required)")
	ctl := fs.String("control", "", "control id, e.g. okta/suspend (required)")
	return func(ctx context.Context, e *env) error {
		if err := requireAll([2]string{"employee", *employee}, [2]string{"control", *ctl}); err != nil {
			return err
		}
		return f.decide(ctx, e, *employee, "retry", relay.DecisionRequest{Control: *ctl})
	}
}

func waiveCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	f := addAPIFlags(fs)
	employee := fs.String("employee", "", "employee id (required)")
	ctl := fs.String("control", "", "control id, e.g. okta/suspend (required)")
	reason := fs.String("reason", "", "why the risk is accepted (required)")
	expires := fs.String("expires", "", "when the waiver ends: +DURATION, DURATION or RFC 3339 (required)")
	return func(ctx context.Context, e *env) error {
		if err := requireAll([2]string{"employee", *employee}, [2]string{"control", *ctl}, [2]string{"reason", *reason}, [2]string{"expires", *expires}); err != nil {
			return err
		}
		t, err := parseTime("expires", *expires, time.Now().UTC())
		if err != nil {
			return err
		}
		return f.decide(ctx, e, *employee, "waive", relay.DecisionRequest{Control: *ctl, Reason: *reason, ExpiresAt: t.UTC()})
	}
}

func correctCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	f := addAPIFlags(fs)
	employee := fs.String("employee", "", "employee id (required)")
	email := fs.String("email", "", "the person's corrected e-mail")
	name := fs.String("name", "", "the person's corrected name")
	accounts := accountsFlag{}
	fs.Var(accounts, "account", "TARGET=ID account hint (repeatable)")
	reason := fs.String("reason", "", "why")
	return func(ctx context.Context, e *env) error {
		if err := normalizeEmployee(employee); err != nil {
			return err
		}
		if *email == "" && *name == "" && len(accounts) == 0 {
			return fmt.Errorf("%w: name the corrected -email, -name or -account", errUsage)
		}
		return f.decide(ctx, e, *employee, "correct-identity", relay.DecisionRequest{Email: *email, Name: *name, Accounts: accounts, Reason: *reason})
	}
}

func keygenCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	out := fs.String("out", "", "file to write the private key to (base64 of the Ed25519 seed, mode 0600; required)")
	return func(_ context.Context, e *env) error {
		if err := required("out", *out); err != nil {
			return err
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("decision-keygen: %w", err)
		}
		if _, err := fmt.Fprintln(f, base64.StdEncoding.EncodeToString(priv.Seed())); err != nil {
			_ = f.Close()
			return fmt.Errorf("decision-keygen: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("decision-keygen: %w", err)
		}
		fmt.Fprintf(e.stdout, "publicKey: %s\nkeyId: %s\n", base64.StdEncoding.EncodeToString(pub), decision.KeyID(pub))
		return nil
	}
}
