package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/relay"
	"github.com/offboard/offboard/internal/tclient"
)

// serveCmd runs the HRIS webhook relay and the operator API.
func serveCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("starter serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("OFFBOARD_CONFIG"), "configuration file (default: embedded sandbox configuration)")
	listen := fs.String("listen", "", "address to listen on (default: starter.listen from the configuration, :8080)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitUsage
	}
	addr := cfg.Starter.Listen
	if *listen != "" {
		addr = *listen
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	c, err := tclient.Dial(cfg.Temporal, logger)
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitFailed
	}
	defer c.Close()
	rl, err := relay.New(relay.ConfigFrom(cfg.Relay, cfg.Roles), c, logger)
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitUsage
	}
	logger.Info("starter listening", "addr", addr, "config", cfg.Source())
	if err := relay.Serve(ctx, addr, rl.Handler()); err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitFailed
	}
	return exitOK
}
