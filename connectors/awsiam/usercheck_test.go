package awsiam_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/internal/control"
	iamsim "github.com/offboard/offboard/sandbox/iam"
)

// pairGate holds a read until a GetUser is on the wire beside it: a
// connector that asks GetUser only after the read answered never gets past
// it (the read fails after a generous bound, naming what it waited for).
type pairGate struct {
	held     string // the Action held until GetUser arrives
	once     sync.Once
	userSeen chan struct{}
}

func (g *pairGate) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	f, _ := url.ParseQuery(string(body))
	switch f.Get("Action") {
	case "GetUser":
		g.once.Do(func() { close(g.userSeen) })
	case g.held:
		select {
		case <-g.userSeen:
		case <-time.After(10 * time.Second):
			return nil, io.ErrUnexpectedEOF
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

// The reads whose NoSuchEntity may be about the user ask GetUser beside
// them, not after them: one round of calls, not two, where containment is
// on the clock (issue 17). The observation is unchanged.
func TestUserCheckBesideTheRead(t *testing.T) {
	admin := people[9]
	for _, c := range []struct{ control, held, after string }{
		{awsiam.DenyAllPolicy, "GetUserPolicy", ""},
		{awsiam.DeleteLoginProfile, "GetLoginProfile", "no console password"},
	} {
		t.Run(c.control, func(t *testing.T) {
			gate := &pairGate{held: c.held, userSeen: make(chan struct{})}
			e := newEnv(t, func(_ *iamsim.Options, cfg *awsiam.Config) {
				cfg.HTTPClient = &http.Client{Transport: gate}
			})
			a := acct(admin)
			before, err := e.client.Observe(t.Context(), c.control, a, control.Params{})
			require.NoError(t, err, "the read waited for a GetUser beside it")
			require.False(t, before.Holds, before.Detail)
			_, err = e.client.Enforce(t.Context(), c.control, a, control.Params{})
			require.NoError(t, err)
			gate.once, gate.userSeen = sync.Once{}, make(chan struct{})
			after, err := e.client.Observe(t.Context(), c.control, a, control.Params{})
			require.NoError(t, err, "the read-back waited for a GetUser beside it")
			require.True(t, after.Holds, after.Detail)
			if c.after != "" {
				require.Equal(t, c.after, after.Detail)
			}
		})
	}
}
