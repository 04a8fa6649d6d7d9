// Command people prints sandbox/demo's first N people as the tab-separated
// file scripts/samba/seed.py reads (the Go test helper writes the same file).
package main

import (
	"flag"
	"fmt"

	"github.com/offboard/offboard/internal/testenv/samba"
	"github.com/offboard/offboard/sandbox/demo"
)

func main() {
	n := flag.Int("n", samba.Seeded, "how many demo people")
	flag.Parse()
	fmt.Print(samba.PeopleTSV(demo.People(*n)))
}
