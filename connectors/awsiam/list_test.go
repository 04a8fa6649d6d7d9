package awsiam_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/internal/control"
)

func TestListActive(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	// people[0]: keys inactive and no console password: not active.
	// people[1]: keys inactive, console password kept: active.
	for i, p := range people[:2] {
		acct, err := e.client.Resolve(ctx, control.Person{EmployeeID: p.EmployeeID, Email: p.Email})
		require.NoError(t, err)
		_, err = e.client.Enforce(ctx, awsiam.DeactivateAccessKeys, acct, control.Params{})
		require.NoError(t, err)
		if i == 0 {
			_, err = e.client.Enforce(ctx, awsiam.DeleteLoginProfile, acct, control.Params{})
			require.NoError(t, err)
		}
	}
	var all []control.ActiveAccount
	cursor, pages := "", 0
	for {
		p, err := e.client.ListActive(ctx, cursor, 20)
		require.NoError(t, err)
		all, pages = append(all, p.Accounts...), pages+1
		if p.Next == "" {
			break
		}
		cursor = p.Next
		require.Less(t, pages, 20)
	}
	assert.Equal(t, 3, pages) // 45 users, 20 a page
	names := map[string]bool{}
	for _, a := range all {
		assert.False(t, names[a.ID], "listed twice: %s", a.ID)
		names[a.ID] = true
	}
	// The seed adds deploy-bot (an active key) and breakglass-aws (a console
	// password) besides people (sandbox/demo/nonhuman.go).
	assert.Len(t, all, len(people)-1+2)
	assert.False(t, names[people[0].Login], "no active credential left")
	assert.True(t, names[people[1].Login], "a console password is a credential")
}
