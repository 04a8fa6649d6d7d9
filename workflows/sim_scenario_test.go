package workflows

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/control"
)

// simScenario is one run of the simulation: an HR event, how every target
// behaves, and what people and the world do, when. It is generated from a
// seed and printed as JSON when it fails.
type simScenario struct {
	Seed        uint64         `json:"seed"`
	Kind        Kind           `json:"kind"`
	Reason      Reason         `json:"reason"`
	Privileged  bool           `json:"privileged,omitempty"`
	Quarantined bool           `json:"quarantined,omitempty"`
	Rejected    bool           `json:"rejected,omitempty"` // security rejects the quarantined event
	HoldAtStart bool           `json:"holdAtStart,omitempty"`
	Effective   time.Duration  `json:"effective"` // from the start; negative = in the past
	Behaviours  []simBehaviour `json:"behaviours,omitempty"`
	Events      []simEvent     `json:"events"`
	// NonHuman is the identities the leaver owns or could know, and the
	// policy for them; nil runs the targets as plain ones (sim_owner_test.go).
	NonHuman *simNonHuman `json:"nonHuman,omitempty"`
}

// simEvent is something that happens at a time: a person's decision, an HR
// event or drift in a target.
type simEvent struct {
	At   time.Duration `json:"at"`
	Kind string        `json:"kind"` // approve reject hold release rescind reschedule retry waive drift redeliver correct supersede
	By   string        `json:"by,omitempty"`
	// Pick chooses among what the decision can name (the controls in
	// exception, the targets): index modulo their number.
	Pick int `json:"pick,omitempty"`
	// Span is the new effective time (reschedule, from the start) or the
	// waiver's length.
	Span time.Duration `json:"span,omitempty"`
	// Bad says how a decision is made invalid on purpose; the run must
	// refuse it and change nothing.
	Bad string `json:"bad,omitempty"`
}

const (
	simApprover = "alice@example.test" // approver and security
	simSecurity = "bob@example.test"   // approver and security
	simHR       = "hr@example.test"    // requested the deprovisioning
	simLegal    = "legal@example.test"
	simNobody   = "mallory@example.test" // holds no role
	simLeaver   = "ada@example.test"
	simCase     = "CASE-7"
)

// simHorizon is how long a scenario is watched: people act within the first
// 60 days; a run still open after simHorizon must be waiting on a person or a
// timer.
const simHorizon = 120 * 24 * time.Hour

func genScenario(seed uint64) simScenario {
	r := rand.New(rand.NewPCG(seed, 0x0ffb0a2d))
	sc := simScenario{Seed: seed, Kind: KindTermination, Reason: ReasonVoluntary}
	switch r.IntN(10) {
	case 0, 1:
		sc.Kind = KindRoleChange
	case 2:
		sc.Kind = KindContractEnd
	}
	switch r.IntN(6) {
	case 0:
		sc.Reason = ReasonForCause
	case 1:
		sc.Reason = ReasonInvoluntary
	}
	sc.Privileged = r.IntN(3) == 0
	sc.Quarantined = r.IntN(15) == 0
	sc.Rejected = sc.Quarantined && r.IntN(3) == 0
	sc.HoldAtStart = r.IntN(12) == 0
	switch r.IntN(3) {
	case 0:
		sc.Effective = -time.Duration(r.IntN(72)) * time.Hour // learned late
	case 1:
		sc.Effective = 0
	default:
		sc.Effective = time.Duration(1+r.IntN(10*24)) * time.Hour
	}

	// Most controls just work; some fail in one of the ways systems do.
	kinds := []string{"transient", "transient", "permanent", "unauthorized", "ratelimited", "ratelimited", "gone", "unreadable"}
	for _, tg := range simTargetNames {
		// Looking the person up fails, or proves there is no account.
		if r.IntN(100) < 4 {
			k := []string{"transient", "permanent", "unauthorized", "noaccount"}[r.IntN(4)]
			sc.Behaviours = append(sc.Behaviours, simBehaviour{Control: tg + "/resolve", Kind: k, Fail: 1 + r.IntN(4)})
		}
		for _, ph := range []control.Phase{control.Containment, control.Removal, control.Deletion, control.RoleChange, control.Restore} {
			for _, c := range simControls[ph] {
				if r.IntN(100) >= 7 {
					continue
				}
				b := simBehaviour{Control: tg + "/" + c, Kind: kinds[r.IntN(len(kinds))], Fail: 1 + r.IntN(6)}
				switch b.Kind {
				case "ratelimited":
					if r.IntN(2) == 0 {
						b.Fail = -1 // a persistent 429
					}
				case "gone":
					b.Fail, b.After = 0, randTime(r)
				case "unreadable":
					b.Fail, b.After = 0, time.Duration(30+r.IntN(24*60))*time.Minute
				}
				if !slices.ContainsFunc(sc.Behaviours, func(x simBehaviour) bool { return x.Control == b.Control }) {
					sc.Behaviours = append(sc.Behaviours, b)
				}
			}
		}
	}

	// People and the world act at random times in the first 60 days, more
	// often early on.
	n := r.IntN(9)
	for range n {
		at := randTime(r)
		ev := simEvent{At: at}
		switch k := r.IntN(100); {
		case k < 16:
			ev.Kind, ev.By = "approve", pick(r, simApprover, simSecurity)
			ev.Bad = pickBad(r, "stale-digest", "not-approver", "leaver", "requester", "stray-key", "stale", "replay")
		case k < 20:
			ev.Kind, ev.By = "reject", simSecurity
			ev.Bad = pickBad(r, "not-approver", "stray-key")
		case k < 28:
			ev.Kind, ev.By = "hold", simLegal
			ev.Bad = pickBad(r, "stale")
		case k < 36:
			ev.Kind, ev.By = "release", simLegal
			ev.Bad = pickBad(r, "wrong-case", "replay")
		case k < 44:
			ev.Kind, ev.By = "rescind", simHR
			ev.Bad = pickBad(r, "other-event", "stray-key")
		case k < 50:
			ev.Kind, ev.By = "reschedule", simHR
			ev.Span = time.Duration(r.IntN(20*24)) * time.Hour
			ev.Bad = pickBad(r, "other-event")
		case k < 66:
			ev.Kind, ev.By, ev.Pick = "retry", simSecurity, r.IntN(8)
			ev.Bad = pickBad(r, "unknown-control", "not-in-exception", "not-security")
		case k < 82:
			ev.Kind, ev.By, ev.Pick = "waive", pick(r, simApprover, simSecurity), r.IntN(8)
			ev.Span = time.Duration(1+r.IntN(20*24)) * time.Hour
			ev.Bad = pickBad(r, "not-security", "no-reason", "expired", "unknown-control")
		case k < 92:
			ev.Kind, ev.Pick = "drift", r.IntN(len(simTargetNames))
		case k < 95:
			ev.Kind = "redeliver"
			ev.Bad = pickBad(r, "unsigned")
		case k < 97:
			ev.Kind, ev.By = "correct", simHR
		default:
			// A termination for the same person; it supersedes a role change.
			ev.Kind, ev.Span = "supersede", time.Duration(r.IntN(10*24))*time.Hour
			ev.Bad = pickBad(r, "unsigned")
		}
		sc.Events = append(sc.Events, ev)
	}
	slices.SortStableFunc(sc.Events, func(a, b simEvent) int { return int(a.At - b.At) })
	// Drawn after everything else, so a seed keeps the scenario it had
	// before non-human identities were simulated, plus them.
	sc.NonHuman = genNonHuman(r)
	genNonHumanEvents(r, &sc)
	return sc
}

// randTime is a moment in the first 60 days, most of them in the first day,
// never on a whole second (ties with the workflow's own timers are not what
// we test).
func randTime(r *rand.Rand) time.Duration {
	var d time.Duration
	switch r.IntN(4) {
	case 0:
		d = time.Duration(r.IntN(3600)) * time.Second
	case 1:
		d = time.Duration(r.IntN(86400)) * time.Second
	case 2:
		d = time.Duration(r.IntN(7*86400)) * time.Second
	default:
		d = time.Duration(r.IntN(60*86400)) * time.Second
	}
	return d + time.Duration(1+r.IntN(998))*time.Millisecond
}

func pick(r *rand.Rand, xs ...string) string { return xs[r.IntN(len(xs))] }

// pickBad makes one decision in four invalid, in one of the given ways.
func pickBad(r *rand.Rand, ways ...string) string {
	if r.IntN(4) != 0 {
		return ""
	}
	return ways[r.IntN(len(ways))]
}

func (sc simScenario) String() string {
	b, _ := json.MarshalIndent(sc, "", "  ")
	return string(b)
}

// without returns the scenario minus event i.
func (sc simScenario) without(i int) simScenario {
	out := sc
	out.Events = slices.Delete(slices.Clone(sc.Events), i, i+1)
	return out
}

// withoutBehaviour returns the scenario minus behaviour i.
func (sc simScenario) withoutBehaviour(i int) simScenario {
	out := sc
	out.Behaviours = slices.Delete(slices.Clone(sc.Behaviours), i, i+1)
	return out
}

// valid returns the scenario without the decisions made invalid on purpose.
func (sc simScenario) valid() simScenario {
	out := sc
	out.Events = nil
	for _, e := range sc.Events {
		switch e.Bad {
		case "":
			out.Events = append(out.Events, e)
		case "replay":
			e.Bad = "" // sent once
			out.Events = append(out.Events, e)
		}
	}
	return out
}

func (sc simScenario) hasBad() bool {
	return slices.ContainsFunc(sc.Events, func(e simEvent) bool { return e.Bad != "" })
}

func (e simEvent) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", e.At, e.Kind)
	if e.Bad != "" {
		fmt.Fprintf(&b, " (bad: %s)", e.Bad)
	}
	return b.String()
}

// Scenarios are read and written with durations people can read ("1h30m0s");
// nanoseconds are still read.

type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		*d = jsonDuration(v)
		return err
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	*d = jsonDuration(n)
	return nil
}

func (sc simScenario) MarshalJSON() ([]byte, error) {
	type plain simScenario
	return json.Marshal(struct {
		plain
		Effective jsonDuration `json:"effective"`
	}{plain(sc), jsonDuration(sc.Effective)})
}

func (sc *simScenario) UnmarshalJSON(b []byte) error {
	type plain simScenario
	var v struct {
		plain
		Effective jsonDuration `json:"effective"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*sc = simScenario(v.plain)
	sc.Effective = time.Duration(v.Effective)
	return nil
}

func (e simEvent) MarshalJSON() ([]byte, error) {
	type plain simEvent
	return json.Marshal(struct {
		plain
		At   jsonDuration `json:"at"`
		Span jsonDuration `json:"span,omitempty"`
	}{plain(e), jsonDuration(e.At), jsonDuration(e.Span)})
}

func (e *simEvent) UnmarshalJSON(b []byte) error {
	type plain simEvent
	var v struct {
		plain
		At   jsonDuration `json:"at"`
		Span jsonDuration `json:"span"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = simEvent(v.plain)
	e.At, e.Span = time.Duration(v.At), time.Duration(v.Span)
	return nil
}

func (b simBehaviour) MarshalJSON() ([]byte, error) {
	type plain simBehaviour
	return json.Marshal(struct {
		plain
		After jsonDuration `json:"after,omitempty"`
	}{plain(b), jsonDuration(b.After)})
}

func (b *simBehaviour) UnmarshalJSON(data []byte) error {
	type plain simBehaviour
	var v struct {
		plain
		After jsonDuration `json:"after"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = simBehaviour(v.plain)
	b.After = time.Duration(v.After)
	return nil
}
