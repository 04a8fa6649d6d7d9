package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// workerProc is one worker process, as an operator runs it: the worker
// binary with a config file, its Prometheus endpoint on its own port.
type workerProc struct {
	cmd     *exec.Cmd
	metrics string // host:port of /metrics
}

// startWorker starts bin/worker with the config at cfgPath and waits until it
// polls every queue in queues (its identity, pid@host, is listed by the server).
func startWorker(ctx context.Context, c client.Client, root, cfgPath, metricsAddr, logPath, profile string, queues ...string) (*workerProc, error) {
	bin := workerBin
	if bin == "" {
		bin = filepath.Join(root, "bin", "worker")
	}
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Env = append(os.Environ(), "BENCH_OKTA_TOKEN=bench-okta", "BENCH_SCIM_TOKEN=bench-scim", "BENCH_LDAP_PASSWORD=bench-ldap",
		"BENCH_AWS_KEY_ID=AKIABENCHOFFBOARD001", "BENCH_AWS_SECRET=bench-aws", "OFFBOARD_WORKER_PPROF="+profile)
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("worker (run make build first): %w", err)
	}
	w := &workerProc{cmd: cmd, metrics: metricsAddr}
	for _, q := range queues {
		if err := waitPolling(ctx, c, q, cmd.Process.Pid); err != nil {
			w.stop()
			return nil, fmt.Errorf("worker %d (log %s): %w", cmd.Process.Pid, logPath, err)
		}
	}
	return w, nil
}

func (w *workerProc) stop() {
	_ = w.cmd.Process.Kill()
	_ = w.cmd.Wait()
}

// waitPolling waits until the server lists the process among the pollers of
// the queue's activity tasks.
func waitPolling(ctx context.Context, c client.Client, queue string, pid int) error {
	prefix := strconv.Itoa(pid) + "@"
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.DescribeTaskQueue(ctx, queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err == nil {
			for _, p := range resp.GetPollers() {
				if strings.HasPrefix(p.GetIdentity(), prefix) {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not polling %s after 30 s", queue)
}

// activities sums the SDK's count of activities this process executed, by
// task queue, from its Prometheus endpoint.
func (w *workerProc) activities() (map[string]float64, error) {
	resp, err := http.Get("http://" + w.metrics + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("worker metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "temporal_activity_execution_latency_seconds_count{") {
			continue
		}
		queue := label(line, "task_queue")
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("worker metrics: %q: %w", line, err)
		}
		out[queue] += v
	}
	return out, sc.Err()
}

// containedCount sums the runs the processes recorded contained
// (offboard_time_to_contain_seconds, a histogram: its _count).
func containedCount(procs []*workerProc) (int, error) {
	total := 0
	for _, w := range procs {
		resp, err := http.Get("http://" + w.metrics + "/metrics")
		if err != nil {
			return 0, fmt.Errorf("worker metrics: %w", err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "offboard_time_to_contain_seconds_count") {
				continue
			}
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				resp.Body.Close()
				return 0, fmt.Errorf("worker metrics: %q: %w", line, err)
			}
			total += int(v)
		}
		resp.Body.Close()
		if err := sc.Err(); err != nil {
			return 0, err
		}
	}
	return total, nil
}

func label(line, name string) string {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// freeAddr is a loopback address nobody listens on, for a worker's metrics.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// requestLog records when a simulator was called, to measure the request
// rate a target system sees.
type requestLog struct {
	mu sync.Mutex
	at []time.Time
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.at = append(l.at, time.Now())
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// since returns the calls from t on, in order.
func (l *requestLog) since(t time.Time) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _ := slices.BinarySearchFunc(l.at, t, func(a, b time.Time) int { return a.Compare(b) })
	return slices.Clone(l.at[i:])
}

// peakPerSecond is the most calls in any one-second window.
func peakPerSecond(at []time.Time) int {
	peak, lo := 0, 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= time.Second {
			lo++
		}
		peak = max(peak, hi-lo+1)
	}
	return peak
}

// scaleFigures compares one worker process with two on the same burst.
type scaleFigures struct {
	Burst             int       `json:"burst"`
	OnePerSec         float64   `json:"oneWorkerTerminationsPerSec"`
	TwoPerSec         float64   `json:"twoWorkersTerminationsPerSec"`
	TwoLastMS         float64   `json:"twoWorkersLastContainedMs"`
	ActivitiesPerProc []float64 `json:"twoWorkersActivitiesPerProcess"`
	PeakRSSMB         []float64 `json:"twoWorkersPeakRssMb"`
	// Share of all cores busy during each burst: with the server, the
	// simulators and the workers on one machine, a second process adds
	// capacity only where cores are idle.
	OneCPUBusy float64 `json:"oneWorkerCpuBusy"`
	TwoCPUBusy float64 `json:"twoWorkersCpuBusy"`
}

// rateFigures is a burst with one target rate-limited on its own queue,
// served by two worker processes.
type rateFigures struct {
	Target            string    `json:"target"`
	LimitPerSec       float64   `json:"limitActivitiesPerSec"`
	Workers           int       `json:"workers"`
	Sequential        int       `json:"sequentialRuns"`
	ContainP50MS      float64   `json:"timeToContainP50Ms"`
	ContainP99MS      float64   `json:"timeToContainP99Ms"`
	Burst             int       `json:"burst"`
	LastMS            float64   `json:"burstLastContainedMs"`
	Activities        float64   `json:"targetActivities"`
	WindowS           float64   `json:"targetWindowSec"`
	ActivitiesPerSec  float64   `json:"targetActivitiesPerSec"`
	PeakRequests1s    int       `json:"targetPeakRequestsPerSec"`
	UnlimitedPeak1s   int       `json:"unlimitedPeakRequestsPerSec"`
	ActivitiesPerProc []float64 `json:"activitiesPerProcess"`
}

// cpuTimes reads the machine's busy and total CPU time from /proc/stat.
func cpuTimes() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	for i, f := range fields[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// cpuMeter measures the share of all cores busy between start and read.
type cpuMeter struct{ busy, total float64 }

func startCPU() cpuMeter { b, t := cpuTimes(); return cpuMeter{b, t} }

func (m cpuMeter) read() float64 {
	b, t := cpuTimes()
	if t <= m.total {
		return 0
	}
	return (b - m.busy) / (t - m.total)
}
