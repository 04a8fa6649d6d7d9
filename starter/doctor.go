package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/targets"
	"github.com/offboard/offboard/internal/workerapp"
)

// doctorCmd runs every configured target's self-check: the credentials are
// accepted, the base URL answers with that system's API, and the
// permissions the API can report are there. 0 only when all pass.
func doctorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("starter doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("OFFBOARD_CONFIG"), "configuration file (default: embedded sandbox configuration)")
	timeout := fs.Duration("timeout", workerapp.ProbeTimeout, "how long each target may take to answer")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "starter doctor: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "starter doctor:", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "targets of %s\n", cfg.Source())
	// One at a time, so a target that cannot be built (a secret not set)
	// is reported by name and the others are still checked.
	var tgts []control.Target
	var unbuilt []workerapp.ProbeResult
	for _, t := range cfg.Targets {
		one := cfg
		one.Targets = []config.Target{t}
		built, err := targets.Build(ctx, one)
		if err != nil {
			unbuilt = append(unbuilt, workerapp.ProbeResult{Target: t.Name, Kind: t.Kind, Probed: true, Err: err})
			continue
		}
		tgts = append(tgts, built...)
	}
	return doctor(ctx, tgts, unbuilt, *timeout, stdout)
}

// doctor probes tgts and prints each result after those of targets that
// could not be built; 0 when every probed target passed, 1 otherwise.
func doctor(ctx context.Context, tgts []control.Target, unbuilt []workerapp.ProbeResult, timeout time.Duration, w io.Writer) int {
	results := append(unbuilt, workerapp.ProbeTargets(ctx, tgts, timeout)...)
	failed, probed := 0, 0
	for _, r := range results {
		name := r.Target + " (" + r.Kind + ")"
		switch {
		case !r.Probed:
			fmt.Fprintf(w, "%-22s no self-check\n", name)
			continue
		case r.Err != nil:
			failed++
			fmt.Fprintf(w, "%-22s FAILED: %v\n", name, r.Err)
		default:
			fmt.Fprintf(w, "%-22s ok\n", name)
		}
		probed++
		for _, c := range r.Checks {
			fmt.Fprintf(w, "%-22s   %s\n", "", c)
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "%d of %d targets FAILED their self-check: %s\n", failed, probed, failedNames(results))
		return exitFailed
	}
	fmt.Fprintf(w, "%d of %d targets passed their self-check\n", probed, probed)
	return exitOK
}

func failedNames(rs []workerapp.ProbeResult) string {
	var names []string
	for _, r := range rs {
		if r.Probed && r.Err != nil {
			names = append(names, r.Target)
		}
	}
	return strings.Join(names, ", ")
}
