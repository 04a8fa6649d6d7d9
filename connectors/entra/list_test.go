package entra_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
)

func TestListActive(t *testing.T) {
	e := setup(t, 0)
	_, err := e.client.Enforce(t.Context(), "disable", e.account(t, people[4]), control.Params{})
	require.NoError(t, err)
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		p, err := e.client.ListActive(t.Context(), cursor, 5)
		require.NoError(t, err)
		pages++
		for _, a := range p.Accounts {
			assert.False(t, seen[a.Login], "listed twice: %s", a.Login)
			seen[a.Login] = true
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
		require.Less(t, pages, 20)
	}
	assert.Equal(t, 3, pages) // 11 enabled people and the break-glass user, 5 a page
	assert.Len(t, seen, len(people)-1+1)
	assert.False(t, seen[people[4].Email], "disabled")
	assert.True(t, seen[people[5].Email])
}
