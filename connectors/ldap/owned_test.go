package ldap_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	adldap "github.com/offboard/offboard/connectors/ldap"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/control/controltest"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/internal/testenv/samba"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/ldapdir"
)

// memStore is the shared in-memory secret store (controltest.MemStore).
type memStore = controltest.MemStore

func newStore() *memStore { return controltest.NewMemStore() }

func startSambaNonHuman(t *testing.T) peer {
	dc := samba.Start(t)
	samba.SeedNonHuman(t, dc)
	cfg := adldap.Config{Name: "ad", URL: dc.URL, CAFile: dc.CAFile, BindDN: dc.BindUPN, Password: dc.Password, BaseDN: dc.BaseDN, Timeout: 10 * time.Second}
	return peer{cfg: cfg, userPassword: samba.UserPassword}
}

func startLdapdirNonHuman(t *testing.T) peer {
	srv, err := ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: "Sandbox-Adm1n!",
		People: demo.People(samba.Seeded), CertDir: t.TempDir(), NonHuman: true})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(t.Context()) }()
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, <-done)
	})
	cfg := adldap.Config{Name: "ad", URL: srv.URL(), CAFile: srv.CAFile(), BindDN: "Administrator@corp.example.test",
		Password: "Sandbox-Adm1n!", BaseDN: ldapdir.DefaultBaseDN, Timeout: 10 * time.Second}
	return peer{cfg: cfg, userPassword: ldapdir.DefaultUserPassword, ldapdir: srv}
}

// binds reports whether upn can bind with password: the proof a rotation set it.
func binds(t *testing.T, p peer, upn, password string) bool {
	t.Helper()
	pem, err := os.ReadFile(p.cfg.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	conn, err := goldap.DialURL(p.cfg.URL, goldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	require.NoError(t, err)
	defer conn.Close()
	err = conn.Bind(upn, password)
	if err != nil {
		require.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials), "%v", err)
	}
	return err == nil
}

func TestOwned(t *testing.T) {
	for _, server := range []struct {
		name  string
		start func(*testing.T) peer
	}{
		{"samba", startSambaNonHuman},
		{"ldapdir", startLdapdirNonHuman},
	} {
		t.Run(server.name, func(t *testing.T) {
			p := server.start(t)
			c := newClient(t, p.cfg)
			owner := resolve(t, c, demo.ServiceOwner(people))
			t.Run("steps", func(t *testing.T) { testOwnedSteps(t, c) })
			t.Run("discover", func(t *testing.T) { testDiscover(t, c, owner) })
			t.Run("rotate break-glass", func(t *testing.T) { testRotateBreakGlass(t, p, c) })
			t.Run("rotate: crash before promote", func(t *testing.T) { testRotateCrash(t, p, c) })
			t.Run("rotate: store down", func(t *testing.T) { testRotateStoreDown(t, p, c) })
			// These change the managed account; discover ran before them.
			t.Run("set manager", func(t *testing.T) { testSetManager(t, c, owner) })
			t.Run("disable", func(t *testing.T) { testDisableManaged(t, p, c) })
		})
	}
}

func testOwnedSteps(t *testing.T, c *adldap.Client) {
	assert.Equal(t, []control.Step{{Name: adldap.SetManager}}, c.OwnedSteps(control.KindManagedAccount, control.Reown))
	assert.Equal(t, []control.Step{{Name: adldap.RotatePassword}}, c.OwnedSteps(control.KindManagedAccount, control.Rotate))
	assert.Equal(t, []control.Step{{Name: adldap.Disable}}, c.OwnedSteps(control.KindManagedAccount, control.Decommission))
	assert.Equal(t, []control.Step{{Name: adldap.RotatePassword}}, c.OwnedSteps(control.KindBreakGlass, control.Rotate))
	assert.Nil(t, c.OwnedSteps(control.KindBreakGlass, control.Reown))
	assert.Nil(t, c.OwnedSteps(control.KindAPIToken, control.Decommission))
	_, err := c.EnforceOwned(t.Context(), adldap.SetManager, control.Owned{Kind: control.KindBreakGlass, ID: demo.BreakGlassAD}, control.OwnedParams{NewOwner: people[0].Email})
	assert.ErrorIs(t, err, control.ErrUnknownControl)
}

func managedDN() string { return "CN=" + demo.ManagedAccountSAM + "," + samba.UsersDN }

func testDiscover(t *testing.T, c *adldap.Client, owner control.Account) {
	owned, err := c.Discover(t.Context(), owner)
	require.NoError(t, err)
	require.Len(t, owned, 1)
	assert.Equal(t, control.Owned{Target: "ad", Kind: control.KindManagedAccount, ID: managedDN(), Name: demo.ManagedAccountSAM}, owned[0])

	none, err := c.Discover(t.Context(), resolve(t, c, people[5]))
	require.NoError(t, err)
	assert.NotNil(t, none)
	assert.Empty(t, none)
}

func breakGlassAD(store control.SecretStore) (control.Owned, control.OwnedParams) {
	o := control.Owned{Target: "ad", Kind: control.KindBreakGlass, ID: demo.BreakGlassAD, Secret: demo.BreakGlassSecrets["ldap"]}
	return o, control.OwnedParams{Token: "5d1f0c3a-2b7e-4f19-8c6d-0e9a4b2f7d13", Since: time.Now(), Store: store}
}

func testRotateBreakGlass(t *testing.T, p peer, c *adldap.Client) {
	store := newStore()
	o, prm := breakGlassAD(store)
	require.True(t, binds(t, p, demo.BreakGlassAD+"@corp.example.test", p.userPassword))

	obs, err := c.ObserveOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.NoError(t, err)
	assert.False(t, obs.Holds, obs.Detail)
	assert.True(t, obs.Readable)

	_, err = c.EnforceOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.NoError(t, err)
	cur, _ := store.Current(t.Context(), o.Secret)
	require.Equal(t, prm.Token, cur)
	value, _, _ := store.Pending(t.Context(), o.Secret, prm.Token)
	assert.True(t, binds(t, p, demo.BreakGlassAD+"@corp.example.test", string(value)), "the stored value is the password")
	if p.ldapdir != nil {
		assert.False(t, binds(t, p, demo.BreakGlassAD+"@corp.example.test", p.userPassword), "the old password no longer works")
	} else {
		// Samba accepts the old password for its "old password allowed
		// period" (60 min by default) after a reset, as AD does for NTLM.
		t.Logf("samba: the old password still binds after the reset: %t", binds(t, p, demo.BreakGlassAD+"@corp.example.test", p.userPassword))
	}

	obs, err = c.ObserveOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	assert.Contains(t, obs.Detail, "version 5d1f0c3a… is current (this rotation's: true)")
	assert.NotContains(t, obs.Detail, string(value))

	// Again: the same value, still current.
	_, err = c.EnforceOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.NoError(t, err)
	assert.True(t, binds(t, p, demo.BreakGlassAD+"@corp.example.test", string(value)))

	// A rotation that began later is not done by this one's password.
	later := prm
	later.Since = time.Now().Add(time.Hour)
	obs, err = c.ObserveOwned(t.Context(), adldap.RotatePassword, o, later)
	require.NoError(t, err)
	assert.False(t, obs.Holds, obs.Detail)

	missing := o
	missing.ID = "no-such-breakglass"
	_, err = c.EnforceOwned(t.Context(), adldap.RotatePassword, missing, prm)
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "0 user entries have sAMAccountName or userPrincipalName no-such-breakglass")

	// The registry may name it by UPN or DN as well.
	for _, id := range []string{demo.BreakGlassAD + "@corp.example.test", "CN=" + demo.BreakGlassAD + "," + samba.UsersDN} {
		byOther := o
		byOther.ID = id
		obs, err = c.ObserveOwned(t.Context(), adldap.RotatePassword, byOther, prm)
		require.NoError(t, err, id)
		assert.True(t, obs.Holds, "%s: %s", id, obs.Detail)
	}
}

// A crash between the password set and the store's promote: the retry
// sets the same pending value again and promotes it. The managed account
// is rotated here, so this case does not depend on the break-glass one.
func testRotateCrash(t *testing.T, p peer, c *adldap.Client) {
	store := newStore()
	store.FailPromote = 1
	o := control.Owned{Target: "ad", Kind: control.KindManagedAccount, ID: managedDN(), Name: demo.ManagedAccountSAM,
		Secret: demo.RotationSecret("ad", demo.ManagedAccountSAM)}
	prm := control.OwnedParams{Token: "9e4a7c21-0d3b-4b8f-a6e2-5c1d8f0b3a97", Since: time.Now(), Store: store}

	_, err := c.EnforceOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.ErrorIs(t, err, control.ErrTransient)
	pending, ok, _ := store.Pending(t.Context(), o.Secret, prm.Token)
	require.True(t, ok)
	assert.NotContains(t, err.Error(), string(pending))
	assert.True(t, binds(t, p, demo.ManagedAccountSAM+"@corp.example.test", string(pending)), "the directory has the pending value")
	obs, err := c.ObserveOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.NoError(t, err)
	assert.False(t, obs.Holds, "not current in the store yet: %s", obs.Detail)

	_, err = c.EnforceOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.NoError(t, err)
	cur, _ := store.Current(t.Context(), o.Secret)
	assert.Equal(t, prm.Token, cur)
	assert.Len(t, store.Versions[o.Secret], 1, "exactly one new value")
	assert.True(t, binds(t, p, demo.ManagedAccountSAM+"@corp.example.test", string(pending)))
	obs, err = c.ObserveOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
}

// A store that cannot take the new value: the password is not touched.
func testRotateStoreDown(t *testing.T, p peer, c *adldap.Client) {
	// The break-glass account has a known password by now only on its own
	// run; use a person's account, whose password the seed sets.
	person := people[12]
	dn := samba.UserDN(person)
	store := newStore()
	store.FailPut = 1
	o := control.Owned{Target: "ad", Kind: control.KindManagedAccount, ID: dn, Secret: "offboard/ad/test"}
	prm := control.OwnedParams{Token: "1c8e5b2d-7f4a-4e06-b3d9-2a6f0c8e1b45", Since: time.Now(), Store: store}

	_, err := c.EnforceOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "secret store: store pending version 1c8e5b2d… of offboard/ad/test")
	assert.True(t, binds(t, p, person.Email, p.userPassword), "the old password still works")
	_, ok, _ := store.Pending(t.Context(), o.Secret, prm.Token)
	assert.False(t, ok)

	prm.Store = nil
	_, err = c.EnforceOwned(t.Context(), adldap.RotatePassword, o, prm)
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "no secret store configured")
	assert.True(t, binds(t, p, person.Email, p.userPassword))
}

func testSetManager(t *testing.T, c *adldap.Client, leaver control.Account) {
	o := control.Owned{Target: "ad", Kind: control.KindManagedAccount, ID: managedDN(), Name: demo.ManagedAccountSAM}
	manager := people[0]
	prm := control.OwnedParams{NewOwner: manager.Email, Leaver: leaver}

	obs, err := c.ObserveOwned(t.Context(), adldap.SetManager, o, prm)
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.True(t, strings.EqualFold(obs.Detail, "managedBy="+leaver.ID), obs.Detail)

	for name, bad := range map[string]string{
		"unknown owner":  "nobody.here@example.test",
		"the leaver":     demo.ServiceOwner(people).Login,
		"no owner named": " ",
	} {
		_, err := c.EnforceOwned(t.Context(), adldap.SetManager, o, control.OwnedParams{NewOwner: bad, Leaver: leaver})
		require.ErrorIs(t, err, control.ErrPermanent, name)
		if strings.TrimSpace(bad) != "" {
			assert.Contains(t, err.Error(), bad, name)
		}
	}

	_, err = c.EnforceOwned(t.Context(), adldap.SetManager, o, prm)
	require.NoError(t, err)
	obs, err = c.ObserveOwned(t.Context(), adldap.SetManager, o, prm)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	gone, err := c.Discover(t.Context(), leaver)
	require.NoError(t, err)
	assert.Empty(t, gone, "the leaver manages nothing now")
	moved, err := c.Discover(t.Context(), resolve(t, c, manager))
	require.NoError(t, err)
	require.Len(t, moved, 1)

	// A team: managedBy may name a group.
	team := control.OwnedParams{NewOwner: "engineering", Leaver: leaver}
	_, err = c.EnforceOwned(t.Context(), adldap.SetManager, o, team)
	require.NoError(t, err)
	obs, err = c.ObserveOwned(t.Context(), adldap.SetManager, o, team)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	assert.True(t, strings.EqualFold(obs.Detail, "managedBy="+samba.GroupDN("engineering")), obs.Detail)
}

func testDisableManaged(t *testing.T, p peer, c *adldap.Client) {
	o := control.Owned{Target: "ad", Kind: control.KindManagedAccount, ID: managedDN(), Name: demo.ManagedAccountSAM}
	obs, err := c.ObserveOwned(t.Context(), adldap.Disable, o, control.OwnedParams{})
	require.NoError(t, err)
	assert.False(t, obs.Holds, obs.Detail)
	_, err = c.EnforceOwned(t.Context(), adldap.Disable, o, control.OwnedParams{})
	require.NoError(t, err)
	obs, err = c.ObserveOwned(t.Context(), adldap.Disable, o, control.OwnedParams{})
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	assert.Contains(t, obs.Detail, "userAccountControl=66050")
}

// TestDiscoverHostile: directories that answer the managedBy search unlike
// AD. None may read as "the leaver manages nothing".
func TestDiscoverHostile(t *testing.T) {
	base := ldapdir.DefaultBaseDN
	cases := []struct {
		name     string
		fault    *ldapdir.Fault
		pageSize int
		want     error // nil: the honest answer
	}{
		{"honest, one entry a page", nil, 1, nil},
		{"a referral to a child domain instead of entries", &ldapdir.Fault{Op: "search", DN: base,
			Referral: "ldap://dc2.child.corp.example.test/DC=child,DC=corp,DC=example,DC=test"}, 0, control.ErrUnexpected},
		{"an empty success", &ldapdir.Fault{Op: "search", DN: base, Empty: true}, 0, control.ErrUnexpected},
		{"paging ignores the cookie", &ldapdir.Fault{Op: "search", DN: base, IgnoreCookie: true}, 1, control.ErrUnexpected},
		{"sizeLimitExceeded", &ldapdir.Fault{Op: "search", DN: base, Code: 4, Message: "Size limit exceeded"}, 0, control.ErrUnexpected},
		{"the base DN is not there", &ldapdir.Fault{Op: "search", DN: base, Code: 32}, 0, control.ErrUnexpected},
	}
	tally := hostile.NewTally(t, "ldap non-human discovery")
	p := startLdapdirNonHuman(t)
	owner := resolve(t, newClient(t, p.cfg), demo.ServiceOwner(people))
	// A second managed account (a computer), so a page of one must be followed.
	conn := dial(t, p)
	require.NoError(t, conn.Bind(p.cfg.BindDN, p.cfg.Password))
	add := goldap.NewAddRequest("CN=build01,"+samba.UsersDN, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user", "computer"})
	add.Attribute("sAMAccountName", []string{"build01$"})
	add.Attribute("managedBy", []string{owner.ID})
	require.NoError(t, conn.Add(add))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.cfg
			cfg.PageSize = tc.pageSize
			c := newClient(t, cfg)
			if tc.fault != nil {
				p.ldapdir.Fail(*tc.fault)
				t.Cleanup(p.ldapdir.ClearFaults)
			}
			owned, err := c.Discover(t.Context(), owner)
			// The claim is the list; it is true only when it names both accounts there are.
			tally.Record(t, hostile.Judge(err, err == nil, len(owned) == 2), fmt.Sprint(owned, err))
			if tc.want == nil {
				require.NoError(t, err)
				assert.Len(t, owned, 2)
				return
			}
			require.ErrorIs(t, err, tc.want)
			assert.Nil(t, owned)
		})
	}
}

// A computer's own account and a managed service account are never given a
// password: the machine or the DC keeps those.
func TestRotateRefusesMachineAccounts(t *testing.T) {
	p := startLdapdirNonHuman(t)
	c := newClient(t, p.cfg)
	conn := dial(t, p)
	require.NoError(t, conn.Bind(p.cfg.BindDN, p.cfg.Password))
	owner := resolve(t, c, demo.ServiceOwner(people))
	for name, classes := range map[string][]string{
		"web01": {"top", "person", "organizationalPerson", "user", "computer"},
		"gmsa1": {"top", "person", "organizationalPerson", "user", "computer", "msDS-GroupManagedServiceAccount"},
	} {
		add := goldap.NewAddRequest("CN="+name+","+samba.UsersDN, nil)
		add.Attribute("objectClass", classes)
		add.Attribute("sAMAccountName", []string{name + "$"})
		add.Attribute("userAccountControl", []string{"4096"})
		add.Attribute("managedBy", []string{owner.ID})
		require.NoError(t, conn.Add(add))
	}
	owned, err := c.Discover(t.Context(), owner)
	require.NoError(t, err)
	assert.Len(t, owned, 3, "svc-backup and both machines")
	store := newStore()
	for _, name := range []string{"web01", "gmsa1"} {
		o := control.Owned{Target: "ad", Kind: control.KindManagedAccount, ID: "CN=" + name + "," + samba.UsersDN, Secret: "offboard/ad/" + name}
		_, err := c.EnforceOwned(t.Context(), adldap.RotatePassword, o, control.OwnedParams{Token: "7a0e", Since: time.Now(), Store: store})
		require.ErrorIs(t, err, control.ErrPermanent, name)
		assert.Contains(t, err.Error(), "instead", name)
	}
	assert.Empty(t, store.Versions, "nothing stored for a password never set")
}
