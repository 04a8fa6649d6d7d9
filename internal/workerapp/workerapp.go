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
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/metrics"
	"github.com/offboard/offboard/internal/siem"
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

// eagerPerTask bounds the activities one workflow task may start eagerly:
// containment schedules one per control and target (about 25 here).
var eagerPerTask = 64

// RunWith runs a worker over the given targets.
func RunWith(ctx context.Context, cfg config.Config, c client.Client, tgts []control.Target, logger *slog.Logger) error {
	if mb := cfg.Worker.MemoryLimitMB; mb > 0 {
		debug.SetMemoryLimit(int64(mb) << 20)
	}
	// A target that answers and refuses is a bad configuration: stop here,
	// naming it, before anything polls (unless the config says start anyway).
	probes := StartProbes(ctx, tgts, ProbeTimeout)
	logProbes(logger, probes, cfg.Worker.StartWithFailedTargets)
	if err := Misconfigured(probes); err != nil && !cfg.Worker.StartWithFailedTargets {
		return err
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
		// Where the server allows eager activity dispatch, every control of a
		// phase starts with the workflow task that scheduled it, not only the
		// SDK's default 3 (issue 17); the rest would wait on matching.
		MaxEagerActivityReservationsPerWorkflowTask: &eagerPerTask,
	})
	acts := activities.New(cfg, tgts)
	secrets, err := secretStore(cfg) // secrets.go
	if err != nil {
		return err
	}
	acts.Secrets = secrets
	events, err := siem.FromConfig(cfg.SIEM)
	if err != nil {
		return err
	}
	acts.Events = events
	defer func() {
		// What is still queued gets a few seconds; the rest is counted as dropped.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = acts.Events.Close(cctx)
	}()
	acts.SelfCheck = newSelfChecks(tgts, probes, time.Now).Check
	archive, archiving, err := archiveActivities(ctx, cfg, c)
	if err != nil {
		return err
	}
	evidence.Register(w, acts, archive)
	limited := targetWorkers(cfg, c, acts)

	names := make([]string, 0, len(tgts))
	for _, t := range tgts {
		names = append(names, t.Name()+"("+t.Kind()+")")
	}
	queues := []string{workflows.TaskQueue}
	for _, tw := range limited {
		queues = append(queues, tw.queue)
	}
	logger.Info("worker starting", "taskQueues", queues, "targets", names, "config", cfg.Source(), "evidence", archiving)

	stopHealth, err := serveHealth(cfg.Worker.MetricsAddr, logger)
	if err != nil {
		return err
	}
	defer stopHealth()

	// The target queues first: a run's first activities may go there.
	var started []worker.Worker
	stop := func() {
		for _, sw := range slices.Backward(started) {
			sw.Stop()
		}
	}
	for _, tw := range limited {
		if err := tw.w.Start(); err != nil {
			stop()
			return fmt.Errorf("worker: start %s: %w", tw.queue, err)
		}
		started = append(started, tw.w)
	}
	if err := w.Start(); err != nil {
		stop()
		return fmt.Errorf("worker: start: %w", err)
	}
	started = append(started, w)
	<-ctx.Done()
	stop() // the deprovision queue first, then the target queues its runs use
	logger.Info("worker stopped")
	return nil
}

type targetWorker struct {
	queue string
	w     worker.Worker
}

// targetWorkers builds a worker for each target with limits, on the target's
// own task queue. The server enforces TaskQueueActivitiesPerSecond for the
// whole queue, whichever worker takes the task; the limit is the one the
// latest poll carried, so every worker must run with the same configuration.
func targetWorkers(cfg config.Config, c client.Client, acts *activities.Activities) []targetWorker {
	var out []targetWorker
	for _, t := range cfg.Targets {
		queue := t.TaskQueue()
		if queue == "" {
			continue
		}
		concurrent := t.Limits.MaxConcurrent
		if concurrent == 0 {
			concurrent = cfg.Worker.MaxConcurrentActivities
		}
		w := worker.New(c, queue, worker.Options{
			TaskQueueActivitiesPerSecond:       t.Limits.ActivitiesPerSecond,
			MaxConcurrentActivityExecutionSize: concurrent,
			MaxConcurrentActivityTaskPollers:   cfg.Worker.ActivityTaskPollers,
			// Activities only: the SDK would otherwise poll workflow tasks on
			// this queue too, even with no workflow registered.
			DisableWorkflowWorker: true,
		})
		w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
		out = append(out, targetWorker{queue: queue, w: w})
	}
	return out
}

// archiveActivities are the Archiver's activities: with a signing key they
// archive every closed run into the configured store, and the schedule that
// sweeps for closed runs every minute is created. Without one they refuse
// (the Archiver is registered on every worker all the same, so a schedule
// another worker created never meets "unknown workflow type" here). It
// reports where evidence goes.
func archiveActivities(ctx context.Context, cfg config.Config, c client.Client) (*evidence.Activities, string, error) {
	if !cfg.Evidence.SigningKey.IsSet() {
		return &evidence.Activities{}, "off (no evidence.signingKey)", nil
	}
	pem, err := cfg.Evidence.SigningKey.Value()
	if err != nil {
		return nil, "", fmt.Errorf("config %s: evidence.signingKey: %w", cfg.Source(), err)
	}
	key, err := evidence.ParsePrivateKey([]byte(pem))
	if err != nil {
		return nil, "", fmt.Errorf("config %s: evidence.signingKey: %w", cfg.Source(), err)
	}
	// The client's own converters are not exposed by client.Client: load the
	// same ones from the codec section (nil, the defaults, when it is off).
	dc, fc, err := tclient.Converters(cfg)
	if err != nil {
		return nil, "", err
	}
	store, where, err := evidence.Open(ctx, cfg.Evidence)
	if err != nil {
		return nil, "", fmt.Errorf("config %s: %w", cfg.Source(), err)
	}
	if s3, ok := store.(*evidence.S3); ok {
		if err := s3.CheckLock(ctx); err != nil {
			return nil, "", fmt.Errorf("config %s: evidence.s3: %w", cfg.Source(), err)
		}
	}
	if err := evidence.EnsureSchedule(ctx, c); err != nil {
		return nil, "", fmt.Errorf("evidence: archive schedule: %w", err)
	}
	if err := evidence.EnsureProofSchedules(ctx, c, cfg.Reconcile.Interval()); err != nil {
		return nil, "", err
	}
	return &evidence.Activities{
		Client:           c,
		Store:            store,
		Key:              key,
		KeyID:            evidence.KeyID(key.Public().(ed25519.PublicKey)),
		DataConverter:    dc,
		FailureConverter: fc,
	}, where, nil
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
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile) // CPU, ?seconds=N
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "error", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}
