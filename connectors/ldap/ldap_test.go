package ldap_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	adldap "github.com/offboard/offboard/connectors/ldap"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/samba"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/ldapdir"
)

// peer is a directory the connector is tested against.
type peer struct {
	cfg          adldap.Config // the administrator over LDAPS
	startTLS     adldap.Config // the same over ldap:// + StartTLS
	userPassword string
	ldapdir      *ldapdir.Server // nil for Samba
}

// The demo people each subtest works on, so subtests never share state.
var (
	people      = demo.People(samba.Seeded)
	resolved    = people[0] // ada.lovelace1001, engineering: read only
	toggled     = people[1] // alan.lovelace1002: disable, enable
	scrambled   = people[2] // grace.lovelace1003: scramble_password
	deleted     = people[3] // edsger.lovelace1004: delete
	plainUser   = people[4] // barbara.lovelace1005: binds without admin rights
	regrouped   = people[9] // dennis.lovelace1010: all-staff, engineering, admins
	concurrency = people[5]
)

func startSamba(t *testing.T) peer {
	dc := samba.Start(t)
	cfg := adldap.Config{Name: "ad", URL: dc.URL, CAFile: dc.CAFile, BindDN: dc.BindUPN, Password: dc.Password, BaseDN: dc.BaseDN, Timeout: 10 * time.Second}
	st := cfg
	st.URL, st.StartTLS, st.BindDN = "ldap://127.0.0.1:389", true, dc.BindDN
	return peer{cfg: cfg, startTLS: st, userPassword: samba.UserPassword}
}

func startLdapdir(t *testing.T) peer {
	srv, err := ldapdir.New(ldapdir.Options{
		Addr: "127.0.0.1:0", PlainAddr: "127.0.0.1:0", Password: "Sandbox-Adm1n!",
		People: demo.People(samba.Seeded), CertDir: t.TempDir(),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(t.Context()) }()
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, <-done)
	})
	cfg := adldap.Config{Name: "ad", URL: srv.URL(), CAFile: srv.CAFile(), BindDN: "Administrator@corp.example.test",
		Password: "Sandbox-Adm1n!", BaseDN: ldapdir.DefaultBaseDN, Timeout: 10 * time.Second}
	st := cfg
	st.URL, st.StartTLS, st.BindDN = srv.PlainURL(), true, ldapdir.DefaultBindDN
	return peer{cfg: cfg, startTLS: st, userPassword: ldapdir.DefaultUserPassword, ldapdir: srv}
}

func TestConnector(t *testing.T) {
	for _, server := range []struct {
		name  string
		start func(*testing.T) peer
	}{
		{"samba", startSamba},
		{"ldapdir", startLdapdir},
	} {
		t.Run(server.name, func(t *testing.T) {
			p := server.start(t)
			t.Run("resolve", func(t *testing.T) { testResolve(t, p) })
			t.Run("disable and enable", func(t *testing.T) { testDisableEnable(t, p) })
			t.Run("scramble password", func(t *testing.T) { testScramble(t, p) })
			t.Run("remove groups", func(t *testing.T) { testRemoveGroups(t, p) })
			t.Run("delete", func(t *testing.T) { testDelete(t, p) })
			t.Run("errors", func(t *testing.T) { testErrors(t, p) })
			t.Run("starttls", func(t *testing.T) { testStartTLS(t, p) })
			t.Run("concurrent", func(t *testing.T) { testConcurrent(t, p) })
			t.Run("probe", func(t *testing.T) { testProbe(t, p) })
		})
	}
}

func newClient(t *testing.T, cfg adldap.Config) *adldap.Client {
	t.Helper()
	c, err := adldap.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func testResolve(t *testing.T, p peer) {
	c := newClient(t, p.cfg)
	dn := samba.UserDN(resolved)
	tests := []struct {
		name   string
		person control.Person
	}{
		{"by mail", control.Person{EmployeeID: resolved.EmployeeID, Email: resolved.Email}},
		{"by mail, other case", control.Person{Email: strings.ToUpper(resolved.Email)}},
		{"by sAMAccountName hint", control.Person{Email: "someone.else@example.test", Hints: map[string]string{"ad": resolved.Login}}},
		{"by DN hint", control.Person{Hints: map[string]string{"ad": dn}}},
		{"hint for another target is ignored", control.Person{Email: resolved.Email, Hints: map[string]string{"okta": "00u1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acct, err := c.Resolve(t.Context(), tc.person)
			require.NoError(t, err)
			assert.True(t, strings.EqualFold(dn, acct.ID), "ID %q, want %q", acct.ID, dn)
			assert.Equal(t, resolved.Login, acct.Login)
			assert.Equal(t, "ad", acct.Target)
		})
	}
	notFound := []control.Person{
		{Email: "nobody@example.test"},
		{Hints: map[string]string{"ad": "no.such.login"}},
		{Hints: map[string]string{"ad": "CN=Nobody,CN=Users," + p.cfg.BaseDN}},
	}
	for _, person := range notFound {
		_, err := c.Resolve(t.Context(), person)
		assert.ErrorIs(t, err, control.ErrNotFound, "%+v", person)
		var ce *control.Error
		if assert.ErrorAs(t, err, &ce) {
			assert.NotEmpty(t, ce.Searched, "no account only with a record of what was searched")
			t.Log(ce.Searched)
		}
	}
	// Nothing to search by is not "no account".
	_, err := c.Resolve(t.Context(), control.Person{EmployeeID: "E0"})
	assert.ErrorIs(t, err, control.ErrPermanent)
}

func testDisableEnable(t *testing.T, p peer) {
	c := newClient(t, p.cfg)
	acct := resolve(t, c, toggled)
	require.NoError(t, bindAs(t, p, acct.ID, p.userPassword), "an enabled user can bind")

	observeEnforceObserve(t, c, adldap.Disable, acct, control.Params{})
	assert.Equal(t, "514", readAttr(t, p, acct.ID, "userAccountControl"))
	err := bindAs(t, p, acct.ID, p.userPassword)
	require.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials), "bind after disable: %v", err)
	assert.Contains(t, err.Error(), "data 533", "AD's 'account disabled' sub-code")
	if p.ldapdir != nil {
		u, ok := p.ldapdir.User(toggled.Login)
		require.True(t, ok)
		assert.True(t, u.Disabled())
	}

	obs, err := c.Observe(t.Context(), adldap.Enable, acct, control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Holds, "enable does not hold on a disabled user")
	observeEnforceObserve(t, c, adldap.Enable, acct, control.Params{})
	assert.Equal(t, "512", readAttr(t, p, acct.ID, "userAccountControl"))
	assert.NoError(t, bindAs(t, p, acct.ID, p.userPassword), "enable restores the bind")
}

func testScramble(t *testing.T, p peer) {
	cfg := p.cfg
	cfg.ScramblePassword = true
	c := newClient(t, cfg)
	assert.Equal(t, []string{adldap.Disable, adldap.ScramblePassword}, c.Controls(control.Containment))
	assert.Equal(t, []string{adldap.Disable}, newClient(t, p.cfg).Controls(control.Containment))

	acct := resolve(t, c, scrambled)
	before := readAttr(t, p, acct.ID, "pwdLastSet")
	require.NoError(t, bindAs(t, p, acct.ID, p.userPassword))
	for range 2 { // repeating is harmless
		resp, err := c.Enforce(t.Context(), adldap.ScramblePassword, acct, control.Params{})
		require.NoError(t, err)
		assert.NotEmpty(t, resp.Digest)
	}
	obs, err := c.Observe(t.Context(), adldap.ScramblePassword, acct, control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Readable, "AD cannot read a password back")
	assert.NotEqual(t, before, readAttr(t, p, acct.ID, "pwdLastSet"))
	err = bindAs(t, p, acct.ID, p.userPassword)
	require.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials), "old password after scramble: %v", err)
	assert.Contains(t, err.Error(), "data 52e")
}

func testRemoveGroups(t *testing.T, p peer) {
	c := newClient(t, p.cfg)
	acct := resolve(t, c, regrouped)
	require.ElementsMatch(t, []string{"all-staff", "engineering", "admins"}, demo.GroupsOf(regrouped))
	assert.Equal(t, []string{adldap.RemoveGroups}, c.Controls(control.Removal))
	assert.Equal(t, []string{adldap.RemoveGroups}, c.Controls(control.RoleChange))

	// Role change: keep engineering (matched by cn, any case).
	keep := control.Params{KeepGroups: []string{"ENGINEERING"}}
	obs, err := c.Observe(t.Context(), adldap.RemoveGroups, acct, keep)
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.Contains(t, obs.Detail, "2 groups left")
	observeEnforceObserve(t, c, adldap.RemoveGroups, acct, keep)
	assert.False(t, isMember(t, p, "all-staff", acct.ID), "removed from all-staff's member")
	assert.False(t, isMember(t, p, "admins", acct.ID))
	assert.True(t, isMember(t, p, "engineering", acct.ID), "KeepGroups left engineering alone")
	assert.True(t, isMember(t, p, "all-staff", samba.UserDN(resolved)), "other members untouched")

	// Termination: everything goes.
	observeEnforceObserve(t, c, adldap.RemoveGroups, acct, control.Params{})
	assert.False(t, isMember(t, p, "engineering", acct.ID))
	assert.Empty(t, readValues(t, p, acct.ID, "memberOf"))
	if p.ldapdir != nil {
		u, _ := p.ldapdir.User(regrouped.Login)
		assert.Empty(t, u.Values("memberOf"))
	}
}

func testDelete(t *testing.T, p peer) {
	c := newClient(t, p.cfg)
	acct := resolve(t, c, deleted)
	assert.Equal(t, []string{adldap.Delete}, c.Controls(control.Deletion))
	assert.Equal(t, []string{adldap.Enable}, c.Controls(control.Restore))

	// The user object holds a child (as ActiveSync devices do): AD refuses a
	// plain delete of a non-leaf.
	admin := dial(t, p)
	require.NoError(t, admin.Bind(p.cfg.BindDN, p.cfg.Password))
	child := "CN=apps," + acct.ID
	add := goldap.NewAddRequest(child, nil)
	add.Attribute("objectClass", []string{"classStore"})
	require.NoError(t, admin.Add(add))
	err := admin.Del(goldap.NewDelRequest(acct.ID, nil))
	require.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultNotAllowedOnNonLeaf), "%v", err)

	obs, err := c.Observe(t.Context(), adldap.Delete, acct, control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	_, err = c.Enforce(t.Context(), adldap.Delete, acct, control.Params{})
	require.NoError(t, err, "deleted with its subtree")
	_, err = admin.Search(goldap.NewSearchRequest(child, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
	assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject), "the child went with the user: %v", err)
	for _, name := range []string{adldap.Delete, adldap.Disable, adldap.RemoveGroups} {
		obs, err = c.Observe(t.Context(), name, acct, control.Params{})
		require.NoError(t, err)
		assert.True(t, obs.Holds && obs.Gone, "%s on a deleted user: %+v", name, obs)
	}
	assert.False(t, isMember(t, p, "all-staff", acct.ID), "AD drops a deleted user from member")
	_, err = c.Resolve(t.Context(), control.Person{Email: deleted.Email})
	assert.ErrorIs(t, err, control.ErrNotFound)

	for _, name := range []string{adldap.Delete, adldap.Disable, adldap.Enable, adldap.RemoveGroups} {
		_, err = c.Enforce(t.Context(), name, acct, control.Params{})
		assert.ErrorIs(t, err, control.ErrNotFound, "%s on a deleted user", name)
	}
}

func testErrors(t *testing.T, p peer) {
	acct := control.Account{Target: "ad", ID: samba.UserDN(resolved), Login: resolved.Login}
	person := control.Person{Email: resolved.Email}

	t.Run("wrong password", func(t *testing.T) {
		cfg := p.cfg
		cfg.Password = "Wr0ng-Secret-Value"
		_, err := newClient(t, cfg).Resolve(t.Context(), person)
		require.ErrorIs(t, err, control.ErrUnauthorized)
		assert.NotContains(t, err.Error(), cfg.Password)
		assert.Contains(t, err.Error(), cfg.BindDN, "names the account whose bind failed")
	})
	t.Run("no password", func(t *testing.T) {
		cfg := p.cfg
		cfg.Password = ""
		_, err := newClient(t, cfg).Resolve(t.Context(), person)
		assert.ErrorIs(t, err, control.ErrUnauthorized)
	})
	t.Run("bind account lacks rights", func(t *testing.T) {
		cfg := p.cfg
		cfg.BindDN, cfg.Password = plainUser.Email, p.userPassword
		c := newClient(t, cfg)
		obs, err := c.Observe(t.Context(), adldap.Disable, acct, control.Params{})
		require.NoError(t, err, "any user may read")
		assert.False(t, obs.Holds)
		_, err = c.Enforce(t.Context(), adldap.Disable, acct, control.Params{})
		require.ErrorIs(t, err, control.ErrUnauthorized)
		assert.Contains(t, err.Error(), "Write userAccountControl", "names the missing right")
		_, err = c.Enforce(t.Context(), adldap.Delete, acct, control.Params{})
		require.ErrorIs(t, err, control.ErrUnauthorized)
		assert.Equal(t, "512", readAttr(t, p, acct.ID, "userAccountControl"), "nothing changed")
	})
	t.Run("untrusted CA is permanent", func(t *testing.T) {
		cfg := p.cfg
		cfg.CAFile = otherCA(t)
		_, err := newClient(t, cfg).Resolve(t.Context(), person)
		require.ErrorIs(t, err, control.ErrPermanent)
		assert.Contains(t, err.Error(), "CAFile")
	})
	t.Run("wrong server name is permanent", func(t *testing.T) {
		cfg := p.cfg
		cfg.ServerName = "intruder.example.test"
		_, err := newClient(t, cfg).Resolve(t.Context(), person)
		assert.ErrorIs(t, err, control.ErrPermanent)
		cfg = p.startTLS
		cfg.ServerName = "intruder.example.test"
		_, err = newClient(t, cfg).Resolve(t.Context(), person)
		assert.ErrorIs(t, err, control.ErrPermanent, "the same over StartTLS")
	})
	t.Run("nothing listening is transient", func(t *testing.T) {
		cfg := p.cfg
		cfg.URL = "ldaps://" + closedAddr(t)
		_, err := newClient(t, cfg).Resolve(t.Context(), person)
		assert.ErrorIs(t, err, control.ErrTransient)
	})
	t.Run("missing entry", func(t *testing.T) {
		c := newClient(t, p.cfg)
		gone := control.Account{Target: "ad", ID: "CN=Nobody,CN=Users," + p.cfg.BaseDN}
		_, err := c.Enforce(t.Context(), adldap.Disable, gone, control.Params{})
		assert.ErrorIs(t, err, control.ErrNotFound)
		obs, err := c.Observe(t.Context(), adldap.Disable, gone, control.Params{})
		require.NoError(t, err)
		assert.True(t, obs.Gone && obs.Holds)
	})
	t.Run("unknown control", func(t *testing.T) {
		c := newClient(t, p.cfg)
		_, err := c.Enforce(t.Context(), "wipe_laptop", acct, control.Params{})
		assert.ErrorIs(t, err, control.ErrUnknownControl)
		_, err = c.Observe(t.Context(), "wipe_laptop", acct, control.Params{})
		assert.ErrorIs(t, err, control.ErrUnknownControl)
	})
	if p.ldapdir != nil {
		t.Run("injected faults", func(t *testing.T) { testFaults(t, p) })
	}
}

// testFaults checks the classification of what a real DC cannot be made to
// say on demand.
func testFaults(t *testing.T, p peer) {
	acct := control.Account{Target: "ad", ID: samba.UserDN(resolved)}
	tests := []struct {
		name  string
		fault ldapdir.Fault
		want  error
	}{
		{"busy", ldapdir.Fault{Op: "search", Code: 51, Message: "server busy"}, control.ErrTransient},
		{"unavailable", ldapdir.Fault{Op: "search", Code: 52, Message: "shutting down"}, control.ErrTransient},
		{"admin limit", ldapdir.Fault{Op: "search", Code: 11, Message: "admin limit exceeded"}, control.ErrRateLimited},
		{"too many", ldapdir.Fault{Op: "search", Code: 51, Message: "too many concurrent searches"}, control.ErrRateLimited},
		{"constraint", ldapdir.Fault{Op: "search", Code: 19, Message: "constraint violation"}, control.ErrPermanent},
		{"other", ldapdir.Fault{Op: "search", Code: 80, Message: "internal error"}, control.ErrPermanent},
		{"strong auth", ldapdir.Fault{Op: "bind", Code: 8, Message: "BindSimple: Transport encryption required."}, control.ErrUnauthorized},
		{"server hangs", ldapdir.Fault{Op: "search", Hang: true}, control.ErrTransient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.cfg
			cfg.Timeout = 300 * time.Millisecond
			c := newClient(t, cfg)
			tc.fault.Count = 1
			p.ldapdir.Fail(tc.fault)
			t.Cleanup(p.ldapdir.ClearFaults)
			_, err := c.Observe(t.Context(), adldap.Disable, acct, control.Params{})
			require.ErrorIs(t, err, tc.want)
			var ce *control.Error
			require.ErrorAs(t, err, &ce)
			if tc.want == control.ErrRateLimited {
				assert.Positive(t, ce.RetryAfter)
			}
			obs, err := c.Observe(t.Context(), adldap.Disable, acct, control.Params{})
			require.NoError(t, err, "the fault fired once")
			assert.False(t, obs.Holds)
		})
	}
	t.Run("modify busy", func(t *testing.T) {
		c := newClient(t, p.cfg)
		p.ldapdir.Fail(ldapdir.Fault{Op: "modify", Code: 51, Message: "busy", Count: 1})
		_, err := c.Enforce(t.Context(), adldap.Disable, acct, control.Params{})
		require.ErrorIs(t, err, control.ErrTransient)
		u, _ := p.ldapdir.User(resolved.Login)
		assert.False(t, u.Disabled(), "a failed modify changed nothing")
	})
	t.Run("pooled connection dropped by the server", func(t *testing.T) {
		c := newClient(t, p.cfg)
		_, err := c.Observe(t.Context(), adldap.Disable, acct, control.Params{})
		require.NoError(t, err)
		p.ldapdir.DropConnections()
		obs, err := c.Observe(t.Context(), adldap.Disable, acct, control.Params{})
		require.NoError(t, err, "a dead pooled connection is replaced, not reported")
		assert.True(t, obs.Readable)
	})
}

func testStartTLS(t *testing.T, p peer) {
	c := newClient(t, p.startTLS)
	acct, err := c.Resolve(t.Context(), control.Person{Email: resolved.Email})
	require.NoError(t, err)
	assert.Equal(t, resolved.Login, acct.Login)

	cfg := p.startTLS
	cfg.StartTLS = false
	_, err = adldap.New(cfg)
	assert.ErrorContains(t, err, "StartTLS", "plain ldap:// without StartTLS is refused")
}

func testConcurrent(t *testing.T, p peer) {
	c := newClient(t, p.cfg)
	acct := resolve(t, c, concurrency)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := c.Observe(t.Context(), adldap.RemoveGroups, acct, control.Params{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

// observeEnforceObserve runs the workflow's sequence, then repeats the
// enforce to show it is harmless.
func observeEnforceObserve(t *testing.T, c *adldap.Client, name string, acct control.Account, params control.Params) {
	t.Helper()
	before, err := c.Observe(t.Context(), name, acct, params)
	require.NoError(t, err)
	require.True(t, before.Readable)
	require.False(t, before.Holds, "%s already holds before enforce: %s", name, before.Detail)
	resp, err := c.Enforce(t.Context(), name, acct, params)
	require.NoError(t, err)
	assert.NotEmpty(t, resp.Digest)
	after, err := c.Observe(t.Context(), name, acct, params)
	require.NoError(t, err)
	require.True(t, after.Holds, "%s does not hold after enforce: %s", name, after.Detail)
	assert.NotEqual(t, before.Call.Digest, after.Call.Digest, "the read-back saw the change")
	_, err = c.Enforce(t.Context(), name, acct, params)
	require.NoError(t, err, "repeating %s", name)
	again, err := c.Observe(t.Context(), name, acct, params)
	require.NoError(t, err)
	assert.True(t, again.Holds)
}

func resolve(t *testing.T, c *adldap.Client, p demo.Person) control.Account {
	t.Helper()
	acct, err := c.Resolve(t.Context(), control.Person{EmployeeID: p.EmployeeID, Email: p.Email})
	require.NoError(t, err)
	return acct
}

// admin opens a raw connection as the administrator, to look at the
// directory without going through the connector.
func dial(t *testing.T, p peer) *goldap.Conn {
	t.Helper()
	pem, err := os.ReadFile(p.cfg.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := goldap.DialURL(p.cfg.URL, goldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func bindAs(t *testing.T, p peer, dn, password string) error {
	return dial(t, p).Bind(dn, password)
}

func readValues(t *testing.T, p peer, dn, attr string) []string {
	t.Helper()
	conn := dial(t, p)
	require.NoError(t, conn.Bind(p.cfg.BindDN, p.cfg.Password))
	res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{attr}, nil))
	require.NoError(t, err)
	require.Len(t, res.Entries, 1)
	return res.Entries[0].GetAttributeValues(attr)
}

func readAttr(t *testing.T, p peer, dn, attr string) string {
	t.Helper()
	v := readValues(t, p, dn, attr)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// isMember reads the group entry's member attribute (not the user's memberOf).
func isMember(t *testing.T, p peer, group, userDN string) bool {
	t.Helper()
	for _, m := range readValues(t, p, samba.GroupDN(group), "member") {
		if strings.EqualFold(m, userDN) {
			return true
		}
	}
	return false
}

// otherCA writes a CA that did not sign the server's certificate.
func otherCA(t *testing.T) string {
	t.Helper()
	srv, err := ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: "x", CertDir: t.TempDir()})
	require.NoError(t, err)
	srv.Close()
	return srv.CAFile()
}

// closedAddr is a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func testProbe(t *testing.T, p peer) {
	probe, err := newClient(t, p.cfg).Probe(t.Context())
	require.NoError(t, err)
	require.Len(t, probe.Checks, 3)
	assert.Equal(t, "bind as "+p.cfg.BindDN+": ok", probe.Checks[0])
	assert.Contains(t, probe.Checks[1], p.cfg.BaseDN, "the naming contexts hold the base DN")
	assert.Equal(t, "read "+p.cfg.BaseDN+": ok", probe.Checks[2])

	cfg := p.cfg
	cfg.BaseDN = "DC=wrong,DC=test"
	_, err = newClient(t, cfg).Probe(t.Context())
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "DC=wrong,DC=test is not in this server's naming contexts")
	assert.Contains(t, err.Error(), "ldap ad:", "names the target")

	cfg = p.cfg
	cfg.Password = "Wr0ng-Secret-Value"
	_, err = newClient(t, cfg).Probe(t.Context())
	require.ErrorIs(t, err, control.ErrUnauthorized)
	assert.Contains(t, err.Error(), "check the bind DN/UPN and its password")
	assert.NotContains(t, err.Error(), cfg.Password)
}
