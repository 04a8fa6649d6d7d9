package scim

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An app that serves groups on the user resource (any case of the name)
// has them in Holds, by display name, else by value.
func TestHoldsReadsGroups(t *testing.T) {
	u, err := parseUser([]byte(`{"id":"u1","userName":"ann","Groups":[{"value":"g-1","display":"sales"},{"value":"g-2"}],"roles":[{"value":"member"}]}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"group g-2", "group sales", "role member"}, holds(u.Raw))
}
