// Package ldapdir is a small in-process LDAP directory shaped like Active
// Directory, for running Offboard where no Samba DC is available (`make run`)
// and for tests that need faults a real DC cannot produce.
//
// It speaks LDAPS (its own CA, written to CertDir/ca.crt) and, when
// Options.PlainAddr is set, plain LDAP with StartTLS. It supports what the
// ldap connector uses, the way AD behaves:
//   - simple bind by DN or userPrincipalName; a disabled account fails with
//     49 "... data 533", a wrong password with 49 "... data 52e"; a simple
//     bind without TLS is refused with 8 (strongAuthRequired); nothing but
//     the rootDSE is readable without a bind;
//   - search with base/one/sub scope; filters and/or/not, equality,
//     present, substrings, >=, <=, and AD's bitwise matching rules;
//     the paged results control; at most 1000 entries without it;
//   - modify (add/delete/replace) by the administrator only: memberOf is
//     computed from the groups' member and refuses writes (53), as does
//     deleting a member that is not there (53, like Samba); unicodePwd takes
//     AD's quoted UTF-16LE form over TLS;
//   - add by the administrator below an existing entry (objectClass
//     required, no further schema), so tests can give a user children;
//   - managedBy as AD's schema has it: a DN that must exist, matched as a
//     DN, allowed on computers and managed service accounts but not on a
//     plain user (65 objectClassViolation), dropped when its target is deleted;
//   - delete, which also removes the entry from every group's member; a
//     non-leaf only with the Tree Delete control (66 notAllowedOnNonLeaf
//     without it, like AD), which takes the whole subtree.
//
// Faults (a result code, or no answer at all) are injected with Server.Fail.
package ldapdir

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/sandbox/demo"
)

// Defaults, the same as the Samba test DC's.
const (
	DefaultBaseDN       = "DC=corp,DC=example,DC=test"
	DefaultBindDN       = "CN=Administrator,CN=Users," + DefaultBaseDN
	DefaultUserPassword = "Offboard-Us3r!"
)

// Options configure a Server.
type Options struct {
	Addr     string // LDAPS listen address; "127.0.0.1:0" picks a port
	BindDN   string // the administrator's DN (DefaultBindDN when empty)
	Password string // the administrator's password (required)
	BaseDN   string // DefaultBaseDN when empty
	People   []demo.Person
	CertDir  string // where the CA lives (ca.crt, ca.key); reused across restarts
	// UserPassword is every seeded person's password (DefaultUserPassword when empty).
	UserPassword string
	// PlainAddr, when set, also listens for plain LDAP, which offers StartTLS.
	PlainAddr string
	// NonHuman also seeds issue 15's accounts: demo.ManagedAccountSAM,
	// managedBy demo.ServiceOwner(People), and the break-glass Domain Admin
	// demo.BreakGlassAD, both with UserPassword. Off by default: they are
	// enabled accounts HR does not know, which reconciliation would count.
	NonHuman bool
}

// Fault is an injected failure: the next matching requests get Code (and
// Message) instead of being served, or no answer at all when Hang is set.
// The other answers stand for directories that behave unlike AD: a
// referral instead of entries, an empty success, paging that ignores the cookie.
type Fault struct {
	Op      string `json:"op,omitempty"`      // "bind", "search", "modify", "delete"; "" matches every request
	DN      string `json:"dn,omitempty"`      // only requests on this DN (a search's base), any case; "" = any
	Code    int    `json:"code,omitempty"`    // LDAP result code, e.g. 51 busy, 52 unavailable, 11 adminLimitExceeded
	Message string `json:"message,omitempty"` // diagnostic message
	Hang    bool   `json:"hang,omitempty"`    // never answer; the client has to time out
	Count   int    `json:"count,omitempty"`   // how many requests it hits; 0 = until ClearFaults

	Referral     string `json:"referral,omitempty"`     // a search answers this continuation reference and success, no entries
	Empty        bool   `json:"empty,omitempty"`        // a search answers success with no entries
	IgnoreCookie bool   `json:"ignoreCookie,omitempty"` // a paged search serves the first page whatever the cookie says
}

// Server is a running directory.
type Server struct {
	opts   Options
	tls    *tls.Config
	caFile string
	ln     net.Listener
	plain  net.Listener

	mu     sync.Mutex
	dir    *directory
	faults []*Fault
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New seeds the directory, creates or loads the CA and starts listening;
// Serve answers requests.
func New(o Options) (*Server, error) {
	if o.BaseDN == "" {
		o.BaseDN = DefaultBaseDN
	}
	if o.BindDN == "" {
		o.BindDN = "CN=Administrator,CN=Users," + o.BaseDN
	}
	if o.UserPassword == "" {
		o.UserPassword = DefaultUserPassword
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:636"
	}
	if o.Password == "" {
		return nil, errors.New("ldapdir: Options.Password is required")
	}
	if o.CertDir == "" {
		return nil, errors.New("ldapdir: Options.CertDir is required (the CA is written there)")
	}
	dir, err := seed(o)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(o.Addr)
	tlsConfig, caFile, err := serverTLS(o.CertDir, host)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, tls: tlsConfig, caFile: caFile, dir: dir, conns: map[net.Conn]struct{}{}}
	if s.ln, err = net.Listen("tcp", o.Addr); err != nil {
		return nil, fmt.Errorf("ldapdir: %w", err)
	}
	if o.PlainAddr != "" {
		if s.plain, err = net.Listen("tcp", o.PlainAddr); err != nil {
			s.ln.Close()
			return nil, fmt.Errorf("ldapdir: %w", err)
		}
	}
	return s, nil
}

// Addr is the LDAPS listener's address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is ldaps://host:port.
func (s *Server) URL() string { return "ldaps://" + s.Addr() }

// PlainURL is ldap://host:port of the StartTLS listener, or "".
func (s *Server) PlainURL() string {
	if s.plain == nil {
		return ""
	}
	return "ldap://" + s.plain.Addr().String()
}

// CAFile is the PEM file of the CA that signed the server's certificate.
func (s *Server) CAFile() string { return s.caFile }

// Serve answers connections until ctx ends or Close is called.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	errs := make(chan error, 2)
	accept := func(ln net.Listener, implicitTLS bool) {
		for {
			c, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			if implicitTLS {
				c = tls.Server(c, s.tls)
			}
			if !s.track(c) {
				c.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveConn(c, implicitTLS)
			}()
		}
	}
	n := 1
	go accept(s.ln, true)
	if s.plain != nil {
		n++
		go accept(s.plain, false)
	}
	err := <-errs
	s.Close()
	for i := 1; i < n; i++ {
		<-errs
	}
	s.wg.Wait()
	if s.isClosed() {
		return nil
	}
	return err
}

// Close stops listening and drops every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.ln.Close()
	if s.plain != nil {
		s.plain.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	c.Close()
}

// DropConnections closes every client connection, as a DC restart or an
// idle timeout would; the listeners stay up.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// User returns a copy of the user entry with this sAMAccountName, memberOf computed.
func (s *Server) User(sam string) (Entry, bool) { return s.find("user", sam) }

// Group returns a copy of the group entry with this cn.
func (s *Server) Group(cn string) (Entry, bool) { return s.find("group", cn) }

// Fail injects a fault.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) find(class, name string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.dir.order {
		e := s.dir.entries[k]
		if e.hasClass(class) && strings.EqualFold(e.first("sAMAccountName"), name) {
			return s.snapshot(e), true
		}
	}
	return Entry{}, false
}

func (s *Server) snapshot(e *entry) Entry {
	out := Entry{DN: e.dn, Attrs: map[string][]string{}}
	for _, k := range e.order {
		a := e.attrs[k]
		out.Attrs[a.name] = slices.Clone(a.vals)
	}
	if m := s.dir.memberOf(e); len(m) > 0 {
		out.Attrs["memberOf"] = m
	}
	return out
}

// fault returns the fault to apply to op on dn, if any, counting it down.
func (s *Server) fault(op, dn string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Op != "" && f.Op != op) || (f.DN != "" && !strings.EqualFold(f.DN, dn)) {
			continue
		}
		hit := *f
		if f.Count > 0 {
			if f.Count--; f.Count == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
		}
		return &hit
	}
	return nil
}

// session is one client connection's state.
type session struct {
	conn  net.Conn
	tls   bool
	bound *entry // nil: anonymous
	admin bool
}

func (s *Server) serveConn(c net.Conn, implicitTLS bool) {
	sess := &session{conn: c, tls: implicitTLS}
	defer func() { s.untrack(sess.conn) }()
	for {
		p, err := ber.ReadPacket(sess.conn)
		if err != nil {
			return
		}
		if len(p.Children) < 2 {
			return
		}
		id, ok := p.Children[0].Value.(int64)
		if !ok {
			return
		}
		op := p.Children[1]
		var controls []*ber.Packet
		if len(p.Children) > 2 && p.Children[2].ClassType == ber.ClassContext && p.Children[2].Tag == 0 {
			controls = p.Children[2].Children
		}
		if op.ClassType != ber.ClassApplication {
			return
		}
		if op.Tag == appUnbind {
			return
		}
		if op.Tag == appAbandon {
			continue
		}
		f := s.fault(opName(op.Tag), requestDN(op))
		switch {
		case f == nil:
		case f.Hang:
			io.Copy(io.Discard, sess.conn) // until the client gives up
			return
		case op.Tag == appSearch && f.Referral != "":
			ref := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchReference, nil, "SearchResultReference")
			ref.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, f.Referral, "URI"))
			if !s.write(sess, id, ref) || !s.write(sess, id, result(appSearchDone, resultSuccess, "", "")) {
				return
			}
			continue
		case op.Tag == appSearch && f.Empty:
			if !s.write(sess, id, result(appSearchDone, resultSuccess, "", "")) {
				return
			}
			continue
		case op.Tag == appSearch && f.IgnoreCookie:
			controls = withoutCookie(controls)
		default:
			if !s.write(sess, id, result(responseTag(op.Tag), f.Code, "", f.Message)) {
				return
			}
			continue
		}
		if op.Tag == appExtended && extendedName(op) == oidStartTLS {
			if !s.startTLS(sess, id) {
				return
			}
			continue
		}
		var replies []reply
		switch op.Tag {
		case appBind:
			replies = []reply{{op: s.bind(sess, op)}}
		case appSearch:
			replies = s.search(sess, op, controls)
		case appModify:
			replies = []reply{{op: s.modify(sess, op, controls)}}
		case appAdd:
			replies = []reply{{op: s.add(sess, op)}}
		case appDelete:
			replies = []reply{{op: s.delete(sess, op, controls)}}
		case appExtended:
			replies = []reply{{op: extendedResult(resultProtocolError, "unsupported extended operation")}}
		default:
			replies = []reply{{op: result(responseTag(op.Tag), resultUnwillingToPerform, "", "not supported by ldapdir")}}
		}
		for _, r := range replies {
			if !s.write(sess, id, r.op, r.controls...) {
				return
			}
		}
	}
}

// requestDN is the DN a request is about: a search's base, the entry a
// modify or delete names.
func requestDN(op *ber.Packet) string {
	switch op.Tag {
	case appSearch, appModify:
		if len(op.Children) > 0 {
			return str(op.Children[0])
		}
	case appDelete:
		if b, ok := op.Value.(string); ok {
			return b
		}
		return op.Data.String()
	}
	return ""
}

// withoutCookie makes a paged search ask for the first page again.
func withoutCookie(controls []*ber.Packet) []*ber.Packet {
	out := make([]*ber.Packet, 0, len(controls))
	for _, c := range controls {
		if ctrl, err := goldap.DecodeControl(c); err == nil {
			if p, ok := ctrl.(*goldap.ControlPaging); ok {
				c = goldap.NewControlPaging(p.PagingSize).Encode()
			}
		}
		out = append(out, c)
	}
	return out
}

// reply is one response message and its controls.
type reply struct {
	op       *ber.Packet
	controls []*ber.Packet
}

func (s *Server) startTLS(sess *session, id int64) bool {
	if sess.tls {
		return s.write(sess, id, extendedResult(resultOperationsError, "TLS already started"))
	}
	if !s.write(sess, id, extendedResult(resultSuccess, "")) {
		return false
	}
	tc := tls.Server(sess.conn, s.tls)
	if err := tc.Handshake(); err != nil {
		return false
	}
	s.mu.Lock()
	delete(s.conns, sess.conn)
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	sess.conn, sess.tls = tc, true
	return true
}

func (s *Server) write(sess *session, id int64, op *ber.Packet, controls ...*ber.Packet) bool {
	_, err := sess.conn.Write(envelope(id, op, controls...).Bytes())
	return err == nil
}
