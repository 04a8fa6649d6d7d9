package ldapdir_test

import (
	"context"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/ldapdir"
)

func TestNonHumanSeed(t *testing.T) {
	srv, err := ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: adminPassword, People: demo.People(5), CertDir: t.TempDir(), NonHuman: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	conn := admin(t, srv)

	ownerDN := "CN=" + demo.ServiceOwner(demo.People(5)).Name() + "," + users
	svc, ok := srv.User(demo.ManagedAccountSAM)
	require.True(t, ok)
	assert.Equal(t, ownerDN, svc.Get("managedBy"))
	assert.False(t, svc.Disabled())
	bg, ok := srv.User(demo.BreakGlassAD)
	require.True(t, ok)
	assert.Contains(t, bg.Values("memberOf"), "CN=Domain Admins,"+users)
	assert.Equal(t, "1", bg.Get("adminCount"))

	// managedBy is matched as a DN, whatever its case and spacing.
	res, err := conn.Search(goldap.NewSearchRequest(ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
		"(managedBy="+goldap.EscapeFilter(strings.ToLower(strings.ReplaceAll(ownerDN, ",", ", ")))+")", []string{"sAMAccountName"}, nil))
	require.NoError(t, err)
	require.Len(t, res.Entries, 1)
	assert.Equal(t, demo.ManagedAccountSAM, res.Entries[0].GetAttributeValue("sAMAccountName"))

	// A manager that does not exist is refused, as AD refuses a dangling link.
	req := goldap.NewModifyRequest(svc.DN, nil)
	req.Replace("managedBy", []string{"CN=Nobody," + users})
	require.True(t, goldap.IsErrorWithCode(conn.Modify(req), goldap.LDAPResultNoSuchObject))

	// A plain user may not have a manager: AD's schema says so.
	req = goldap.NewModifyRequest(bg.DN, nil)
	req.Replace("managedBy", []string{ownerDN})
	require.True(t, goldap.IsErrorWithCode(conn.Modify(req), goldap.LDAPResultObjectClassViolation))

	// Deleting the manager takes the link with it.
	require.NoError(t, conn.Del(goldap.NewDelRequest(ownerDN, nil)))
	svc, _ = srv.User(demo.ManagedAccountSAM)
	assert.Empty(t, svc.Get("managedBy"))

	plain := start(t, 5)
	_, ok = plain.User(demo.BreakGlassAD)
	assert.False(t, ok, "opt-in only")
}
