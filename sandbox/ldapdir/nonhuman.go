package ldapdir

import (
	"strconv"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/sandbox/demo"
)

// uacDontExpirePassword is DONT_EXPIRE_PASSWORD, usual on service accounts.
const uacDontExpirePassword = 0x10000

// seedNonHuman adds Options.NonHuman's accounts, the way
// internal/testenv/samba seeds them on the real DC: the service account
// demo.ManagedAccountSAM, managedBy demo.ServiceOwner, and the break-glass
// account demo.BreakGlassAD in Domain Admins (adminCount=1, as SDProp sets).
func seedNonHuman(d *directory, o Options, newUser func(dn, cn, sam, upn string) *entry) error {
	users := "CN=Users," + o.BaseDN
	domain := domainOf(o.BaseDN)
	owner := d.lookup("CN=" + goldap.EscapeDN(demo.ServiceOwner(o.People).Name()) + "," + users)
	svc := newUser("CN="+demo.ManagedAccountSAM+","+users, demo.ManagedAccountSAM, demo.ManagedAccountSAM, demo.ManagedAccountSAM+"@"+domain)
	// AD's schema allows managedBy on computer-derived accounts (computers,
	// managed service accounts), not on user objects: the service account is one.
	svc.set("objectClass", "top", "person", "organizationalPerson", "user", "computer")
	svc.set("userAccountControl", strconv.Itoa(uacNormalAccount|uacDontExpirePassword))
	svc.set("description", "Backup service account")
	if owner != nil {
		svc.set("managedBy", owner.dn)
	}
	bg := newUser("CN="+demo.BreakGlassAD+","+users, demo.BreakGlassAD, demo.BreakGlassAD, demo.BreakGlassAD+"@"+domain)
	bg.set("description", "Break-glass domain administrator")
	bg.set("adminCount", "1")
	for _, e := range []*entry{svc, bg} {
		if err := d.add(e); err != nil {
			return err
		}
		d.passwords[key(e.rdns)] = o.UserPassword
	}
	admins := d.lookup("CN=Domain Admins," + users)
	admins.set("member", append(admins.get("member"), bg.dn)...)
	return nil
}

// mayBeManaged is AD's schema on managedBy: computers and the classes
// derived from them (managed service accounts) may have it, groups and
// containers too, a plain user may not.
func mayBeManaged(e *entry) bool {
	return e.hasClass("computer") || !e.hasClass("user")
}

func managedByViolation(dn string) string {
	return "00002014: objectclass_attrs: attribute 'managedBy' on entry '" + dn + "' does not exist in the specified objectclasses!"
}
