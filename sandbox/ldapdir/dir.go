package ldapdir

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/sandbox/demo"
)

// AD's flags and constants the seed uses.
const (
	uacNormalAccount = 0x200
	uacDisabled      = 0x2
	groupTypeGlobal  = "-2147483646" // global security group
	samUserAccount   = "805306368"
	samGroup         = "268435456"
)

// Entry is a copy of one directory entry, attribute names as AD spells them.
type Entry struct {
	DN    string              `json:"dn"`
	Attrs map[string][]string `json:"attributes"`
}

// Get returns the first value of the attribute (any case), or "".
func (e Entry) Get(name string) string {
	if v := e.Values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns the attribute's values (any case).
func (e Entry) Values(name string) []string {
	for k, v := range e.Attrs {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// Disabled reports whether userAccountControl has ACCOUNTDISABLE.
func (e Entry) Disabled() bool {
	uac, _ := strconv.ParseInt(e.Get("userAccountControl"), 10, 64)
	return uac&uacDisabled != 0
}

// attr is one attribute: the name as first written, and its values.
type attr struct {
	name string
	vals []string
}

type entry struct {
	dn    string
	rdns  []string // normalised RDNs, leaf first
	attrs map[string]*attr
	order []string // lower-case names in insertion order, for stable output
	// members caches the normalised DNs in member; nil when stale.
	members map[string]bool
}

// hasMember reports whether member holds the entry with these RDNs.
func (e *entry) hasMember(rdns []string) bool {
	if e.members == nil {
		e.members = map[string]bool{}
		for _, m := range e.get("member") {
			if n, err := normDN(m); err == nil {
				e.members[key(n)] = true
			}
		}
	}
	return e.members[key(rdns)]
}

func (e *entry) get(name string) []string {
	if a := e.attrs[strings.ToLower(name)]; a != nil {
		return a.vals
	}
	return nil
}

func (e *entry) first(name string) string {
	if v := e.get(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (e *entry) set(name string, vals ...string) {
	k := strings.ToLower(name)
	if k == "member" {
		e.members = nil
	}
	if len(vals) == 0 {
		if _, ok := e.attrs[k]; ok {
			delete(e.attrs, k)
			e.order = slices.DeleteFunc(e.order, func(s string) bool { return s == k })
		}
		return
	}
	if a, ok := e.attrs[k]; ok {
		a.vals = vals
		return
	}
	e.attrs[k] = &attr{name: name, vals: vals}
	e.order = append(e.order, k)
}

func (e *entry) hasClass(class string) bool {
	return slices.ContainsFunc(e.get("objectClass"), func(c string) bool { return strings.EqualFold(c, class) })
}

func (e *entry) clone() *entry {
	c := &entry{dn: e.dn, rdns: e.rdns, attrs: make(map[string]*attr, len(e.attrs)), order: slices.Clone(e.order)}
	for k, a := range e.attrs {
		c.attrs[k] = &attr{name: a.name, vals: slices.Clone(a.vals)}
	}
	return c
}

// normDN parses a DN into lower-case "type=value" RDNs, leaf first.
func normDN(dn string) ([]string, error) {
	if strings.TrimSpace(dn) == "" {
		return nil, nil
	}
	parsed, err := goldap.ParseDN(dn)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(parsed.RDNs))
	for i, rdn := range parsed.RDNs {
		parts := make([]string, len(rdn.Attributes))
		for j, a := range rdn.Attributes {
			parts[j] = strings.ToLower(a.Type) + "=" + strings.ToLower(a.Value)
		}
		slices.Sort(parts)
		out[i] = strings.Join(parts, "+")
	}
	return out, nil
}

func key(rdns []string) string { return strings.Join(rdns, ",") }

// under reports whether rdns is base or below it.
func under(rdns, base []string) bool {
	return len(rdns) >= len(base) && slices.Equal(rdns[len(rdns)-len(base):], base)
}

// directory is the tree; the server guards it with its mutex.
type directory struct {
	base      []string
	entries   map[string]*entry
	order     []string // keys in insertion order
	passwords map[string]string
}

func (d *directory) add(e *entry) error {
	rdns, err := normDN(e.dn)
	if err != nil {
		return err
	}
	e.rdns = rdns
	k := key(rdns)
	if _, ok := d.entries[k]; ok {
		return fmt.Errorf("entry %s exists", e.dn)
	}
	e.set("distinguishedName", e.dn)
	d.entries[k] = e
	d.order = append(d.order, k)
	return nil
}

func (d *directory) lookup(dn string) *entry {
	rdns, err := normDN(dn)
	if err != nil {
		return nil
	}
	return d.entries[key(rdns)]
}

func (d *directory) remove(e *entry) {
	k := key(e.rdns)
	delete(d.entries, k)
	delete(d.passwords, k)
	d.order = slices.DeleteFunc(d.order, func(s string) bool { return s == k })
	// member and managedBy are linked attributes: deleting the user takes
	// it out of every group and off every entry it manages.
	for _, g := range d.entries {
		if g.hasMember(e.rdns) {
			g.set("member", removeDN(g.get("member"), e.rdns)...)
		}
		if m := g.first("managedBy"); m != "" && sameDN(m, e.rdns) {
			g.set("managedBy")
		}
	}
}

// memberOf computes the groups whose member holds e, as AD does.
func (d *directory) memberOf(e *entry) []string {
	var out []string
	for _, k := range d.order {
		g := d.entries[k]
		if g.hasMember(e.rdns) {
			out = append(out, g.dn)
		}
	}
	return out
}

// hasChildren reports whether any entry sits directly below e.
func (d *directory) hasChildren(e *entry) bool {
	for _, c := range d.entries {
		if len(c.rdns) == len(e.rdns)+1 && under(c.rdns, e.rdns) {
			return true
		}
	}
	return false
}

// subtree lists e and every entry below it, deepest first.
func (d *directory) subtree(e *entry) []*entry {
	var out []*entry
	for _, c := range d.entries {
		if under(c.rdns, e.rdns) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *entry) int { return len(b.rdns) - len(a.rdns) })
	return out
}

func sameDN(dn string, rdns []string) bool {
	n, err := normDN(dn)
	return err == nil && slices.Equal(n, rdns)
}

func removeDN(dns []string, rdns []string) []string {
	return slices.DeleteFunc(slices.Clone(dns), func(m string) bool { return sameDN(m, rdns) })
}

// seed builds AD's shape: the domain, CN=Users, the administrator, Domain
// Users, the demo groups and people (CN "First Last", plus the employee id
// when a name repeats, exactly like scripts/samba/seed.py).
func seed(o Options) (*directory, error) {
	base, err := normDN(o.BaseDN)
	if err != nil || len(base) == 0 {
		return nil, fmt.Errorf("ldapdir: BaseDN %q: %v", o.BaseDN, err)
	}
	d := &directory{base: base, entries: map[string]*entry{}, passwords: map[string]string{}}
	users := "CN=Users," + o.BaseDN
	now := filetime(time.Now())
	mk := func(dn string, kv ...any) *entry {
		e := &entry{dn: dn, attrs: map[string]*attr{}}
		for i := 0; i < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case string:
				e.set(kv[i].(string), v)
			case []string:
				e.set(kv[i].(string), v...)
			}
		}
		return e
	}
	domainDNS := domainOf(o.BaseDN)
	must := func(e *entry) {
		if err == nil {
			err = d.add(e)
		}
	}
	must(mk(o.BaseDN, "objectClass", []string{"top", "domain", "domainDNS"}, "name", strings.SplitN(domainDNS, ".", 2)[0]))
	must(mk(users, "objectClass", []string{"top", "container"}, "cn", "Users", "name", "Users"))
	person := "CN=Person,CN=Schema,CN=Configuration," + o.BaseDN
	newUser := func(dn, cn, sam, upn string) *entry {
		return mk(dn, "objectClass", []string{"top", "person", "organizationalPerson", "user"},
			"cn", cn, "name", cn, "sAMAccountName", sam, "userPrincipalName", upn,
			"userAccountControl", strconv.Itoa(uacNormalAccount), "primaryGroupID", "513",
			"sAMAccountType", samUserAccount, "objectCategory", person, "pwdLastSet", now)
	}
	admin := newUser(o.BindDN, "Administrator", "Administrator", "Administrator@"+domainDNS)
	must(admin)
	if err != nil {
		return nil, fmt.Errorf("ldapdir: BindDN %q must be a new entry under %q: %w", o.BindDN, o.BaseDN, err)
	}
	d.passwords[key(admin.rdns)] = o.Password
	group := "CN=Group,CN=Schema,CN=Configuration," + o.BaseDN
	newGroup := func(name string) *entry {
		return mk("CN="+name+","+users, "objectClass", []string{"top", "group"}, "cn", name, "name", name,
			"sAMAccountName", name, "groupType", groupTypeGlobal, "sAMAccountType", samGroup,
			"objectCategory", group, "description", "Offboard demo group "+name)
	}
	must(newGroup("Domain Users"))
	// Every AD domain has Domain Admins; the administrator is in it, and
	// AD's SDProp marks its members with adminCount=1.
	domainAdmins := newGroup("Domain Admins")
	domainAdmins.set("member", admin.dn)
	domainAdmins.set("adminCount", "1")
	must(domainAdmins)
	admin.set("adminCount", "1")
	members := map[string][]string{}
	for _, g := range demo.Groups {
		must(newGroup(g))
	}
	seen := map[string]bool{}
	for _, p := range o.People {
		cn := p.Name()
		if seen[cn] {
			cn += " " + p.EmployeeID
		}
		seen[cn] = true
		u := newUser("CN="+goldap.EscapeDN(cn)+","+users, cn, p.Login, p.Email)
		u.set("givenName", p.First)
		u.set("sn", p.Last)
		u.set("displayName", p.Name())
		u.set("mail", p.Email)
		u.set("employeeID", p.EmployeeID)
		u.set("department", p.Department)
		if p.Privileged {
			// Privileged people held a protected admin group once: AD leaves
			// adminCount=1 behind, which is how an audit finds them.
			u.set("adminCount", "1")
		}
		must(u)
		if err != nil {
			return nil, err
		}
		d.passwords[key(u.rdns)] = o.UserPassword
		for _, g := range demo.GroupsOf(p) {
			members[g] = append(members[g], u.dn)
		}
	}
	if err != nil {
		return nil, err
	}
	for g, m := range members {
		d.lookup("CN="+g+","+users).set("member", m...)
	}
	if o.NonHuman && len(o.People) >= 2 {
		if err := seedNonHuman(d, o, newUser); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// domainOf turns DC=corp,DC=example,DC=test into corp.example.test.
func domainOf(baseDN string) string {
	parsed, err := goldap.ParseDN(baseDN)
	if err != nil {
		return "example.test"
	}
	var parts []string
	for _, rdn := range parsed.RDNs {
		for _, a := range rdn.Attributes {
			if strings.EqualFold(a.Type, "dc") {
				parts = append(parts, strings.ToLower(a.Value))
			}
		}
	}
	return strings.Join(parts, ".")
}

// filetime is AD's time format: 100 ns intervals since 1601.
func filetime(t time.Time) string {
	const epochDiff = 116444736000000000
	return strconv.FormatInt(t.UnixNano()/100+epochDiff, 10)
}
