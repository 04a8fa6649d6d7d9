package scim_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/scimapp"
)

// TestResolveReportsHolds: the roles and entitlements the user resource
// carries come back as Holds, for the approver's plan. The app drops the
// read-only "groups" it is sent; holds_internal_test.go covers groups.
func TestResolveReportsHolds(t *testing.T) {
	s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true})
	createUser(t, s, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"held@example.test",
		"groups":[{"value":"g-17","display":"sales"}],
		"roles":[{"value":"Org Admin"},{"value":"member"}],"entitlements":[{"value":"billing:write"}]}`)
	acct, err := s.client.Resolve(t.Context(), control.Person{Email: "held@example.test"})
	require.NoError(t, err)
	assert.Equal(t, []string{"role Org Admin", "role member", "entitlement billing:write"}, acct.Holds)
}
