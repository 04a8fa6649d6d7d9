// Package workerapp runs the worker with everything it needs passed in, so
// the worker binary, the integration tests and the bench run the same code.
package workerapp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/evidence"
	"github.com/offboard/offboard/internal/metrics"
	"github.com/offboard/offboard/internal/targets"
	"github.com/offboard/offboard/internal/tclient"
	"github.com/offboard/offboard/workflows"
)

// Run builds the connectors from cfg and runs a worker on the deprovision
// task queue until ctx is done.
func Run(ctx context.Context, cfg config.Config, c client.Client, logger *slog.Logger) error {
	tgts, err := targets.Build(ctx, cfg)
	if err != nil {
		return err
	}
	return RunWith(ctx, cfg, c, tgts, logger)
}

// RunWith runs a worker over the given targets.
func RunWith(ctx context.Context, cfg config.Config, c client.Client, tgts []control.Target, logger *slog.Logger) error {
	if mb := cfg.Worker.MemoryLimitMB; mb > 0 {
		debug.SetMemoryLimit(int64(mb) << 20)
	}
	if n := cfg.Worker.WorkflowCacheSize; n > 0 {
		worker.SetStickyWorkflowCacheSize(n) // process-wide; must precede worker.New
	}
	w := worker.New(c, workflows.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.Worker.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.Worker.MaxConcurrentWorkflows,
		// A task queue has several partitions (4 by default); with fewer pollers
		// than partitions a task can wait on a partition nobody polls until it is
		// forwarded, which measured here as up to a second before containment.
		MaxConcurrentWorkflowTaskPollers: cfg.Worker.WorkflowTaskPollers,
		MaxConcurrentActivityTaskPollers: cfg.Worker.ActivityTaskPollers,
	})
	workflows.Register(w, activities.New(cfg, tgts))
	archiving, err := registerEvidence(ctx, cfg, c, w)
	if err != nil {
		return err
	}

	names := make([]string, 0, len(tgts))
	for _, t := range tgts {
		names = append(names, t.Name()+"("+t.Kind()+")")
	}
	logger.Info("worker starting", "taskQueue", workflows.TaskQueue, "targets", names, "config", cfg.Source(), "evidence", archiving)

	stopHealth, err := serveHealth(cfg.Worker.MetricsAddr, logger)
	if err != nil {
		return err
	}
	defer stopHealth()

	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	<-ctx.Done()
	w.Stop()
	logger.Info("worker stopped")
	return nil
}

// registerEvidence archives every closed run's evidence when a signing key is
// configured: the Archiver workflow, its activities, and the schedule that
// sweeps for closed runs every minute. It reports where evidence goes.
func registerEvidence(ctx context.Context, cfg config.Config, c client.Client, w worker.Worker) (string, error) {
	if !cfg.Evidence.SigningKey.IsSet() {
		return "off (no evidence.signingKey)", nil
	}
	pem, err := cfg.Evidence.SigningKey.Value()
	if err != nil {
		return "", fmt.Errorf("config %s: evidence.signingKey: %w", cfg.Source(), err)
	}
	key, err := evidence.ParsePrivateKey([]byte(pem))
	if err != nil {
		return "", fmt.Errorf("config %s: evidence.signingKey: %w", cfg.Source(), err)
	}
	// The client's own converters are not exposed by client.Client: load the
	// same ones from the codec section (nil, the defaults, when it is off).
	dc, fc, err := tclient.Converters(cfg)
	if err != nil {
		return "", err
	}
	evidence.Register(w, &evidence.Activities{
		Client:           c,
		Store:            evidence.Dir{Root: cfg.Evidence.Dir},
		Key:              key,
		KeyID:            evidence.KeyID(key.Public().(ed25519.PublicKey)),
		DataConverter:    dc,
		FailureConverter: fc,
	})
	if err := evidence.EnsureSchedule(ctx, c); err != nil {
		return "", fmt.Errorf("evidence: archive schedule: %w", err)
	}
	return cfg.Evidence.Dir, nil
}

// serveHealth answers /healthz on the metrics address.
func serveHealth(addr string, logger *slog.Logger) (func(), error) {
	if addr == "" || addr == "off" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("worker: metrics address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/metrics", metrics.Handler(metrics.DefaultRegistry()))
	if os.Getenv("OFFBOARD_WORKER_PPROF") != "" {
		// Profiles for the bench and for operators chasing memory; off by default.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "error", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}
