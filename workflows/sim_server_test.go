package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/decision"
)

// The test environment cannot hand out a run's history, so a sample of the
// scenarios also runs on a real Temporal server (sim_server_ext_test.go
// starts one), with time compressed: there every history is fetched, its
// events counted and replayed against today's code, the result compared with
// the status query, and a run still open must be waiting on someone.

// simServerScale compresses time: one simulated hour is 40 ms.
const simServerScale = 90000

// simServerHorizon is how much simulated time a scenario gets on the server.
const simServerHorizon = 40 * 24 * time.Hour

func scaled(d time.Duration) time.Duration { return d / simServerScale }

// SimOnServer runs the scenarios of seeds side by side on the server c
// talks to, each on its own task queue with its own worker and targets.
func SimOnServer(t *testing.T, c client.Client, seeds []uint64) {
	var wg sync.WaitGroup
	out := make([][]string, len(seeds))
	events := make([]int, len(seeds))
	for i, seed := range seeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], events[i] = runOnServer(c, genScenario(seed))
		}()
	}
	wg.Wait()
	t.Logf("server sample: %d scenarios, at most %d history events (bound %d), every history replayed", len(seeds), slices.Max(events), simHistoryBound)
	for i, v := range out {
		if len(v) > 0 {
			t.Errorf("seed %d on the server: %s", seeds[i], strings.Join(v, "; "))
		}
	}
}

func simServerConfig() config.Config {
	cfg := simConfig()
	p := &cfg.Policy
	p.ContainmentSLA = config.Duration(scaled(p.ContainmentSLA.D()))
	p.CredentialsSLA = config.Duration(scaled(p.CredentialsSLA.D()))
	p.Approval.Timeout = config.Duration(scaled(p.Approval.Timeout.D()))
	p.Retention = config.Duration(scaled(p.Retention.D()))
	p.MaxWaiver = config.Duration(scaled(p.MaxWaiver.D()))
	p.Reverify = []config.Duration{config.Duration(scaled(time.Hour)), config.Duration(scaled(12 * time.Hour))}
	cfg.NonHuman.Grace = config.Duration(scaled(cfg.NonHuman.Grace.D()))
	cfg.NonHuman.Purge = config.Duration(scaled(cfg.NonHuman.Purge.D()))
	p.Retry = config.Retry{InitialInterval: config.Duration(20 * time.Millisecond), MaximumInterval: config.Duration(100 * time.Millisecond)}
	cfg.Targets = nil // no per-target task queues: each scenario has its own
	return cfg
}

func runOnServer(c client.Client, sc simScenario) ([]string, int) {
	ctx := context.Background()
	queue := fmt.Sprintf("sim-%d", sc.Seed)
	r := &simRun{start: time.Now(), log: newSimLog(), targets: map[string]*simTarget{}, acts: map[string]bool{}}
	// Everything at a scaled time: the scenario with its times divided.
	sc.Effective = scaled(sc.Effective)
	for i := range sc.Behaviours {
		sc.Behaviours[i].After = scaled(sc.Behaviours[i].After)
	}
	if sc.NonHuman != nil {
		nh := *sc.NonHuman
		nh.Behaviours = slices.Clone(nh.Behaviours)
		for i := range nh.Behaviours {
			nh.Behaviours[i].After = scaled(nh.Behaviours[i].After)
		}
		sc.NonHuman = &nh
		r.owners, r.secrets = map[string]*simOwner{}, newSimSecrets()
	}
	var tgts []control.Target
	for _, name := range simTargetNames {
		st := newSimTarget(name, time.Now, r.log, sc.Behaviours)
		st.retryIn = 20 * time.Millisecond
		r.targets[name] = st
		if sc.NonHuman == nil {
			tgts = append(tgts, st)
			continue
		}
		r.owners[name] = newSimOwner(st, sc.NonHuman, r.secrets)
		tgts = append(tgts, r.owners[name])
	}
	w := worker.New(c, queue, worker.Options{})
	RegisterWorkflows(w)
	acts := activities.New(simConfigFor(simServerConfig(), sc), tgts)
	if r.secrets != nil {
		acts.Secrets = r.secrets
	}
	w.RegisterActivity(acts)
	if err := w.Start(); err != nil {
		return []string{"worker: " + err.Error()}, 0
	}
	defer w.Stop()

	r.t = Termination{
		EventID: fmt.Sprintf("evt-%d", sc.Seed), Source: "sim", EmployeeID: fmt.Sprintf("S%d", sc.Seed), Email: simLeaver, Name: "Ada",
		Kind: sc.Kind, Reason: sc.Reason, EffectiveAt: r.start.Add(sc.Effective).UTC(), Privileged: sc.Privileged,
		RequestedBy: simHR, Quarantined: sc.Quarantined,
	}
	if sc.Kind == KindRoleChange {
		r.t.NewRole = "sales-engineer"
	}
	if sc.HoldAtStart {
		r.t.LegalHold = &Hold{By: simLegal, CaseRef: simCase, Reason: "litigation"}
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: WorkflowID(r.t.EmployeeID), TaskQueue: queue}, WorkflowType, r.t)
	if err != nil {
		return []string{"start: " + err.Error()}, 0
	}
	tr := serverTransport{c: c, wid: run.GetID(), rid: run.GetRunID()}
	d := simDriver{tr: tr, run: r}
	var timers []*time.Timer
	later := func(at time.Duration, fn func()) { timers = append(timers, time.AfterFunc(scaled(at), fn)) }
	if sc.Quarantined {
		later(40*time.Minute, func() {
			decision := map[bool]string{false: "approve", true: "reject"}[sc.Rejected]
			d.releaseQuarantine(simEvent{}, simSecurity, ApproveRequest{Decision: decision, Reason: "checked with HR"})
		})
	}
	for _, b := range sc.Behaviours {
		if b.Kind == "gone" {
			timers = append(timers, time.AfterFunc(b.After, r.targets[strings.SplitN(b.Control, "/", 2)[0]].vanish))
		}
	}
	if sc.NonHuman != nil {
		for _, b := range sc.NonHuman.Behaviours {
			if b.Kind == "gone" {
				id := strings.Split(b.Control, "/") // target/owned/kind/id/step
				timers = append(timers, time.AfterFunc(b.After, r.owners[id[0]].vanishOwned(id[3])))
			}
		}
	}
	for _, ev := range sc.Events {
		if ev.At < simServerHorizon {
			ev.Span = scaled(ev.Span) // a waiver's length, or a time from the start
			later(ev.At, func() { d.act(ev) })
		}
	}

	wctx, cancel := context.WithTimeout(ctx, scaled(simServerHorizon))
	var res Result
	err = run.Get(wctx, &res)
	cancel()
	for _, tm := range timers {
		tm.Stop()
	}
	var v []string
	st, qerr := tr.query()
	switch {
	case err == nil:
		if qerr != nil {
			v = append(v, "status query after close: "+qerr.Error())
		} else if a, b := sameKeys(res.Status, st); a != b {
			v = append(v, "the status query disagrees with the result: "+firstDiff(a, b))
		}
	case wctx.Err() != nil:
		if qerr != nil {
			v = append(v, "status query: "+qerr.Error())
		} else if !waitsOnSomeone(st, time.Now()) {
			v = append(v, fmt.Sprintf("stuck: open in phase %s waiting on nobody (%s)", st.Phase, controlStates(st)))
		}
		_ = c.TerminateWorkflow(ctx, tr.wid, tr.rid, "simulation horizon")
	default:
		v = append(v, "workflow failed: "+err.Error())
	}

	hist := &historypb.History{}
	iter := c.GetWorkflowHistory(ctx, tr.wid, tr.rid, false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return append(v, "history: "+err.Error()), 0
		}
		hist.Events = append(hist.Events, ev)
	}
	if len(hist.Events) > simHistoryBound {
		v = append(v, fmt.Sprintf("history of %d events, over the bound %d", len(hist.Events), simHistoryBound))
	}
	replayer := worker.NewWorkflowReplayer()
	RegisterWorkflows(replayer)
	if err := replayer.ReplayWorkflowHistory(nil, hist); err != nil {
		v = append(v, "replay: "+err.Error())
	}
	return v, len(hist.Events)
}

// serverTransport reaches a run on a real Temporal server.
type serverTransport struct {
	c        client.Client
	wid, rid string
}

func (s serverTransport) now() time.Time        { return time.Now().UTC() }
func (s serverTransport) ids() (string, string) { return s.wid, s.rid }
func (s serverTransport) signal(name string, v any) {
	_ = s.c.SignalWorkflow(context.Background(), s.wid, s.rid, name, v)
}
func (s serverTransport) update(kind, id string, signed decision.Signed, done func(bool, string)) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: s.wid, RunID: s.rid, UpdateID: s.wid + "-" + id,
		UpdateName: kind, Args: []any{signed}, WaitForStage: client.WorkflowUpdateStageCompleted})
	var res DecisionResult
	if err == nil {
		err = h.Get(ctx, &res)
	}
	if err != nil {
		done(false, err.Error())
		return
	}
	done(true, res.Detail)
}
func (s serverTransport) query() (Status, error) {
	v, err := s.c.QueryWorkflow(context.Background(), s.wid, s.rid, QueryStatus)
	if err != nil {
		return Status{}, err
	}
	var st Status
	return st, v.Get(&st)
}
