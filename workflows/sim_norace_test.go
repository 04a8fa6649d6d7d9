//go:build !race

package workflows

const simDefaultSeeds = 2000
