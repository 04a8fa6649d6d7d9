package activities

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/offboard/offboard/internal/control"
)

// heartbeatTarget's Observe waits for a heartbeat when told to: a slow
// system, during which the activity must go on heartbeating.
type heartbeatTarget struct {
	control.Target
	waitFor chan struct{} // nil: answer at once
}

func (*heartbeatTarget) Name() string { return "hb" }
func (*heartbeatTarget) Kind() string { return "fake" }

func (f *heartbeatTarget) Observe(ctx context.Context, _ string, _ control.Account, _ control.Params) (control.Observation, error) {
	if f.waitFor != nil {
		select {
		case <-f.waitFor:
		case <-time.After(10 * time.Second): // the heartbeat timeout: no heartbeat by then fails the test
			return control.Observation{}, errors.New("no heartbeat while the system was slow")
		}
	}
	return control.Observation{Holds: true, Readable: true, Detail: "fake"}, nil
}

func applyHeartbeats(t *testing.T, f *heartbeatTarget, beat func()) (control.Receipt, error) {
	t.Helper()
	return applyFake(t, f, func(env *testsuite.TestActivityEnvironment) {
		env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) { beat() })
	})
}

// A control that answers at once sends no heartbeat: the SDK sends the
// first one as a call to the server before returning, which put a round
// trip in front of every control's first observe (issue 17).
func TestApplyControlFastSendsNoHeartbeat(t *testing.T) {
	var mu sync.Mutex
	beats := 0
	r, err := applyHeartbeats(t, &heartbeatTarget{}, func() { mu.Lock(); beats++; mu.Unlock() })
	require.NoError(t, err)
	require.Equal(t, control.Observed, r.Outcome)
	mu.Lock()
	defer mu.Unlock()
	require.Zero(t, beats)
}

// A control on a slow system still heartbeats while it waits, so a crashed
// worker's attempt is retried after the heartbeat timeout.
func TestApplyControlSlowHeartbeats(t *testing.T) {
	f := &heartbeatTarget{waitFor: make(chan struct{})}
	var once sync.Once
	r, err := applyHeartbeats(t, f, func() { once.Do(func() { close(f.waitFor) }) })
	require.NoError(t, err)
	require.Equal(t, control.Observed, r.Outcome)
}
