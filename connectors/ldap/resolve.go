package ldap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/internal/control"
)

var _ control.Prober = (*Client)(nil)

// adminGroups are AD's built-in groups whose members administer the domain
// or the forest. AD's SDProp also marks their members (nested ones too)
// with adminCount=1, which Resolve reads as well.
var adminGroups = []string{"Domain Admins", "Enterprise Admins", "Administrators", "Schema Admins"}

// Resolve finds the person's user entry: by the hint for this target
// (sAMAccountName or DN), else by mail, userPrincipalName or proxyAddresses,
// else by sAMAccountName = the email's local part on an entry with no mail.
//
// "No account" is a claim: it is made only when the paged search of the
// whole base DN ran to its last page and every referral it met was to a
// partition that holds no users; the error's Searched says so. A search
// that fails, a base DN the server does not hold, or paging that does not
// advance is an exception, never "no account".
func (c *Client) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	var searched []string
	hint := p.Hints[c.cfg.Name]
	if hint != "" {
		op := "resolve " + hint
		var entries []*goldap.Entry
		var what string
		var err error
		if strings.Contains(hint, "=") {
			what = "read " + hint + " (the hint)"
			var u user
			u, err = c.readUser(ctx, op, hint)
			if err == nil {
				return c.account(u.entry), nil
			}
			if !errors.Is(err, control.ErrNotFound) {
				return control.Account{}, err
			}
			searched = append(searched, what+": noSuchObject")
		} else {
			filter := fmt.Sprintf("(&(objectClass=user)(!(objectClass=computer))(sAMAccountName=%s))", goldap.EscapeFilter(hint))
			entries, what, err = c.searchUsers(ctx, op, filter)
			if err != nil {
				return control.Account{}, err
			}
			searched = append(searched, what+" (the hint)")
			if acct, err, ok := c.one(op, entries); ok {
				return acct, err
			}
		}
	}
	email := strings.TrimSpace(p.Email)
	if email == "" {
		if hint != "" {
			return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: "ldap " + c.cfg.Name + ": resolve " + hint, Searched: searched,
				Err: errors.New("the hint names no user entry, and there is no email to look up")}
		}
		return control.Account{}, c.fail("resolve "+p.EmployeeID, control.ErrPermanent, errors.New("person has neither a hint nor an email: nothing to look up"))
	}
	op := "resolve " + email
	local, _, _ := strings.Cut(email, "@")
	e := goldap.EscapeFilter(email)
	filter := fmt.Sprintf("(&(objectClass=user)(!(objectClass=computer))(|(mail=%s)(userPrincipalName=%s)(proxyAddresses=smtp:%s)(sAMAccountName=%s)))",
		e, e, e, goldap.EscapeFilter(local))
	entries, what, err := c.searchUsers(ctx, op, filter)
	if err != nil {
		return control.Account{}, err
	}
	searched = append(searched, what)
	var byMail, byName []*goldap.Entry
	for _, en := range entries {
		switch {
		case hasEmail(en, email):
			byMail = append(byMail, en)
		case en.GetAttributeValue("mail") == "" && strings.EqualFold(en.GetAttributeValue("sAMAccountName"), local):
			byName = append(byName, en)
		}
	}
	if acct, err, ok := c.one(op, byMail); ok {
		return acct, err
	}
	if acct, err, ok := c.one(op, byName); ok {
		return acct, err
	}
	return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: "ldap " + c.cfg.Name + ": " + op, Searched: searched,
		Err: errors.New("no user entry has this mail, userPrincipalName or proxy address")}
}

// one turns matching entries into the account: ok is false when there are none.
func (c *Client) one(op string, entries []*goldap.Entry) (control.Account, error, bool) {
	switch len(entries) {
	case 0:
		return control.Account{}, nil, false
	case 1:
		return c.account(entries[0]), nil, true
	}
	dns := make([]string, len(entries))
	for i, e := range entries {
		dns[i] = e.DN
	}
	return control.Account{}, c.fail(op, control.ErrPermanent, fmt.Errorf("%d user entries match: %s", len(entries), strings.Join(dns, "; "))), true
}

func (c *Client) account(e *goldap.Entry) control.Account {
	return control.Account{Target: c.cfg.Name, ID: e.DN, Login: e.GetAttributeValue("sAMAccountName"), Privileges: privileges(e), Holds: holds(e)}
}

// privileges are the admin rights an entry shows: membership of AD's
// administrative groups, and adminCount=1.
func privileges(e *goldap.Entry) []string {
	var out []string
	for _, g := range e.GetAttributeValues("memberOf") {
		if slices.ContainsFunc(adminGroups, func(a string) bool { return strings.EqualFold(a, groupName(g)) }) {
			out = append(out, "ad: member of "+groupName(g))
		}
	}
	if e.GetAttributeValue("adminCount") == "1" {
		out = append(out, "ad: adminCount=1 (a member of a protected admin group, now or before)")
	}
	return out
}

func hasEmail(e *goldap.Entry, email string) bool {
	if strings.EqualFold(e.GetAttributeValue("mail"), email) || strings.EqualFold(e.GetAttributeValue("userPrincipalName"), email) {
		return true
	}
	return slices.ContainsFunc(e.GetAttributeValues("proxyAddresses"), func(a string) bool {
		kind, addr, ok := strings.Cut(a, ":")
		return ok && strings.EqualFold(kind, "smtp") && strings.EqualFold(addr, email)
	})
}

// usersFree are partitions AD refers a domain-root search to that hold no
// users: following them would add nothing, so they do not make a search partial.
var usersFree = []string{"DomainDnsZones", "ForestDnsZones", "Configuration"}

// searchUsers runs a paged subtree search of the base DN and says what it
// covered, for the no-account receipt.
func (c *Client) searchUsers(ctx context.Context, op, filter string) ([]*goldap.Entry, string, error) {
	var entries []*goldap.Entry
	var referrals []string
	pages := 0
	err := c.do(ctx, op, "read users under "+c.cfg.BaseDN, func(conn *goldap.Conn) error {
		entries, referrals, pages = nil, nil, 0
		paging := goldap.NewControlPaging(uint32(c.cfg.PageSize))
		cookies, dns := map[string]bool{}, map[string]bool{}
		for {
			req := goldap.NewSearchRequest(c.cfg.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
				filter, userAttrs, []goldap.Control{paging})
			res, err := conn.Search(req)
			if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
				return &unexpected{fmt.Sprintf("the base DN %s does not exist on this server (%v)", c.cfg.BaseDN, err)}
			}
			if err != nil {
				return err
			}
			pages++
			for _, e := range res.Entries {
				k := strings.ToLower(e.DN)
				if dns[k] {
					return &unexpected{fmt.Sprintf("paged search listed %s twice (page %d): paging does not advance", e.DN, pages)}
				}
				dns[k] = true
				entries = append(entries, e)
			}
			referrals = append(referrals, res.Referrals...)
			ctrl, _ := goldap.FindControl(res.Controls, goldap.ControlTypePaging).(*goldap.ControlPaging)
			if ctrl == nil || len(ctrl.Cookie) == 0 {
				return nil
			}
			if cookies[string(ctrl.Cookie)] {
				return &unexpected{fmt.Sprintf("paged search cookie repeated on page %d: paging does not advance", pages)}
			}
			cookies[string(ctrl.Cookie)] = true
			paging.SetCookie(ctrl.Cookie)
		}
	})
	if err != nil {
		return nil, "", err
	}
	what := fmt.Sprintf("search %s under %s (subtree, paged): %d entries on %d pages", filter, c.cfg.BaseDN, len(entries), pages)
	var followed []string
	for _, ref := range referrals {
		if !c.usersFree(ref) {
			if len(entries) > 0 {
				continue // what was found stands; the referral only matters for "no account"
			}
			return nil, "", c.fail(op, control.ErrUnexpected, fmt.Errorf("the search was referred to %s, which this connector does not follow: the directory was not covered", ref))
		}
		followed = append(followed, ref)
	}
	if len(followed) > 0 {
		what += "; referrals to partitions that hold no users not followed: " + strings.Join(followed, ", ")
	}
	return entries, what, nil
}

// usersFree reports whether a referral URL points at one of the partitions
// under the base DN that hold no users (AD's DNS application partitions,
// the configuration partition).
func (c *Client) usersFree(ref string) bool {
	_, dnPart, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(ref, "ldap://"), "ldaps://"), "/")
	if !ok {
		return false
	}
	dnPart, _, _ = strings.Cut(dnPart, "?")
	dn, err := goldap.ParseDN(unescapeURL(dnPart))
	if err != nil || len(dn.RDNs) == 0 || len(dn.RDNs[0].Attributes) == 0 {
		return false
	}
	first := dn.RDNs[0].Attributes[0].Value
	return slices.ContainsFunc(usersFree, func(p string) bool { return strings.EqualFold(p, first) })
}

func unescapeURL(s string) string {
	return strings.NewReplacer("%20", " ", "%2C", ",", "%2c", ",", "%3D", "=", "%3d", "=").Replace(s)
}

// Probe checks the target's configuration: a bind proves the credentials,
// the RootDSE that the server holds the configured base DN, and a read of
// the base DN that the bind account may read it.
func (c *Client) Probe(ctx context.Context) (control.Probe, error) {
	var p control.Probe
	var contexts []string
	err := c.do(ctx, "probe: bind and read the RootDSE of "+c.cfg.URL, "read the RootDSE", func(conn *goldap.Conn) error {
		res, err := conn.Search(goldap.NewSearchRequest("", goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"namingContexts", "defaultNamingContext"}, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) != 1 {
			return &unexpected{fmt.Sprintf("the RootDSE read answered %d entries: this does not look like an LDAP directory", len(res.Entries))}
		}
		contexts = res.Entries[0].GetAttributeValues("namingContexts")
		return nil
	})
	if err != nil {
		return p, err
	}
	p.Checks = append(p.Checks, "bind as "+c.cfg.BindDN+": ok", "RootDSE namingContexts: "+strings.Join(contexts, "; "))
	held := slices.ContainsFunc(contexts, func(nc string) bool {
		base, err1 := goldap.ParseDN(nc)
		d, err2 := goldap.ParseDN(c.cfg.BaseDN)
		return err1 == nil && err2 == nil && (base.EqualFold(d) || base.AncestorOfFold(d))
	})
	if !held {
		return p, c.fail("probe", control.ErrPermanent, fmt.Errorf("the base DN %s is not in this server's naming contexts (%s): check BaseDN and URL", c.cfg.BaseDN, strings.Join(contexts, "; ")))
	}
	err = c.do(ctx, "probe: read "+c.cfg.BaseDN, "read "+c.cfg.BaseDN, func(conn *goldap.Conn) error {
		_, err := conn.Search(goldap.NewSearchRequest(c.cfg.BaseDN, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"1.1"}, nil))
		return err
	})
	if err != nil {
		return p, err
	}
	p.Checks = append(p.Checks, "read "+c.cfg.BaseDN+": ok")
	return p, nil
}
