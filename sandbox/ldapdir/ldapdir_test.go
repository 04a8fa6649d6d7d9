package ldapdir_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"unicode/utf16"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/ldapdir"
)

const (
	adminPassword = "Sandbox-Adm1n!"
	users         = "CN=Users," + ldapdir.DefaultBaseDN
)

func start(t *testing.T, people int) *ldapdir.Server {
	t.Helper()
	srv, err := ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", PlainAddr: "127.0.0.1:0", Password: adminPassword,
		People: demo.People(people), CertDir: t.TempDir()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done, "Serve returns nil when its context ends")
	})
	return srv
}

func tlsConfig(t *testing.T, srv *ldapdir.Server) *tls.Config {
	pem, err := os.ReadFile(srv.CAFile())
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return &tls.Config{RootCAs: pool}
}

func dial(t *testing.T, srv *ldapdir.Server) *goldap.Conn {
	t.Helper()
	conn, err := goldap.DialURL(srv.URL(), goldap.DialWithTLSConfig(tlsConfig(t, srv)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func admin(t *testing.T, srv *ldapdir.Server) *goldap.Conn {
	t.Helper()
	conn := dial(t, srv)
	require.NoError(t, conn.Bind("Administrator@corp.example.test", adminPassword))
	return conn
}

func search(conn *goldap.Conn, base string, scope int, filter string, attrs ...string) (*goldap.SearchResult, error) {
	return conn.Search(goldap.NewSearchRequest(base, scope, goldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
}

func TestBind(t *testing.T) {
	srv := start(t, 3)
	ada := demo.People(1)[0]
	tests := []struct {
		name, user, password string
		code                 uint16
		diag                 string
	}{
		{"admin by DN", ldapdir.DefaultBindDN, adminPassword, 0, ""},
		{"admin by UPN", "administrator@CORP.example.test", adminPassword, 0, ""},
		{"user by UPN", ada.Email, ldapdir.DefaultUserPassword, 0, ""},
		{"user by DN", "CN=Ada Lovelace," + users, ldapdir.DefaultUserPassword, 0, ""},
		{"wrong password", ada.Email, "nope", 49, "data 52e"},
		{"unknown user", "ghost@example.test", "nope", 49, "data 52e"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := dial(t, srv).Bind(tc.user, tc.password)
			if tc.code == 0 {
				assert.NoError(t, err)
				return
			}
			assert.True(t, goldap.IsErrorWithCode(err, tc.code), "%v", err)
			assert.ErrorContains(t, err, tc.diag)
		})
	}

	t.Run("anonymous reads only the rootDSE", func(t *testing.T) {
		conn := dial(t, srv)
		res, err := search(conn, "", goldap.ScopeBaseObject, "(objectClass=*)")
		require.NoError(t, err)
		assert.Equal(t, ldapdir.DefaultBaseDN, res.Entries[0].GetAttributeValue("defaultNamingContext"))
		_, err = search(conn, ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(objectClass=user)")
		assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultOperationsError), "%v", err)
	})
	t.Run("plain LDAP needs StartTLS", func(t *testing.T) {
		conn, err := goldap.DialURL(srv.PlainURL())
		require.NoError(t, err)
		defer conn.Close()
		err = conn.Bind(ldapdir.DefaultBindDN, adminPassword)
		require.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultStrongAuthRequired), "%v", err)
		cfg := tlsConfig(t, srv)
		cfg.ServerName = "localhost"
		require.NoError(t, conn.StartTLS(cfg))
		assert.NoError(t, conn.Bind(ldapdir.DefaultBindDN, adminPassword))
	})
}

func TestSearch(t *testing.T) {
	srv := start(t, demo.Size)
	conn := admin(t, srv)
	ada := "CN=Ada Lovelace," + users
	// Disable one user so the bitwise rule has something to find.
	m := goldap.NewModifyRequest(ada, nil)
	m.Replace("userAccountControl", []string{"514"})
	require.NoError(t, conn.Modify(m))

	tests := []struct {
		name   string
		base   string
		scope  int
		filter string
		want   int
	}{
		{"equality, any case", ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(SAMACCOUNTNAME=Ada.Lovelace1001)", 1},
		{"and/or/not", ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(&(objectClass=user)(!(objectClass=computer))(|(mail=ada.lovelace1001@example.test)(userPrincipalName=alan.lovelace1002@example.test)))", 2},
		{"present", ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(employeeID=*)", demo.Size},
		{"substrings", ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(mail=ada.*@example.test)", demo.Size / 10},
		{"bitwise and", ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(userAccountControl:1.2.840.113556.1.4.803:=2)", 1},
		{"objectCategory shorthand", ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(&(objectCategory=person)(sAMAccountName=ada.lovelace1001))", 1},
		{"memberOf computed", ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(memberOf=cn=ADMINS," + users + ")", demo.Size / 10},
		{"greater or equal", ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(userAccountControl>=514)", 1},
		{"base scope", ada, goldap.ScopeBaseObject, "(objectClass=*)", 1},
		{"one level", ldapdir.DefaultBaseDN, goldap.ScopeSingleLevel, "(objectClass=*)", 1},
		{"groups", users, goldap.ScopeSingleLevel, "(objectClass=group)", len(demo.Groups) + 2}, // and Domain Users, Domain Admins
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := conn.SearchWithPaging(goldap.NewSearchRequest(tc.base, tc.scope, goldap.NeverDerefAliases, 0, 0, false,
				tc.filter, []string{"1.1"}, nil), 100)
			require.NoError(t, err)
			assert.Len(t, res.Entries, tc.want)
		})
	}

	t.Run("without paging AD stops at 1000", func(t *testing.T) {
		res, err := search(conn, ldapdir.DefaultBaseDN, goldap.ScopeWholeSubtree, "(objectClass=*)", "1.1")
		assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded), "%v", err)
		assert.Len(t, res.Entries, 1000)
	})
	t.Run("missing base", func(t *testing.T) {
		_, err := search(conn, "CN=Nobody,"+users, goldap.ScopeBaseObject, "(objectClass=*)")
		assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject), "%v", err)
	})
	t.Run("attributes", func(t *testing.T) {
		res, err := search(conn, "CN=Dennis Lovelace,"+users, goldap.ScopeBaseObject, "(objectClass=*)", "sAMAccountName", "memberOf")
		require.NoError(t, err)
		e := res.Entries[0]
		assert.Equal(t, "dennis.lovelace1010", e.GetAttributeValue("sAMAccountName"))
		assert.ElementsMatch(t, []string{"CN=all-staff," + users, "CN=engineering," + users, "CN=admins," + users}, e.GetAttributeValues("memberOf"))
		assert.Empty(t, e.GetAttributeValue("mail"), "only what was asked for")
		res, err = search(conn, "CN=Dennis Lovelace,"+users, goldap.ScopeBaseObject, "(objectClass=*)")
		require.NoError(t, err)
		for _, want := range []string{"objectClass", "cn", "sAMAccountName", "userPrincipalName", "mail", "userAccountControl", "memberOf", "distinguishedName"} {
			assert.NotEmpty(t, res.Entries[0].GetAttributeValues(want), want)
		}
		assert.Empty(t, res.Entries[0].GetAttributeValues("unicodePwd"))
	})
}

func TestModify(t *testing.T) {
	srv := start(t, 20)
	conn := admin(t, srv)
	dennis := "CN=Dennis Lovelace," + users
	modify := func(conn *goldap.Conn, dn string, controls []goldap.Control, f func(*goldap.ModifyRequest)) error {
		m := goldap.NewModifyRequest(dn, controls)
		f(m)
		return conn.Modify(m)
	}
	permissive := []goldap.Control{goldap.NewControlString(goldap.ControlTypeMicrosoftPermissiveModify, false, "")}
	tests := []struct {
		name     string
		dn       string
		controls []goldap.Control
		change   func(*goldap.ModifyRequest)
		code     uint16
	}{
		{"memberOf is read-only", dennis, nil, func(m *goldap.ModifyRequest) { m.Replace("memberOf", []string{"CN=sales," + users}) }, 53},
		{"member not there", "CN=sales," + users, nil, func(m *goldap.ModifyRequest) { m.Delete("member", []string{dennis}) }, 53},
		{"member not there, permissive (Samba still refuses)", "CN=sales," + users, permissive, func(m *goldap.ModifyRequest) { m.Delete("member", []string{dennis}) }, 53},
		{"member already there", "CN=admins," + users, nil, func(m *goldap.ModifyRequest) { m.Add("member", []string{dennis}) }, 20},
		{"member already there, permissive", "CN=admins," + users, permissive, func(m *goldap.ModifyRequest) { m.Add("member", []string{dennis}) }, 0},
		{"member must exist", "CN=admins," + users, nil, func(m *goldap.ModifyRequest) { m.Add("member", []string{"CN=Ghost," + users}) }, 32},
		{"no such entry", "CN=Ghost," + users, nil, func(m *goldap.ModifyRequest) { m.Replace("userAccountControl", []string{"514"}) }, 32},
		{"userAccountControl syntax", dennis, nil, func(m *goldap.ModifyRequest) { m.Replace("userAccountControl", []string{"off"}) }, 21},
		{"weak password", dennis, nil, func(m *goldap.ModifyRequest) { m.Replace("unicodePwd", []string{unicodePwd("abc")}) }, 19},
		{"unquoted password", dennis, nil, func(m *goldap.ModifyRequest) { m.Replace("unicodePwd", []string{"Plain-Text-1"}) }, 19},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := modify(conn, tc.dn, tc.controls, tc.change)
			if tc.code == 0 {
				assert.NoError(t, err)
				return
			}
			assert.True(t, goldap.IsErrorWithCode(err, tc.code), "want %d, got %v", tc.code, err)
		})
	}

	t.Run("a failed change changes nothing", func(t *testing.T) {
		err := modify(conn, dennis, nil, func(m *goldap.ModifyRequest) {
			m.Replace("department", []string{"sales"})
			m.Replace("memberOf", nil)
		})
		require.Error(t, err)
		u, _ := srv.User("dennis.lovelace1010")
		assert.Equal(t, "engineering", u.Get("department"))
	})
	t.Run("remove a member", func(t *testing.T) {
		require.NoError(t, modify(conn, "CN=admins,"+users, nil, func(m *goldap.ModifyRequest) { m.Delete("member", []string{dennis}) }))
		g, ok := srv.Group("admins")
		require.True(t, ok)
		assert.NotContains(t, g.Values("member"), dennis)
		u, _ := srv.User("dennis.lovelace1010")
		assert.ElementsMatch(t, []string{"CN=all-staff," + users, "CN=engineering," + users}, u.Values("memberOf"))
	})
	t.Run("set a password", func(t *testing.T) {
		require.NoError(t, modify(conn, dennis, nil, func(m *goldap.ModifyRequest) { m.Replace("unicodePwd", []string{unicodePwd("New-Passw0rd")}) }))
		assert.Error(t, dial(t, srv).Bind(dennis, ldapdir.DefaultUserPassword))
		assert.NoError(t, dial(t, srv).Bind(dennis, "New-Passw0rd"))
	})
	t.Run("disabled users cannot bind", func(t *testing.T) {
		require.NoError(t, modify(conn, dennis, nil, func(m *goldap.ModifyRequest) { m.Replace("userAccountControl", []string{"514"}) }))
		err := dial(t, srv).Bind(dennis, "New-Passw0rd")
		assert.ErrorContains(t, err, "data 533")
		u, _ := srv.User("dennis.lovelace1010")
		assert.True(t, u.Disabled())
	})
	t.Run("only the administrator writes", func(t *testing.T) {
		user := dial(t, srv)
		require.NoError(t, user.Bind("ada.lovelace1001@example.test", ldapdir.DefaultUserPassword))
		err := modify(user, "CN=Alan Lovelace,"+users, nil, func(m *goldap.ModifyRequest) { m.Replace("userAccountControl", []string{"514"}) })
		assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultInsufficientAccessRights), "%v", err)
		err = user.Del(goldap.NewDelRequest("CN=Alan Lovelace,"+users, nil))
		assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultInsufficientAccessRights), "%v", err)
	})
}

func TestDelete(t *testing.T) {
	srv := start(t, 20)
	conn := admin(t, srv)
	ada := "CN=Ada Lovelace," + users
	require.NoError(t, conn.Del(goldap.NewDelRequest(ada, nil)))
	_, ok := srv.User("ada.lovelace1001")
	assert.False(t, ok)
	g, _ := srv.Group("all-staff")
	assert.NotContains(t, g.Values("member"), ada, "deleting a user drops it from member")
	assert.Len(t, g.Values("member"), 19)

	err := conn.Del(goldap.NewDelRequest(ada, nil))
	assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject), "%v", err)
	err = conn.Del(goldap.NewDelRequest(users, nil))
	assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultNotAllowedOnNonLeaf), "%v", err)
	err = conn.Del(goldap.NewDelRequest(ldapdir.DefaultBindDN, nil))
	assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultUnwillingToPerform), "%v", err)
}

func TestCAKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	first, err := ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: "x", CertDir: dir})
	require.NoError(t, err)
	first.Close()
	before, err := os.ReadFile(first.CAFile())
	require.NoError(t, err)
	second, err := ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", Password: "x", CertDir: dir})
	require.NoError(t, err)
	second.Close()
	after, err := os.ReadFile(second.CAFile())
	require.NoError(t, err)
	assert.Equal(t, before, after)

	_, err = ldapdir.New(ldapdir.Options{Addr: "127.0.0.1:0", CertDir: dir})
	assert.ErrorContains(t, err, "Password")
}

func TestAdminHandler(t *testing.T) {
	srv := start(t, 3)
	h := httptest.NewServer(srv.Handler())
	defer h.Close()
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(h.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, body := get("/_sandbox/users/ada.lovelace1001")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "CN=Ada Lovelace,"+users, body["dn"])
	code, _ = get("/_sandbox/users/nobody")
	assert.Equal(t, http.StatusNotFound, code)
	code, body = get("/_sandbox/groups/all-staff")
	require.Equal(t, http.StatusOK, code)
	assert.Len(t, body["attributes"].(map[string]any)["member"], 3)

	resp, err := http.Post(h.URL+"/_sandbox/faults", "application/json", strings.NewReader(`{"op":"bind","code":52,"message":"down","count":1}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	err = dial(t, srv).Bind(ldapdir.DefaultBindDN, adminPassword)
	assert.True(t, goldap.IsErrorWithCode(err, goldap.LDAPResultUnavailable), "%v", err)
	assert.NoError(t, dial(t, srv).Bind(ldapdir.DefaultBindDN, adminPassword), "count 1: fired once")
}

// unicodePwd is AD's password encoding: the quoted string in UTF-16LE.
func unicodePwd(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}
