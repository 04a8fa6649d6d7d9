package hostile

import (
	"fmt"
	"sync"
	"testing"
)

// Verdict is how one hostile case ended.
type Verdict int

const (
	// TrueObservation: what the code claimed (observed, gone, no account,
	// found) is true of the server's real state.
	TrueObservation Verdict = iota
	// VisibleException: the code gave up with an error a person sees.
	VisibleException
	// FalseClaim: a success, "gone" or "no account" that is not true.
	FalseClaim
)

func (v Verdict) String() string {
	switch v {
	case TrueObservation:
		return "true observation"
	case VisibleException:
		return "visible exception"
	}
	return "FALSE CLAIM"
}

// Judge classifies one outcome: an error is a visible exception; otherwise a
// claim made (claimed) that is not true (holds) is a false claim, and
// anything else a true observation.
func Judge(err error, claimed, holds bool) Verdict {
	switch {
	case err != nil:
		return VisibleException
	case claimed && !holds:
		return FalseClaim
	}
	return TrueObservation
}

// Tally counts a package's hostile cases. When the test that made it ends,
// it prints one line, `hostile: <pkg>: N cases, M false claims` (make hostile
// sums these), and fails the test if M > 0.
type Tally struct {
	pkg         string
	mu          sync.Mutex
	cases       int
	falseClaims int
}

// NewTally starts the tally of pkg for t.
func NewTally(t *testing.T, pkg string) *Tally {
	ta := &Tally{pkg: pkg}
	t.Cleanup(func() {
		ta.mu.Lock()
		defer ta.mu.Unlock()
		// Printed, not logged: the line must start the output line for make.
		fmt.Printf("hostile: %s: %d cases, %d false claims\n", ta.pkg, ta.cases, ta.falseClaims)
		if ta.falseClaims > 0 {
			t.Errorf("hostile: %s: %d of %d cases ended in a false claim", ta.pkg, ta.falseClaims, ta.cases)
		}
	})
	return ta
}

// Record counts one case for t (a subtest, usually) and logs how it ended;
// a false claim also fails t, naming the case.
func (ta *Tally) Record(t testing.TB, v Verdict, detail string) Verdict {
	t.Helper()
	ta.mu.Lock()
	ta.cases++
	if v == FalseClaim {
		ta.falseClaims++
	}
	ta.mu.Unlock()
	if v == FalseClaim {
		t.Errorf("%s: FALSE CLAIM: %s", t.Name(), detail)
	} else {
		t.Logf("%s: %s: %s", t.Name(), v, detail)
	}
	return v
}
