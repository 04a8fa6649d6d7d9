// Package ldap removes a leaver's access from Active Directory (or anything
// that speaks AD's LDAP dialect, like Samba or sandbox/ldapdir) over
// github.com/go-ldap/ldap/v3.
//
// Containment sets ACCOUNTDISABLE in userAccountControl (and optionally
// scrambles the password), removal deletes the user's DN from each group's
// member attribute, deletion deletes the user entry, restore clears the bit.
// Every connection is TLS (ldaps:// or StartTLS) with certificate
// verification on: a simple bind sends the password, and AD refuses to set
// unicodePwd on anything else.
package ldap

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/internal/control"
)

// Control names.
const (
	Disable          = "disable"
	ScramblePassword = "scramble_password"
	RemoveGroups     = "remove_groups"
	Delete           = "delete"
	Enable           = "enable"
)

// uacDisabled is ACCOUNTDISABLE in userAccountControl.
const uacDisabled = 0x2

// oidTreeDelete is AD's LDAP_SERVER_TREE_DELETE_OID: delete an entry and its
// subtree in one operation (the bind account needs Delete Subtree).
const oidTreeDelete = "1.2.840.113556.1.4.805"

// domainUsers is the usual primary group: AD lists it neither in memberOf
// nor in the group's member, and refuses to remove it.
const domainUsers = "Domain Users"

// Config says how to reach and authenticate to one directory.
type Config struct {
	Name       string // target name, e.g. "ad"
	URL        string // ldaps://dc1.corp.example.test:636 or ldap://host:389 with StartTLS
	StartTLS   bool
	CAFile     string // PEM CA to verify the server; certificate verification is always on
	ServerName string // optional TLS server name override
	BindDN     string // DN or UPN
	Password   string // secret
	BaseDN     string // where users and groups are searched
	// ScramblePassword makes containment also set a random unicodePwd.
	ScramblePassword bool
	Timeout          time.Duration // per connection attempt and per request; 15 s when zero
	PageSize         int           // entries per page of a paged search; 200 when zero
}

// Client is an AD target. It is safe for concurrent use: it keeps a few
// bound connections and dials more on demand.
type Client struct {
	cfg         Config
	tls         *tls.Config
	network     string
	addr        string
	implicitTLS bool
	idle        chan *goldap.Conn
}

var _ control.Target = (*Client)(nil)

// New checks cfg and loads the CA; it does not connect.
func New(cfg Config) (*Client, error) {
	if cfg.Name == "" {
		cfg.Name = "ad"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.BaseDN == "" {
		return nil, fmt.Errorf("ldap %s: BaseDN is required", cfg.Name)
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 200
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ldap %s: URL: %w", cfg.Name, err)
	}
	c := &Client{cfg: cfg, network: "tcp", idle: make(chan *goldap.Conn, 4)}
	host, port := u.Hostname(), u.Port()
	switch u.Scheme {
	case "ldaps":
		c.implicitTLS = true
		if port == "" {
			port = "636"
		}
	case "ldap":
		if !cfg.StartTLS {
			return nil, fmt.Errorf("ldap %s: %s is plain LDAP: set StartTLS or use ldaps://, the bind password must not cross the network in clear", cfg.Name, cfg.URL)
		}
		if port == "" {
			port = "389"
		}
	default:
		return nil, fmt.Errorf("ldap %s: URL scheme %q: want ldaps or ldap (with StartTLS)", cfg.Name, u.Scheme)
	}
	if host == "" {
		return nil, fmt.Errorf("ldap %s: URL %q has no host", cfg.Name, cfg.URL)
	}
	c.addr = net.JoinHostPort(host, port)
	c.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.ServerName != "" {
		c.tls.ServerName = cfg.ServerName
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap %s: CA file: %w", cfg.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap %s: CA file %s holds no PEM certificate", cfg.Name, cfg.CAFile)
		}
		c.tls.RootCAs = pool
	}
	return c, nil
}

// Name is the configured target name.
func (c *Client) Name() string { return c.cfg.Name }

// Kind is "ldap".
func (c *Client) Kind() string { return "ldap" }

// Controls lists the control names applied in each phase.
func (c *Client) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		if c.cfg.ScramblePassword {
			return []string{Disable, ScramblePassword}
		}
		return []string{Disable}
	case control.Removal, control.RoleChange:
		return []string{RemoveGroups}
	case control.Deletion:
		return []string{Delete}
	case control.Restore:
		return []string{Enable}
	}
	return nil
}

// Close drops the idle connections.
func (c *Client) Close() error {
	for {
		select {
		case conn := <-c.idle:
			conn.Close()
		default:
			return nil
		}
	}
}

// userAttrs are what Resolve and Observe read from a user entry.
var userAttrs = []string{"sAMAccountName", "userAccountControl", "memberOf", "pwdLastSet", "mail", "userPrincipalName", "proxyAddresses", "adminCount"}

// Observe reads whether the named control holds.
func (c *Client) Observe(ctx context.Context, name string, acct control.Account, params control.Params) (control.Observation, error) {
	if !c.known(name) {
		return control.Observation{}, control.Unknown(c.cfg.Name, name)
	}
	op := name + " " + acct.ID
	u, err := c.readUser(ctx, op, acct.ID)
	if errors.Is(err, control.ErrNotFound) {
		// The directory's own noSuchObject for the user's DN, under the base DN.
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "read " + acct.ID + ": noSuchObject",
			Call: response("noSuchObject " + acct.ID)}, nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	obs := control.Observation{Readable: true, Call: u.call}
	switch name {
	case Disable:
		obs.Holds = u.uac&uacDisabled != 0
		obs.Detail = fmt.Sprintf("userAccountControl=%d", u.uac)
	case Enable:
		obs.Holds = u.uac&uacDisabled == 0
		obs.Detail = fmt.Sprintf("userAccountControl=%d", u.uac)
	case ScramblePassword:
		// AD never returns unicodePwd; pwdLastSet only says someone set it.
		obs.Readable = false
		obs.Detail = "pwdLastSet=" + u.pwdLastSet
	case RemoveGroups:
		left := u.removable(params.KeepGroups)
		obs.Holds = len(left) == 0
		obs.Detail = fmt.Sprintf("%d groups left", len(left))
		if len(left) > 0 {
			obs.Detail += ": " + strings.Join(groupNames(left), ", ")
		}
	case Delete:
		obs.Detail = "user entry exists"
	}
	return obs, nil
}

// Enforce makes the named control hold. Repeating it is harmless.
func (c *Client) Enforce(ctx context.Context, name string, acct control.Account, params control.Params) (control.Response, error) {
	if !c.known(name) {
		return control.Response{}, control.Unknown(c.cfg.Name, name)
	}
	op := name + " " + acct.ID
	switch name {
	case Disable, Enable:
		return c.setDisabled(ctx, op, acct.ID, name == Disable)
	case ScramblePassword:
		return c.scramble(ctx, op, acct.ID)
	case RemoveGroups:
		return c.removeGroups(ctx, op, acct.ID, params.KeepGroups)
	case Delete:
		// Tree delete: a user object may hold children (ActiveSync devices,
		// class stores …), and AD refuses to delete a non-leaf without it.
		err := c.do(ctx, op, "Delete Subtree on "+acct.ID, func(conn *goldap.Conn) error {
			return conn.Del(goldap.NewDelRequest(acct.ID, []goldap.Control{goldap.NewControlString(oidTreeDelete, true, "")}))
		})
		if err != nil {
			return control.Response{}, err
		}
		return response("delete " + acct.ID), nil
	}
	return control.Response{}, control.Unknown(c.cfg.Name, name)
}

func (c *Client) known(name string) bool {
	return slices.Contains([]string{Disable, ScramblePassword, RemoveGroups, Delete, Enable}, name)
}

// user is what a read of the user entry showed.
type user struct {
	entry      *goldap.Entry
	dn         string
	uac        int64
	memberOf   []string
	pwdLastSet string
	call       control.Response
}

// removable lists the group DNs remove_groups would take the user out of.
func (u user) removable(keep []string) []string {
	var out []string
	for _, g := range u.memberOf {
		cn := groupName(g)
		if strings.EqualFold(cn, domainUsers) || slices.ContainsFunc(keep, func(k string) bool { return strings.EqualFold(k, cn) }) {
			continue
		}
		out = append(out, g)
	}
	return out
}

func (c *Client) readUser(ctx context.Context, op, dn string) (user, error) {
	req := goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=user)", userAttrs, nil)
	var u user
	err := c.do(ctx, op, "read "+dn, func(conn *goldap.Conn) error {
		res, err := conn.Search(req)
		if err != nil {
			return c.userNotFound(conn, dn, err)
		}
		if len(res.Entries) != 1 {
			// The entry exists (no noSuchObject) but is not one user: never "gone".
			return &unexpected{fmt.Sprintf("a base search of %s answered %d user entries, want 1", dn, len(res.Entries))}
		}
		e := res.Entries[0]
		u = user{entry: e, dn: e.DN, memberOf: e.GetAttributeValues("memberOf"), pwdLastSet: e.GetAttributeValue("pwdLastSet")}
		raw := e.GetAttributeValue("userAccountControl")
		if u.uac, err = strconv.ParseInt(raw, 10, 64); err != nil {
			return fmt.Errorf("userAccountControl %q: %w", raw, err)
		}
		u.call = response(render(e))
		return nil
	})
	return u, err
}

func (c *Client) setDisabled(ctx context.Context, op, dn string, disabled bool) (control.Response, error) {
	u, err := c.readUser(ctx, op, dn)
	if err != nil {
		return control.Response{}, err
	}
	want := u.uac &^ uacDisabled
	if disabled {
		want = u.uac | uacDisabled
	}
	if want == u.uac {
		return u.call, nil
	}
	req := goldap.NewModifyRequest(dn, nil)
	req.Replace("userAccountControl", []string{strconv.FormatInt(want, 10)})
	err = c.do(ctx, op, "Write userAccountControl on "+dn, func(conn *goldap.Conn) error { return conn.Modify(req) })
	if err != nil {
		return control.Response{}, err
	}
	return response(fmt.Sprintf("modify %s userAccountControl %d -> %d", dn, u.uac, want)), nil
}

func (c *Client) scramble(ctx context.Context, op, dn string) (control.Response, error) {
	req := goldap.NewModifyRequest(dn, nil)
	req.Replace("unicodePwd", []string{randomPassword()})
	err := c.do(ctx, op, "Reset Password on "+dn, func(conn *goldap.Conn) error {
		if _, ok := conn.TLSConnectionState(); !ok {
			return errors.New("refusing to send a password over a connection without TLS")
		}
		return conn.Modify(req)
	})
	if err != nil {
		return control.Response{}, err
	}
	return response("modify " + dn + " unicodePwd"), nil
}

// permissiveModify makes AD accept deleting a member that is already gone.
var permissiveModify = goldap.NewControlString(goldap.ControlTypeMicrosoftPermissiveModify, false, "")

func (c *Client) removeGroups(ctx context.Context, op, dn string, keep []string) (control.Response, error) {
	u, err := c.readUser(ctx, op, dn)
	if err != nil {
		return control.Response{}, err
	}
	left := u.removable(keep)
	if len(left) == 0 {
		return u.call, nil
	}
	for _, g := range left {
		req := goldap.NewModifyRequest(g, []goldap.Control{permissiveModify})
		req.Delete("member", []string{u.dn})
		err := c.do(ctx, op, "Write member on group "+g, func(conn *goldap.Conn) error {
			err := conn.Modify(req)
			switch {
			case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
				return nil // the group is gone, and the membership with it
			case goldap.IsErrorAnyOf(err, goldap.LDAPResultNoSuchAttribute, goldap.LDAPResultUnwillingToPerform):
				// Samba answers 53 "Attribute member doesn't exist" (even with
				// permissive modify) when someone removed the member meanwhile.
				if still, checkErr := isMember(conn, g, u.dn); checkErr == nil && !still {
					return nil
				}
			}
			return err
		})
		if err != nil {
			return control.Response{}, err
		}
	}
	return response(fmt.Sprintf("modify member -= %s on %s", u.dn, strings.Join(left, "; "))), nil
}

// isMember reads whether group's member holds dn.
func isMember(conn *goldap.Conn, group, dn string) (bool, error) {
	res, err := conn.Search(goldap.NewSearchRequest(group, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(member="+goldap.EscapeFilter(dn)+")", []string{"1.1"}, nil))
	if err != nil {
		return false, err
	}
	return len(res.Entries) > 0, nil
}

// do runs fn on a bound connection. A pooled connection the server has
// closed meanwhile fails with a network error; fn is then retried once on a
// fresh connection (every fn here is idempotent).
func (c *Client) do(ctx context.Context, op, need string, fn func(*goldap.Conn) error) error {
	for attempt := 0; ; attempt++ {
		conn, reused, err := c.get(ctx, attempt > 0)
		if err != nil {
			return c.classify(op, need, ctx, err)
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		err = fn(conn)
		stop()
		if err == nil || !isNetwork(err) {
			c.put(conn)
		} else {
			conn.Close()
		}
		if err != nil && reused && isNetwork(err) && ctx.Err() == nil && attempt == 0 {
			continue
		}
		if err != nil {
			return c.classify(op, need, ctx, err)
		}
		return nil
	}
}

func (c *Client) get(ctx context.Context, fresh bool) (*goldap.Conn, bool, error) {
	for !fresh {
		select {
		case conn := <-c.idle:
			if conn.IsClosing() {
				continue
			}
			return conn, true, nil
		default:
			fresh = true
		}
	}
	conn, err := c.dial(ctx)
	return conn, false, err
}

func (c *Client) put(conn *goldap.Conn) {
	if conn.IsClosing() {
		return
	}
	select {
	case c.idle <- conn:
	default:
		conn.Close()
	}
}

// dial connects, secures and binds a new connection.
func (c *Client) dial(ctx context.Context) (*goldap.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	d := net.Dialer{Timeout: c.cfg.Timeout}
	raw, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return nil, goldap.NewError(goldap.ErrorNetwork, err)
	}
	if c.implicitTLS {
		tc := tls.Client(raw, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, &tlsError{err}
		}
		raw = tc
	}
	conn := goldap.NewConn(raw, c.implicitTLS)
	conn.Start()
	conn.SetTimeout(c.cfg.Timeout)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if c.cfg.StartTLS && !c.implicitTLS {
		if err := conn.StartTLS(c.tls.Clone()); err != nil {
			conn.Close()
			// go-ldap flattens the handshake error into text.
			if strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls: failed to verify") {
				return nil, &tlsError{err}
			}
			return nil, err
		}
	}
	if err := conn.Bind(c.cfg.BindDN, c.cfg.Password); err != nil {
		conn.Close()
		return nil, &bindError{err}
	}
	return conn, nil
}

// randomPassword returns a random password in unicodePwd's encoding: the
// quoted string in UTF-16LE. It has every character class, so any
// complexity policy accepts it.
func randomPassword() string {
	pw := "Aa1!" + rand.Text()
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}

// groupName is the cn of a group DN.
func groupName(dn string) string {
	parsed, err := goldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 || len(parsed.RDNs[0].Attributes) == 0 {
		return dn
	}
	return parsed.RDNs[0].Attributes[0].Value
}

func groupNames(dns []string) []string {
	out := make([]string, len(dns))
	for i, dn := range dns {
		out[i] = groupName(dn)
	}
	return out
}

// render is a stable text form of an entry, for the receipt's digest.
func render(e *goldap.Entry) string {
	var b strings.Builder
	b.WriteString("dn: " + e.DN + "\n")
	attrs := slices.Clone(e.Attributes)
	slices.SortFunc(attrs, func(a, b *goldap.EntryAttribute) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	for _, a := range attrs {
		vals := slices.Clone(a.Values)
		slices.Sort(vals)
		for _, v := range vals {
			b.WriteString(a.Name + ": " + v + "\n")
		}
	}
	return b.String()
}

// response records an LDAP call: there is no HTTP status or request id,
// so the digest covers a text form of what was read or changed.
func response(what string) control.Response {
	return control.NewResponse("", 0, []byte(what))
}
