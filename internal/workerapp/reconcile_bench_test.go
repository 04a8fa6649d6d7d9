package workerapp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/internal/workerapp"
	"github.com/offboard/offboard/sandbox/demo"
	iamsim "github.com/offboard/offboard/sandbox/iam"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/scimapp"
	"github.com/offboard/offboard/workflows"
)

// counted counts the requests a simulator serves and keeps when each came,
// so a target's rate is measured over the time it was being listed.
type counted struct {
	mu sync.Mutex
	at []time.Time
	h  http.Handler
}

func (c *counted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.at = append(c.at, time.Now())
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

func (c *counted) reset() { c.mu.Lock(); c.at = nil; c.mu.Unlock() }

// rates are the requests served, the mean requests/s from the first to the
// last, and the most served in any one second (what a rate limiter sees).
func (c *counted) rates() (n int, window time.Duration, mean float64, busiest int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n = len(c.at)
	if n == 0 {
		return 0, 0, 0, 0
	}
	window = max(c.at[n-1].Sub(c.at[0]), time.Millisecond)
	for i, j := 0, 0; j < n; j++ {
		for c.at[j].Sub(c.at[i]) >= time.Second {
			i++
		}
		busiest = max(busiest, j-i+1)
	}
	return n, window, float64(n) / window.Seconds(), busiest
}

// BenchmarkReconcile reconciles OFFBOARD_BENCH_ACCOUNTS accounts (default
// 50,000: 40% Okta, 40% SCIM, 20% IAM) through the real worker (workerapp,
// the targets' own rate-limited queues) on a dev server, and reports
// accounts per second, the test process's peak RSS (worker and simulators
// together) and each target's requests per second over the time it was
// listed, against its budget (4 × its limit, config.Limits), with the most
// requests it saw in any one second. make bench runs it:
//
//	go test ./internal/workerapp -run '^$' -bench Reconcile -benchtime 1x
func BenchmarkReconcile(b *testing.B) {
	total := 50000
	if v, err := strconv.Atoi(os.Getenv("OFFBOARD_BENCH_ACCOUNTS")); err == nil && v > 0 {
		total = v
	}
	nOkta, nSCIM := total*2/5, total*2/5
	nIAM := total - nOkta - nSCIM
	srv := devserver.Start(b)
	ctx := context.Background()

	osim := &counted{h: oktasim.New(oktasim.Options{Token: "tok", RateLimitPerMinute: 1 << 30, People: demo.People(nOkta)}).Handler()}
	app, err := scimapp.New(scimapp.Options{Name: "crm", Bearer: "tok", PatchSupported: true, RequestsPerSecond: 1 << 30, People: demo.People(nSCIM)})
	require.NoError(b, err)
	ssim := &counted{h: app.Handler()}
	isim := &counted{h: iamsim.New(iamsim.Options{AccessKeyID: "AKIDBENCH", SecretAccessKey: "bench-secret", RequestsPerSecond: 1 << 30, People: demo.People(nIAM)}).Handler()}
	var servers []*httptest.Server
	for _, h := range []http.Handler{osim, ssim, isim} {
		s := httptest.NewServer(h)
		b.Cleanup(s.Close)
		servers = append(servers, s)
	}
	oc, err := okta.New(ctx, okta.Config{Name: "okta", OrgURL: servers[0].URL, Token: "tok", AllowHTTP: true})
	require.NoError(b, err)
	sc, err := scim.New(scim.Config{Name: "crm", BaseURL: servers[1].URL + "/scim/v2", Bearer: "tok"})
	require.NoError(b, err)
	ic, err := awsiam.New(ctx, awsiam.Config{Name: "aws", AccountID: "123456789012", Endpoint: servers[2].URL,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDBENCH", "bench-secret", "")})
	require.NoError(b, err)

	dir := b.TempDir()
	keyFile := filepath.Join(dir, "evidence.key")
	_, err = evidence.GenerateKey(keyFile)
	require.NoError(b, err)
	limits := map[string]float64{"okta": 20, "crm": 20, "aws": 50}
	yaml := fmt.Sprintf("worker: {metricsAddr: \"off\"}\nevidence: {dir: %q, signingKey: {file: %q}}\nreconcile: {roster: {kind: sandbox, sandboxSize: %d}}\ntargets:\n",
		filepath.Join(dir, "store"), keyFile, max(nOkta, nSCIM, nIAM))
	yaml += fmt.Sprintf("  - {name: okta, kind: okta, okta: {orgURL: \"http://127.0.0.1:1\", token: {env: X}}, limits: {activitiesPerSecond: %v}}\n", limits["okta"])
	yaml += fmt.Sprintf("  - {name: crm, kind: scim, scim: {baseURL: \"http://127.0.0.1:1/scim/v2\", bearer: {env: X}}, limits: {activitiesPerSecond: %v}}\n", limits["crm"])
	yaml += fmt.Sprintf("  - {name: aws, kind: awsiam, aws: {accountID: \"123456789012\", region: us-east-1}, limits: {activitiesPerSecond: %v}}\n", limits["aws"])
	cfg, err := config.Parse([]byte(yaml), "bench")
	require.NoError(b, err)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- workerapp.RunWith(wctx, cfg, srv.Client, []control.Target{oc, sc, ic}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	b.Cleanup(func() { stop(); <-done })

	for _, c := range []*counted{osim, ssim, isim} { // the rates count the reconciliation's requests only
		c.reset()
	}
	b.ResetTimer()
	start := time.Now()
	run, err := srv.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reconcile-bench", TaskQueue: workflows.TaskQueue},
		workflows.ReconcileWorkflowType, workflows.ReconcileInput{})
	require.NoError(b, err)
	var res workflows.ReconcileResult
	require.NoError(b, run.Get(ctx, &res))
	elapsed := time.Since(start)
	b.StopTimer()

	listed := 0
	for _, t := range res.Report.Targets {
		require.Empty(b, t.Error, t.Name)
		listed += t.Counts.Accounts
	}
	require.Equal(b, total+2, listed) // the IAM seed adds deploy-bot and breakglass-aws (sandbox/demo/nonhuman.go)
	rss := peakRSSMB()
	b.ReportMetric(float64(listed)/elapsed.Seconds(), "accounts/s")
	b.ReportMetric(rss, "peakRSS_MB")
	b.Logf("reconcile of %d accounts in %.1f s: %.0f accounts/s; worker peak RSS %.0f MB (the simulators run in the same process)",
		listed, elapsed.Seconds(), float64(listed)/elapsed.Seconds(), rss)
	for i, name := range []string{"okta", "crm", "aws"} {
		// A limit is in activities per second, a quarter of the target's
		// request budget (config.Limits): reconciliation paces its pages to it.
		n, window, mean, busiest := []*counted{osim, ssim, isim}[i].rates()
		budget := 4 * limits[name]
		for _, t := range res.Report.Targets {
			if t.Name == name {
				b.Logf("%-4s %6d accounts %5d pages %6d requests in %5.1f s: %6.1f requests/s (%3.0f%% of its budget of %.0f, limit %v activities/s), busiest second %d",
					name, t.Counts.Accounts, t.Counts.Pages, n, window.Seconds(), mean, 100*mean/budget, budget, limits[name], busiest)
			}
		}
		b.ReportMetric(mean, name+"_req/s")
	}
}

// peakRSSMB is this process's peak resident set (VmHWM), in MB.
func peakRSSMB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
