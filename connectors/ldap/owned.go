package ldap

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/internal/control"
)

// Non-human identities (issue 15): accounts whose managedBy is the leaver,
// and break-glass accounts whose password is rotated when someone who may
// know it leaves.

// Step names of non-human actions; a decommission uses the Disable control's name.
const (
	SetManager     = "set_manager"
	RotatePassword = "rotate_password"
)

var _ control.Owner = (*Client)(nil)

// ownedAttrs are what the non-human steps read from an account.
var ownedAttrs = []string{"sAMAccountName", "userAccountControl", "managedBy", "pwdLastSet", "objectClass"}

// Trust-account bits of userAccountControl: a machine's own account, whose
// password the machine keeps in step with the DC itself.
const uacMachineTrust = 0x1000 | 0x2000 // WORKSTATION_TRUST_ACCOUNT, SERVER_TRUST_ACCOUNT

// Discover lists the accounts whose managedBy is acct's DN. The paged
// search must cover the base DN: a referral to anywhere but AD's user-free
// partitions, paging that does not advance, or an answer without the paging
// control is an error, never a shorter list. Each entry returned is checked
// against the filter, so a server that ignores it cannot hand us others.
func (c *Client) Discover(ctx context.Context, acct control.Account) ([]control.Owned, error) {
	if acct.ID == "" {
		return nil, c.fail("discover managed accounts", control.ErrPermanent, errors.New("no user DN"))
	}
	op := "discover accounts managed by " + acct.ID
	// Computers too: AD allows managedBy only on computer-derived accounts
	// (computers, managed service accounts), not on plain user objects.
	filter := fmt.Sprintf("(&(objectClass=user)(managedBy=%s))", goldap.EscapeFilter(acct.ID))
	entries, err := c.searchAll(ctx, op, filter, ownedAttrs)
	if err != nil {
		return nil, err
	}
	out := []control.Owned{}
	for _, e := range entries {
		if m := e.GetAttributeValue("managedBy"); !sameDN(m, acct.ID) {
			return nil, c.fail(op, control.ErrUnexpected, fmt.Errorf("the search for managedBy=%s returned %s, managed by %q: the server did not apply the filter", acct.ID, e.DN, m))
		}
		out = append(out, control.Owned{Target: c.cfg.Name, Kind: control.KindManagedAccount, ID: e.DN, Name: e.GetAttributeValue("sAMAccountName")})
	}
	return out, nil
}

// OwnedSteps lists the steps of action on an identity of kind.
func (c *Client) OwnedSteps(kind string, action control.Action) []control.Step {
	switch {
	case kind == control.KindManagedAccount && action == control.Reown:
		return []control.Step{{Name: SetManager}}
	case kind == control.KindManagedAccount && action == control.Rotate,
		kind == control.KindBreakGlass && action == control.Rotate:
		return []control.Step{{Name: RotatePassword}}
	case kind == control.KindManagedAccount && action == control.Decommission:
		return []control.Step{{Name: Disable}}
	}
	return nil
}

// ObserveOwned reads whether the step holds for o.
func (c *Client) ObserveOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	if !c.ownedStep(name, o.Kind) {
		return control.Observation{}, control.Unknown(c.cfg.Name, name+" on a "+o.Kind)
	}
	op := "observe " + name + " " + o.ID
	var owner string
	var err error
	switch name {
	case SetManager:
		if owner, err = c.ownerDN(ctx, op, p); err != nil {
			return control.Observation{}, err
		}
	case RotatePassword:
		if err := rotationReady(c.fail, op, o, p); err != nil {
			return control.Observation{}, err
		}
	}
	dn, err := c.ownedDN(ctx, op, o)
	if err != nil {
		return control.Observation{}, err
	}
	e, call, err := c.readEntry(ctx, op, dn)
	if errors.Is(err, control.ErrNotFound) {
		// The directory's own noSuchObject for the account's DN: nobody can use it.
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "read " + dn + ": noSuchObject",
			Call: response("noSuchObject " + dn)}, nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	obs := control.Observation{Readable: true, Call: call}
	switch name {
	case SetManager:
		m := e.GetAttributeValue("managedBy")
		obs.Holds = sameDN(m, owner)
		obs.Detail = "managedBy=" + m
		if m == "" {
			obs.Detail = "managedBy not set"
		}
	case Disable:
		uac, err := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
		if err != nil {
			return control.Observation{}, c.fail(op, control.ErrUnexpected, fmt.Errorf("userAccountControl %q: %w", e.GetAttributeValue("userAccountControl"), err))
		}
		obs.Holds = uac&uacDisabled != 0
		obs.Detail = fmt.Sprintf("userAccountControl=%d", uac)
	case RotatePassword:
		current, err := p.Store.Current(ctx, o.Secret)
		if err != nil {
			return control.Observation{}, storeErr(c.fail, op, "read the current version of "+o.Secret, err)
		}
		set, ok := pwdLastSet(e)
		changed := ok && !set.Before(p.Since.Add(-clockSlack))
		when := "pwdLastSet=" + e.GetAttributeValue("pwdLastSet")
		if ok {
			when = "password set " + set.Format(time.RFC3339)
		}
		obs.Holds = current == p.Token && changed
		obs.Detail = fmt.Sprintf("secret %s version %s is current (this rotation's: %t); %s (since the rotation began: %t)",
			o.Secret, shortVersion(current), current == p.Token, when, changed)
	}
	return obs, nil
}

// EnforceOwned makes the step hold for o; repeating it is harmless.
func (c *Client) EnforceOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	if !c.ownedStep(name, o.Kind) {
		return control.Response{}, control.Unknown(c.cfg.Name, name+" on a "+o.Kind)
	}
	op := name + " " + o.ID
	switch name {
	case SetManager:
		owner, err := c.ownerDN(ctx, op, p)
		if err != nil {
			return control.Response{}, err
		}
		req := goldap.NewModifyRequest(o.ID, nil)
		req.Replace("managedBy", []string{owner})
		if err := c.do(ctx, op, "Write managedBy on "+o.ID, func(conn *goldap.Conn) error { return conn.Modify(req) }); err != nil {
			return control.Response{}, err
		}
		return response("modify " + o.ID + " managedBy -> " + owner), nil
	case Disable:
		return c.setDisabled(ctx, op, o.ID, true)
	}
	return c.rotatePassword(ctx, op, o, p)
}

func (c *Client) ownedStep(name, kind string) bool {
	switch kind {
	case control.KindManagedAccount:
		return name == SetManager || name == RotatePassword || name == Disable
	case control.KindBreakGlass:
		return name == RotatePassword
	}
	return false
}

// rotatePassword follows the store's rotation protocol: the new password is
// stored as the pending version first (or the pending version a crashed try
// stored is reused), then set as unicodePwd, then made current. An
// administrator's reset ignores password history, so setting the same value
// again after a crash is harmless. A store that fails before the set leaves
// the old password working.
func (c *Client) rotatePassword(ctx context.Context, op string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	if err := rotationReady(c.fail, op, o, p); err != nil {
		return control.Response{}, err
	}
	dn, err := c.ownedDN(ctx, op, o)
	if err != nil {
		return control.Response{}, err
	}
	e, _, err := c.readEntry(ctx, op, dn)
	if err != nil {
		return control.Response{}, err // nothing is stored for an account that cannot be read
	}
	if why := machineManaged(e); why != "" {
		return control.Response{}, c.fail(op, control.ErrPermanent, fmt.Errorf("%s: %s; reown or decommission it instead", dn, why))
	}
	value, err := pendingValue(ctx, c.fail, op, o.Secret, p, newPassword)
	if err != nil {
		return control.Response{}, err
	}
	req := goldap.NewModifyRequest(dn, nil)
	req.Replace("unicodePwd", []string{unicodePwd(value)})
	err = c.do(ctx, op, "Reset Password on "+dn, func(conn *goldap.Conn) error {
		if _, ok := conn.TLSConnectionState(); !ok {
			return errors.New("refusing to send a password over a connection without TLS")
		}
		return conn.Modify(req)
	})
	if err != nil {
		return control.Response{}, err
	}
	if err := p.Store.Promote(ctx, o.Secret, p.Token); err != nil {
		return control.Response{}, storeErr(c.fail, op, "make version "+shortVersion(p.Token)+" of "+o.Secret+" current", err)
	}
	return response("modify " + dn + " unicodePwd; " + o.Secret + " version " + p.Token + " current"), nil
}

// machineManaged says why an account's password is not ours to set, or "":
// a computer's trust account (the machine would lose its domain trust) or a
// managed service account (the DC generates its password).
func machineManaged(e *goldap.Entry) string {
	for _, class := range e.GetAttributeValues("objectClass") {
		if strings.EqualFold(class, "msDS-ManagedServiceAccount") || strings.EqualFold(class, "msDS-GroupManagedServiceAccount") {
			return "a managed service account: the DC generates its password"
		}
	}
	if uac, err := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64); err == nil && uac&uacMachineTrust != 0 {
		return "a machine's trust account: a new password would break its domain trust"
	}
	return ""
}

// ownedDN is the account's DN: o.ID for a managed account; for a
// break-glass account (o.ID as the registry names it: a DN, or a
// sAMAccountName or userPrincipalName) the one user the whole base DN
// holds under that name.
func (c *Client) ownedDN(ctx context.Context, op string, o control.Owned) (string, error) {
	if o.Kind != control.KindBreakGlass || strings.Contains(o.ID, "=") {
		return o.ID, nil
	}
	e := goldap.EscapeFilter(o.ID)
	filter := fmt.Sprintf("(&(objectClass=user)(|(sAMAccountName=%s)(userPrincipalName=%s)))", e, e)
	entries, err := c.searchAll(ctx, op, filter, []string{"sAMAccountName"})
	if err != nil {
		return "", err
	}
	if len(entries) != 1 {
		// The registry names an account the directory does not hold (once): for a person to fix.
		return "", c.fail(op, control.ErrPermanent, fmt.Errorf("%d user entries have sAMAccountName or userPrincipalName %s under %s, want 1", len(entries), o.ID, c.cfg.BaseDN))
	}
	return entries[0].DN, nil
}

// ownerDN is the DN of the new owner p.NewOwner names: a user by mail,
// userPrincipalName or sAMAccountName, or a group (a team) by cn or
// sAMAccountName. Exactly one entry must match, and it must not be the leaver.
func (c *Client) ownerDN(ctx context.Context, op string, p control.OwnedParams) (string, error) {
	name := strings.TrimSpace(p.NewOwner)
	if name == "" {
		return "", c.fail(op, control.ErrPermanent, errors.New("no new owner named"))
	}
	e := goldap.EscapeFilter(name)
	filter := fmt.Sprintf("(|(&(objectClass=user)(!(objectClass=computer))(|(mail=%s)(userPrincipalName=%s)(sAMAccountName=%s)))(&(objectClass=group)(|(cn=%s)(sAMAccountName=%s))))", e, e, e, e, e)
	entries, err := c.searchAll(ctx, op, filter, []string{"sAMAccountName"})
	if err != nil {
		return "", err
	}
	switch {
	case len(entries) == 0:
		return "", c.fail(op, control.ErrPermanent, fmt.Errorf("the new owner %q is no user (mail, userPrincipalName, sAMAccountName) or group under %s", name, c.cfg.BaseDN))
	case len(entries) > 1:
		dns := make([]string, len(entries))
		for i, en := range entries {
			dns[i] = en.DN
		}
		return "", c.fail(op, control.ErrPermanent, fmt.Errorf("the new owner %q matches %d entries: %s", name, len(entries), strings.Join(dns, "; ")))
	case p.Leaver.ID != "" && sameDN(entries[0].DN, p.Leaver.ID):
		return "", c.fail(op, control.ErrPermanent, fmt.Errorf("the new owner %q is the leaver", name))
	}
	return entries[0].DN, nil
}

// readEntry reads one user entry by DN with ownedAttrs. Only the
// directory's own noSuchObject for it (see userNotFound) is ErrNotFound.
func (c *Client) readEntry(ctx context.Context, op, dn string) (*goldap.Entry, control.Response, error) {
	req := goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=user)", ownedAttrs, nil)
	var e *goldap.Entry
	err := c.do(ctx, op, "read "+dn, func(conn *goldap.Conn) error {
		res, err := conn.Search(req)
		if err != nil {
			return c.userNotFound(conn, dn, err)
		}
		if len(res.Entries) != 1 {
			return &unexpected{fmt.Sprintf("a base search of %s answered %d user entries, want 1", dn, len(res.Entries))}
		}
		e = res.Entries[0]
		return nil
	})
	if err != nil {
		return nil, control.Response{}, err
	}
	return e, response(render(e)), nil
}

// searchAll runs a paged subtree search of the base DN that must cover it:
// unlike Resolve's search, any referral outside AD's user-free partitions
// is an error even when entries came back, because what is listed here is
// claimed complete. AD answers every page of a paged search with the
// paging control; an answer without it is not the paging asked for.
func (c *Client) searchAll(ctx context.Context, op, filter string, attrs []string) ([]*goldap.Entry, error) {
	var entries []*goldap.Entry
	err := c.do(ctx, op, "read users under "+c.cfg.BaseDN, func(conn *goldap.Conn) error {
		entries = nil
		paging := goldap.NewControlPaging(uint32(c.cfg.PageSize))
		cookies, dns := map[string]bool{}, map[string]bool{}
		for pages := 1; ; pages++ {
			res, err := conn.Search(goldap.NewSearchRequest(c.cfg.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
				filter, attrs, []goldap.Control{paging}))
			if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
				return &unexpected{fmt.Sprintf("the base DN %s does not exist on this server (%v)", c.cfg.BaseDN, err)}
			}
			if err != nil {
				return err
			}
			for _, ref := range res.Referrals {
				if !c.usersFree(ref) {
					return &unexpected{fmt.Sprintf("the search was referred to %s, which this connector does not follow: the directory was not covered", ref)}
				}
			}
			for _, e := range res.Entries {
				k := strings.ToLower(e.DN)
				if dns[k] {
					return &unexpected{fmt.Sprintf("paged search listed %s twice (page %d): paging does not advance", e.DN, pages)}
				}
				dns[k] = true
				entries = append(entries, e)
			}
			ctrl, _ := goldap.FindControl(res.Controls, goldap.ControlTypePaging).(*goldap.ControlPaging)
			switch {
			case ctrl == nil:
				return &unexpected{fmt.Sprintf("page %d of the search came without the paging control: the answer may be partial", pages)}
			case len(ctrl.Cookie) == 0:
				return nil
			case cookies[string(ctrl.Cookie)]:
				return &unexpected{fmt.Sprintf("paged search cookie repeated on page %d: paging does not advance", pages)}
			}
			cookies[string(ctrl.Cookie)] = true
			paging.SetCookie(ctrl.Cookie)
		}
	})
	return entries, err
}

// sameDN compares two DNs as AD does: by their parsed RDNs, in any case.
func sameDN(a, b string) bool {
	da, err1 := goldap.ParseDN(a)
	db, err2 := goldap.ParseDN(b)
	return a != "" && b != "" && err1 == nil && err2 == nil && da.EqualFold(db)
}

// clockSlack: the DC's clock is not the workflow's, so a password set this
// much before the rotation began still counts as after it. The store's
// current version carries the claim as much: it moves only after a set.
const clockSlack = time.Minute

// pwdLastSet reads AD's pwdLastSet (100 ns since 1601); ok is false for 0
// ("must change at next logon") or a value that is not a time.
func pwdLastSet(e *goldap.Entry) (time.Time, bool) {
	const epochDiff = 116444736000000000
	ft, err := strconv.ParseInt(e.GetAttributeValue("pwdLastSet"), 10, 64)
	if err != nil || ft <= epochDiff {
		return time.Time{}, false
	}
	return time.Unix(0, (ft-epochDiff)*100).UTC(), true
}

// newPassword is a random password any complexity policy accepts: upper,
// lower, digit, symbol, and 26 random base32 characters (130 bits).
func newPassword() []byte { return []byte("Aa1!" + rand.Text()) }

// unicodePwd is AD's form of a password: the quoted string in UTF-16LE.
func unicodePwd(pw []byte) string {
	u := utf16.Encode([]rune(`"` + string(pw) + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}

type failer func(op string, kind, err error) *control.Error

// rotationReady checks what every rotation needs before it touches anything.
func rotationReady(fail failer, op string, o control.Owned, p control.OwnedParams) error {
	if why := p.RotationMissing(o); why != "" {
		return fail(op, control.ErrPermanent, errors.New(why))
	}
	return nil
}

// pendingValue is this rotation's new value: the pending version a crashed
// try stored under p.Token, or a fresh one stored now. Nothing on the
// directory changes before the store holds the value.
func pendingValue(ctx context.Context, fail failer, op, secret string, p control.OwnedParams, fresh func() []byte) ([]byte, error) {
	value, ok, err := p.Store.Pending(ctx, secret, p.Token)
	if err != nil {
		return nil, storeErr(fail, op, "read pending version "+shortVersion(p.Token)+" of "+secret, err)
	}
	if ok {
		return value, nil
	}
	value = fresh()
	if err := p.Store.PutPending(ctx, secret, p.Token, value); err != nil {
		return nil, storeErr(fail, op, "store pending version "+shortVersion(p.Token)+" of "+secret, err)
	}
	return value, nil
}

// storeErr keeps the kind a store already gave its failure; any other is
// transient: nothing changed on the directory, so asking again is safe.
func storeErr(fail failer, op, what string, err error) error {
	kind, retry := control.ErrTransient, time.Duration(0)
	var cerr *control.Error
	if errors.As(err, &cerr) {
		kind, retry = cerr.Kind, cerr.RetryAfter
	}
	e := fail(op, kind, fmt.Errorf("secret store: %s: %w", what, err))
	e.RetryAfter = retry
	return e
}

// shortVersion is a version id as people see it: its first 8 characters.
func shortVersion(v string) string {
	switch {
	case v == "":
		return "(none)"
	case len(v) > 8:
		return v[:8] + "…"
	}
	return v
}
