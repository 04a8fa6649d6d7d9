package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/offboard/offboard/internal/control"
)

// simTarget is a system for the simulation: one account whose controls are
// flags, a scripted behaviour per control, and a log of every call that
// changed something, stamped with the test clock.
type simTarget struct {
	name  string
	clock func() time.Time
	log   *simLog

	mu        sync.Mutex
	holds     map[string]bool
	validFrom time.Time // revoke_sessions: sessions issued before this no longer work
	gone      bool      // the account no longer exists
	groups    []string  // group memberships; a role change keeps the new role's
	behave    map[string]simBehaviour
	calls     map[string]int       // control → Enforce calls so far
	retryIn   time.Duration        // what a 429 asks to wait
	scheduled map[string]time.Time // activity id → clock when its first attempt ran
}

// simBehaviour scripts one control of one target.
type simBehaviour struct {
	Control string `json:"control"` // "okta/suspend"
	// Kind: transient, permanent, unauthorized, ratelimited (Fail < 0: for
	// ever), gone (the account is deleted by someone else at After),
	// unreadable (read-backs fail from After after the control's enforce);
	// for "<target>/resolve" also noaccount (proven absent).
	Kind  string        `json:"kind"`
	Fail  int           `json:"fail,omitempty"` // Enforce calls that fail; -1 = all
	After time.Duration `json:"after,omitempty"`
}

// The controls every simulated target has, per phase.
var simControls = map[control.Phase][]string{
	control.Containment: {"suspend", "revoke_sessions", "clear_tokens"},
	control.Removal:     {"remove_groups", "remove_keys"},
	control.Deletion:    {"delete"},
	control.RoleChange:  {"remove_groups"},
	control.Restore:     {"unsuspend"},
}

// simTargetNames are the simulated systems, in configuration order.
var simTargetNames = []string{"okta", "aws", "scim"}

func newSimTarget(name string, clock func() time.Time, log *simLog, behave []simBehaviour) *simTarget {
	t := &simTarget{name: name, clock: clock, log: log, holds: map[string]bool{}, behave: map[string]simBehaviour{},
		calls: map[string]int{}, scheduled: map[string]time.Time{}, groups: []string{"all-staff", "eng", "sales"}, retryIn: 30 * time.Second}
	for _, b := range behave {
		if len(b.Control) > len(name) && b.Control[:len(name)+1] == name+"/" {
			t.behave[b.Control[len(name)+1:]] = b
		}
	}
	return t
}

func (t *simTarget) Name() string { return t.name }
func (t *simTarget) Kind() string { return "sim" }

func (t *simTarget) Controls(phase control.Phase) []string { return simControls[phase] }

func (t *simTarget) Resolve(_ context.Context, p control.Person) (control.Account, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls["resolve"]++
	b := t.behave["resolve"]
	switch {
	case b.Kind == "noaccount":
		return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: t.name + ": resolve",
			Searched: []string{"GET /users?email=" + p.Email + ": 0 users"}}
	case b.Kind != "" && (b.Fail < 0 || t.calls["resolve"] <= b.Fail):
		kind := map[string]error{"transient": control.ErrTransient, "permanent": control.ErrPermanent, "unauthorized": control.ErrUnauthorized}[b.Kind]
		return control.Account{}, &control.Error{Kind: kind, Op: t.name + ": resolve", HTTPStatus: 503}
	}
	return control.Account{ID: t.name + "-" + p.EmployeeID, Login: p.Email}, nil
}

// scheduledAt is when the activity calling us first ran: a retry of an
// attempt that began before a hold or an approval is not a new decision.
func (t *simTarget) scheduledAt(ctx context.Context) time.Time {
	now := t.clock()
	if !activity.IsActivity(ctx) {
		return now
	}
	id := activity.GetInfo(ctx).ActivityID
	if at, ok := t.scheduled[id]; ok {
		return at
	}
	t.scheduled[id] = now
	return now
}

func (t *simTarget) Observe(ctx context.Context, name string, _ control.Account, p control.Params) (control.Observation, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scheduledAt(ctx)
	b := t.behave[name]
	if at := t.log.enforcedAt(t.name + "/" + name); b.Kind == "unreadable" && !at.IsZero() && !t.clock().Before(at.Add(b.After)) {
		return control.Observation{}, &control.Error{Kind: control.ErrTransient, Op: t.name + ": observe " + name, HTTPStatus: 503}
	}
	ok := func(h bool, detail string) control.Observation {
		return control.Observation{Holds: h, Readable: true, Detail: detail,
			Call: control.Response{RequestID: "req-" + name, HTTPStatus: 200, Digest: control.Digest([]byte(detail))}}
	}
	if t.gone {
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "no such user",
			Call: control.Response{RequestID: "req-" + name, HTTPStatus: 404}}, nil
	}
	switch name {
	case "clear_tokens":
		return control.Observation{Readable: false}, nil
	case "revoke_sessions":
		h := !t.validFrom.IsZero() && !t.validFrom.Before(p.Since)
		return ok(h, fmt.Sprintf("sessions valid from %s, since %s", t.validFrom.Format(time.RFC3339), p.Since.Format(time.RFC3339))), nil
	case "unsuspend":
		return ok(!t.holds["suspend"], fmt.Sprintf("suspended=%v", t.holds["suspend"])), nil
	case "delete":
		return ok(false, "user exists"), nil
	case "remove_groups":
		left := slices.DeleteFunc(slices.Clone(t.groups), func(g string) bool { return slices.Contains(p.KeepGroups, g) })
		return ok(len(left) == 0, fmt.Sprintf("groups %v, keep %v", t.groups, p.KeepGroups)), nil
	}
	return ok(t.holds[name], fmt.Sprintf("%s=%v", name, t.holds[name])), nil
}

func (t *simTarget) Enforce(ctx context.Context, name string, _ control.Account, p control.Params) (control.Response, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	scheduled := t.scheduledAt(ctx)
	t.calls[name]++
	b := t.behave[name]
	if t.gone {
		// Deleted by someone else: the system's own not-found.
		t.log.enforce(t.name, name, t.clock(), scheduled, false)
		return control.Response{}, &control.Error{Kind: control.ErrNotFound, Op: t.name + ": " + name, HTTPStatus: 404}
	}
	if b.Kind != "" && b.Kind != "unreadable" && b.Kind != "gone" && (b.Fail < 0 || t.calls[name] <= b.Fail) {
		return control.Response{}, scriptedError(t.name+": "+name, b.Kind, t.retryIn)
	}
	t.log.enforce(t.name, name, t.clock(), scheduled, true)
	switch name {
	case "revoke_sessions":
		t.validFrom = t.clock()
	case "unsuspend":
		t.holds["suspend"] = false
		t.log.reset(t.name+"/suspend", t.clock())
	case "delete":
		if len(t.groups) > 0 {
			t.log.note(simNote{Target: t.name, At: t.clock(), What: t.name + " deleted with groups " + strings.Join(t.groups, ",") + " never removed"})
		}
		t.gone = true
	case "remove_groups":
		t.groups = slices.DeleteFunc(t.groups, func(g string) bool { return !slices.Contains(p.KeepGroups, g) })
	default:
		t.holds[name] = true
	}
	return control.Response{RequestID: "req-" + name, HTTPStatus: 200}, nil
}

// vanish deletes the account behind the workflow's back.
func (t *simTarget) vanish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gone = true
}

// drift undoes a containment control behind the workflow's back (an import
// re-enabled the user).
func (t *simTarget) drift(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone || !t.holds[name] {
		return false
	}
	t.holds[name] = false
	t.log.reset(t.name+"/"+name, t.clock())
	return true
}

func (t *simTarget) suspended() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.holds["suspend"] && !t.gone
}

// simLog is what the targets saw, in clock order.
type simLog struct {
	mu       sync.Mutex
	enforces []simEnforce
	resets   map[string][]time.Time // control id → when its state was undone from outside
	frozen   bool                   // past the horizon: nothing more is recorded
	notes    []simNote              // what a target saw that a workflow may not have meant
	owned    []simEnforce           // non-human steps enforced (sim_owner_test.go), by control id
}

type simNote struct {
	Target string
	At     time.Time
	What   string
}

func (l *simLog) note(what simNote) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.frozen {
		l.notes = append(l.notes, what)
	}
}

type simEnforce struct {
	ID        string    // "okta/suspend"
	At        time.Time // clock of the call
	Scheduled time.Time // clock of the activity's first attempt
	Changed   bool      // the call changed the target's state
}

func newSimLog() *simLog { return &simLog{resets: map[string][]time.Time{}} }

func (l *simLog) enforce(target, name string, at, scheduled time.Time, changed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.frozen {
		l.enforces = append(l.enforces, simEnforce{ID: target + "/" + name, At: at, Scheduled: scheduled, Changed: changed})
	}
}

func (l *simLog) ownedEnforce(e simEnforce) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.frozen {
		l.owned = append(l.owned, e)
	}
}

func (l *simLog) ownedEnforcedAt(id string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.owned) - 1; i >= 0; i-- {
		if l.owned[i].ID == id && l.owned[i].Changed {
			return l.owned[i].At
		}
	}
	return time.Time{}
}

func (l *simLog) reset(id string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.frozen {
		l.resets[id] = append(l.resets[id], at)
	}
}

func (l *simLog) enforcedAt(id string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.enforces) - 1; i >= 0; i-- {
		if l.enforces[i].ID == id {
			return l.enforces[i].At
		}
	}
	return time.Time{}
}

func (l *simLog) freeze() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frozen = true
}
