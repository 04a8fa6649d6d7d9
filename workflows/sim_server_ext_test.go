package workflows_test

import (
	"flag"
	"io"
	"log/slog"
	"testing"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/workflows"
)

var simServer = flag.Int("sim.server", 0, "simulation: also run this many scenarios on a real dev server and replay their histories (make simulate: 16)")

// TestSimulationOnServer replays the histories of a sample of scenarios run
// on a real Temporal dev server (the test environment keeps none).
func TestSimulationOnServer(t *testing.T) {
	if *simServer == 0 {
		t.Skip("make simulate runs it (-sim.server N): it needs a dev server and about a minute")
	}
	srv := devserver.Start(t)
	// A client of its own that does not log every failed attempt the scenarios script.
	c, err := client.Dial(client.Options{HostPort: srv.HostPort, Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seeds := make([]uint64, *simServer)
	for i := range seeds {
		seeds[i] = uint64(1 + i)
	}
	workflows.SimOnServer(t, c, seeds)
}
