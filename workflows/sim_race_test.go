//go:build race

package workflows

// The race detector slows the simulation about threefold: the race run of
// make test checks 300 scenarios, and make simulate runs the 2,000 without it.
const simDefaultSeeds = 300
