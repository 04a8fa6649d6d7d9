// Package activities is the thin layer between the Deprovision workflow and
// the connectors: it turns a connector call into a receipt and classifies
// errors into Temporal's retryable, non-retryable and next-retry-delay kinds.
package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/metrics"
	"github.com/offboard/offboard/internal/retryafter"
	"github.com/offboard/offboard/internal/siem"
)

// Error types the workflow and retry policies know.
const (
	ErrTypeRateLimited  = "RateLimited"
	ErrTypeTransient    = "Transient"
	ErrTypePermanent    = "Permanent"
	ErrTypeUnauthorized = "Unauthorized"
	ErrTypeNotHeld      = "NotHeld" // enforced, but the read-back still shows access
	ErrTypeUnknown      = "UnknownTarget"
	ErrTypeSelfCheck    = "SelfCheckFailed" // the target failed its self-check (Activities.SelfCheck)
)

// NonRetryable lists the error types no retry can fix.
var NonRetryable = []string{ErrTypePermanent, ErrTypeUnauthorized, ErrTypeUnknown, ErrTypeSelfCheck}

// Activities holds what the activities need; the worker builds it once.
type Activities struct {
	Targets map[string]control.Target
	// Order lists target names in configuration order (maps have none).
	Order  []string
	Config config.Config
	HTTP   *http.Client // for notifications
	// SelfCheck, when set, vets a target before each use: an error (the
	// target failed its self-check) fails the activity for good, naming why.
	SelfCheck func(target string) error
	// Events sends control outcomes and notifications to the SIEM; nil: none.
	// It never blocks (internal/siem).
	Events *siem.Emitter
	// Secrets is where rotations write new values (owned.go); nil: none configured.
	Secrets control.SecretStore
}

// New builds Activities over the given targets, kept in the given order.
func New(cfg config.Config, targets []control.Target) *Activities {
	a := &Activities{Targets: map[string]control.Target{}, Config: cfg, HTTP: &http.Client{Timeout: 10 * time.Second}}
	for _, t := range targets {
		a.Targets[t.Name()] = t
		a.Order = append(a.Order, t.Name())
	}
	return a
}

// PlanInput is what the plan depends on.
type PlanInput struct {
	Kind    string `json:"kind"`
	NewRole string `json:"newRole,omitempty"`
}

// PlanTarget is one target's controls per phase.
type PlanTarget struct {
	Name        string   `json:"name"`
	Kind        string   `json:"kind"`
	Containment []string `json:"containment"`
	Removal     []string `json:"removal"`
	Deletion    []string `json:"deletion"`
	RoleChange  []string `json:"roleChange"`
	Restore     []string `json:"restore"`
	KeepGroups  []string `json:"keepGroups,omitempty"`
	// TaskQueue is where the target's activities run: its own rate-limited
	// queue, or "" for the workflow's queue (and in plans recorded before
	// per-target queues existed).
	TaskQueue string `json:"taskQueue,omitempty"`
	// Owner: the target finds non-human identities; OwnedSteps are its steps
	// per OwnedKey(kind, action) (owned.go).
	Owner      bool                      `json:"owner,omitempty"`
	OwnedSteps map[string][]control.Step `json:"ownedSteps,omitempty"`
}

// PlanBase is the policy and the targets as configured when the run started.
type PlanBase struct {
	Policy  config.Policy `json:"policy"`
	People  config.People `json:"people"`
	Targets []PlanTarget  `json:"targets"`
	// NonHuman is the non-human policy and break-glass registry (owned.go);
	// nil in plans recorded before them.
	NonHuman *NonHumanPlan `json:"nonHuman,omitempty"`
}

// LoadPlan reads the policy and every target's controls from the configuration.
func (a *Activities) LoadPlan(ctx context.Context, in PlanInput) (PlanBase, error) {
	base := PlanBase{Policy: a.Config.Policy, People: a.Config.People}
	if in.Kind == "role_change" {
		if _, ok := a.Config.Roles[in.NewRole]; !ok {
			return base, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("plan: role %q is not in the configuration's roles", in.NewRole), ErrTypePermanent, nil)
		}
	}
	for _, name := range a.Order {
		t := a.Targets[name]
		pt := PlanTarget{
			Name:        name,
			Kind:        t.Kind(),
			Containment: t.Controls(control.Containment),
			Removal:     t.Controls(control.Removal),
			Deletion:    t.Controls(control.Deletion),
			RoleChange:  t.Controls(control.RoleChange),
			Restore:     t.Controls(control.Restore),
			TaskQueue:   a.Config.TaskQueue(name),
		}
		if in.Kind == "role_change" {
			pt.KeepGroups, _ = a.Config.GroupsFor(in.NewRole, name)
			if pt.KeepGroups == nil {
				pt.KeepGroups = []string{}
			}
		}
		base.Targets = append(base.Targets, pt)
	}
	a.ownedPlan(&base)
	return base, nil
}

// ResolveInput asks one target for one person's account.
type ResolveInput struct {
	Target string         `json:"target"`
	Person control.Person `json:"person"`
	// FindOnly: a target that can (control.Finder) answers with the account
	// alone; its rights and holdings are read by ReadRights beside containment.
	FindOnly bool `json:"findOnly,omitempty"`
}

// Resolution is the account found, or that there is none.
type Resolution struct {
	Account   control.Account `json:"account"`
	NoAccount bool            `json:"noAccount,omitempty"`
	// Searched is what the target was asked and what it answered, when it
	// found no account: the proof behind "no account".
	Searched []string `json:"searched,omitempty"`
	// RightsLater: the account's Privileges and Holds are not read yet (FindOnly).
	RightsLater bool `json:"rightsLater,omitempty"`
}

// ResolveAccount finds the person's account in one target. "No account" is
// a claim: it is made only when the connector says what it searched; a
// lookup that errors, or a not-found without that record, is an exception.
func (a *Activities) ResolveAccount(ctx context.Context, in ResolveInput) (Resolution, error) {
	t, err := a.target(in.Target)
	if err != nil {
		return Resolution{}, err
	}
	var acct control.Account
	finder, later := t.(control.Finder)
	later = later && in.FindOnly
	if later {
		acct, err = finder.Find(ctx, in.Person)
	} else {
		acct, err = t.Resolve(ctx, in.Person)
	}
	var ce *control.Error
	if errors.Is(err, control.ErrNotFound) && errors.As(err, &ce) && len(ce.Searched) > 0 {
		return Resolution{NoAccount: true, Account: control.Account{Target: in.Target}, Searched: ce.Searched}, nil
	}
	if errors.Is(err, control.ErrNotFound) {
		return Resolution{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("resolve %s in %s: not found, but the lookup does not say what it searched: %v", in.Person.EmployeeID, in.Target, err),
			ErrTypePermanent, nil)
	}
	if err != nil {
		return Resolution{}, classify(fmt.Errorf("resolve %s in %s: %w", in.Person.EmployeeID, in.Target, err))
	}
	acct.Target = in.Target
	return Resolution{Account: acct, RightsLater: later}, nil
}

// RightsInput names an account whose rights and holdings are to be read.
type RightsInput struct {
	Target  string          `json:"target"`
	Account control.Account `json:"account"`
}

// ReadRights reads the admin rights and holdings of an account found with
// FindOnly, as ResolveAccount would have: a read that asking again may cure
// fails the activity (Temporal retries it); a lasting failure is said in them.
func (a *Activities) ReadRights(ctx context.Context, in RightsInput) (control.Account, error) {
	t, err := a.target(in.Target)
	if err != nil {
		return control.Account{}, err
	}
	finder, ok := t.(control.Finder)
	if !ok {
		return control.Account{}, temporal.NewNonRetryableApplicationError("target "+in.Target+" cannot read rights apart from its lookup", ErrTypePermanent, nil)
	}
	acct, err := finder.Rights(ctx, in.Account)
	if err != nil {
		return control.Account{}, classify(fmt.Errorf("read the rights of %s in %s: %w", in.Account.ID, in.Target, err))
	}
	acct.Target = in.Target
	return acct, nil
}

// ControlInput names one control on one account.
type ControlInput struct {
	ControlID string          `json:"controlId"`
	Target    string          `json:"target"`
	Control   string          `json:"control"`
	Phase     control.Phase   `json:"phase"`
	Account   control.Account `json:"account"`
	Params    control.Params  `json:"params"`
}

// ApplyControl observes the control, enforces it only if it does not hold,
// and observes again. A retry after a crash repeats the same harmless sequence.
func (a *Activities) ApplyControl(ctx context.Context, in ControlInput) (rec control.Receipt, err error) {
	defer func() { a.emitControl(ctx, "apply", in, rec, err) }()
	t, err := a.target(in.Target)
	if err != nil {
		return control.Receipt{}, err
	}
	stop := keepAlive(ctx)
	defer stop()
	r := newReceipt(ctx, t, in)
	// The first observe may leave what it read for the enforce (control.Memo);
	// the read-back and the gone check read fresh, without it.
	mctx, _ := control.WithMemo(ctx)
	fresh := control.WithoutMemo(ctx)

	before, err := t.Observe(mctx, in.Control, in.Account, in.Params)
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: observe %s: %w", in.ControlID, in.Account.ID, err))
	}
	r.addObservation("observe", before)
	if before.Holds && before.Gone {
		return r.confirmGone(fresh, t, in, "account not found when observed")
	}
	if before.Holds {
		r.AlreadyHeld = true
		return r.finish(control.Observed, before.Detail), nil
	}

	resp, err := t.Enforce(mctx, in.Control, in.Account, in.Params)
	if errors.Is(err, control.ErrNotFound) {
		// The system's own not-found for the user: proven only if a fresh
		// lookup of the account agrees. A sub-resource's 404 on a user that
		// still exists ends as an exception naming the endpoint.
		r.addCall("enforce", responseOf(err, resp), "not found: "+err.Error())
		return r.confirmGone(fresh, t, in, "enforce answered not found ("+err.Error()+")")
	}
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: enforce %s: %w", in.ControlID, in.Account.ID, err))
	}
	r.addCall("enforce", resp, "")

	after, err := t.Observe(fresh, in.Control, in.Account, in.Params)
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: read back %s: %w", in.ControlID, in.Account.ID, err))
	}
	r.addObservation("observe-after", after)
	switch {
	case !after.Readable:
		return r.finish(control.Acknowledged, "accepted by the system; its state cannot be read back"), nil
	case after.Holds && after.Gone:
		return r.confirmGone(fresh, t, in, "account not found on read-back")
	case after.Holds:
		return r.finish(control.Observed, after.Detail), nil
	default:
		return r.Receipt, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("%s: enforced on %s but the read-back still shows access: %s", in.ControlID, in.Account.ID, after.Detail),
			ErrTypeNotHeld, temporal.ApplicationErrorOptions{Details: []any{failureDetail(after.Call)}})
	}
}

// confirmGone makes "the account is gone" a proven claim: a first answer
// said so, and a second, independent observation of the account must say so
// too. Anything else (the user reads back, a foreign answer, an error) is an
// exception, never a success.
func (r *receipt) confirmGone(ctx context.Context, t control.Target, in ControlInput, first string) (control.Receipt, error) {
	again, err := t.Observe(ctx, in.Control, in.Account, in.Params)
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: %s, but the confirming lookup of %s failed: %w", in.ControlID, first, in.Account.ID, err))
	}
	r.addObservation("confirm-gone", again)
	if !again.Gone {
		return r.Receipt, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("%s: %s, but the account %s still exists (%s): the not-found came from something other than the account",
				in.ControlID, first, in.Account.ID, again.Detail),
			ErrTypePermanent, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{failureDetail(again.Call)}})
	}
	r.Gone = true
	return r.finish(control.Observed, "account gone: "+first+"; a second lookup agrees ("+again.Detail+")"), nil
}

// VerifyControl only observes: re-verification uses it to find drift.
// A control that no longer holds is returned with Drift set and outcome failed.
func (a *Activities) VerifyControl(ctx context.Context, in ControlInput) (rec control.Receipt, err error) {
	defer func() { a.emitControl(ctx, "verify", in, rec, err) }()
	t, err := a.target(in.Target)
	if err != nil {
		return control.Receipt{}, err
	}
	r := newReceipt(ctx, t, in)
	obs, err := t.Observe(ctx, in.Control, in.Account, in.Params)
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: verify %s: %w", in.ControlID, in.Account.ID, err))
	}
	r.addObservation("verify", obs)
	switch {
	case obs.Holds && obs.Gone:
		return r.confirmGone(ctx, t, in, "account not found on re-verification")
	case obs.Holds:
		return r.finish(control.Observed, obs.Detail), nil
	case !obs.Readable:
		return r.finish(control.Acknowledged, "state cannot be read back"), nil
	default:
		r.Drift = true
		return r.finish(control.Failed, "drift: "+obs.Detail), nil
	}
}

// Notification is a message for the security team's channel.
type Notification struct {
	Kind       string `json:"kind"` // sla_breach, exception, drift, approval_expired
	WorkflowID string `json:"workflowId"`
	EmployeeID string `json:"employeeId"`
	Text       string `json:"text"`
}

// Notify posts to the Slack-compatible webhook, if one is configured.
func (a *Activities) Notify(ctx context.Context, n Notification) (bool, error) {
	if a.Events != nil {
		a.Events.Emit(siem.NoticeEvent(runOf(ctx), n.Kind, n.EmployeeID, n.Text, time.Now()))
	}
	if !a.Config.Notify.WebhookURL.IsSet() {
		activity.GetLogger(ctx).Info("notification (no webhook configured)", "kind", n.Kind, "workflowId", n.WorkflowID, "text", n.Text)
		metrics.Notified(n.Kind, false)
		return false, nil
	}
	url, err := a.Config.Notify.WebhookURL.Value()
	if err != nil {
		return false, temporal.NewNonRetryableApplicationError("notify: webhook url: "+err.Error(), ErrTypePermanent, nil)
	}
	body, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("[offboard] %s %s (%s): %s", n.Kind, n.EmployeeID, n.WorkflowID, n.Text)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, temporal.NewNonRetryableApplicationError("notify: bad webhook url", ErrTypePermanent, nil)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.HTTP.Do(req)
	if err != nil {
		// The URL holds a secret: never echo it.
		return false, temporal.NewApplicationError("notify: webhook unreachable", ErrTypeTransient)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		kind := control.ClassifyStatus(resp.StatusCode)
		return false, classify(&control.Error{Kind: kind, Op: "notify: webhook", HTTPStatus: resp.StatusCode, RetryAfter: retryafter.Header(resp.Header, time.Now())})
	}
	metrics.Notified(n.Kind, true)
	return true, nil
}

// emitControl sends a control's outcome to the SIEM: the receipt, or the
// error the attempt failed with (the receipt then names what was tried).
func (a *Activities) emitControl(ctx context.Context, op string, in ControlInput, rec control.Receipt, err error) {
	if a.Events == nil {
		return
	}
	if rec.ControlID == "" {
		rec.ControlID, rec.System, rec.Action, rec.Phase, rec.Target = in.ControlID, in.Target, in.Control, in.Phase, in.Account.ID
	}
	a.Events.Emit(siem.ControlEvent(runOf(ctx), op, rec, err, time.Now()))
}

// runOf names the activity for the SIEM event's id and join fields.
func runOf(ctx context.Context) siem.Run {
	if !activity.IsActivity(ctx) {
		return siem.Run{}
	}
	info := activity.GetInfo(ctx)
	return siem.Run{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, ActivityID: info.ActivityID, Attempt: info.Attempt}
}

func (a *Activities) target(name string) (control.Target, error) {
	t, ok := a.Targets[name]
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError("no target named "+name+" is configured on this worker", ErrTypeUnknown, nil)
	}
	if a.SelfCheck != nil {
		if err := a.SelfCheck(name); err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeSelfCheck, err)
		}
	}
	return t, nil
}

// keepAlive heartbeats while a control runs, so a crashed worker's attempt
// is retried after the heartbeat timeout rather than the whole start-to-close.
// The first heartbeat comes after a second, well inside the timeout: the SDK
// sends a first heartbeat to the server before returning, and at the start it
// put that round trip in front of every control, which mostly take less.
func keepAlive(ctx context.Context) func() {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				activity.RecordHeartbeat(ctx)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done) }
}
