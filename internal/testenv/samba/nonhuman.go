package samba

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"os"
	"strconv"
	"testing"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/sandbox/demo"
)

// SeedNonHuman adds issue 15's accounts to a running DC, as
// sandbox/ldapdir's Options.NonHuman does: demo.ManagedAccountSAM (a
// service account whose managedBy is demo.ServiceOwner) and demo.BreakGlassAD
// (in Domain Admins), both with UserPassword and enabled. They are added
// over LDAPS, not in the snapshot, so tests that do not ask never see them.
func SeedNonHuman(t testing.TB, dc *DC) {
	t.Helper()
	pem, err := os.ReadFile(dc.CAFile)
	if err != nil {
		t.Fatalf("samba: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := ldap.DialURL(dc.URL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatalf("samba: seed non-human accounts: %v", err)
	}
	defer conn.Close()
	if err := conn.Bind(dc.BindUPN, dc.Password); err != nil {
		t.Fatalf("samba: seed non-human accounts: bind: %v", err)
	}
	owner := UserDN(demo.ServiceOwner(demo.People(Seeded)))
	const normal, dontExpire = 0x200, 0x10000
	add := func(sam, description string, classes []string, uac int, extra map[string][]string) string {
		dn := "CN=" + sam + "," + UsersDN
		req := ldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", classes)
		req.Attribute("sAMAccountName", []string{sam})
		req.Attribute("userPrincipalName", []string{sam + "@corp.example.test"})
		req.Attribute("description", []string{description})
		req.Attribute("unicodePwd", []string{unicodePwd(UserPassword)})
		req.Attribute("userAccountControl", []string{strconv.Itoa(uac)})
		for k, v := range extra {
			req.Attribute(k, v)
		}
		if err := conn.Add(req); err != nil {
			t.Fatalf("samba: add %s: %v", dn, err)
		}
		return dn
	}
	// AD's schema allows managedBy on computer-derived accounts (computers,
	// managed service accounts), not on user objects: the service account is one.
	add(demo.ManagedAccountSAM, "Backup service account", []string{"top", "person", "organizationalPerson", "user", "computer"},
		normal|dontExpire, map[string][]string{"managedBy": {owner}})
	bg := add(demo.BreakGlassAD, "Break-glass domain administrator", []string{"top", "person", "organizationalPerson", "user"}, normal, nil)
	mod := ldap.NewModifyRequest("CN=Domain Admins,"+UsersDN, nil)
	mod.Add("member", []string{bg})
	if err := conn.Modify(mod); err != nil {
		t.Fatalf("samba: add %s to Domain Admins: %v", bg, err)
	}
}

// unicodePwd is AD's password form: the quoted password in UTF-16LE.
func unicodePwd(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}
