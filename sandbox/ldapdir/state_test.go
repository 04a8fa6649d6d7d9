package ldapdir_test

import (
	"bytes"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/ldapdir"
)

// A directory saved and loaded into a new server answers as the old one did:
// the disabled user, the changed group, the added child, the person's bind.
func TestStateSurvivesARestart(t *testing.T) {
	old := start(t, 20)
	conn := admin(t, old)
	ada := "CN=Ada Lovelace," + users
	alan := "CN=Alan Lovelace," + users
	mod := goldap.NewModifyRequest(ada, nil)
	mod.Replace("userAccountControl", []string{"514"})
	require.NoError(t, conn.Modify(mod))
	mod = goldap.NewModifyRequest("CN=engineering,"+users, nil)
	mod.Delete("member", []string{ada})
	require.NoError(t, conn.Modify(mod))
	add := goldap.NewAddRequest("CN=apps,"+ada, nil)
	add.Attribute("objectClass", []string{"classStore"})
	require.NoError(t, conn.Add(add))
	require.NoError(t, conn.Del(goldap.NewDelRequest(alan, nil)))
	var saved bytes.Buffer
	require.NoError(t, old.SaveState(&saved))

	fresh := start(t, 3) // another seed: Ada enabled, Alan present, no child
	require.NoError(t, fresh.LoadState(bytes.NewReader(saved.Bytes())))
	conn = admin(t, fresh)
	u, ok := fresh.User("ada.lovelace1001")
	require.True(t, ok)
	assert.True(t, u.Disabled(), "still disabled")
	_, ok = fresh.User("alan.lovelace1002")
	assert.False(t, ok, "still deleted")
	_, ok = fresh.User("margaret.lovelace1009")
	assert.True(t, ok, "people beyond the new seed are back")
	g, _ := fresh.Group("engineering")
	assert.NotContains(t, g.Values("member"), ada)
	res, err := search(conn, ada, goldap.ScopeBaseObject, "(objectClass=*)", "memberOf")
	require.NoError(t, err)
	assert.NotContains(t, res.Entries[0].GetAttributeValues("memberOf"), "CN=engineering,"+users, "memberOf is computed again")
	_, err = search(conn, "CN=apps,"+ada, goldap.ScopeBaseObject, "(objectClass=*)")
	assert.NoError(t, err, "the child is there")
	require.NoError(t, dial(t, fresh).Bind("grace.lovelace1003@example.test", ldapdir.DefaultUserPassword), "a person binds with the saved password")

	// A bad document changes nothing.
	before := new(bytes.Buffer)
	require.NoError(t, fresh.SaveState(before))
	for name, doc := range map[string]string{
		"unknown version": strings.Replace(saved.String(), `"version": 1`, `"version": 9`, 1),
		"not JSON":        "{",
		"dangling member": strings.Replace(saved.String(), "CN=Barbara Lovelace,CN=Users", "CN=Nobody,CN=Users", 1),
		"other domain":    strings.ReplaceAll(saved.String(), "DC=corp", "DC=other"),
	} {
		err := fresh.LoadState(strings.NewReader(doc))
		assert.Error(t, err, name)
		after := new(bytes.Buffer)
		require.NoError(t, fresh.SaveState(after))
		assert.Equal(t, before.String(), after.String(), "%s: the directory is as it was", name)
	}
}
