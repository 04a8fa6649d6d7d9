package workflows

// The simulation: seeded random scenarios of HR events, people's decisions
// and target behaviour, run on the SDK's test environment (time skipping,
// deterministic), with the policy's invariants checked after each one.
//
//	go test ./workflows -run TestSimulation -sim.seeds 20000   (make simulate SEEDS=20000)
//	go test ./workflows -run TestSimulation -sim.seed 1234 -v  (one scenario, printed)
//
// A failing scenario is shrunk (events dropped one at a time while it still
// fails) and printed with its seed; keep it as a regression case:
//
//	go test ./workflows -run 'TestSimulation$' -sim.seed N -sim.save testdata/sim-seeds/N.json [-sim.old <change id>]

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
)

var (
	simSeeds = flag.Int("sim.seeds", simDefaultSeeds, "simulation: scenarios to run")
	simFirst = flag.Uint64("sim.first", 1, "simulation: first seed")
	simOne   = flag.Uint64("sim.seed", 0, "simulation: run only this seed, and print it")
	simOld   = flag.String("sim.old", "", "simulation: change ids to run on their old branch (comma-separated), to see what a fix fixed")
	simSave  = flag.String("sim.save", "", "simulation: with -sim.seed, write the scenario as a regression case to this file")
)

// simActivityCap stops a scenario whose run calls out without end.
const simActivityCap = 2000

// simHistoryBound is the most history events a scenario may write (counted
// from the commands the test environment saw, see simRun.historyEvents).
const simHistoryBound = 2500

func TestSimulation(t *testing.T) {
	if *simOne != 0 {
		sc := genScenario(*simOne)
		if *simSave != "" {
			b, _ := json.MarshalIndent(simRegression{Note: "what it found", Old: *simOld, Scenario: sc}, "", "  ")
			if err := os.WriteFile(*simSave, append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r := runScenario(sc)
		t.Logf("scenario:\n%s\nphase %s, closed %v, ~%d history events", sc, r.phase(), r.closed, r.historyEvents())
		for _, e := range r.final.Log {
			t.Logf("log %s %s %s accepted=%v: %s", e.At.Sub(r.start), e.Kind, e.By, e.Accepted, e.Detail)
		}
		for _, v := range r.verdicts {
			t.Logf("decision %s by %s (bad %q): accepted=%v %s", v.Kind, v.By, v.Bad, v.Accepted, v.Detail)
		}
		t.Logf("controls: %s", controlStates(r.final))
		if v := checkScenario(sc, r); len(v) > 0 {
			t.Fatalf("seed %d: %s", sc.Seed, strings.Join(v, "; "))
		}
		return
	}
	n := *simSeeds
	began := time.Now()
	var failed sync.Map
	var done, maxEvents atomic.Int64
	seeds := make(chan uint64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				sc := genScenario(seed)
				r := runScenario(sc)
				if e := int64(r.historyEvents()); e > maxEvents.Load() {
					maxEvents.Store(e)
				}
				if v := checkScenario(sc, r); len(v) > 0 {
					failed.Store(seed, v)
				}
				done.Add(1)
			}
		}()
	}
	for i := range n {
		seeds <- *simFirst + uint64(i)
	}
	close(seeds)
	wg.Wait()
	took := time.Since(began)
	t.Logf("simulation: %d scenarios in %s (%.0f scenarios/s), at most ~%d history events per run (bound %d)",
		done.Load(), took.Round(time.Millisecond), float64(done.Load())/took.Seconds(), maxEvents.Load(), simHistoryBound)
	var bad []uint64
	failed.Range(func(k, _ any) bool { bad = append(bad, k.(uint64)); return true })
	slices.Sort(bad)
	for i, seed := range bad {
		v, _ := failed.Load(seed)
		if i >= 3 {
			t.Errorf("seed %d fails: %.300s", seed, v.([]string)[0])
			continue
		}
		sc, why := shrink(genScenario(seed))
		t.Errorf("seed %d fails: %s\nshrunk (%s):\n%s", seed, strings.Join(v.([]string), "; "), why, sc)
	}
}

// simRegression is a scenario that once failed, kept whole in
// testdata/sim-seeds/<seed>.json (so a change to the generator cannot lose
// it): what it found, and the change id of its fix, when the fix is
// versioned: on that old branch it must still fail, or it tests nothing.
type simRegression struct {
	Note     string      `json:"note"`
	Old      string      `json:"old,omitempty"`
	Scenario simScenario `json:"scenario"`
}

// TestSimulationRegressions runs every scenario that ever failed.
func TestSimulationRegressions(t *testing.T) {
	files, err := filepath.Glob("testdata/sim-seeds/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no regression scenarios in testdata/sim-seeds: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var reg simRegression
			if err := json.Unmarshal(b, &reg); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			sc := reg.Scenario
			if v := checkScenario(sc, runScenario(sc)); len(v) > 0 {
				t.Fatalf("seed %d (%s): %s\n%s", sc.Seed, reg.Note, strings.Join(v, "; "), sc)
			}
			if reg.Old != "" && len(checkScenario(sc, runScenarioOld(sc, []string{reg.Old}))) == 0 {
				t.Fatalf("seed %d no longer fails on the branch before %s: it does not test that fix any more", sc.Seed, reg.Old)
			}
		})
	}
}

// shrink drops events, then behaviours, one at a time while the scenario
// still fails, and says what it still fails with.
func shrink(sc simScenario) (simScenario, string) {
	why := checkScenario(sc, runScenario(sc))
	for i := len(sc.Events) - 1; i >= 0; i-- {
		try := sc.without(i)
		if v := checkScenario(try, runScenario(try)); len(v) > 0 {
			sc, why = try, v
		}
	}
	for i := len(sc.Behaviours) - 1; i >= 0; i-- {
		try := sc.withoutBehaviour(i)
		if v := checkScenario(try, runScenario(try)); len(v) > 0 {
			sc, why = try, v
		}
	}
	return sc, strings.Join(why, "; ")
}

// ---- running one scenario ----

// simRun is what one scenario did: the result or the status at the horizon,
// and what the targets and the activities saw.
type simRun struct {
	start   time.Time
	t       Termination
	log     *simLog
	targets map[string]*simTarget
	old     []string // change ids run on their old branch
	closed  bool
	err     error
	res     Result
	final   Status // the status query once the run closed, or at the horizon
	queried error

	mu       sync.Mutex
	applies  []simApply
	acts     map[string]bool // activity ids seen
	timers   int
	local    int
	signals  int
	updates  int
	nonce    int
	verdicts []simVerdict
	midway   []string // invariants broken while the run was going
	upserts  int
	notified int
}

// simApply is one ApplyControl activity (its first attempt's clock) and how it ended.
type simApply struct {
	ID string
	At time.Time
	OK bool
}

func (r *simRun) phase() Phase { return r.final.Phase }

func (r *simRun) activities() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acts)
}

// historyEvents counts what the run wrote to its history, from the commands
// the environment saw: each activity 3 events, each timer 2, each signal,
// local activity, upsert and version marker 1, each accepted update 2, and
// at most one workflow task
// (3 events) for each thing that woke the workflow.
func (r *simRun) historyEvents() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	accepted := 0
	for _, v := range r.verdicts {
		if v.Accepted {
			accepted++ // a refused update never enters the history
		}
	}
	wakes := len(r.acts) + r.timers + r.signals + accepted + r.local + 1
	return 3*len(r.acts) + 2*r.timers + r.signals + 2*accepted + r.local + r.upserts + 12 + 3*wakes + 2
}

var simSuite = func() *testsuite.WorkflowTestSuite {
	s := &testsuite.WorkflowTestSuite{}
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	return s
}()

var simStart = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func simConfig() config.Config {
	cfg, err := config.Default()
	if err != nil {
		panic(err)
	}
	cfg.Policy.ControlAttempts = 3
	cfg.Policy.Reverify = []config.Duration{config.Duration(time.Hour), config.Duration(12 * time.Hour)}
	cfg.Policy.Approval.Timeout = config.Duration(72 * time.Hour)
	cfg.Policy.Retention = config.Duration(30 * 24 * time.Hour)
	cfg.People.Approvers = []string{simApprover, simSecurity}
	cfg.People.Security = []string{simApprover, simSecurity}
	cfg.Notify = config.Notify{}
	return cfg
}

var simCfg = simConfig()

func runScenario(sc simScenario) *simRun { return runScenarioOld(sc, strings.Split(*simOld, ",")) }

// runScenarioOld runs sc with the given change ids on their old branch.
func runScenarioOld(sc simScenario, old []string) *simRun {
	env := simSuite.NewTestWorkflowEnvironment()
	env.SetStartTime(simStart)
	env.SetWorkflowRunTimeout(simHorizon + time.Minute)
	r := &simRun{start: simStart, log: newSimLog(), targets: map[string]*simTarget{}, acts: map[string]bool{}, old: old}
	var tgts []control.Target
	for _, name := range simTargetNames {
		st := newSimTarget(name, env.Now, r.log, sc.Behaviours)
		r.targets[name] = st
		tgts = append(tgts, st)
	}
	acts := activities.New(simCfg, tgts)
	RegisterWorkflows(env)
	env.RegisterActivity(acts)
	for _, id := range old {
		if id != "" {
			env.OnGetVersion(id, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
		}
	}
	env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(func(context.Context, activities.Notification) (bool, error) {
		r.mu.Lock()
		r.notified++
		r.mu.Unlock()
		return true, nil
	})
	env.OnActivity(acts.ApplyControl, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ControlInput) (control.Receipt, error) {
		at := env.Now()
		if r.activities() > simActivityCap {
			// A run that never stops calling out: fail it for good, or the
			// scenario would never end.
			return control.Receipt{}, temporal.NewNonRetryableApplicationError("sim: activity cap reached", activities.ErrTypePermanent, nil)
		}
		rec, err := acts.ApplyControl(ctx, in)
		if activity.GetInfo(ctx).Attempt == 1 || err == nil {
			r.mu.Lock()
			r.applies = append(r.applies, simApply{ID: in.ControlID, At: at, OK: err == nil})
			r.mu.Unlock()
		}
		return rec, err
	})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(func(converter.EncodedValues) error { return nil }).Maybe()
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		r.mu.Lock()
		r.acts[info.ActivityID] = true
		r.mu.Unlock()
	})
	env.SetOnTimerScheduledListener(func(string, time.Duration) { r.mu.Lock(); r.timers++; r.mu.Unlock() })
	env.SetOnLocalActivityStartedListener(func(*activity.Info, context.Context, []any) { r.mu.Lock(); r.local++; r.mu.Unlock() })

	r.t = Termination{
		EventID: fmt.Sprintf("evt-%d", sc.Seed), Source: "sim", EmployeeID: "E1001", Email: simLeaver, Name: "Ada",
		Kind: sc.Kind, Reason: sc.Reason, EffectiveAt: simStart.Add(sc.Effective), Privileged: sc.Privileged,
		RequestedBy: simHR, Quarantined: sc.Quarantined,
	}
	if sc.Kind == KindRoleChange {
		r.t.NewRole = "sales-engineer"
	}
	if sc.HoldAtStart {
		r.t.LegalHold = &Hold{By: simLegal, CaseRef: simCase, Reason: "litigation"}
	}
	d := simDriver{tr: envTransport{env}, run: r}
	if sc.Quarantined {
		// Security looks at the quarantine within the hour, most of the time.
		env.RegisterDelayedCallback(func() {
			if sc.Rejected {
				d.releaseQuarantine(simEvent{}, simSecurity, ApproveRequest{Decision: "reject", Reason: "not a real termination"})
				return
			}
			d.releaseQuarantine(simEvent{}, simSecurity, ApproveRequest{Decision: "approve", Reason: "checked with HR"})
		}, 40*time.Minute+time.Duration(sc.Seed%1000)*time.Millisecond)
	}
	for _, b := range sc.Behaviours {
		if b.Kind == "gone" {
			env.RegisterDelayedCallback(r.targets[strings.SplitN(b.Control, "/", 2)[0]].vanish, b.After)
		}
	}
	for _, ev := range sc.Events {
		env.RegisterDelayedCallback(func() { d.act(ev) }, ev.At)
		if ev.Kind == "waive" {
			env.RegisterDelayedCallback(func() { r.checkWaiversLetOthersGo(d) }, ev.At+6*time.Hour)
		}
	}
	env.RegisterDelayedCallback(func() {
		r.log.freeze()
		r.final, r.queried = d.status()
	}, simHorizon)

	env.ExecuteWorkflow(Deprovision, r.t)
	r.closed = env.IsWorkflowCompleted() && env.GetWorkflowError() == nil
	r.err = env.GetWorkflowError()
	if r.closed {
		r.err = env.GetWorkflowResult(&r.res)
		r.final, r.queried = d.status()
	}
	return r
}

// checkWaiversLetOthersGo: while a control of a sequential phase is waived,
// the target's controls after it in that phase are not left waiting.
func (r *simRun) checkWaiversLetOthersGo(d simDriver) {
	st, err := d.status()
	if err != nil {
		return
	}
	for i, w := range st.Controls {
		if w.State != StateWaived || (w.Phase != control.Removal && w.Phase != control.Deletion) {
			continue
		}
		for _, c := range st.Controls[i+1:] {
			if c.Target == w.Target && c.Phase == w.Phase && c.State == StatePending {
				r.mu.Lock()
				r.midway = append(r.midway, fmt.Sprintf("%s waits behind waived %s at %s", c.ID, w.ID, d.tr.now().Sub(r.start)))
				r.mu.Unlock()
			}
		}
	}
}

// simDriver brings people's decisions and HR events to the run: one small
// function per kind of decision, each a signed Workflow Update as the
// operator API sends it, so a change in how decisions travel is a change here.
type simDriver struct {
	tr  simTransport
	run *simRun
}

// simTransport is how decisions, HR events and queries reach a run: the
// SDK's test environment here, a real Temporal server in sim_server_test.go.
type simTransport interface {
	now() time.Time
	ids() (workflowID, runID string)
	update(kind, id string, signed decision.Signed, done func(accepted bool, detail string))
	signal(name string, v any)
	query() (Status, error)
}

// envTransport is the test environment's clock, Updates, signals and query.
type envTransport struct {
	env *testsuite.TestWorkflowEnvironment
}

func (e envTransport) now() time.Time { return e.env.Now() }
func (e envTransport) ids() (string, string) {
	return "default-test-workflow-id", "default-test-run-id"
}
func (e envTransport) signal(name string, v any) {
	e.env.SignalWorkflow(name, v)
}
func (e envTransport) update(kind, id string, signed decision.Signed, done func(bool, string)) {
	e.env.UpdateWorkflow(kind, id, &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { done(false, err.Error()) },
		OnComplete: func(_ any, err error) {
			if err != nil {
				done(false, err.Error())
				return
			}
			done(true, "")
		},
	}, signed)
}
func (e envTransport) query() (Status, error) {
	v, err := e.env.QueryWorkflow(QueryStatus)
	if err != nil {
		return Status{}, err
	}
	var st Status
	return st, v.Get(&st)
}

// The operator API's key as the sandbox configures it (default.yaml lists
// its public half), and a key no run trusts.
var (
	simAPIKey   = simKey("sandbox-decision-key")
	simStrayKey = simKey("not-configured")
)

func simKey(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(s[:])
}

// simRoles are what the operator API's tokens prove about each person.
var simRoles = map[string][]string{
	simApprover: {decision.RoleSecurity, decision.RoleApprover},
	simSecurity: {decision.RoleSecurity, decision.RoleApprover},
	simHR:       {decision.RoleHR},
	simLegal:    {decision.RoleHR},
	simLeaver:   {decision.RoleApprover, decision.RoleSecurity},
}

// simVerdict is what became of one decision.
type simVerdict struct {
	Kind, By, Bad string
	Accepted      bool
	Detail        string
}

// decide signs a decision and sends it as the Update of its kind. A bad
// one is spoiled in the way ev.Bad says, and must be refused.
func (d simDriver) decide(ev simEvent, kind, person, digest string, p any) {
	body, _ := json.Marshal(p)
	r := d.run
	r.mu.Lock()
	r.nonce++
	nonce := r.nonce
	r.mu.Unlock()
	wid, rid := d.tr.ids()
	dec := decision.Decision{WorkflowID: wid, RunID: rid, Kind: kind,
		Person: person, Roles: simRoles[person], PlanDigest: digest, Payload: body, At: d.tr.now(), Nonce: fmt.Sprint(nonce)}
	key := simAPIKey
	switch ev.Bad {
	case "stray-key":
		key = simStrayKey
	case "stale":
		dec.At = dec.At.Add(-time.Hour)
	}
	signed, err := decision.Sign(key, dec)
	if err != nil {
		panic(err)
	}
	d.send(ev, kind, person, signed)
	if ev.Bad == "replay" {
		d.send(ev, kind, person, signed) // the same decision again: already applied
	}
}

func (d simDriver) send(ev simEvent, kind, person string, signed decision.Signed) {
	r := d.run
	r.mu.Lock()
	r.nonce++
	id := fmt.Sprintf("u-%d", r.nonce)
	r.updates++
	i := len(r.verdicts)
	r.verdicts = append(r.verdicts, simVerdict{Kind: kind, By: person, Bad: ev.Bad})
	if ev.Bad == "replay" && i > 0 && r.verdicts[i-1].Bad == "replay" && r.verdicts[i-1].Kind == kind {
		r.verdicts[i-1].Bad = "" // the first delivery of a replayed decision is a good one
	}
	r.mu.Unlock()
	d.tr.update(kind, id, signed, func(ok bool, detail string) {
		r.mu.Lock()
		r.verdicts[i].Accepted, r.verdicts[i].Detail = ok, detail
		r.mu.Unlock()
	})
}

func (d simDriver) approve(ev simEvent, person, digest string, p ApproveRequest) {
	d.decide(ev, UpdateApprove, person, digest, p)
}
func (d simDriver) releaseQuarantine(ev simEvent, person string, p ApproveRequest) {
	d.decide(ev, UpdateQuarantineRelease, person, "", p)
}
func (d simDriver) hold(ev simEvent, person string, p Hold) {
	d.decide(ev, UpdateLegalHold, person, "", p)
}
func (d simDriver) release(ev simEvent, person string, p Release) {
	d.decide(ev, UpdateReleaseHold, person, "", p)
}
func (d simDriver) rescind(ev simEvent, person string, p Rescind) {
	d.decide(ev, UpdateRescind, person, "", p)
}
func (d simDriver) reschedule(ev simEvent, person string, p Reschedule) {
	d.decide(ev, UpdateReschedule, person, "", p)
}
func (d simDriver) correct(ev simEvent, person string, p IdentityCorrection) {
	d.decide(ev, UpdateIdentityCorrection, person, "", p)
}
func (d simDriver) retry(ev simEvent, person string, p Retry) {
	d.decide(ev, UpdateRetry, person, "", p)
}
func (d simDriver) waive(ev simEvent, person string, p Waive) {
	d.decide(ev, UpdateWaive, person, "", p)
}

// hrEvent is a later HR event: those need no answer, so they stay signals,
// signed by the relay as the HR system.
func (d simDriver) hrEvent(ev simEvent, v HREvent) {
	if ev.Bad == "unsigned" {
		d.tr.signal(SignalHREvent, v) // not from the relay: it must change nothing
		return
	}
	r := d.run
	r.mu.Lock()
	r.signals++
	r.nonce++
	nonce := r.nonce
	r.mu.Unlock()
	body, _ := json.Marshal(v.Termination)
	wid, rid := d.tr.ids()
	signed, err := decision.Sign(simAPIKey, decision.Decision{WorkflowID: wid, RunID: rid, Kind: decision.KindHREvent,
		Person: "hris:" + v.Termination.Source, Roles: []string{decision.RoleHR}, Payload: body, At: d.tr.now(), Nonce: fmt.Sprint(nonce)})
	if err != nil {
		panic(err)
	}
	v.Signed = &signed
	d.tr.signal(SignalHREvent, v)
}

func (d simDriver) status() (Status, error) {
	return d.tr.query()
}

// act carries out one event at its time, naming what the run shows now.
func (d simDriver) act(ev simEvent) {
	st, err := d.status()
	if err != nil {
		return
	}
	now := d.tr.now()
	switch ev.Kind {
	case "approve", "reject":
		person, digest := ev.By, st.PlanDigest
		switch ev.Bad {
		case "stale-digest":
			digest = "sha256:" + strings.Repeat("0", 64)
		case "not-approver":
			person = simNobody
		case "leaver":
			person = simLeaver
		case "requester":
			person = simHR
		}
		d.approve(ev, person, digest, ApproveRequest{Decision: ev.Kind, Reason: "sim"})
	case "hold":
		d.hold(ev, ev.By, Hold{CaseRef: simCase, Reason: "litigation"})
	case "release":
		rel := Release{CaseRef: simCase}
		if ev.Bad == "wrong-case" {
			rel.CaseRef = "CASE-99"
		}
		d.release(ev, ev.By, rel)
	case "rescind":
		p := Rescind{Reason: "sim: withdrawn", EventID: d.run.t.EventID}
		if ev.Bad == "other-event" {
			p.EventID = "evt-older"
		}
		d.rescind(ev, ev.By, p)
	case "reschedule":
		p := Reschedule{EffectiveAt: d.run.start.Add(ev.Span), EventID: d.run.t.EventID}
		if ev.Bad == "other-event" {
			p.EventID = "evt-older"
		}
		d.reschedule(ev, ev.By, p)
	case "retry":
		id := pickControl(st, ev)
		if id == "" {
			return
		}
		person := ev.By
		if ev.Bad == "not-security" {
			person = simHR
		}
		d.retry(ev, person, Retry{Control: id})
	case "waive":
		id := pickControl(st, ev)
		if id == "" {
			return
		}
		person := ev.By
		w := Waive{Control: id, Reason: "sim: accepted risk, SEC-1", ExpiresAt: now.Add(ev.Span)}
		switch ev.Bad {
		case "not-security":
			person = simNobody
		case "no-reason":
			w.Reason = " "
		case "expired":
			w.ExpiresAt = now.Add(-time.Hour)
		}
		d.waive(ev, person, w)
	case "drift":
		d.run.targets[simTargetNames[ev.Pick%len(simTargetNames)]].drift("suspend")
	case "redeliver":
		d.hrEvent(ev, HREvent{Termination: d.run.t})
	case "supersede":
		t := d.run.t
		t.EventID, t.Kind, t.Reason, t.NewRole = t.EventID+"-term", KindTermination, ReasonInvoluntary, ""
		t.EffectiveAt = d.run.start.Add(ev.Span)
		d.hrEvent(ev, HREvent{Termination: t})
	case "correct":
		d.correct(ev, ev.By, IdentityCorrection{Name: "Ada Lovelace", Reason: "sim: name spelled wrong"})
	}
}

// pickControl names the control a retry or waiver is about: one in
// exception, or for the invalid ones a control that is not.
func pickControl(st Status, ev simEvent) string {
	switch ev.Bad {
	case "unknown-control":
		return "nope/nope"
	case "not-in-exception":
		var done []string
		for _, c := range st.Controls {
			if c.State == StateDone {
				done = append(done, c.ID)
			}
		}
		if len(done) == 0 {
			return ""
		}
		return done[ev.Pick%len(done)]
	}
	var open []string
	for _, c := range st.Controls {
		if c.State == StateException || (ev.Kind == "retry" && c.State == StateWaived) {
			open = append(open, c.ID)
		}
	}
	if len(open) == 0 {
		return ""
	}
	return open[ev.Pick%len(open)]
}

// ---- the invariants ----

var simContainment = map[string]bool{"suspend": true, "revoke_sessions": true, "clear_tokens": true}
var simDestructive = map[string]bool{"remove_groups": true, "remove_keys": true, "delete": true}

// checkScenario returns every invariant the run broke.
func checkScenario(sc simScenario, r *simRun) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	st := r.final

	// The run ends, or waits on a named person or a timer; never stuck.
	if !r.closed {
		if r.queried != nil {
			return append(v, fmt.Sprintf("workflow failed: %v (query: %v)", r.err, r.queried))
		}
		if !waitsOnSomeone(st, r.start.Add(simHorizon)) {
			bad("stuck: open at the horizon in phase %s waiting on nobody (controls %s)", st.Phase, controlStates(st))
		}
	} else {
		if r.err != nil {
			return append(v, "result: "+r.err.Error())
		}
		if r.queried != nil {
			bad("status query after close: %v", r.queried)
		}
		if len(st.PendingGates) > 0 {
			bad("closed in %s with gates still open: %v", st.Phase, st.PendingGates)
		}
		// The status query agrees with the result.
		// (The query may add what it derives, like the plan; the result's fields must agree.)
		a, b := sameKeys(r.res.Status, st)
		if a != b || r.res.Phase != st.Phase {
			bad("the status query disagrees with the result: %s", firstDiff(string(a), string(b)))
		}
		var receipts int
		for _, c := range st.Controls {
			if c.Receipt != nil {
				receipts++
			}
		}
		if receipts != len(r.res.Receipts) {
			bad("result has %d receipts, status %d", len(r.res.Receipts), receipts)
		}
	}
	// Every open exception is a gate, and every exception gate an open exception.
	if !r.closed {
		gates := map[string]bool{}
		for _, g := range st.PendingGates {
			gates[g.Kind] = true
		}
		for _, c := range st.Controls {
			if st.Phase == PhaseRestoring && c.Phase == control.Containment {
				continue // a rescinded run waits on nobody for its containment
			}
			if (c.State == StateException) != gates["exception:"+c.ID] && !isFinal(st.Phase) {
				bad("%s is %s but its exception gate open=%v", c.ID, c.State, gates["exception:"+c.ID])
			}
		}
	}

	kind := st.Kind
	rescinded := st.Phase == PhaseRescinded
	// A termination not rescinded: every containment control observed,
	// waived with a reason, or in an open exception; completed only when
	// every control holds.
	if kind != KindRoleChange && !rescinded && st.Phase != PhaseScheduled && st.Phase != PhaseQuarantined {
		for _, c := range st.Controls {
			if c.Phase != control.Containment || c.Control == "resolve" {
				continue
			}
			switch c.State {
			case StateDone:
				if c.Outcome != control.Observed && !(c.Outcome == control.Acknowledged && c.Control == "clear_tokens") {
					bad("%s done as %s", c.ID, c.Outcome)
				}
			case StateWaived:
				if c.Waiver == nil || strings.TrimSpace(c.Waiver.Reason) == "" {
					bad("%s waived without a reason", c.ID)
				}
			case StateException:
				if r.closed {
					bad("closed in %s with %s in exception", st.Phase, c.ID)
				}
			default:
				bad("%s is %s in phase %s", c.ID, c.State, st.Phase)
			}
		}
	}
	if st.Phase == PhaseCompleted {
		for _, c := range st.Controls {
			if c.State != StateDone && !(c.State == StateWaived && c.Waiver != nil && c.Waiver.Reason != "") {
				bad("completed with %s %s", c.ID, c.State)
			}
		}
	}

	// Nothing destructive before approval, while held, before retention
	// from the current effective time, or in a rescinded run; a role change
	// disables nothing.
	retentionEnds := st.EffectiveAt.Add(simCfg.Policy.Retention.D())
	for _, e := range r.log.enforces {
		name := e.ID[strings.Index(e.ID, "/")+1:]
		if simContainment[name] && e.Scheduled.Before(st.EffectiveAt) {
			bad("%s enforced at %s, before the effective time %s", e.ID, e.Scheduled, st.EffectiveAt)
		}
		if kind == KindRoleChange && name != "remove_groups" {
			bad("role change enforced %s", e.ID)
		}
		if !simDestructive[name] {
			continue
		}
		if rescinded {
			bad("rescinded run enforced %s", e.ID)
		}
		if st.ApprovalNeeded && !approvedBy(st, e.Scheduled) {
			bad("%s enforced at %s without an approval before it", e.ID, e.Scheduled.Sub(r.start))
		}
		for _, h := range st.Holds {
			if h.PlacedAt.Before(e.Scheduled) && (h.ReleasedAt.IsZero() || e.Scheduled.Before(h.ReleasedAt)) {
				bad("%s enforced at %s while held (placed %s)", e.ID, e.Scheduled.Sub(r.start), h.PlacedAt.Sub(r.start))
			}
		}
		if name == "delete" && e.Scheduled.Before(retentionEnds) {
			bad("%s at %s, before retention ends %s", e.ID, e.Scheduled.Sub(r.start), retentionEnds.Sub(r.start))
		}
	}

	// SLA clocks start no earlier than the current effective time (a
	// superseded role change keeps its own deadline: not checked here).
	slas := map[string]time.Duration{"containment": simCfg.Policy.ContainmentSLA.D(), "credentials": simCfg.Policy.CredentialsSLA.D()}
	for _, dl := range st.Deadlines {
		if st.Superseded != "" {
			break
		}
		if dl.Due.Add(-slas[dl.Phase]).Before(st.EffectiveAt) {
			bad("%s SLA due %s, before %s after the effective time", dl.Phase, dl.Due.Sub(r.start), slas[dl.Phase])
		}
	}

	// A quarantine security rejected touches nothing.
	if sc.Rejected && len(r.log.enforces) > 0 {
		bad("a rejected quarantine enforced %s", r.log.enforces[0].ID)
	}

	// A rescind restores every account it contained.
	if rescinded && r.closed {
		for _, name := range simTargetNames {
			if r.targets[name].suspended() {
				if c := simControl(st, name+"/restore/unsuspend"); c.State != StateWaived {
					bad("rescinded, but %s is still suspended (restore %s)", name, c.State)
				}
			}
		}
	}

	// No control applied again after it was observed, unless its state was
	// undone from outside or a person asked.
	r.mu.Lock()
	applies := slices.Clone(r.applies)
	r.mu.Unlock()
	lastOK := map[string]time.Time{}
	for _, a := range applies {
		if ok, seen := lastOK[a.ID]; seen && a.At.After(ok) || seen && a.At.Equal(ok) {
			if !resetBetween(r.log, a.ID, ok, a.At) && !retriedBetween(st, a.ID, ok, a.At) {
				bad("%s applied again at %s after it was observed at %s", a.ID, a.At.Sub(r.start), ok.Sub(r.start))
			}
		}
		if a.OK {
			lastOK[a.ID] = a.At
		}
	}

	// A control its target never failed does not end in exception, and a
	// control whose state can no longer be read back is not left observed
	// once a re-verification found that out.
	faults := map[string]simBehaviour{}
	gone := map[string]bool{}
	for _, b := range sc.Behaviours {
		faults[b.Control] = b
		if b.Kind == "gone" {
			gone[strings.SplitN(b.Control, "/", 2)[0]] = true
		}
	}
	for _, c := range st.Controls {
		name := c.Control
		if c.Phase == control.Restore {
			name = strings.TrimPrefix(c.ID, c.Target+"/restore/")
		}
		b, faulty := faults[c.Target+"/"+name]
		if (c.State == StateException || c.State == StateWaived) && !faulty && !gone[c.Target] && c.Control != "resolve" {
			bad("%s is %s though %s never failed it: %s", c.ID, c.State, c.Target, c.Error)
		}
		if b.Kind == "unreadable" && c.State == StateDone && c.Outcome == control.Observed {
			for _, e := range st.Log {
				if e.Kind == "reverify" && strings.HasPrefix(e.Detail, c.ID+": could not verify") {
					bad("%s still observed after a re-verification could not read it back", c.ID)
					break
				}
			}
		}
	}
	r.mu.Lock()
	v = append(v, r.midway...)
	r.mu.Unlock()

	// A group removal observed before an account was deleted left no
	// groups (a waived or failed one may leave them to the deletion).
	for _, n := range r.log.notes {
		var last *simApply
		for i, a := range r.applies {
			if a.ID == n.Target+"/remove_groups" && !a.At.After(n.At) {
				last = &r.applies[i]
			}
		}
		if last != nil && last.OK {
			bad("%s, though remove_groups was observed at %s", n.What, last.At.Sub(r.start))
		}
	}

	// Every decision made invalid on purpose is refused.
	r.mu.Lock()
	for _, vd := range r.verdicts {
		if vd.Bad != "" && vd.Accepted {
			bad("a %s by %s made invalid (%s) was accepted", vd.Kind, vd.By, vd.Bad)
		}
	}
	r.mu.Unlock()

	if e := r.historyEvents(); e > simHistoryBound {
		bad("history of ~%d events, over the bound %d", e, simHistoryBound)
	}

	// A refused decision changes nothing: the run without the decisions made
	// invalid on purpose ends the same.
	if len(v) == 0 && sc.hasBad() {
		if a, b := digestRun(r), digestRun(runScenarioOld(sc.valid(), r.old)); a != b {
			bad("a refused decision changed the run:\n--- with\n%s\n--- without\n%s", a, b)
		}
	}
	return v
}

func waitsOnSomeone(st Status, horizon time.Time) bool {
	if len(st.PendingGates) > 0 {
		return true
	}
	for _, c := range st.Controls {
		if c.State == StateWaived && c.Waiver != nil && c.Waiver.ExpiresAt.After(horizon) {
			return true // a timer
		}
	}
	return false
}

func approvedBy(st Status, at time.Time) bool {
	for _, a := range st.Approvals {
		if a.Decision == "approve" && a.PlanDigest != QuarantineDigest && !a.At.After(at) {
			return true
		}
	}
	return false
}

func resetBetween(l *simLog, id string, from, to time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, at := range l.resets[id] {
		if !at.Before(from) && !at.After(to) {
			return true
		}
	}
	return false
}

func retriedBetween(st Status, id string, from, to time.Time) bool {
	for _, e := range st.Log {
		if e.Accepted && (e.Kind == SignalRetry && e.Detail == "retry "+id || e.Kind == "waiver_expired") && !e.At.Before(from) && !e.At.After(to) {
			return true
		}
	}
	return false
}

// sameKeys encodes both, keeping only the top-level fields the first has.
func sameKeys(res, query Status) (string, string) {
	var x, y map[string]json.RawMessage
	ra, _ := json.Marshal(res)
	rb, _ := json.Marshal(query)
	_ = json.Unmarshal(ra, &x)
	_ = json.Unmarshal(rb, &y)
	for k := range y {
		if _, ok := x[k]; !ok {
			delete(y, k)
		}
	}
	a, _ := json.Marshal(x)
	b, _ := json.Marshal(y)
	return string(a), string(b)
}

func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-80)
	return fmt.Sprintf("result …%s… status …%s…", a[lo:min(len(a), i+80)], b[lo:min(len(b), i+80)])
}

func simControl(st Status, id string) ControlStatus {
	for _, c := range st.Controls {
		if c.ID == id {
			return c
		}
	}
	return ControlStatus{}
}

func controlStates(st Status) string {
	var out []string
	for _, c := range st.Controls {
		out = append(out, c.ID+"="+string(c.State))
	}
	return strings.Join(out, " ")
}

// digestRun is what a run decided, without the log of refusals and without
// the order in which concurrent activities happened to finish.
func digestRun(r *simRun) string {
	st := r.final
	var lines []string
	lines = append(lines, fmt.Sprintf("closed=%v phase=%s effective=%s contained=%s sla=%v drift=%d",
		r.closed, st.Phase, st.EffectiveAt.Sub(r.start), st.ContainedAt.Sub(r.start), st.SLABreached, len(st.Drift)))
	for _, c := range st.Controls {
		lines = append(lines, fmt.Sprintf("control %s %s %s attempts=%d", c.ID, c.State, c.Outcome, c.Attempts))
	}
	for _, a := range st.Approvals {
		lines = append(lines, fmt.Sprintf("approval %s %s %s", a.Approver, a.Decision, a.At.Sub(r.start)))
	}
	for _, h := range st.Holds {
		lines = append(lines, fmt.Sprintf("hold %s %s..%s", h.CaseRef, h.PlacedAt.Sub(r.start), h.ReleasedAt.Sub(r.start)))
	}
	var logs []string
	for _, e := range st.Log {
		if e.Accepted {
			logs = append(logs, fmt.Sprintf("log %s %s %s %s", e.At.Sub(r.start), e.Kind, e.By, e.Detail))
		}
	}
	slices.Sort(logs)
	var enf []string
	for _, e := range r.log.enforces {
		enf = append(enf, fmt.Sprintf("enforce %s %s", e.ID, e.At.Sub(r.start)))
	}
	slices.Sort(enf)
	return strings.Join(slices.Concat(lines, logs, enf), "\n")
}

// simCases are the interleavings issue 12 reported, written out; each one
// failed on the code before its fix (run with -sim.old <change id> to see).
var simCases = map[string]simScenario{
	// restore-open-exceptions
	"rescind with a containment control in exception": {Kind: KindTermination, Behaviours: []simBehaviour{
		{Control: "aws/suspend", Kind: "unauthorized", Fail: -1}},
		Events: []simEvent{{At: 10 * time.Minute, Kind: "rescind", By: simHR}}},
	// follow-schedule
	"reschedule earlier": {Kind: KindTermination, Effective: 48 * time.Hour,
		Events: []simEvent{{At: time.Hour, Kind: "reschedule", By: simHR, Span: 2 * time.Hour}}},
	"reschedule later than the retention": {Kind: KindTermination, Effective: 2 * time.Hour,
		Events: []simEvent{{At: time.Hour, Kind: "reschedule", By: simHR, Span: 40 * 24 * time.Hour}}},
	// detach-waivers
	"a waived removal control lets the others go on": {Kind: KindTermination, Behaviours: []simBehaviour{
		{Control: "aws/remove_groups", Kind: "permanent", Fail: -1}},
		Events: []simEvent{{At: 2 * time.Minute, Kind: "waive", By: simSecurity, Span: 90 * 24 * time.Hour}}},
	// bound-rate-limits
	"a persistent 429": {Kind: KindTermination, Behaviours: []simBehaviour{
		{Control: "okta/suspend", Kind: "ratelimited", Fail: -1}}},
	// reverify-exceptions
	"a re-verification that cannot read back": {Kind: KindTermination, Behaviours: []simBehaviour{
		{Control: "okta/suspend", Kind: "unreadable", After: 30 * time.Minute}}},
	// a restore that fails waits for a person, then the rescind ends
	"a restore that fails, waived": {Kind: KindTermination, Privileged: true, Behaviours: []simBehaviour{
		{Control: "okta/unsuspend", Kind: "permanent", Fail: -1}},
		Events: []simEvent{{At: 10 * time.Minute, Kind: "rescind", By: simHR},
			{At: time.Hour, Kind: "waive", By: simSecurity, Span: 24 * time.Hour}}},
	// hold-each-step
	"a hold during deletion": {Kind: KindTermination, Behaviours: []simBehaviour{
		{Control: "okta/delete", Kind: "transient", Fail: 3}},
		Events: []simEvent{{At: 30*24*time.Hour + time.Hour, Kind: "hold", By: simLegal},
			{At: 30*24*time.Hour + 2*time.Hour, Kind: "retry", By: simSecurity}}},
}

func TestSimulationCases(t *testing.T) {
	for name, sc := range simCases {
		t.Run(name, func(t *testing.T) {
			r := runScenario(sc)
			if v := checkScenario(sc, r); len(v) > 0 {
				t.Fatalf("%s\n%s", strings.Join(v, "\n"), sc)
			}
			t.Logf("phase %s, closed %v, ~%d history events", r.phase(), r.closed, r.historyEvents())
		})
	}
}
