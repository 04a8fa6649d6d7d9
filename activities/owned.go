package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// Non-human identities (issue 15): what a leaver owns or could know. The
// workflow discovers them beside containment and acts on each, step by step,
// with the same observe → enforce → observe as every other control.

// NonHumanPlan is the non-human policy as configured when the run started.
type NonHumanPlan struct {
	Policy     config.NonHuman     `json:"policy"`
	BreakGlass []config.BreakGlass `json:"breakGlass,omitempty"`
}

// ownedKey names one kind and action in PlanTarget.OwnedSteps.
func OwnedKey(kind string, action control.Action) string { return kind + "/" + string(action) }

var ownedKinds = []string{control.KindAPIToken, control.KindApplication, control.KindServicePrincipal,
	control.KindServiceUser, control.KindSecret, control.KindManagedAccount, control.KindBreakGlass}

// ownedPlan fills in what a target can do with each kind of identity: the
// workflow cannot ask the target itself.
func (a *Activities) ownedPlan(base *PlanBase) {
	base.NonHuman = &NonHumanPlan{Policy: a.Config.NonHuman, BreakGlass: a.Config.BreakGlass}
	for i := range base.Targets {
		pt := &base.Targets[i]
		o, ok := a.Targets[pt.Name].(control.Owner)
		if !ok {
			continue
		}
		pt.Owner = true
		pt.OwnedSteps = map[string][]control.Step{}
		for _, kind := range ownedKinds {
			for _, action := range []control.Action{control.Reown, control.Rotate, control.Decommission} {
				if steps := o.OwnedSteps(kind, action); steps != nil {
					pt.OwnedSteps[OwnedKey(kind, action)] = steps
				}
			}
		}
	}
}

// DiscoverInput asks one target what a person's account owns there.
type DiscoverInput struct {
	Target  string          `json:"target"`
	Account control.Account `json:"account"`
}

// Discovery is what a target found. Supported is false when the target
// cannot list non-human identities at all: then Owned is empty because
// nobody looked, which the plan says.
type Discovery struct {
	Owned     []control.Owned `json:"owned"`
	Supported bool            `json:"supported"`
}

// DiscoverOwned lists the non-human identities the account's person owns in
// one target, each with the secret-store entry a rotation writes to. An
// empty list is the connector's claim that it read everything; a list it
// could not read fully is an error, and the workflow an exception.
func (a *Activities) DiscoverOwned(ctx context.Context, in DiscoverInput) (Discovery, error) {
	t, err := a.target(in.Target)
	if err != nil {
		return Discovery{}, err
	}
	o, ok := t.(control.Owner)
	if !ok {
		return Discovery{Owned: []control.Owned{}}, nil
	}
	stop := keepAlive(ctx)
	defer stop()
	found, err := o.Discover(ctx, in.Account)
	if err != nil {
		return Discovery{}, classify(fmt.Errorf("%s: discover non-human identities of %s: %w", in.Target, in.Account.ID, err))
	}
	out := make([]control.Owned, 0, len(found))
	for _, ow := range found {
		ow.Target = in.Target
		if ow.Secret == "" {
			name := ow.Name
			if name == "" {
				name = ow.ID
			}
			ow.Secret = a.Config.NonHuman.Secret(in.Target, ow.Kind, name)
		}
		out = append(out, ow)
	}
	return Discovery{Owned: out, Supported: true}, nil
}

// OwnedInput is one step of a non-human action on one identity.
type OwnedInput struct {
	ControlID string              `json:"controlId"`
	Target    string              `json:"target"`
	Step      string              `json:"step"`
	Owned     control.Owned       `json:"owned"`
	Params    control.OwnedParams `json:"params"` // Store is set here, never recorded
}

// ApplyOwned observes the step, enforces it only if it does not hold, and
// observes again, as ApplyControl does; a retry after a crash repeats the
// same sequence, and the connector finds its own half-done rotation by the
// token. The secret store is the worker's, given to the connector here.
func (a *Activities) ApplyOwned(ctx context.Context, in OwnedInput) (rec control.Receipt, err error) {
	ci := ControlInput{ControlID: in.ControlID, Target: in.Target, Control: in.Step, Phase: control.NonHuman,
		Account: control.Account{Target: in.Target, ID: in.Owned.ID, Login: in.Owned.Name}}
	defer func() { a.emitControl(ctx, "apply", ci, rec, err) }()
	t, err := a.target(in.Target)
	if err != nil {
		return control.Receipt{}, err
	}
	o, ok := t.(control.Owner)
	if !ok {
		return control.Receipt{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: target %s cannot act on non-human identities", in.ControlID, in.Target), ErrTypePermanent, nil)
	}
	stop := keepAlive(ctx)
	defer stop()
	p := in.Params
	p.Store = a.Secrets
	r := newReceipt(ctx, t, ci)
	if in.Owned.Kind == control.KindBreakGlass && p.Store != nil {
		if err := registrySecretExists(ctx, p.Store, in); err != nil {
			return r.Receipt, err
		}
	}
	observe := func(step string) (control.Observation, error) {
		obs, err := o.ObserveOwned(ctx, in.Step, in.Owned, p)
		if err == nil {
			r.addObservation(step, obs)
		}
		return obs, err
	}

	before, err := observe("observe")
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: observe %s: %w", in.ControlID, in.Owned.ID, err))
	}
	if before.Holds && before.Gone {
		return r.confirmOwnedGone(observe, in, "not found when observed")
	}
	if before.Holds {
		r.AlreadyHeld = true
		return r.finish(control.Observed, before.Detail), nil
	}

	resp, err := o.EnforceOwned(ctx, in.Step, in.Owned, p)
	if errors.Is(err, control.ErrNotFound) {
		r.addCall("enforce", responseOf(err, resp), "not found: "+err.Error())
		return r.confirmOwnedGone(observe, in, "enforce answered not found ("+err.Error()+")")
	}
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: enforce %s: %w", in.ControlID, in.Owned.ID, err))
	}
	r.addCall("enforce", resp, "")

	after, err := observe("observe-after")
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: read back %s: %w", in.ControlID, in.Owned.ID, err))
	}
	switch {
	case !after.Readable:
		return r.finish(control.Acknowledged, "accepted by the system; its state cannot be read back"), nil
	case after.Holds && after.Gone:
		return r.confirmOwnedGone(observe, in, "not found on read-back")
	case after.Holds:
		return r.finish(control.Observed, after.Detail), nil
	default:
		return r.Receipt, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("%s: enforced on %s but the read-back says it does not hold: %s", in.ControlID, in.Owned.ID, after.Detail),
			ErrTypeNotHeld, temporal.ApplicationErrorOptions{Details: []any{failureDetail(after.Call)}})
	}
}

// confirmOwnedGone makes "the identity is gone" a proven claim: a second
// observation must say so too.
func (r *receipt) confirmOwnedGone(observe func(string) (control.Observation, error), in OwnedInput, first string) (control.Receipt, error) {
	again, err := observe("confirm-gone")
	if err != nil {
		return r.Receipt, classify(fmt.Errorf("%s: %s, but the confirming lookup of %s failed: %w", in.ControlID, first, in.Owned.ID, err))
	}
	if !again.Gone {
		return r.Receipt, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("%s: %s, but %s still exists (%s): the not-found came from something other than it", in.ControlID, first, in.Owned.ID, again.Detail),
			ErrTypePermanent, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{failureDetail(again.Call)}})
	}
	if in.Owned.Kind == control.KindBreakGlass {
		// True, but "gone" would hide a stale registry entry whose secret
		// still holds a password people knew: a person must look.
		return r.Receipt, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: break-glass registry entry %q names account %s in %s, which does not exist (%s; a second lookup agrees): "+
				"the registry is stale and secret %s may still hold a password people knew; fix the entry (retire or rotate the secret by hand), then waive this control",
				in.ControlID, in.Owned.Name, in.Owned.ID, in.Target, first, in.Owned.Secret), ErrTypePermanent, nil, failureDetail(again.Call))
	}
	r.Gone = true
	return r.finish(control.Observed, "gone: "+first+"; a second lookup agrees ("+again.Detail+")"), nil
}

// registrySecretExists refuses a break-glass rotation whose registry secret
// is missing. The store would create it (PutPending creates a secret named
// but absent, which is right for "offboard/..." secrets), but a registry
// entry names the secret people reach for in an emergency: a missing one is
// most likely a typo, and a new secret under it would leave the real entry
// holding a password the account no longer has.
func registrySecretExists(ctx context.Context, store control.SecretStore, in OwnedInput) error {
	_, err := store.Current(ctx, in.Owned.Secret)
	switch {
	case errors.Is(err, control.ErrNotFound):
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: break-glass registry entry %q names secret %s, which does not exist in the secret store: "+
				"a rotation never creates a registry secret (the password people knew may live under another name); "+
				"create the secret under this name and retry, or fix the registry for later runs and waive this control", in.ControlID, in.Owned.Name, in.Owned.Secret),
			ErrTypePermanent, err)
	case err != nil:
		return classify(fmt.Errorf("%s: read secret %s of break-glass entry %q: %w", in.ControlID, in.Owned.Secret, in.Owned.Name, err))
	}
	return nil
}
