// Command bench measures what issues #2 and #17 promise, on this machine:
//
//   - time-to-contain for one termination (the start call until every
//     containment control is observed), p50 and p99 over sequential runs, with
//     every simulated API call taking 50 ms; the same from a signed HR webhook
//     arriving at the relay (in this process); and, for the median run of
//     each, where the time went (workflow history and the simulators' calls);
//   - a burst of terminations started at once: terminations per second and
//     the time until the last is contained, beside the same Temporal server's
//     ceiling measured with a no-op workflow of the same number of activities;
//   - the worker process's peak RSS with the burst in flight;
//   - scale-out (issue #6): the same burst with a second worker process on
//     the task queue, and how many activities each process ran;
//   - a per-target rate limit (issue #6): Okta on its own queue with a
//     queue-wide activities-per-second limit, polled by two processes: the
//     rate Okta sees during a burst, and what the limit costs a single run.
//
// It starts its own file-backed dev server (WAL pragmas, as make run does),
// the simulators and worker processes, prints a table and writes JSON.
// With -stack it measures time-to-contain, the burst and the no-op ceiling on
// the production stack instead (scripts/stack.sh temporal: the Temporal
// server built from source on PostgreSQL), for deploy/README.md. With -quick
// it measures time-to-contain (start call and webhook), the burst and the
// no-op ceiling only, in about three minutes.
//
//	go run ./internal/bench -out .offboard/bench.json
//	go run ./internal/bench -quick -out .offboard/bench-quick.json
//	go run ./internal/bench -stack -out .offboard/bench-stack.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/sync/errgroup"

	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/graph"
	iamsim "github.com/offboard/offboard/sandbox/iam"
	"github.com/offboard/offboard/sandbox/ldapdir"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/scimapp"
	"github.com/offboard/offboard/sandbox/secrets"
	"github.com/offboard/offboard/workflows"
)

var (
	memoryLimitMB int
	quick         bool   // -quick: no scale-out, no rate limit
	workerBin     string // -worker: the binary to measure
	noEager       bool   // -no-eager: the dev server without eager activity dispatch
	// pollEvery: how often a sequential run's status is queried. Each query
	// is a task for the worker's workflow-task pollers, so asking too often
	// delays the very workflow tasks being measured.
	pollEvery time.Duration
)

// The rate-limit part: okta's queue limit, and how many runs it measures.
const (
	rateLimit = 10.0
	rateSeq   = 20
	rateBurst = 60
)

type figures struct {
	Server           string      `json:"server,omitempty"` // with -stack: what ran Temporal
	Machine          string      `json:"machine"`
	CallLatencyMS    int         `json:"callLatencyMs"`
	Targets          []string    `json:"targets"`
	ActivitiesPerRun int         `json:"activitiesPerRun"`
	Sequential       int         `json:"sequentialRuns"`
	ContainP50MS     float64     `json:"timeToContainP50Ms"`
	ContainP99MS     float64     `json:"timeToContainP99Ms"`
	ContainMaxMS     float64     `json:"timeToContainMaxMs"`
	HookP50MS        float64     `json:"webhookTimeToContainP50Ms"` // from the signed HR webhook's arrival at the relay
	HookP99MS        float64     `json:"webhookTimeToContainP99Ms"`
	HookMaxMS        float64     `json:"webhookTimeToContainMaxMs"`
	Breakdown        []breakdown `json:"breakdown"`   // the median run from the start call, and from the webhook
	Load             []string    `json:"loadAverage"` // /proc/loadavg at the start and the end: other work on the machine
	Burst            int         `json:"burst"`
	BurstPerSec      float64     `json:"burstTerminationsPerSec"`
	BurstLastMS      float64     `json:"burstLastContainedMs"`
	NoopPerSec       float64     `json:"noopCeilingWorkflowsPerSec"`
	NoopLastMS       float64     `json:"noopLastDoneMs"`
	ShareOfCeiling   float64     `json:"shareOfCeiling"`
	WorkerPeakRSSMB  float64     `json:"workerPeakRssMb"`
	// At the sampled peak: the worker's own memory (RssAnon) and the pages
	// of its binary it had mapped (RssFile: clean, shared, reclaimable).
	WorkerPeakAnonMB float64       `json:"workerPeakAnonMb"`
	WorkerPeakFileMB float64       `json:"workerPeakFileMb"`
	WorkerMemLimitMB int           `json:"workerMemoryLimitMb"`
	Scale            scaleFigures  `json:"scaleOut"`
	RateLimit        rateFigures   `json:"rateLimit"`
	Targets_         targetsStatus `json:"targetsMet"`
}

// targetsStatus: issue 17's targets, time-to-contain from the webhook.
type targetsStatus struct {
	P50        bool `json:"p50_le_300ms"`
	P99        bool `json:"p99_le_600ms"`
	Throughput bool `json:"burst_ge_85pct_of_ceiling"`
	RSS        bool `json:"worker_rss_le_120mb"`
	// RateLimitHeld: the limited target's mean activity rate stayed within
	// 10 % of its limit with two processes polling its queue.
	RateLimitHeld bool `json:"rate_limit_held"`
}

func main() {
	out := flag.String("out", ".offboard/bench.json", "where to write the figures as JSON")
	seq := flag.Int("runs", 50, "sequential terminations for time-to-contain")
	burst := flag.Int("burst", 500, "terminations started at once")
	latency := flag.Duration("latency", 50*time.Millisecond, "latency of every simulated API call")
	flag.IntVar(&memoryLimitMB, "worker-memory-limit", 0, "the worker's worker.memoryLimitMB (0 = the Go runtime's default)")
	flag.DurationVar(&pollEvery, "poll", 2*time.Millisecond, "how often a sequential run's status is queried (ContainedAt is the workflow's own time, so this only changes the load)")
	flag.BoolVar(&noEager, "no-eager", false, "start the dev server without eager activity dispatch (system.enableActivityEagerExecution)")
	flag.StringVar(&workerBin, "worker", "", "the worker binary to run (default bin/worker)")
	profile := flag.String("profile", "", "directory for the worker's heap and goroutine profiles, taken when the burst is contained")
	flag.BoolVar(&quick, "quick", false, "time-to-contain (start call and webhook), the burst and the no-op ceiling only (about 3 minutes)")
	flag.BoolVar(&onStack, "stack", false, "measure on the production stack (Temporal on PostgreSQL, scripts/stack.sh temporal): time-to-contain, the burst and the no-op ceiling only")
	flag.Parse()
	if err := run(*out, *seq, *burst, *latency, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(out string, seq, burst int, latency time.Duration, profile string) error {
	ctx := context.Background()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "offboard-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var dev temporalServer
	if onStack {
		dev, err = startStack(root)
	} else {
		dev, err = startDevServer(ctx, root, tmp)
	}
	if err != nil {
		return err
	}
	defer dev.Stop()
	c := dev.Client()

	// The simulators, every call slowed to look like a SaaS API.
	people := demo.People(5 + 2*seq + 2*burst + rateSeq + rateBurst + 10)
	sims, err := startSims(ctx, people, latency, tmp)
	if err != nil {
		return err
	}
	defer sims.close()
	next := 0
	take := func(n int) []demo.Person { next += n; return people[next-n : next] }

	// One config per worker process: they differ only in the metrics port.
	writeConfig := func(name, oktaLimits string) (cfgPath, metrics string, err error) {
		if metrics, err = freeAddr(); err != nil {
			return "", "", err
		}
		cfgPath = filepath.Join(tmp, name+".yaml")
		return cfgPath, metrics, os.WriteFile(cfgPath, []byte(sims.config(dev.FrontendHostPort(), dev.Namespace(), metrics, oktaLimits)), 0o600)
	}
	cfg1, metrics1, err := writeConfig("worker-1", "")
	if err != nil {
		return err
	}
	w1, err := startWorker(ctx, c, root, cfg1, metrics1, filepath.Join(tmp, "worker-1.log"), profile, workflows.TaskQueue)
	if err != nil {
		return err
	}
	defer w1.stop()

	f := figures{Load: []string{loadAvg()}, WorkerMemLimitMB: memoryLimitMB, Machine: machine(), CallLatencyMS: int(latency / time.Millisecond), Targets: sims.names, Sequential: seq, Burst: burst}
	// The plan is read by a local activity, then one resolve per target, then one
	// activity per control and, beside them, one rights read per target that finds first.
	f.ActivitiesPerRun = 1 + len(sims.names) + sims.containmentControls + sims.rightsReads

	// Warm up: connections, caches, the first workflow tasks.
	fmt.Fprintln(os.Stderr, "warming up…")
	if _, _, err := containSequential(ctx, c, take(5)); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "time-to-contain over %d sequential terminations…\n", seq)
	seqPeople := take(seq)
	lat, starts, err := containSequential(ctx, c, seqPeople)
	if err != nil {
		return err
	}
	f.ContainP50MS, f.ContainP99MS, f.ContainMaxMS = pct(lat, 50), pct(lat, 99), pct(lat, 100)
	fmt.Fprintf(os.Stderr, "  from the start call: p50 %.0f ms, p99 %.0f ms (load %s)\n", f.ContainP50MS, f.ContainP99MS, loadAvg())
	m := medianRun(lat)
	b, err := traceRun(ctx, c, &sims.calls, runID(seqPeople[m].EmployeeID), "start call", starts[m], starts[m].Add(lat[m]))
	if err != nil {
		return err
	}
	f.Breakdown = append(f.Breakdown, b)

	fmt.Fprintf(os.Stderr, "time-to-contain over %d sequential signed webhooks to the relay…\n", seq)
	hook, err := startRelay(c, tmp)
	if err != nil {
		return err
	}
	defer hook.close()
	hookPeople := take(seq)
	lat, starts, err = containFromWebhook(ctx, c, hook, hookPeople)
	if err != nil {
		return err
	}
	f.HookP50MS, f.HookP99MS, f.HookMaxMS = pct(lat, 50), pct(lat, 99), pct(lat, 100)
	fmt.Fprintf(os.Stderr, "  from the webhook: p50 %.0f ms, p99 %.0f ms (load %s)\n", f.HookP50MS, f.HookP99MS, loadAvg())
	m = medianRun(lat)
	if b, err = traceRun(ctx, c, &sims.calls, runID(hookPeople[m].EmployeeID), "webhook at the relay", starts[m], starts[m].Add(lat[m])); err != nil {
		return err
	}
	f.Breakdown = append(f.Breakdown, b)

	fmt.Fprintf(os.Stderr, "burst of %d terminations, one worker…\n", burst)
	burstStart, cpu := time.Now(), startCPU()
	peak := watchPeak(w1.cmd.Process.Pid, metrics1, profile)
	if profile != "" { // where the worker's CPU goes in the burst's first 20 s
		go func() {
			_ = saveProfile("http://"+metrics1+"/debug/pprof/profile?seconds=20", filepath.Join(profile, "cpu-burst.pprof"))
		}()
	}
	perSec, last, err := containBurst(ctx, c, take(burst), []*workerProc{w1})
	f.WorkerPeakAnonMB, f.WorkerPeakFileMB = peak()
	if err != nil {
		return err
	}
	f.Scale.OneCPUBusy = cpu.read()
	f.BurstPerSec, f.BurstLastMS = perSec, ms(last)
	f.WorkerPeakRSSMB = peakRSSMB(w1.cmd.Process.Pid)
	unlimitedPeak := peakPerSecond(sims.oktaLog.since(burstStart))
	if profile != "" {
		for _, p := range []string{"heap", "goroutine"} {
			if err := saveProfile("http://"+metrics1+"/debug/pprof/"+p, filepath.Join(profile, p+".pprof")); err != nil {
				return err
			}
		}
	}

	fmt.Fprintf(os.Stderr, "no-op ceiling: %d workflows of %d activities…\n", burst, f.ActivitiesPerRun)
	noopPerSec, noopLast, err := noopCeiling(ctx, c, burst, len(sims.names), sims.containmentControls+sims.rightsReads)
	if err != nil {
		return err
	}
	f.NoopPerSec, f.NoopLastMS = noopPerSec, ms(noopLast)
	f.ShareOfCeiling = f.BurstPerSec / f.NoopPerSec
	f.Targets_ = targetsStatus{P50: f.HookP50MS <= 300, P99: f.HookP99MS <= 600, Throughput: f.ShareOfCeiling >= 0.85, RSS: f.WorkerPeakRSSMB <= 120}
	if quick {
		f.Load = append(f.Load, loadAvg())
		return writeFigures(out, f)
	}
	if onStack {
		f.Server = dev.Name()
		return writeStackFigures(out, f)
	}

	// Scale out: a second process on the same task queue takes its share.
	fmt.Fprintf(os.Stderr, "burst of %d terminations, two workers…\n", burst)
	cfg2, metrics2, err := writeConfig("worker-2", "")
	if err != nil {
		return err
	}
	w2, err := startWorker(ctx, c, root, cfg2, metrics2, filepath.Join(tmp, "worker-2.log"), "", workflows.TaskQueue)
	if err != nil {
		return err
	}
	pair := []*workerProc{w1, w2}
	before, err := activityCounts(pair)
	if err != nil {
		return err
	}
	cpu = startCPU()
	perSec2, last2, err := containBurst(ctx, c, take(burst), pair)
	if err != nil {
		return err
	}
	twoBusy := cpu.read()
	after, err := activityCounts(pair)
	if err != nil {
		return err
	}
	f.Scale = scaleFigures{Burst: burst, OnePerSec: f.BurstPerSec, TwoPerSec: perSec2, TwoLastMS: ms(last2), OneCPUBusy: f.Scale.OneCPUBusy, TwoCPUBusy: twoBusy}
	for i := range pair {
		f.Scale.ActivitiesPerProc = append(f.Scale.ActivitiesPerProc, sum(after[i])-sum(before[i]))
		f.Scale.PeakRSSMB = append(f.Scale.PeakRSSMB, peakRSSMB(pair[i].cmd.Process.Pid))
	}
	w1.stop()
	w2.stop()

	// A per-target rate limit: Okta on its own queue at rateLimit activities/s,
	// two worker processes polling it. The server holds the queue, not each process.
	fmt.Fprintf(os.Stderr, "okta limited to %g activities/s, two workers: %d sequential, then a burst of %d…\n", rateLimit, rateSeq, rateBurst)
	limits := fmt.Sprintf("limits: {activitiesPerSecond: %g}", rateLimit)
	pair = pair[:0]
	for i := range 2 {
		cfgPath, metrics, err := writeConfig(fmt.Sprintf("limited-%d", i+1), limits)
		if err != nil {
			return err
		}
		w, err := startWorker(ctx, c, root, cfgPath, metrics, filepath.Join(tmp, fmt.Sprintf("limited-%d.log", i+1)), "", workflows.TaskQueue, "deprovision-okta")
		if err != nil {
			return err
		}
		defer w.stop()
		pair = append(pair, w)
	}
	r := rateFigures{Target: "okta", LimitPerSec: rateLimit, Workers: len(pair), Sequential: rateSeq, Burst: rateBurst, UnlimitedPeak1s: unlimitedPeak}
	latLimited, _, err := containSequential(ctx, c, take(rateSeq))
	if err != nil {
		return err
	}
	r.ContainP50MS, r.ContainP99MS = pct(latLimited, 50), pct(latLimited, 99)
	if before, err = activityCounts(pair); err != nil {
		return err
	}
	burstStart = time.Now()
	_, lastLimited, err := containBurst(ctx, c, take(rateBurst), pair)
	if err != nil {
		return err
	}
	if after, err = activityCounts(pair); err != nil {
		return err
	}
	r.LastMS = ms(lastLimited)
	calls := sims.oktaLog.since(burstStart)
	r.PeakRequests1s = peakPerSecond(calls)
	for i := range pair {
		n := after[i]["deprovision-okta"] - before[i]["deprovision-okta"]
		r.ActivitiesPerProc = append(r.ActivitiesPerProc, n)
		r.Activities += n
	}
	if len(calls) > 1 {
		r.WindowS = calls[len(calls)-1].Sub(calls[0]).Seconds()
		r.ActivitiesPerSec = r.Activities / r.WindowS
	}
	f.RateLimit = r

	f.Targets_.RateLimitHeld = r.ActivitiesPerSec <= rateLimit*1.1
	f.Load = append(f.Load, loadAvg())
	return writeFigures(out, f)
}

// writeFigures prints the table and the breakdowns, and writes the JSON.
func writeFigures(out string, f figures) error {
	printTable(os.Stdout, f)
	for _, b := range f.Breakdown {
		printBreakdown(os.Stdout, b)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

// loadAvg is the machine's load average (1, 5, 15 minutes) as uptime says it.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	fields := strings.Fields(string(b))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// activityCounts reads each process's executed activities by task queue.
func activityCounts(procs []*workerProc) ([]map[string]float64, error) {
	var out []map[string]float64
	for _, p := range procs {
		m, err := p.activities()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// termination is a bench event: approval always required (see the config),
// so each run stops after containment and the burst measures containment only.
func termination(p demo.Person) workflows.Termination {
	return workflows.Termination{EventID: "bench-" + p.EmployeeID, Source: "bench", EmployeeID: p.EmployeeID, Email: p.Email,
		Kind: workflows.KindTermination, Reason: workflows.ReasonVoluntary, EffectiveAt: time.Now().UTC(), RequestedBy: "bench"}
}

// containSequential runs one termination at a time and returns each one's
// time from the start call to the workflow's record of full containment,
// and when each start call was made.
func containSequential(ctx context.Context, c client.Client, people []demo.Person) ([]time.Duration, []time.Time, error) {
	var out []time.Duration
	var starts []time.Time
	for _, p := range people {
		t0 := time.Now()
		if _, err := runs.Start(ctx, c, termination(p)); err != nil {
			return nil, nil, err
		}
		st, err := waitContained(ctx, c, p.EmployeeID, pollEvery)
		if err != nil {
			return nil, nil, err
		}
		d := st.ContainedAt.Sub(t0)
		out, starts = append(out, d), append(starts, t0)
		if d > time.Second {
			explainSlow(p.EmployeeID, d, st)
		}
	}
	return out, starts, nil
}

// explainSlow says which controls made a run slow, so an outlier can be read.
func explainSlow(employee string, d time.Duration, st workflows.Status) {
	fmt.Fprintf(os.Stderr, "  slow: %s contained after %s:", employee, d.Round(time.Millisecond))
	for _, c := range st.Controls {
		if c.Receipt == nil || c.Phase != "containment" {
			continue
		}
		took := c.Receipt.FinishedAt.Sub(c.Receipt.StartedAt)
		if c.Attempts > 1 || took > 500*time.Millisecond || c.Receipt.StartedAt.Sub(st.EffectiveAt) > 500*time.Millisecond {
			fmt.Fprintf(os.Stderr, " %s (attempt %d, %s, started +%s)", c.ID, c.Attempts, took.Round(time.Millisecond), c.Receipt.StartedAt.Sub(st.EffectiveAt).Round(time.Millisecond))
		}
	}
	fmt.Fprintln(os.Stderr)
}

// waitContained polls the status query until ContainedAt is set. The figure
// is taken from ContainedAt (workflow time of the task that saw the last
// control observed), so the poll interval does not inflate it.
func waitContained(ctx context.Context, c client.Client, employee string, every time.Duration) (workflows.Status, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := runs.Status(ctx, c, employee)
		if err == nil && !st.ContainedAt.IsZero() {
			return st, nil
		}
		time.Sleep(every)
	}
	return workflows.Status{}, fmt.Errorf("%s not contained within 2 minutes", employee)
}

// containBurst starts every termination at once and waits until the worker
// processes procs have recorded each one contained.
func containBurst(ctx context.Context, c client.Client, people []demo.Person, procs []*workerProc) (float64, time.Duration, error) {
	before, err := containedCount(procs)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for _, p := range people {
		g.Go(func() error {
			_, err := runs.Start(gctx, c, termination(p))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	// Wait on the workers' own count of runs contained (the
	// offboard_time_to_contain_seconds metric, cheap to read): querying 500
	// workflows in a loop would steal the CPU being measured, and the
	// approval gate comes later than containment (non-human discovery).
	deadline := time.Now().Add(10 * time.Minute)
	for {
		n, err := containedCount(procs)
		if err != nil {
			return 0, 0, err
		}
		if n-before >= len(people) {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("only %d runs contained after 10 minutes", n-before)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var mu sync.Mutex
	var last time.Time
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, p := range people {
		g.Go(func() error {
			st, err := runs.Status(gctx, c, p.EmployeeID)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if st.ContainedAt.After(last) {
				last = st.ContainedAt
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	d := last.Sub(t0)
	return float64(len(people)) / d.Seconds(), d, nil
}

// noopWorkflow has the shape of containment with nothing behind it: one
// local activity (the plan), then one activity per target in parallel, then
// one per control in parallel.
func noopWorkflow(ctx workflow.Context, targets, controls int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: time.Minute})
	if err := workflow.ExecuteLocalActivity(lctx, noopActivity).Get(ctx, nil); err != nil {
		return err
	}
	for _, n := range []int{targets, controls} {
		futures := make([]workflow.Future, n)
		for i := range futures {
			futures[i] = workflow.ExecuteActivity(ctx, noopActivity)
		}
		for _, f := range futures {
			if err := f.Get(ctx, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func noopActivity(context.Context) error { return nil }

func noopCeiling(ctx context.Context, c client.Client, n, targets, controls int) (float64, time.Duration, error) {
	const queue = "bench-noop"
	w := worker.New(c, queue, worker.Options{MaxConcurrentActivityExecutionSize: 500})
	w.RegisterWorkflow(noopWorkflow)
	w.RegisterActivity(noopActivity)
	if err := w.Start(); err != nil {
		return 0, 0, err
	}
	defer w.Stop()
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	var mu sync.Mutex
	var last time.Time
	for i := 0; i < n; i++ {
		g.Go(func() error {
			run, err := c.ExecuteWorkflow(gctx, client.StartWorkflowOptions{ID: fmt.Sprintf("noop-%d-%d", t0.UnixNano(), i), TaskQueue: queue}, noopWorkflow, targets, controls)
			if err != nil {
				return err
			}
			if err := run.Get(gctx, nil); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if now := time.Now(); now.After(last) {
				last = now
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	d := last.Sub(t0)
	return float64(n) / d.Seconds(), d, nil
}

type sims struct {
	names               []string
	containmentControls int
	rightsReads         int // targets whose rights are read beside containment (control.Finder)
	oktaURL, crmURL     string
	wikiURL, ldapURL    string
	graphURL, awsURL    string
	secretsURL          string // AWS Secrets Manager: the IAM target lists owned secrets there
	ldapCA              string
	oktaLog             requestLog // every call Okta received
	calls               callLog    // every call each HTTP simulator received, for the breakdown
	closers             []func()
}

func startSims(ctx context.Context, people []demo.Person, latency time.Duration, dir string) (*sims, error) {
	slow := func() *fault.Injector { f := fault.New(); f.SetLatency(latency); return f }
	s := &sims{}
	okta := oktasim.New(oktasim.Options{Token: "bench-okta", People: people, RateLimitPerMinute: 1 << 30, Faults: slow()})
	crm, err := scimapp.New(scimapp.Options{Name: "crm", Bearer: "bench-scim", PatchSupported: true, People: people, Faults: slow(), RequestsPerSecond: 1 << 20})
	if err != nil {
		return nil, err
	}
	wiki, err := scimapp.New(scimapp.Options{Name: "wiki", Bearer: "bench-scim", People: people, Faults: slow(), RequestsPerSecond: 1 << 20})
	if err != nil {
		return nil, err
	}
	for _, h := range []struct {
		url *string
		srv *httptest.Server
	}{
		{&s.oktaURL, httptest.NewServer(s.calls.wrap("okta", s.oktaLog.wrap(okta.Handler())))},
		{&s.crmURL, httptest.NewServer(s.calls.wrap("scim-crm", crm.Handler()))},
		{&s.wikiURL, httptest.NewServer(s.calls.wrap("scim-wiki", wiki.Handler()))},
		{&s.graphURL, httptest.NewServer(s.calls.wrap("entra", graph.New(graph.Options{People: people, Faults: slow(), RequestsPerSecond: 1 << 20}).Handler()))},
		{&s.secretsURL, httptest.NewServer(s.calls.wrap("aws", secrets.New(secrets.Options{AccessKeyID: "AKIABENCHOFFBOARD001", SecretAccessKey: "bench-aws", People: people, Faults: slow(), RequestsPerSecond: 1 << 20}).Handler()))},
		{&s.awsURL, httptest.NewServer(s.calls.wrap("aws", iamsim.New(iamsim.Options{AccessKeyID: "AKIABENCHOFFBOARD001", SecretAccessKey: "bench-aws", People: people, Faults: slow(), RequestsPerSecond: 1 << 20}).Handler()))},
	} {
		*h.url = h.srv.URL
		s.closers = append(s.closers, h.srv.Close)
	}
	ad, err := ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: "bench-ldap", People: people, CertDir: filepath.Join(dir, "ldap")})
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	go func() { _ = ad.Serve(actx) }()
	s.closers = append(s.closers, cancel)
	s.ldapURL, s.ldapCA = ad.URL(), ad.CAFile()
	// okta: suspend, clear_sessions, revoke_grants; entra: disable, revoke_sessions;
	// one per SCIM app; AD: disable; AWS: keys, login profile, credentials, deny-all.
	s.names = []string{"okta", "entra", "scim-crm", "scim-wiki", "ad", "aws"}
	s.containmentControls = 3 + 2 + 1 + 1 + 1 + 4
	s.rightsReads = 3 // okta, entra, aws
	return s, nil
}

func (s *sims) close() {
	for _, c := range s.closers {
		c()
	}
}

// config is a worker's file; oktaLimits is YAML for okta's limits, or "".
func (s *sims) config(hostPort, namespace, metricsAddr, oktaLimits string) string {
	if oktaLimits != "" {
		oktaLimits = ", " + oktaLimits
	}
	return fmt.Sprintf(`
temporal: {address: %s, namespace: %s}
worker: {metricsAddr: %q, memoryLimitMB: %d}
policy:
  approval: {always: true, timeout: 72h}
  reverify: []
people: {approvers: [alice@example.test], security: [alice@example.test]}
targets:
  - {name: okta, kind: okta, okta: {orgURL: %s, token: {env: BENCH_OKTA_TOKEN}}%s}
  - {name: entra, kind: entra, entra: {baseURL: %s}}
  - {name: scim-crm, kind: scim, scim: {baseURL: %s/scim/v2, bearer: {env: BENCH_SCIM_TOKEN}}}
  - {name: scim-wiki, kind: scim, scim: {baseURL: %s/scim/v2, bearer: {env: BENCH_SCIM_TOKEN}}}
  - name: ad
    kind: ldap
    ldap: {url: %q, caFile: %q, bindDN: "CN=Administrator,CN=Users,DC=corp,DC=example,DC=test", baseDN: "DC=corp,DC=example,DC=test", password: {env: BENCH_LDAP_PASSWORD}}
  - {name: aws, kind: awsiam, aws: {accountID: "123456789012", endpoint: %s, secretsEndpoint: %s, servicePathPrefix: /service/, accessKeyID: {env: BENCH_AWS_KEY_ID}, secretAccessKey: {env: BENCH_AWS_SECRET}}}
`, hostPort, namespace, metricsAddr, memoryLimitMB, s.oktaURL, oktaLimits, s.graphURL, s.crmURL, s.wikiURL, s.ldapURL, s.ldapCA, s.awsURL, s.secretsURL)
}

// watchPeak samples the worker's resident memory every 250 ms until the
// returned func is called, which gives RssAnon and RssFile at the sample
// with the most resident memory. With a profile directory it saves the
// heap and goroutine profiles at that sample too (heap-peak.pprof,
// goroutine-peak.pprof): the profiles at the end show what is left, not
// what the peak was made of.
func watchPeak(pid int, metrics, profile string) func() (anonMB, fileMB float64) {
	done, stopped := make(chan struct{}), make(chan struct{})
	var anon, file float64
	go func() {
		defer close(stopped)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		best, profiled := 0.0, 0.0
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			a, f := rssParts(pid)
			if a+f <= best {
				continue
			}
			best, anon, file = a+f, a, f
			if profile != "" && best > profiled+2 { // a new peak, by more than noise
				profiled = best
				for _, p := range []string{"heap", "goroutine"} {
					_ = saveProfile("http://"+metrics+"/debug/pprof/"+p, filepath.Join(profile, p+"-peak.pprof"))
				}
			}
		}
	}()
	return func() (float64, float64) {
		close(done)
		<-stopped
		return anon, file
	}
}

// rssParts reads RssAnon and RssFile of a process, in MB.
func rssParts(pid int) (anonMB, fileMB float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "RssAnon" && name != "RssFile") {
			continue
		}
		var kb float64
		fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb)
		if name == "RssAnon" {
			anonMB = kb / 1024
		} else {
			fileMB = kb / 1024
		}
	}
	return anonMB, fileMB
}

func saveProfile(url, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func pct(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s)-1) * p / 100)
	return ms(s[i])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func peakRSSMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb / 1024
		}
	}
	return -1
}

func machine() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return fmt.Sprintf("%d cores", strings.Count(string(b), "processor\t:"))
}

func printTable(w io.Writer, f figures) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ok := func(b bool) string {
		if b {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(tw, "Offboard bench (%s, %d ms per simulated call, targets %s, %d activities to contain)\n\n", f.Machine, f.CallLatencyMS, strings.Join(f.Targets, ", "), f.ActivitiesPerRun)
	fmt.Fprintf(tw, "load average (1, 5, 15 min) at start / end: %s\n\n", strings.Join(f.Load, " / "))
	fmt.Fprintln(tw, "figure\tvalue\ttarget\t")
	fmt.Fprintf(tw, "time-to-contain from the webhook, p50 (%d runs)\t%.0f ms\t≤ 300 ms\t%s\n", f.Sequential, f.HookP50MS, ok(f.Targets_.P50))
	fmt.Fprintf(tw, "time-to-contain from the webhook, p99\t%.0f ms\t≤ 600 ms\t%s\n", f.HookP99MS, ok(f.Targets_.P99))
	fmt.Fprintf(tw, "time-to-contain from the start call, p50 / p99 (%d runs)\t%.0f / %.0f ms\t\t\n", f.Sequential, f.ContainP50MS, f.ContainP99MS)
	fmt.Fprintf(tw, "burst of %d: terminations/s\t%.1f /s\t\t\n", f.Burst, f.BurstPerSec)
	fmt.Fprintf(tw, "burst: last contained after\t%.1f s\t\t\n", f.BurstLastMS/1000)
	fmt.Fprintf(tw, "no-op ceiling, same server\t%.1f /s\t\t\n", f.NoopPerSec)
	fmt.Fprintf(tw, "burst share of ceiling\t%.0f %%\t≥ 85 %%\t%s\n", 100*f.ShareOfCeiling, ok(f.Targets_.Throughput))
	fmt.Fprintf(tw, "worker peak RSS (%d in flight, memoryLimitMB %d)\t%.0f MB\t≤ 120 MB\t%s\n", f.Burst, f.WorkerMemLimitMB, f.WorkerPeakRSSMB, ok(f.Targets_.RSS))
	fmt.Fprintf(tw, "  at the peak: the worker's own (anon) / its binary's pages (file)\t%.0f / %.0f MB\t\t\n", f.WorkerPeakAnonMB, f.WorkerPeakFileMB)
	if quick {
		_ = tw.Flush()
		return
	}
	sc := f.Scale
	fmt.Fprintf(tw, "\nscale-out: burst of %d, one worker process → two\t%.1f /s → %.1f /s\t\t\n", sc.Burst, sc.OnePerSec, sc.TwoPerSec)
	fmt.Fprintf(tw, "two workers: last contained after\t%.1f s\t\t\n", sc.TwoLastMS/1000)
	fmt.Fprintf(tw, "machine CPU busy during the burst, one → two\t%.0f %% → %.0f %%\t\t\n", 100*sc.OneCPUBusy, 100*sc.TwoCPUBusy)
	fmt.Fprintf(tw, "two workers: activities run by each\t%s\t\t\n", joinFloats(sc.ActivitiesPerProc, "%.0f"))
	fmt.Fprintf(tw, "two workers: peak RSS of each\t%s MB\t\t\n", joinFloats(sc.PeakRSSMB, "%.0f"))
	r := f.RateLimit
	fmt.Fprintf(tw, "\nrate limit: %s at %g activities/s on its own queue, %d workers\t\t\t\n", r.Target, r.LimitPerSec, r.Workers)
	fmt.Fprintf(tw, "time-to-contain p50 / p99 (%d runs)\t%.0f / %.0f ms\t\t\n", r.Sequential, r.ContainP50MS, r.ContainP99MS)
	fmt.Fprintf(tw, "burst of %d: %s activities (each worker: %s)\t%.0f in %.1f s\t\t\n", r.Burst, r.Target, joinFloats(r.ActivitiesPerProc, "%.0f"), r.Activities, r.WindowS)
	fmt.Fprintf(tw, "%s activities per second\t%.1f /s\t≤ %g /s\t%s\n", r.Target, r.ActivitiesPerSec, r.LimitPerSec, ok(f.Targets_.RateLimitHeld))
	fmt.Fprintf(tw, "%s requests, busiest second (unlimited burst: %d)\t%d\t\t\n", r.Target, r.UnlimitedPeak1s, r.PeakRequests1s)
	fmt.Fprintf(tw, "burst: last contained after\t%.1f s\t\t\n", r.LastMS/1000)
	_ = tw.Flush()
}

func joinFloats(vs []float64, format string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf(format, v)
	}
	return strings.Join(parts, " / ")
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
