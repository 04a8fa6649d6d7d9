package ldap_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	adldap "github.com/offboard/offboard/connectors/ldap"
	"github.com/offboard/offboard/internal/control"
)

func TestListActive(t *testing.T) {
	for _, server := range []struct {
		name  string
		start func(*testing.T) peer
	}{
		{"samba", startSamba},
		{"ldapdir", startLdapdir},
	} {
		t.Run(server.name, func(t *testing.T) {
			p := server.start(t)
			c := newClient(t, p.cfg)
			leaver := people[7]
			acct, err := c.Resolve(t.Context(), control.Person{Email: leaver.Email})
			require.NoError(t, err)
			_, err = c.Enforce(t.Context(), adldap.Disable, acct, control.Params{})
			require.NoError(t, err)
			t.Cleanup(func() { _, _ = c.Enforce(t.Context(), adldap.Enable, acct, control.Params{}) })

			logins := map[string]bool{}
			cursor, pages := "", 0
			for {
				pg, err := c.ListActive(t.Context(), cursor, 100)
				require.NoError(t, err)
				pages++
				for _, a := range pg.Accounts {
					k := strings.ToLower(a.Login)
					assert.False(t, logins[k], "listed twice: %s", a.Login)
					logins[k] = true
				}
				if pg.Next == "" {
					break
				}
				cursor = pg.Next
				require.Less(t, pages, 100)
			}
			assert.Equal(t, 37, pages) // 0-9, a-z, and the rest
			for i, person := range people {
				assert.Equal(t, i != 7, logins[strings.ToLower(person.Login)], "%s", person.Login)
			}
			assert.False(t, logins["krbtgt"], "krbtgt is disabled")
			_, err = c.ListActive(t.Context(), "p99", 100)
			require.ErrorIs(t, err, control.ErrPermanent)
		})
	}
}
