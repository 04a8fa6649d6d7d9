package main

import (
	"context"
	"fmt"
	"io"
)

// serveCmd and evidenceCmd are replaced by the relay and evidence packages as
// they land; until then the commands say so rather than pretend.
func serveCmd(_ context.Context, _ []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter serve: the HRIS relay is not built into this version yet")
	return exitFailed
}

func evidenceCmd(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter evidence: evidence tooling is not built into this version yet")
	return exitFailed
}
