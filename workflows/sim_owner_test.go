package workflows

// Non-human identities in the simulation: what the leaver owns in each
// simulated target, the break-glass accounts they could know, the policy for
// them, and a target that finds and acts on them with the same adversity
// its controls meet.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// simNonHuman is a scenario's non-human part.
type simNonHuman struct {
	Actions            map[string]control.Action `json:"actions"`
	RequireApproval    bool                      `json:"requireApproval,omitempty"`
	BreakGlassApproval bool                      `json:"breakGlassApproval,omitempty"`
	// Team takes over on reown; "" leaves a reown nobody to hand to (the
	// simulated HR event names no manager).
	Team  string          `json:"team,omitempty"`
	Owned []control.Owned `json:"owned,omitempty"`
	// KnowsBreakGlass is the target where the leaver is in group admins:
	// every registry entry matches.
	KnowsBreakGlass string `json:"knowsBreakGlass,omitempty"`
	// Behaviours script discovery ("okta/owned/discover") and steps (their
	// control ids); kinds as simBehaviour's, plus hang: the change is made
	// but the answer is lost (a timeout), Fail times.
	Behaviours []simBehaviour `json:"behaviours,omitempty"`
}

// simOwnedKinds are the kinds the simulated targets are asked about.
var simOwnedKinds = []string{control.KindAPIToken, control.KindApplication, control.KindServicePrincipal,
	control.KindServiceUser, control.KindSecret, control.KindManagedAccount}

// simRegistry is the break-glass registry of the simulated targets.
var simRegistry = []config.BreakGlass{
	{Name: "okta-breakglass", Target: "okta", Account: "breakglass.okta@example.test", Secret: "breakglass/okta", KnownBy: config.KnownBy{Groups: []string{"admins"}}},
	{Name: "aws-breakglass", Target: "aws", Account: "breakglass-aws", Secret: "breakglass/aws", KnownBy: config.KnownBy{Groups: []string{"admins"}}},
}

// simTeam takes over on reown when the scenario names one.
const simTeam = "platform@example.test"

// genNonHuman draws the non-human part of half the scenarios.
func genNonHuman(r *rand.Rand) *simNonHuman {
	if r.IntN(2) == 0 {
		return nil
	}
	nh := &simNonHuman{Actions: map[string]control.Action{}, RequireApproval: r.IntN(4) != 0, BreakGlassApproval: r.IntN(4) == 0}
	actions := []control.Action{control.Reown, control.Rotate, control.Decommission}
	for _, k := range simOwnedKinds {
		nh.Actions[k] = actions[r.IntN(len(actions))]
	}
	if r.IntN(3) != 0 {
		nh.Team = simTeam
	}
	stepFaults := []string{"transient", "transient", "permanent", "unauthorized", "ratelimited", "gone", "unreadable", "hang", "hang"}
	fault := func(id string, kinds []string) {
		b := simBehaviour{Control: id, Kind: kinds[r.IntN(len(kinds))], Fail: 1 + r.IntN(6)}
		switch b.Kind {
		case "ratelimited":
			if r.IntN(2) == 0 {
				b.Fail = -1
			}
		case "gone":
			b.Fail, b.After = 0, randTime(r)
		case "unreadable":
			b.Fail, b.After = 0, time.Duration(r.IntN(3))*time.Minute
		case "hang":
			b.Fail = 1 + r.IntN(2)
		}
		nh.Behaviours = append(nh.Behaviours, b)
	}
	n := 0
	for _, tg := range simTargetNames {
		if r.IntN(100) < 8 {
			fault(tg+"/owned/discover", []string{"transient", "permanent", "unauthorized", "ratelimited"})
		}
		for range r.IntN(4) {
			n++
			o := control.Owned{Target: tg, Kind: simOwnedKinds[r.IntN(len(simOwnedKinds))], ID: fmt.Sprintf("nh%d", n), Name: fmt.Sprintf("svc-%s-%d", tg, n)}
			if o.Kind == control.KindServiceUser || o.Kind == control.KindApplication {
				o.Credentials = []control.Credential{{Kind: "access key", ID: fmt.Sprintf("AKIASIMOLD%06d", n), Status: "Active"}}
			}
			nh.Owned = append(nh.Owned, o)
			steps := simOwnedSteps(tg, o.Kind, nh.Actions[o.Kind])
			if len(steps) > 0 && r.IntN(100) < 20 {
				fault(ownedControlID(o, steps[r.IntN(len(steps))].Name), stepFaults)
			}
		}
	}
	if r.IntN(3) == 0 {
		nh.KnowsBreakGlass = simTargetNames[r.IntN(len(simTargetNames))]
		for _, b := range simRegistry {
			if r.IntN(100) < 25 {
				fault(ownedControlID(control.Owned{Target: b.Target, Kind: control.KindBreakGlass, ID: b.Account}, "set_password"), stepFaults)
			}
		}
	}
	return nh
}

// genNonHumanEvents: an approver looks at the plan in half the scenarios
// with non-human identities, so their steps run (most plans need an approval).
func genNonHumanEvents(r *rand.Rand, sc *simScenario) {
	if sc.NonHuman == nil || r.IntN(2) == 0 {
		return
	}
	// Within the approval's timeout from the effective time.
	at := max(sc.Effective, 0) + time.Duration(r.IntN(48*3600))*time.Second + time.Duration(1+r.IntN(998))*time.Millisecond
	sc.Events = append(sc.Events, simEvent{At: at, Kind: "approve", By: pick(r, simApprover, simSecurity)})
	if r.IntN(3) == 0 {
		// Legal places a hold while the steps run; security retries what
		// failed meanwhile; legal releases it.
		// A step that cannot be undone often fails first: the retry must
		// wait for the release.
		hold := at + time.Duration(1+r.IntN(120))*time.Minute
		retry := hold + time.Duration(1+r.IntN(48))*time.Hour
		sc.Events = append(sc.Events, simEvent{At: hold, Kind: "hold", By: simLegal},
			simEvent{At: retry, Kind: "retry", By: simSecurity, Pick: r.IntN(8)},
			simEvent{At: retry + time.Hour, Kind: "retry", By: simSecurity, Pick: r.IntN(8)},
			simEvent{At: retry + time.Duration(2+r.IntN(72))*time.Hour, Kind: "release", By: simLegal})
		for _, o := range sc.NonHuman.Owned {
			steps := simOwnedSteps(o.Target, o.Kind, sc.NonHuman.Actions[o.Kind])
			id := ""
			if len(steps) > 0 {
				id = ownedControlID(o, steps[0].Name)
			}
			if id == "" || !simOwnedDestructive[steps[0].Name] || slices.ContainsFunc(sc.NonHuman.Behaviours, func(b simBehaviour) bool { return b.Control == id }) {
				continue
			}
			b := simBehaviour{Control: id, Kind: pick(r, "permanent", "unauthorized", "ratelimited"), Fail: 3 + r.IntN(3)}
			if b.Kind == "ratelimited" {
				b.Fail = -1
			}
			sc.NonHuman.Behaviours = append(sc.NonHuman.Behaviours, b)
			break
		}
	}
	slices.SortStableFunc(sc.Events, func(a, b simEvent) int { return int(a.At - b.At) })
}

// ownedControlID is the control id the workflow gives one step of o.
func ownedControlID(o control.Owned, step string) string {
	return o.Target + "/owned/" + strings.ReplaceAll(o.Kind, " ", "-") + "/" + o.ID + "/" + step
}

// simOwnedSteps is what a simulated target can do: scim cannot act on
// service principals or secrets, API tokens cannot be rotated, break-glass
// accounts only rotated.
func simOwnedSteps(target, kind string, action control.Action) []control.Step {
	if target == "scim" && (kind == control.KindServicePrincipal || kind == control.KindSecret) {
		return nil
	}
	switch action {
	case control.Rotate:
		switch kind {
		case control.KindAPIToken:
			return nil
		case control.KindBreakGlass:
			return []control.Step{{Name: "set_password"}}
		case control.KindSecret:
			return []control.Step{{Name: "rotate_secret"}}
		}
		return []control.Step{{Name: "create_new"}, {Name: "deactivate_old", After: control.Grace}, {Name: "delete_old", After: control.Purge}}
	case control.Reown:
		if kind != control.KindBreakGlass {
			return []control.Step{{Name: "reown"}}
		}
	case control.Decommission:
		switch kind {
		case control.KindBreakGlass:
			return nil
		case control.KindAPIToken:
			return []control.Step{{Name: "revoke"}}
		}
		return []control.Step{{Name: "disable"}, {Name: "delete", After: control.Purge}}
	}
	return nil
}

// simOwnedDestructive are the steps that cannot be undone or stop something
// working: decommissioning, and a rotation's old credential going.
var simOwnedDestructive = map[string]bool{"revoke": true, "disable": true, "delete": true, "deactivate_old": true, "delete_old": true}

// simConfigFor is the configuration a scenario runs with: cfg, with the
// scenario's non-human policy and the simulated registry.
func simConfigFor(cfg config.Config, sc simScenario) config.Config {
	if sc.NonHuman == nil {
		return cfg
	}
	nh := cfg.NonHuman
	nh.Actions = maps.Clone(sc.NonHuman.Actions)
	nh.RequireApproval, nh.BreakGlassApproval, nh.Team = sc.NonHuman.RequireApproval, sc.NonHuman.BreakGlassApproval, sc.NonHuman.Team
	cfg.NonHuman = nh
	cfg.BreakGlass = simRegistry
	return cfg
}

// simOwner is a simulated target that also finds and acts on what the
// leaver owns; every step is a flag, a reown the owner's name.
type simOwner struct {
	*simTarget
	nh       *simNonHuman
	store    *simSecrets
	obehave  map[string]simBehaviour // control id → behaviour
	ocalls   map[string]int          // control id → Enforce (or Discover) calls
	oholds   map[string]bool         // identity id + "/" + step → holds
	owner    map[string]string       // identity id → its owner
	vanished map[string]bool         // identity id → deleted by someone else
	found    []control.Owned         // what discovery last returned
	oscheds  map[string]time.Time    // workflow id + activity id → clock of its first attempt
}

func newSimOwner(t *simTarget, nh *simNonHuman, store *simSecrets) *simOwner {
	o := &simOwner{simTarget: t, nh: nh, store: store, obehave: map[string]simBehaviour{}, ocalls: map[string]int{},
		oholds: map[string]bool{}, owner: map[string]string{}, vanished: map[string]bool{}, oscheds: map[string]time.Time{}}
	for _, b := range nh.Behaviours {
		if strings.HasPrefix(b.Control, t.name+"/") {
			o.obehave[b.Control] = b
		}
	}
	return o
}

func (t *simOwner) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	acct, err := t.simTarget.Resolve(ctx, p)
	if err == nil && t.nh.KnowsBreakGlass == t.name {
		acct.Holds = append(acct.Holds, "group admins")
	}
	return acct, err
}

// ownedScheduledAt is scheduledAt keyed by workflow too: a break-glass
// step runs in a child workflow, whose activity ids start again at 1.
func (t *simOwner) ownedScheduledAt(ctx context.Context) time.Time {
	now := t.clock()
	if !activity.IsActivity(ctx) {
		return now
	}
	info := activity.GetInfo(ctx)
	id := info.WorkflowExecution.ID + "/" + info.ActivityID
	if at, ok := t.oscheds[id]; ok {
		return at
	}
	t.oscheds[id] = now
	return now
}

// failing is the scripted error of call n of a behaviour, or nil.
func (t *simOwner) failing(b simBehaviour, n int, op string) error {
	if b.Kind == "" || b.Kind == "unreadable" || b.Kind == "gone" || b.Kind == "hang" || (b.Fail >= 0 && n > b.Fail) {
		return nil
	}
	return scriptedError(t.name+": "+op, b.Kind, t.retryIn)
}

// scriptedError is what a system answers for a behaviour of this kind
// (transient, permanent, unauthorized, ratelimited asking for retryIn).
func scriptedError(op, kind string, retryIn time.Duration) *control.Error {
	e := &control.Error{Op: op, RequestID: "req-fail", Digest: "sha256:bad"}
	switch kind {
	case "transient":
		e.Kind, e.HTTPStatus = control.ErrTransient, 503
	case "permanent":
		e.Kind, e.HTTPStatus = control.ErrPermanent, 400
	case "unauthorized":
		e.Kind, e.HTTPStatus = control.ErrUnauthorized, 403
	case "ratelimited":
		e.Kind, e.HTTPStatus, e.RetryAfter = control.ErrRateLimited, 429, retryIn
	}
	return e
}

func (t *simOwner) Discover(_ context.Context, _ control.Account) ([]control.Owned, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.name + "/owned/discover"
	t.ocalls[id]++
	if err := t.failing(t.obehave[id], t.ocalls[id], "list owned"); err != nil {
		return nil, err
	}
	out := []control.Owned{}
	for _, o := range t.nh.Owned {
		if o.Target == t.name && !t.vanished[o.ID] {
			out = append(out, o)
		}
	}
	t.found = out
	return out, nil
}

func (t *simOwner) OwnedSteps(kind string, action control.Action) []control.Step {
	return simOwnedSteps(t.name, kind, action)
}

func (t *simOwner) ObserveOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ownedScheduledAt(ctx)
	id := ownedControlID(o, name)
	if b := t.obehave[id]; b.Kind == "unreadable" {
		if at := t.log.ownedEnforcedAt(id); !at.IsZero() && !t.clock().Before(at.Add(b.After)) {
			return control.Observation{}, &control.Error{Kind: control.ErrTransient, Op: t.name + ": observe " + name, HTTPStatus: 503}
		}
	}
	if t.vanished[o.ID] {
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "no such " + o.Kind,
			Call: control.Response{RequestID: "req-" + name, HTTPStatus: 404}}, nil
	}
	h := t.oholds[o.ID+"/"+name]
	if name == "reown" {
		h = t.owner[o.ID] != "" && t.owner[o.ID] == p.NewOwner
	}
	detail := fmt.Sprintf("%s %s: %s holds=%v", o.Kind, o.ID, name, h)
	return control.Observation{Holds: h, Readable: true, Detail: detail,
		Call: control.Response{RequestID: "req-" + name, HTTPStatus: 200, Digest: control.Digest([]byte(detail))}}, nil
}

func (t *simOwner) EnforceOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	scheduled := t.ownedScheduledAt(ctx)
	id := ownedControlID(o, name)
	t.ocalls[id]++
	b := t.obehave[id]
	if t.vanished[o.ID] {
		t.log.ownedEnforce(simEnforce{ID: id, At: t.clock(), Scheduled: scheduled})
		return control.Response{}, &control.Error{Kind: control.ErrNotFound, Op: t.name + ": " + name, HTTPStatus: 404}
	}
	if err := t.failing(b, t.ocalls[id], name); err != nil {
		return control.Response{}, err
	}
	switch name {
	case "reown":
		if p.NewOwner == "" {
			return control.Response{}, &control.Error{Kind: control.ErrPermanent, Op: t.name + ": reown " + o.ID + ": no new owner", HTTPStatus: 400}
		}
		t.owner[o.ID] = p.NewOwner
	case "create_new", "rotate_secret", "set_password":
		// Secrets Manager's protocol: pending, set on the system, promoted.
		if m := p.RotationMissing(o); m != "" {
			return control.Response{}, &control.Error{Kind: control.ErrPermanent, Op: t.name + ": " + name + " " + o.ID + ": " + m}
		}
		value := []byte("sim-secret-value-" + p.Token)
		if err := p.Store.PutPending(ctx, o.Secret, p.Token, value); err != nil {
			return control.Response{}, err
		}
		if err := p.Store.Promote(ctx, o.Secret, p.Token); err != nil {
			return control.Response{}, err
		}
	}
	t.oholds[o.ID+"/"+name] = true
	t.log.ownedEnforce(simEnforce{ID: id, At: t.clock(), Scheduled: scheduled, Changed: true})
	if b.Kind == "hang" && t.ocalls[id] <= b.Fail {
		// Done, but the answer never came back.
		return control.Response{}, &control.Error{Kind: control.ErrTransient, Op: t.name + ": " + name + ": timeout awaiting response headers"}
	}
	return control.Response{RequestID: "req-" + name, HTTPStatus: 200}, nil
}

// vanishOwned deletes an identity behind the workflow's back.
func (t *simOwner) vanishOwned(id string) func() {
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.vanished[id] = true
	}
}

// ownedHolds: the step holds on o in the target now, or o is gone.
func (t *simOwner) ownedHolds(o control.Owned, step, newOwner string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.vanished[o.ID] {
		return true
	}
	if step == "reown" {
		return t.owner[o.ID] != "" && t.owner[o.ID] == newOwner
	}
	return t.oholds[o.ID+"/"+step]
}

func (t *simOwner) discovered() []control.Owned {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.found
}

// simSecrets is an in-memory secret store with Secrets Manager's stages.
type simSecrets struct {
	mu      sync.Mutex
	current map[string]string // secret → current version id
	values  map[string][]byte // secret + "\x00" + version → value
}

func newSimSecrets() *simSecrets {
	s := &simSecrets{current: map[string]string{}, values: map[string][]byte{}}
	for _, b := range simRegistry {
		s.current[b.Secret] = "v0" // the registry's secrets exist
	}
	return s
}

func (s *simSecrets) PutPending(_ context.Context, secret, token string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[secret+"\x00"+token] = value
	return nil
}

func (s *simSecrets) Pending(_ context.Context, secret, token string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[secret+"\x00"+token]
	return v, ok, nil
}

func (s *simSecrets) Promote(_ context.Context, secret, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[secret+"\x00"+token]; !ok {
		return &control.Error{Kind: control.ErrPermanent, Op: "secrets: promote " + secret + ": no version " + token}
	}
	s.current[secret] = token
	return nil
}

func (s *simSecrets) Current(_ context.Context, secret string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.current[secret]
	if !ok {
		return "", &control.Error{Kind: control.ErrNotFound, Op: "secrets: describe " + secret, HTTPStatus: 400}
	}
	return v, nil
}

// secretValues are every value a rotation stored.
func (s *simSecrets) secretValues() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, v := range s.values {
		out = append(out, string(v))
	}
	return out
}
