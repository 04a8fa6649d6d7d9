package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// benchClient is the Temporal the benchmark talks to, chosen by
// OFFBOARD_BENCH_TEMPORAL: "devserver" starts one (bin/temporal), host:port
// dials a running one (e.g. `make run`'s), unset uses the in-memory fake,
// which measures the relay's own cost alone.
func benchClient(b *testing.B) client.Client {
	switch target := os.Getenv("OFFBOARD_BENCH_TEMPORAL"); target {
	case "":
		return newFakeTemporal()
	case "devserver":
		return startDevServer(b)
	default:
		c, err := client.Dial(client.Options{HostPort: target, Namespace: "default"})
		if err != nil {
			b.Fatalf("dial %s: %v", target, err)
		}
		b.Cleanup(c.Close)
		return c
	}
}

func benchRelay(b *testing.B, c client.Client) *httptest.Server {
	cfg := testConfig(b)
	cfg.Now = nil
	cfg.Relay.BlastRadius = config.BlastRadius{Max: 1 << 30, Window: config.Duration(time.Minute)}
	rl, err := New(cfg, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(rl.Handler())
	b.Cleanup(srv.Close)
	return srv
}

var benchSeq atomic.Int64

func benchTermination(prefix string) workflows.Termination {
	n := benchSeq.Add(1)
	id := fmt.Sprintf("%s%d-%d", prefix, time.Now().UnixNano()%1e9, n)
	return workflows.Termination{EventID: "bench-" + id, Source: "generic", EmployeeID: id, Email: id + "@example.test",
		Kind: workflows.KindTermination, EffectiveAt: time.Now().Add(24 * time.Hour)}
}

func postSigned(hc *http.Client, url string, t workflows.Termination) (int, error) {
	body, _ := json.Marshal(map[string]any{"eventId": t.EventID, "type": "termination", "employeeId": t.EmployeeID,
		"email": t.Email, "effectiveAt": t.EffectiveAt.UTC().Format(time.RFC3339)})
	ts, sig := SignGeneric([]byte(genericKeys[0]), body, time.Now())
	req, err := http.NewRequest(http.MethodPost, url+"/hris/generic", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Offboard-Timestamp", ts)
	req.Header.Set("X-Offboard-Signature", sig)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkRelay measures, for `make bench`:
//   - latency: a signed webhook through the relay's HTTP server against a
//     direct runs.Start of the same kind of termination, alternating;
//     reports p50/p99 of both and the relay's added latency;
//   - throughput: signed webhooks accepted per second, posted concurrently.
func BenchmarkRelay(b *testing.B) {
	c := benchClient(b)
	srv := benchRelay(b, c)
	hc := srv.Client()
	ctx := context.Background()

	b.Run("latency", func(b *testing.B) {
		direct := make([]time.Duration, 0, b.N)
		relayed := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			if _, err := runs.Start(ctx, c, benchTermination("D")); err != nil {
				b.Fatal(err)
			}
			direct = append(direct, time.Since(start))

			start = time.Now()
			code, err := postSigned(hc, srv.URL, benchTermination("R"))
			if err != nil || code != http.StatusAccepted {
				b.Fatalf("webhook: %d %v", code, err)
			}
			relayed = append(relayed, time.Since(start))
		}
		us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
		b.ReportMetric(us(quantile(direct, .5)), "direct-p50-µs")
		b.ReportMetric(us(quantile(direct, .99)), "direct-p99-µs")
		b.ReportMetric(us(quantile(relayed, .5)), "relay-p50-µs")
		b.ReportMetric(us(quantile(relayed, .99)), "relay-p99-µs")
		b.ReportMetric(us(quantile(relayed, .5)-quantile(direct, .5)), "added-p50-µs")
		b.ReportMetric(us(quantile(relayed, .99)-quantile(direct, .99)), "added-p99-µs")
	})

	b.Run("throughput", func(b *testing.B) {
		var failed atomic.Int64
		start := time.Now()
		b.SetParallelism(16) // HR systems deliver from many connections at once
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if code, err := postSigned(hc, srv.URL, benchTermination("T")); err != nil || code != http.StatusAccepted {
					failed.Add(1)
				}
			}
		})
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d webhooks not accepted", n)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "webhooks/s")
	})
}
