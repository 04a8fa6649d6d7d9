package okta_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/fault"
	oktasim "github.com/offboard/offboard/sandbox/okta"
)

// TestResolveReportsHolds: Resolve says which groups and admin roles the
// user holds, for the approver's plan; a list it cannot read is said.
func TestResolveReportsHolds(t *testing.T) {
	faults := fault.New()
	e := newEnv(t, oktasim.Options{Faults: faults})
	admin := e.account(t, people[9])
	assert.Contains(t, admin.Holds, "group admins")
	u := e.user(t, admin.ID)
	for _, g := range u.Groups {
		if g == "Everyone" {
			assert.Contains(t, admin.Holds, "built-in group Everyone (Okta manages it)")
			continue
		}
		assert.Contains(t, admin.Holds, "group "+g)
	}
	assert.Contains(t, admin.Holds, "admin role SUPER_ADMIN (through a group)")

	faults.Add(fault.Rule{PathPrefix: "/api/v1/users/" + admin.ID + "/groups", Status: 403})
	acct := e.account(t, people[9])
	require.NotEmpty(t, acct.Holds)
	assert.True(t, strings.HasPrefix(acct.Holds[0], "groups could not be read: "), acct.Holds[0])
	assert.NotContains(t, acct.Holds[0], token)
	assert.Contains(t, acct.Holds, "admin role SUPER_ADMIN (through a group)")
}
