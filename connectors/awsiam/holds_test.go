package awsiam_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
)

// TestResolveReportsHolds: Resolve says what the user holds, for the
// approver's plan: groups, credentials by id (access keys only by their last
// four characters), MFA devices, policies; a kind that cannot be listed is
// said, and the others are still read.
func TestResolveReportsHolds(t *testing.T) {
	e := newEnv(t)
	p := people[9]
	a, err := e.client.Resolve(t.Context(), control.Person{Email: p.Email})
	require.NoError(t, err)
	u, ok := e.sim.User(p.Login)
	require.True(t, ok)
	require.NotEmpty(t, u.Groups)
	for _, g := range u.Groups {
		assert.Contains(t, a.Holds, "group "+g)
	}
	require.NotEmpty(t, u.AccessKeys)
	for _, k := range u.AccessKeys {
		assert.Contains(t, a.Holds, "access key …"+k.ID[len(k.ID)-4:]+" ("+k.Status+")")
		for _, h := range a.Holds {
			assert.NotContains(t, h, k.ID, "a whole access key id")
		}
	}
	assert.Contains(t, a.Holds, "policy arn:aws:iam::aws:policy/AdministratorAccess")

	h := newHostileEnv(t, awsCase{rules: one(action("ListSSHPublicKeys"), hostile.Body(403, "text/xml", accessDeniedXML))})
	a, err = h.client.Resolve(h.ctx, control.Person{Email: hostileAdmin.Email})
	require.NoError(t, err, "an unreadable kind is said in Holds, not a failed resolve")
	require.Positive(t, h.srv.Hits())
	assert.Contains(t, a.Holds, "ssh keys could not be read: AccessDenied")
	assert.True(t, strings.HasPrefix(a.Holds[0], "group "), a.Holds)
}

// TestResolveRetriesATransientRead: a throttled or failing read of rights or
// holdings fails the resolve as transient (Temporal asks again), instead of
// recording the person's rights as unknown, which would make them privileged
// and wait for an approval on every bad day.
func TestResolveRetriesATransientRead(t *testing.T) {
	for name, call := range map[string]string{
		"5xx on a policy list":   "ListAttachedUserPolicies",
		"5xx on a holdings list": "ListSSHPublicKeys",
	} {
		t.Run(name, func(t *testing.T) {
			h := newHostileEnv(t, awsCase{rules: one(action(call), hostile.HTML(503))})
			_, err := h.client.Resolve(h.ctx, control.Person{Email: hostileAdmin.Email})
			require.ErrorIs(t, err, control.ErrTransient)
			require.Positive(t, h.srv.Hits())
		})
	}
}
