package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/scimapp"
	"github.com/offboard/offboard/workflows"
)

// result is what the tally found; problems lists each loss or unsafe repeat.
type result struct {
	accepted, gaveUp, started, neverStarted       int
	contained, removed, inException, stillWorking int
	awaitingApproval                              int // waiting for an approver policy asks for (owned non-human identities)
	closed, evidence, evidenceMissing             int
	falseClaims                                   int // a run says contained or removed; a simulator disagrees
	unsafeRepeats                                 int
	exceptions                                    map[string]int // control id → runs with it in exception
	requests, faultsInjected                      int
	problems                                      []string
	settled                                       bool
	wall                                          time.Duration
	kills, serverRestarts, workerStarts           int
	faultShare                                    float64
}

func (r *result) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// failed: any loss (a webhook accepted and not started, a run closed neither
// removed nor in exception, a claim the simulators contradict, missing
// evidence, runs still working) or an unsafe repeat.
func (r *result) failed() bool { return len(r.problems) > 0 || !r.settled }

func tally(ctx context.Context, c client.Client, people []demo.Person, sent *sender, s *sims, evidenceDir string) *result {
	r := &result{accepted: len(sent.accepted), gaveUp: len(sent.gaveUp), exceptions: map[string]int{}}
	for _, e := range sent.gaveUp {
		r.problem("%s: the relay never accepted its webhook", e)
	}
	var mu sync.Mutex
	work := make(chan demo.Person)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				one := tallyOne(ctx, c, p, s, evidenceDir)
				mu.Lock()
				r.add(one, sent.accepted[p.EmployeeID] != "")
				mu.Unlock()
			}
		}()
	}
	for _, p := range people {
		work <- p
	}
	close(work)
	wg.Wait()
	for _, rep := range s.log.repeats() {
		r.unsafeRepeats++
		r.problem("unsafe repeat: %s", rep)
	}
	s.log.mu.Lock()
	r.requests, r.faultsInjected = s.log.total, s.log.faults
	s.log.mu.Unlock()
	sort.Strings(r.problems)
	return r
}

// one is the tally of one employee.
type one struct {
	employee                            string
	started, closed, contained, removed bool
	exception, working, evidence        bool
	awaiting                            bool // waiting for an approver: on a person, as an exception is
	problems, exceptions                []string
	repeats                             int
}

func (r *result) add(o one, accepted bool) {
	switch {
	case accepted && !o.started:
		r.neverStarted++
		r.problem("%s: webhook accepted, no Deprovision run started", o.employee)
		return
	case !o.started:
		return
	}
	r.started++
	if o.contained {
		r.contained++
	}
	if o.removed {
		r.removed++
	}
	if o.exception {
		r.inException++
	}
	if o.awaiting {
		r.awaitingApproval++
	}
	for _, id := range o.exceptions {
		r.exceptions[id]++
	}
	if o.working {
		r.stillWorking++
		r.problem("%s: still working when the tally ran (neither closed nor waiting on a person)", o.employee)
	}
	if o.closed {
		r.closed++
		if o.evidence {
			r.evidence++
		} else {
			r.evidenceMissing++
			r.problem("%s: closed, no evidence bundle (manifest.json) archived", o.employee)
		}
	}
	r.unsafeRepeats += o.repeats
	for _, p := range o.problems {
		if strings.HasPrefix(p, "false claim") {
			r.falseClaims++
		}
		r.problem("%s: %s", o.employee, p)
	}
}

func tallyOne(ctx context.Context, c client.Client, p demo.Person, s *sims, evidenceDir string) one {
	o := one{employee: p.EmployeeID}
	id := workflows.WorkflowID(p.EmployeeID)
	desc, err := describe(ctx, c, id)
	if err != nil {
		return o
	}
	o.started = true
	info := desc.GetWorkflowExecutionInfo()
	status := info.GetStatus()
	o.closed = status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	if o.closed && status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		o.problems = append(o.problems, fmt.Sprintf("run closed %s", status))
	}
	if o.closed {
		run := info.GetExecution().GetRunId()
		_, err := os.Stat(filepath.Join(evidenceDir, id, run, evidence.ManifestFile))
		o.evidence = err == nil
	}
	st, err := statusOf(ctx, c, p.EmployeeID)
	if err != nil {
		o.problems = append(o.problems, "status query: "+err.Error())
		return o
	}
	o.contained = !st.ContainedAt.IsZero()
	removal, removalDone := 0, 0
	for _, ctl := range st.Controls {
		switch ctl.State {
		case workflows.StateException:
			o.exception = true
			o.exceptions = append(o.exceptions, ctl.ID)
		case workflows.StateDone, workflows.StateWaived:
			if ctl.Phase == control.Removal || ctl.Phase == control.Deletion {
				removalDone++
			}
		}
		if ctl.Phase == control.Removal || ctl.Phase == control.Deletion {
			removal++
		}
	}
	o.removed = st.Phase == workflows.PhaseCompleted && removal > 0 && removalDone == removal
	// A run policy holds for an approver (the chaos config asks none, but a
	// leaver who owns non-human identities needs one: nonHuman.requireApproval)
	// waits on a person, as an exception does; it must be contained all the same.
	o.awaiting = !o.closed && st.Phase == workflows.PhaseAwaitingApproval
	if o.awaiting && !o.contained {
		o.problems = append(o.problems, "waits for an approver but is not contained")
	}
	o.working = !o.closed && !o.exception && !o.awaiting
	if o.closed && !o.removed && !o.exception {
		o.problems = append(o.problems, fmt.Sprintf("closed in phase %s, neither removed nor in exception", st.Phase))
	}
	if o.contained {
		o.problems = append(o.problems, s.stillActive(p)...)
	}
	if o.removed {
		o.problems = append(o.problems, s.stillPresent(p)...)
	}
	o.repeats, o.problems = s.transitionRepeats(p, o.problems)
	return o
}

// describe retries while the server is busy: a tally must not count a run
// missing because one call failed.
func describe(ctx context.Context, c client.Client, id string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	var err error
	for range 5 {
		var d *client.WorkflowExecutionDescription
		if d, err = c.DescribeWorkflow(ctx, id, ""); err == nil {
			return d.RawResponse, nil
		}
		if strings.Contains(err.Error(), "not found") {
			return nil, err
		}
		time.Sleep(time.Second)
	}
	return nil, err
}

func statusOf(ctx context.Context, c client.Client, employee string) (workflows.Status, error) {
	var err error
	for range 5 {
		var st workflows.Status
		if st, err = runs.Status(ctx, c, employee); err == nil {
			return st, nil
		}
		time.Sleep(time.Second)
	}
	return workflows.Status{}, err
}

// stillActive: a run that says contained, and a simulator where the person can still sign in.
func (s *sims) stillActive(p demo.Person) []string {
	var out []string
	if u, ok := s.okta.User(p.Email); ok && u.Status == "ACTIVE" {
		out = append(out, "false claim: contained, Okta user ACTIVE")
	}
	if u, ok := s.graph.User(p.Email); ok && u.AccountEnabled {
		out = append(out, "false claim: contained, Entra account enabled")
	}
	for _, app := range []*appRef{{"scim-crm", s.crm}, {"scim-wiki", s.wiki}} {
		if u, ok := app.app.User(p.Email); ok && u.Active {
			out = append(out, "false claim: contained, "+app.name+" user active")
		}
	}
	if u, ok := s.iam.User(p.Login); ok {
		for _, k := range u.AccessKeys {
			if k.Status == "Active" {
				out = append(out, "false claim: contained, AWS access key "+k.ID+" active")
			}
		}
		if u.LoginProfile {
			out = append(out, "false claim: contained, AWS console password present")
		}
	}
	return out
}

// stillPresent: a run that says removed, and a simulator that still holds the account.
func (s *sims) stillPresent(p demo.Person) []string {
	var out []string
	if _, ok := s.okta.User(p.Email); ok {
		out = append(out, "false claim: removed, Okta user still present")
	}
	if _, ok := s.graph.User(p.Email); ok {
		out = append(out, "false claim: removed, Entra user still present")
	}
	for _, app := range []*appRef{{"scim-crm", s.crm}, {"scim-wiki", s.wiki}} {
		if _, ok := app.app.User(p.Email); ok {
			out = append(out, "false claim: removed, "+app.name+" user still present")
		}
	}
	if _, ok := s.iam.User(p.Login); ok {
		out = append(out, "false claim: removed, AWS user still present")
	}
	return out
}

// transitionRepeats reads each simulator's own log of applied changes: a
// destructive change (delete, deactivate, an AWS Delete*) applied twice to
// the same user and object is an unsafe repeat.
func (s *sims) transitionRepeats(p demo.Person, problems []string) (int, []string) {
	logs := map[string][]string{}
	if u, ok := s.okta.User(p.Email); ok {
		for _, t := range s.okta.Transitions(u.ID) {
			logs["okta"] = append(logs["okta"], t.Action+" "+t.Detail)
		}
	}
	if u, ok := s.graph.User(p.Email); ok {
		for _, t := range s.graph.Transitions(u.ID) {
			logs["entra"] = append(logs["entra"], t.Action+" "+t.Detail)
		}
	}
	for _, t := range s.iam.Transitions(p.Login) {
		logs["aws"] = append(logs["aws"], t.Action+" "+t.Detail)
	}
	for _, app := range []*appRef{{"scim-crm", s.crm}, {"scim-wiki", s.wiki}} {
		if u, ok := app.app.User(p.Email); ok {
			for _, t := range app.app.Transitions(u.ID) {
				logs[app.name] = append(logs[app.name], t.Action)
			}
		}
	}
	n := 0
	for target, actions := range logs {
		seen := map[string]int{}
		for _, a := range actions {
			a = strings.TrimSpace(a)
			verb := strings.ToLower(strings.Fields(a + " x")[0])
			if !strings.HasPrefix(verb, "delete") && verb != "deactivate" {
				continue
			}
			if seen[a]++; seen[a] == 2 {
				n++
				problems = append(problems, fmt.Sprintf("unsafe repeat: %s applied %q twice (log: %s)", target, a, strings.Join(actions, ", ")))
			}
		}
	}
	return n, problems
}

type appRef struct {
	name string
	app  *scimapp.App
}

func (r *result) print(w io.Writer, n int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Offboard chaos: %d terminations through the relay; worker SIGKILLed %d×, started %d×; dev server restarted %d×; %.0f %% of simulator calls failed (5xx, 429, hung, garbage)\n\n",
		n, r.kills, r.workerStarts, r.serverRestarts, 100*r.faultShare)
	fmt.Fprintln(tw, "figure\tcount\t")
	row := func(name string, v int, bad bool) {
		mark := ""
		if bad && v > 0 {
			mark = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", name, v, mark)
	}
	row("webhooks accepted by the relay", r.accepted, false)
	row("webhooks never accepted (HR gave up after 5 min)", r.gaveUp, true)
	row("webhooks accepted but never started", r.neverStarted, true)
	row("Deprovision runs started", r.started, false)
	row("contained (every containment control observed or waived)", r.contained, false)
	row("removed (completed, every removal and deletion control done)", r.removed, false)
	row("in exception (waiting on a person)", r.inException, false)
	row("awaiting an approver (waiting on a person)", r.awaitingApproval, false)
	row("still working at the tally", r.stillWorking, true)
	row("claims a simulator contradicts", r.falseClaims, true)
	row("destructive calls applied more than once", r.unsafeRepeats, true)
	row("closed runs", r.closed, false)
	row("evidence bundles archived", r.evidence, false)
	row("evidence bundles missing", r.evidenceMissing, true)
	row("simulator API calls (of which faulted)", r.requests, false)
	fmt.Fprintf(tw, "  faulted by the injector\t%d\t\n", r.faultsInjected)
	fmt.Fprintf(tw, "wall time\t%s\t\n", r.wall.Round(time.Second))
	if len(r.exceptions) > 0 {
		var ids []string
		for id, n := range r.exceptions {
			ids = append(ids, fmt.Sprintf("%s %d", id, n))
		}
		sort.Strings(ids)
		fmt.Fprintf(tw, "open exceptions by control\t%s\t\n", strings.Join(ids, ", "))
	}
	if !r.settled {
		fmt.Fprintln(tw, "runs had not settled when the settle time ran out\t\tFAIL")
	}
	_ = tw.Flush()
	if len(r.problems) > 0 {
		fmt.Fprintf(w, "\n%d problems:\n", len(r.problems))
		for i, p := range r.problems {
			if i == 40 {
				fmt.Fprintf(w, "  … and %d more\n", len(r.problems)-40)
				break
			}
			fmt.Fprintln(w, "  "+p)
		}
	}
}

func (r *result) figures(n int) map[string]any {
	return map[string]any{"terminations": n, "accepted": r.accepted, "gaveUp": r.gaveUp, "neverStarted": r.neverStarted,
		"started": r.started, "contained": r.contained, "removed": r.removed, "inException": r.inException,
		"stillWorking": r.stillWorking, "falseClaims": r.falseClaims, "unsafeRepeats": r.unsafeRepeats, "closed": r.closed,
		"evidence": r.evidence, "evidenceMissing": r.evidenceMissing, "requests": r.requests, "faultsInjected": r.faultsInjected,
		"wallSeconds": r.wall.Seconds(), "settled": r.settled, "workerKills": r.kills, "workerStarts": r.workerStarts,
		"serverRestarts": r.serverRestarts, "faultShare": r.faultShare, "exceptionsByControl": r.exceptions, "problems": r.problems}
}
