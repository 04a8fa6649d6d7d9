// Command starter is Offboard's front door: the HRIS webhook relay (serve)
// and the operator's CLI (terminate, status, and one subcommand per signal).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: starter <command> [flags]

Operator commands (talk to Temporal directly):
  terminate   start deprovisioning a person        starter terminate -employee E1001 -email ada@example.test
  status      show a person's deprovisioning        starter status -employee E1001
  approve     approve or reject the removal plan    starter approve -employee E1001 -by alice@example.test -digest sha256:...
  hold        place a legal hold                    starter hold -employee E1001 -by legal@x -case CASE-7
  release     release the legal hold                starter release -employee E1001 -by legal@x -case CASE-7
  rescind     cancel the termination                starter rescind -employee E1001 -by hr@x -reason "..."
  reschedule  move the effective time               starter reschedule -employee E1001 -by hr@x -at 2026-12-01T17:00:00Z
  retry       retry a control in exception          starter retry -employee E1001 -by alice@x -control okta/suspend
  waive       waive a control in exception          starter waive -employee E1001 -by alice@x -control aws/deny_all_policy -reason "..." -expires 72h

Service:
  serve       run the HRIS webhook relay and operator API (default :8080)
  evidence    verify, fetch and summarise evidence (starter evidence -h)

Every command takes -config FILE (or OFFBOARD_CONFIG); without one it uses the embedded sandbox configuration.
`

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1], os.Args[2:]))
}
