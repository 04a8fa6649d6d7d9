package activities

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// memoTarget leaves a memo from every Observe that has one, and records, call
// by call, whether a memo was there and whether it held something left earlier.
type memoTarget struct {
	control.Target
	mu      sync.Mutex
	holds   []bool   // what successive observes answer
	gone    []bool   // observes answering "gone" (by position)
	enforce error    // what Enforce returns
	calls   []string // "observe memo=true left=false", "enforce memo=true left=true"
}

func (*memoTarget) Name() string { return "memo" }
func (*memoTarget) Kind() string { return "fake" }

func (f *memoTarget) note(ctx context.Context, call string) {
	memo := control.MemoFrom(ctx)
	_, left := memo.Take("read")
	memo.Put("read", call)
	f.calls = append(f.calls, call+" memo="+map[bool]string{true: "yes", false: "no"}[memo != nil]+" left="+map[bool]string{true: "yes", false: "no"}[left])
}

func (f *memoTarget) Observe(ctx context.Context, _ string, _ control.Account, _ control.Params) (control.Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := len(f.calls)
	f.note(ctx, "observe")
	holds := i < len(f.holds) && f.holds[i]
	gone := i < len(f.gone) && f.gone[i]
	return control.Observation{Holds: holds || gone, Gone: gone, Readable: true, Detail: "fake"}, nil
}

func (f *memoTarget) Enforce(ctx context.Context, _ string, _ control.Account, _ control.Params) (control.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx, "enforce")
	return control.Response{HTTPStatus: 200}, f.enforce
}

func applyMemo(t *testing.T, f *memoTarget) (control.Receipt, error) {
	t.Helper()
	return applyFake(t, f, nil)
}

// applyFake runs ApplyControl once on control "x" of account "u1" of a fake
// target, in Temporal's activity test environment (set adjusts it first).
func applyFake(t *testing.T, f control.Target, set func(*testsuite.TestActivityEnvironment)) (control.Receipt, error) {
	t.Helper()
	cfg, err := config.Default()
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	if set != nil {
		set(env)
	}
	acts := New(cfg, []control.Target{f})
	env.RegisterActivity(acts)
	v, err := env.ExecuteActivity(acts.ApplyControl, ControlInput{ControlID: f.Name() + "/x", Target: f.Name(), Control: "x",
		Phase: control.Containment, Account: control.Account{Target: f.Name(), ID: "u1"}})
	var r control.Receipt
	if err == nil {
		err = v.Get(&r)
	}
	return r, err
}

// The first observe and the enforce share a memo; the read-back and the
// gone check run without one, so what a receipt claims is read fresh.
func TestApplyControlReadBackIsFresh(t *testing.T) {
	t.Run("enforced", func(t *testing.T) {
		f := &memoTarget{holds: []bool{false, false, true}}
		r, err := applyMemo(t, f)
		require.NoError(t, err)
		assert.Equal(t, control.Observed, r.Outcome)
		assert.Equal(t, []string{
			"observe memo=yes left=no",
			"enforce memo=yes left=yes", // the observe's read reached the enforce
			"observe memo=no left=no",   // the read-back sees no memo
		}, f.calls)
	})
	t.Run("gone when observed", func(t *testing.T) {
		f := &memoTarget{gone: []bool{true, true}}
		r, err := applyMemo(t, f)
		require.NoError(t, err)
		assert.True(t, r.Gone)
		assert.Equal(t, []string{"observe memo=yes left=no", "observe memo=no left=no"}, f.calls, "the confirming lookup reads fresh")
	})
	t.Run("enforce answers not found", func(t *testing.T) {
		f := &memoTarget{gone: []bool{false, false, true}, enforce: &control.Error{Kind: control.ErrNotFound, Op: "fake"}}
		r, err := applyMemo(t, f)
		require.NoError(t, err)
		assert.True(t, r.Gone)
		assert.Equal(t, []string{"observe memo=yes left=no", "enforce memo=yes left=yes", "observe memo=no left=no"}, f.calls)
	})
	t.Run("gone on read-back", func(t *testing.T) {
		f := &memoTarget{gone: []bool{false, false, true, true}}
		r, err := applyMemo(t, f)
		require.NoError(t, err)
		assert.True(t, r.Gone)
		assert.Equal(t, []string{"observe memo=yes left=no", "enforce memo=yes left=yes", "observe memo=no left=no", "observe memo=no left=no"}, f.calls)
	})
}

// A memo in the caller's context does not reach the read-back either.
func TestApplyControlReadBackIgnoresACallersMemo(t *testing.T) {
	f := &memoTarget{holds: []bool{false, false, true}}
	ctx, memo := control.WithMemo(t.Context())
	memo.Put("read", "planted")
	acts := New(config.Config{}, []control.Target{f})
	r, err := acts.ApplyControl(ctx, ControlInput{ControlID: "memo/x", Target: "memo", Control: "x", Account: control.Account{ID: "u1"}})
	require.NoError(t, err)
	assert.Equal(t, control.Observed, r.Outcome)
	assert.Equal(t, "observe memo=no left=no", f.calls[2])
	assert.Equal(t, "observe memo=yes left=no", f.calls[0], "each apply has its own memo")
}
