package ldap_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
)

// TestResolveReportsHolds: Resolve says which groups the user is in (by CN,
// from memberOf), for the approver's plan, on Samba AD and on ldapdir.
func TestResolveReportsHolds(t *testing.T) {
	for _, server := range []struct {
		name  string
		start func(*testing.T) peer
	}{
		{"samba", startSamba},
		{"ldapdir", startLdapdir},
	} {
		t.Run(server.name, func(t *testing.T) {
			c := newClient(t, server.start(t).cfg)
			acct, err := c.Resolve(t.Context(), control.Person{Email: people[9].Email}) // all-staff, engineering, admins
			require.NoError(t, err)
			assert.ElementsMatch(t, []string{"group all-staff", "group engineering", "group admins"}, acct.Holds)
		})
	}
}
