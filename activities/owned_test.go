package activities

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// ownerTarget is a scripted control.Owner: each step holds once enforced,
// or as scripted.
type ownerTarget struct {
	notFoundTarget
	found       []control.Owned
	discoverErr error
	holds       map[string]bool
	unreadable  map[string]bool
	stuck       map[string]bool // enforce succeeds, the read-back still says no
	gone        bool
	enforced    map[string]int
	store       control.SecretStore // what the last call was given
}

func newOwner() *ownerTarget {
	return &ownerTarget{holds: map[string]bool{}, unreadable: map[string]bool{}, stuck: map[string]bool{}, enforced: map[string]int{}}
}

func (o *ownerTarget) Name() string                    { return "owner" }
func (o *ownerTarget) Kind() string                    { return "fake" }
func (o *ownerTarget) Controls(control.Phase) []string { return nil }

func (o *ownerTarget) Discover(context.Context, control.Account) ([]control.Owned, error) {
	return o.found, o.discoverErr
}

func (o *ownerTarget) OwnedSteps(kind string, action control.Action) []control.Step {
	if kind == control.KindServiceUser && action == control.Rotate {
		return []control.Step{{Name: "create_key"}, {Name: "deactivate_old", After: control.Grace}, {Name: "delete_old", After: control.Purge}}
	}
	return nil
}

func (o *ownerTarget) ObserveOwned(_ context.Context, name string, _ control.Owned, p control.OwnedParams) (control.Observation, error) {
	o.store = p.Store
	if o.gone {
		return control.Observation{Holds: true, Gone: true, Readable: true, Detail: "no such user"}, nil
	}
	if o.unreadable[name] {
		return control.Observation{}, nil
	}
	return control.Observation{Holds: o.holds[name], Readable: true, Detail: name + " checked", Call: control.Response{HTTPStatus: 200, RequestID: "r-" + name}}, nil
}

func (o *ownerTarget) EnforceOwned(_ context.Context, name string, _ control.Owned, p control.OwnedParams) (control.Response, error) {
	o.store = p.Store
	o.enforced[name]++
	if !o.stuck[name] {
		o.holds[name] = true
	}
	return control.Response{HTTPStatus: 200, RequestID: "r-enforce"}, nil
}

type nopStore struct{}

func (nopStore) PutPending(context.Context, string, string, []byte) error { return nil }
func (nopStore) Pending(context.Context, string, string) ([]byte, bool, error) {
	return nil, false, nil
}
func (nopStore) Promote(context.Context, string, string) error   { return nil }
func (nopStore) Current(context.Context, string) (string, error) { return "v1", nil }

func ownedEnv(t *testing.T, tgt control.Target) (*Activities, *testsuite.TestActivityEnvironment) {
	t.Helper()
	cfg, err := config.Default()
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := New(cfg, []control.Target{tgt})
	env.RegisterActivity(acts)
	return acts, env
}

func applyOwned(env *testsuite.TestActivityEnvironment, acts *Activities, step string) (control.Receipt, error) {
	in := OwnedInput{ControlID: "owner/owned/service-user/u1/" + step, Target: "owner", Step: step,
		Owned: control.Owned{Target: "owner", Kind: control.KindServiceUser, ID: "u1", Name: "deploy-bot"}, Params: control.OwnedParams{Token: "t"}}
	v, err := env.ExecuteActivity(acts.ApplyOwned, in)
	var r control.Receipt
	if err == nil {
		err = v.Get(&r)
	}
	return r, err
}

func TestApplyOwnedObservesActsObserves(t *testing.T) {
	o := newOwner()
	acts, env := ownedEnv(t, o)
	acts.Secrets = nopStore{}
	r, err := applyOwned(env, acts, "create_key")
	require.NoError(t, err)
	require.Equal(t, control.Observed, r.Outcome)
	require.Equal(t, control.NonHuman, r.Phase)
	require.Equal(t, "u1", r.Target)
	require.Equal(t, 1, o.enforced["create_key"])
	require.Len(t, r.Calls, 3, "observe, enforce, observe-after")
	require.Equal(t, nopStore{}, o.store, "the worker's store reaches the connector")

	r, err = applyOwned(env, acts, "create_key")
	require.NoError(t, err)
	require.True(t, r.AlreadyHeld)
	require.Equal(t, 1, o.enforced["create_key"], "a step that holds is not enforced again")
}

func TestApplyOwnedSaysOnlyWhatItCanProve(t *testing.T) {
	o := newOwner()
	o.unreadable["revoke"] = true
	o.stuck["deactivate_old"] = true
	acts, env := ownedEnv(t, o)

	r, err := applyOwned(env, acts, "revoke")
	require.NoError(t, err)
	require.Equal(t, control.Acknowledged, r.Outcome, "no read-back: acknowledged, never observed")

	_, err = applyOwned(env, acts, "deactivate_old")
	require.Equal(t, ErrTypeNotHeld, appError(t, err).Type())
	require.Nil(t, o.store, "no store configured: the connector gets nil and refuses rotations")
}

func TestApplyOwnedGoneIsConfirmed(t *testing.T) {
	o := newOwner()
	o.gone = true
	acts, env := ownedEnv(t, o)
	r, err := applyOwned(env, acts, "create_key")
	require.NoError(t, err)
	require.True(t, r.Gone)
	require.Len(t, r.Calls, 2, "observed gone, and a second lookup agrees")
	require.Zero(t, o.enforced["create_key"])
}

func TestDiscoverOwned(t *testing.T) {
	o := newOwner()
	o.found = []control.Owned{
		{Kind: control.KindServiceUser, ID: "123:deploy-bot", Name: "deploy-bot"},
		{Kind: control.KindSecret, ID: "arn:secret", Secret: "deploy-bot/api"},
	}
	acts, env := ownedEnv(t, o)
	v, err := env.ExecuteActivity(acts.DiscoverOwned, DiscoverInput{Target: "owner", Account: control.Account{ID: "u-1"}})
	require.NoError(t, err)
	var d Discovery
	require.NoError(t, v.Get(&d))
	require.True(t, d.Supported)
	require.Equal(t, []control.Owned{
		{Target: "owner", Kind: control.KindServiceUser, ID: "123:deploy-bot", Name: "deploy-bot", Secret: "offboard/owner/service-user/deploy-bot"},
		{Target: "owner", Kind: control.KindSecret, ID: "arn:secret", Secret: "deploy-bot/api"},
	}, d.Owned, "the secret name follows the template unless the connector named one")

	o.discoverErr = &control.Error{Kind: control.ErrUnexpected, Op: "owner: list", HTTPStatus: 404}
	_, err = env.ExecuteActivity(acts.DiscoverOwned, DiscoverInput{Target: "owner", Account: control.Account{ID: "u-1"}})
	require.Equal(t, ErrTypePermanent, appError(t, err).Type(), "a foreign 404 is no empty list")
	o.discoverErr = &control.Error{Kind: control.ErrTransient, Op: "owner: list", Err: errors.New("page 2 cut short")}
	_, err = env.ExecuteActivity(acts.DiscoverOwned, DiscoverInput{Target: "owner", Account: control.Account{ID: "u-1"}})
	require.Equal(t, ErrTypeTransient, appError(t, err).Type())
}

func TestDiscoverOwnedOnATargetThatCannot(t *testing.T) {
	acts, env := ownedEnv(t, notFoundTarget{})
	v, err := env.ExecuteActivity(acts.DiscoverOwned, DiscoverInput{Target: "bare", Account: control.Account{ID: "u-1"}})
	require.NoError(t, err)
	var d Discovery
	require.NoError(t, v.Get(&d))
	require.False(t, d.Supported, "said as such: nobody looked")
	require.Empty(t, d.Owned)
}

func TestPlanSaysWhatEachTargetCanDo(t *testing.T) {
	o := newOwner()
	acts, _ := ownedEnv(t, o)
	base, err := acts.LoadPlan(t.Context(), PlanInput{Kind: "termination"})
	require.NoError(t, err)
	require.True(t, base.Targets[0].Owner)
	require.Equal(t, map[string][]control.Step{OwnedKey(control.KindServiceUser, control.Rotate): o.OwnedSteps(control.KindServiceUser, control.Rotate)},
		base.Targets[0].OwnedSteps)
	require.NotNil(t, base.NonHuman)
	require.True(t, base.NonHuman.Policy.RequireApproval)
	require.Len(t, base.NonHuman.BreakGlass, 4)
}

// missingStore has no secrets at all.
type missingStore struct{ nopStore }

func (missingStore) Current(_ context.Context, secret string) (string, error) {
	return "", &control.Error{Kind: control.ErrNotFound, Op: "secretstore: read " + secret, HTTPStatus: 400}
}

func applyBreakGlass(env *testsuite.TestActivityEnvironment, acts *Activities) (control.Receipt, error) {
	in := OwnedInput{ControlID: "owner/owned/break-glass-account/bg-old/set_password", Target: "owner", Step: "set_password",
		Owned:  control.Owned{Target: "owner", Kind: control.KindBreakGlass, ID: "bg-old", Name: "old-emergency", Secret: "breakglass/old"},
		Params: control.OwnedParams{Token: "t"}}
	v, err := env.ExecuteActivity(acts.ApplyOwned, in)
	var r control.Receipt
	if err == nil {
		err = v.Get(&r)
	}
	return r, err
}

func TestABreakGlassAccountThatIsGoneIsAStaleRegistryEntry(t *testing.T) {
	o := newOwner()
	o.gone = true
	acts, env := ownedEnv(t, o)
	acts.Secrets = nopStore{}
	r, err := applyBreakGlass(env, acts)
	require.Error(t, err, "two lookups agree it is gone, but that is no success: the registry is stale")
	ae := appError(t, err)
	require.Equal(t, ErrTypePermanent, ae.Type())
	require.True(t, ae.NonRetryable())
	require.Contains(t, err.Error(), `break-glass registry entry "old-emergency" names account bg-old in owner, which does not exist`)
	require.Contains(t, err.Error(), "secret breakglass/old may still hold a password")
	require.False(t, r.Gone)
}

func TestABreakGlassSecretMissingFromTheStoreIsNeverCreated(t *testing.T) {
	o := newOwner()
	acts, env := ownedEnv(t, o)
	acts.Secrets = missingStore{}
	_, err := applyBreakGlass(env, acts)
	require.Error(t, err)
	require.Equal(t, ErrTypePermanent, appError(t, err).Type())
	require.Contains(t, err.Error(), `break-glass registry entry "old-emergency" names secret breakglass/old, which does not exist in the secret store`)
	require.Zero(t, o.enforced["set_password"], "nothing set on the account, nothing written to the store")
	require.Nil(t, o.store, "the connector was never called")

	// A discovered identity's secret may be created: the precheck is the registry's alone.
	_, err = applyOwned(env, acts, "create_key")
	require.NoError(t, err)
}
