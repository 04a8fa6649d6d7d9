// Command worker runs the Deprovision workflow and its activities:
// configuration → connectors → worker.Run.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/metrics"
	"github.com/offboard/offboard/internal/tclient"
	"github.com/offboard/offboard/internal/workerapp"
)

func main() {
	configPath := flag.String("config", os.Getenv("OFFBOARD_CONFIG"), "configuration file (default: the embedded sandbox configuration)")
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts, err := tclient.Options(cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opts.MetricsHandler = metrics.TemporalHandler() // the SDK's metrics, on /metrics beside the project's own
	c, err := client.Dial(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "temporal: dial %s: %v\n", cfg.Temporal.Address, err)
		os.Exit(1)
	}
	defer c.Close()
	if err := workerapp.Run(ctx, cfg, c, logger); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
