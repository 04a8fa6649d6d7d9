package ldapdir

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"
)

// Protocol operation tags (RFC 4511 4.2-4.14).
const (
	appBind             = 0
	appBindResponse     = 1
	appUnbind           = 2
	appSearch           = 3
	appSearchEntry      = 4
	appSearchDone       = 5
	appSearchReference  = 19
	appModify           = 6
	appModifyResponse   = 7
	appAdd              = 8
	appAddResponse      = 9
	appDelete           = 10
	appDeleteResponse   = 11
	appModDN            = 12
	appModDNResponse    = 13
	appCompare          = 14
	appCompareResponse  = 15
	appAbandon          = 16
	appExtended         = 23
	appExtendedResponse = 24
)

// Result codes used here.
const (
	resultSuccess                 = 0
	resultOperationsError         = 1
	resultProtocolError           = 2
	resultSizeLimitExceeded       = 4
	resultAuthMethodNotSupported  = 7
	resultStrongAuthRequired      = 8
	resultNoSuchAttribute         = 16
	resultConstraintViolation     = 19
	resultAttributeOrValueExists  = 20
	resultInvalidAttributeSyntax  = 21
	resultNoSuchObject            = 32
	resultInvalidDNSyntax         = 34
	resultInvalidCredentials      = 49
	resultInsufficientAccessRight = 50
	resultUnwillingToPerform      = 53
	resultNotAllowedOnNonLeaf     = 66
	resultObjectClassViolation    = 65
	resultEntryAlreadyExists      = 68
)

const (
	oidStartTLS         = "1.3.6.1.4.1.1466.20037"
	oidPermissiveModify = goldap.ControlTypeMicrosoftPermissiveModify
	// oidTreeDelete deletes an entry with everything below it.
	oidTreeDelete = "1.2.840.113556.1.4.805"
	// maxPageSize is AD's MaxPageSize: a search without the paged results
	// control stops there with sizeLimitExceeded.
	maxPageSize = 1000
)

// AD's bind failures: data 52e is a wrong name or password, 533 a disabled account.
const (
	diagBadPassword = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1"
	diagDisabled    = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 533, v1db1"
)

func opName(tag ber.Tag) string {
	switch tag {
	case appBind:
		return "bind"
	case appSearch:
		return "search"
	case appModify:
		return "modify"
	case appDelete:
		return "delete"
	case appAdd:
		return "add"
	}
	return "other"
}

func responseTag(tag ber.Tag) ber.Tag {
	switch tag {
	case appBind:
		return appBindResponse
	case appSearch:
		return appSearchDone
	case appModify:
		return appModifyResponse
	case appAdd:
		return appAddResponse
	case appDelete:
		return appDeleteResponse
	case appModDN:
		return appModDNResponse
	case appCompare:
		return appCompareResponse
	}
	return appExtendedResponse
}

func envelope(id int64, op *ber.Packet, controls ...*ber.Packet) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	p.AppendChild(op)
	if len(controls) > 0 {
		c := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
		for _, ctrl := range controls {
			c.AppendChild(ctrl)
		}
		p.AppendChild(c)
	}
	return p
}

func result(tag ber.Tag, code int, matchedDN, msg string) *ber.Packet {
	r := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "Result")
	r.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, "resultCode"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, matchedDN, "matchedDN"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, msg, "diagnosticMessage"))
	return r
}

func extendedResult(code int, msg string) *ber.Packet {
	r := result(appExtendedResponse, code, "", msg)
	if code == resultSuccess {
		r.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, oidStartTLS, "responseName"))
	}
	return r
}

func extendedName(op *ber.Packet) string {
	if len(op.Children) > 0 {
		return str(op.Children[0])
	}
	return ""
}

// bind handles a simple bind by DN or userPrincipalName.
func (s *Server) bind(sess *session, op *ber.Packet) *ber.Packet {
	if len(op.Children) < 3 {
		return result(appBindResponse, resultProtocolError, "", "malformed bind")
	}
	name, auth := str(op.Children[1]), op.Children[2]
	if auth.ClassType != ber.ClassContext || auth.Tag != 0 {
		return result(appBindResponse, resultAuthMethodNotSupported, "", "ldapdir supports simple bind only")
	}
	password := auth.Data.String()
	sess.bound, sess.admin = nil, false
	if name == "" && password == "" {
		return result(appBindResponse, resultSuccess, "", "")
	}
	if !sess.tls {
		return result(appBindResponse, resultStrongAuthRequired, "", "BindSimple: Transport encryption required.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.principal(name)
	if e == nil || password == "" || s.dir.passwords[key(e.rdns)] != password {
		return result(appBindResponse, resultInvalidCredentials, "", diagBadPassword)
	}
	if uac, _ := strconv.ParseInt(e.first("userAccountControl"), 10, 64); uac&uacDisabled != 0 {
		return result(appBindResponse, resultInvalidCredentials, "", diagDisabled)
	}
	sess.bound = e
	sess.admin = sameDN(s.opts.BindDN, e.rdns)
	return result(appBindResponse, resultSuccess, "", "")
}

// principal finds a user by DN or userPrincipalName; callers hold s.mu.
func (s *Server) principal(name string) *entry {
	if strings.Contains(name, "=") {
		if e := s.dir.lookup(name); e != nil && e.hasClass("user") {
			return e
		}
		return nil
	}
	for _, e := range s.dir.entries {
		if e.hasClass("user") && strings.EqualFold(e.first("userPrincipalName"), name) {
			return e
		}
	}
	return nil
}

// search answers a search request, honouring the paged results control.
func (s *Server) search(sess *session, op *ber.Packet, controls []*ber.Packet) []reply {
	done := func(code int, matched, msg string, ctrl ...*ber.Packet) []reply {
		return []reply{{op: result(appSearchDone, code, matched, msg), controls: ctrl}}
	}
	if len(op.Children) < 8 {
		return done(resultProtocolError, "", "malformed search")
	}
	base := str(op.Children[0])
	scope, _ := op.Children[1].Value.(int64)
	sizeLimit, _ := op.Children[3].Value.(int64)
	typesOnly, _ := op.Children[5].Value.(bool)
	filter := op.Children[6]
	var want []string
	for _, a := range op.Children[7].Children {
		want = append(want, str(a))
	}
	var paging *goldap.ControlPaging
	for _, c := range controls {
		if ctrl, err := goldap.DecodeControl(c); err == nil {
			if p, ok := ctrl.(*goldap.ControlPaging); ok {
				paging = p
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if base == "" && scope == 0 {
		return append([]reply{{op: s.rootDSE(want)}}, done(resultSuccess, "", "")...)
	}
	if sess.bound == nil {
		return done(resultOperationsError, "", "00002020: Operation unavailable without authentication")
	}
	baseRDNs, err := normDN(base)
	if err != nil {
		return done(resultInvalidDNSyntax, "", "invalid DN "+base)
	}
	if _, ok := s.dir.entries[key(baseRDNs)]; !ok {
		return done(resultNoSuchObject, s.matched(baseRDNs), "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT), data 0, best match of: '"+base+"'")
	}
	var hits []*entry
	for _, k := range s.dir.order {
		e := s.dir.entries[k]
		switch scope {
		case 0:
			if k != key(baseRDNs) {
				continue
			}
		case 1:
			if len(e.rdns) != len(baseRDNs)+1 || !under(e.rdns, baseRDNs) {
				continue
			}
		default:
			if !under(e.rdns, baseRDNs) {
				continue
			}
		}
		ok, err := match(filter, func(name string) []string { return s.values(e, name) })
		if err != nil {
			return done(resultProtocolError, "", err.Error())
		}
		if ok {
			hits = append(hits, e)
		}
	}

	var pageCtrl []*ber.Packet
	code, msg := resultSuccess, ""
	if paging != nil {
		start, _ := strconv.Atoi(string(paging.Cookie))
		if paging.PagingSize == 0 { // the client abandons the paged search
			hits = nil
		} else {
			hits = hits[min(start, len(hits)):]
		}
		next := ""
		if paging.PagingSize > 0 && len(hits) > int(paging.PagingSize) {
			hits = hits[:paging.PagingSize]
			next = strconv.Itoa(start + int(paging.PagingSize))
		}
		pageCtrl = []*ber.Packet{(&goldap.ControlPaging{Cookie: []byte(next)}).Encode()}
	} else if len(hits) > maxPageSize {
		hits, code, msg = hits[:maxPageSize], resultSizeLimitExceeded, "Size limit exceeded"
	}
	if sizeLimit > 0 && len(hits) > int(sizeLimit) {
		hits, code, msg = hits[:sizeLimit], resultSizeLimitExceeded, "Size limit exceeded"
	}
	out := make([]reply, 0, len(hits)+1)
	for _, e := range hits {
		out = append(out, reply{op: s.entryPacket(e, want, typesOnly)})
	}
	return append(out, done(code, "", msg, pageCtrl...)...)
}

// values returns an attribute's values with the computed ones; callers hold s.mu.
func (s *Server) values(e *entry, name string) []string {
	if strings.EqualFold(name, "memberOf") {
		return s.dir.memberOf(e)
	}
	if strings.EqualFold(name, "unicodePwd") {
		return nil
	}
	return e.get(name)
}

// matched is the longest existing suffix of rdns, for noSuchObject.
func (s *Server) matched(rdns []string) string {
	for i := 1; i < len(rdns); i++ {
		if e, ok := s.dir.entries[key(rdns[i:])]; ok {
			return e.dn
		}
	}
	return ""
}

func (s *Server) entryPacket(e *entry, want []string, typesOnly bool) *ber.Packet {
	all := len(want) == 0 || slices.Contains(want, "*")
	if len(want) == 1 && want[0] == "1.1" {
		all, want = false, nil
	}
	type av struct {
		name string
		vals []string
	}
	var attrs []av
	seen := map[string]bool{}
	add := func(name string, vals []string) {
		if len(vals) > 0 && !seen[strings.ToLower(name)] {
			seen[strings.ToLower(name)] = true
			attrs = append(attrs, av{name, vals})
		}
	}
	if all {
		for _, k := range e.order {
			add(e.attrs[k].name, e.attrs[k].vals)
		}
		add("memberOf", s.dir.memberOf(e))
	}
	for _, w := range want {
		if w == "*" || w == "1.1" {
			continue
		}
		name := w
		if a := e.attrs[strings.ToLower(w)]; a != nil {
			name = a.name
		} else if strings.EqualFold(w, "memberOf") {
			name = "memberOf"
		}
		add(name, s.values(e, w))
	}
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchEntry, nil, "SearchResultEntry")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, e.dn, "objectName"))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	for _, a := range attrs {
		pa := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
		pa.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a.name, "type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		if !typesOnly {
			for _, v := range a.vals {
				set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "value"))
			}
		}
		pa.AppendChild(set)
		list.AppendChild(pa)
	}
	p.AppendChild(list)
	return p
}

func (s *Server) rootDSE(want []string) *ber.Packet {
	base := s.opts.BaseDN
	e := &entry{dn: "", attrs: map[string]*attr{}}
	e.set("namingContexts", base)
	e.set("defaultNamingContext", base)
	e.set("rootDomainNamingContext", base)
	e.set("dnsHostName", "dc1."+domainOf(base))
	e.set("supportedLDAPVersion", "3")
	e.set("supportedControl", goldap.ControlTypePaging, oidPermissiveModify)
	if s.plain != nil {
		e.set("supportedExtension", oidStartTLS)
	}
	return s.entryPacket(e, want, false)
}

// modify applies a modify request atomically: all changes or none.
func (s *Server) modify(sess *session, op *ber.Packet, controls []*ber.Packet) *ber.Packet {
	res := func(code int, msg string) *ber.Packet { return result(appModifyResponse, code, "", msg) }
	if len(op.Children) < 2 {
		return res(resultProtocolError, "malformed modify")
	}
	dn := str(op.Children[0])
	permissive := hasControl(controls, oidPermissiveModify)
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.bound == nil {
		return res(resultOperationsError, "00002020: Operation unavailable without authentication")
	}
	cur := s.dir.lookup(dn)
	if cur == nil {
		return res(resultNoSuchObject, "00002030: No such Base DN: "+dn)
	}
	if !sess.admin {
		return res(resultInsufficientAccessRight, "00002098: Object "+cur.dn+" has no write property access")
	}
	e := cur.clone()
	var newPassword string
	for _, ch := range op.Children[1].Children {
		if len(ch.Children) != 2 || len(ch.Children[1].Children) != 2 {
			return res(resultProtocolError, "malformed change")
		}
		kind, _ := ch.Children[0].Value.(int64)
		name := str(ch.Children[1].Children[0])
		var vals []string
		for _, v := range ch.Children[1].Children[1].Children {
			vals = append(vals, str(v))
		}
		lname := strings.ToLower(name)
		switch lname {
		case "memberof":
			return res(resultUnwillingToPerform, fmt.Sprintf("00002035: objectclass_attrs: attribute 'memberOf' on entry '%s' must not be modified directly, it is a linked attribute", e.dn))
		case "distinguishedname", "samaccounttype", "objectsid", "objectguid":
			return res(resultUnwillingToPerform, "00002035: attribute '"+name+"' cannot be modified")
		case "unicodepwd":
			if !sess.tls {
				return res(resultUnwillingToPerform, "0000001F: SvcErr: DSID-031A126C, problem 5003 (WILL_NOT_PERFORM), data 0")
			}
			if kind != 2 || len(vals) != 1 {
				return res(resultUnwillingToPerform, "ldapdir: unicodePwd supports an administrator's replace only")
			}
			pw, ok := decodeUnicodePwd(vals[0])
			if !ok {
				return res(resultConstraintViolation, "0000052D: Constraint violation - unicodePwd must be a quoted UTF-16LE string")
			}
			if !meetsComplexity(pw) {
				return res(resultConstraintViolation, "0000052D: Constraint violation - check_password_restrictions: the password does not meet the complexity criteria!")
			}
			newPassword = pw
			e.set("pwdLastSet", filetime(time.Now()))
			continue
		case "useraccountcontrol":
			for _, v := range vals {
				if _, err := strconv.ParseInt(v, 10, 32); err != nil {
					return res(resultInvalidAttributeSyntax, "userAccountControl must be an integer")
				}
			}
		case "member", "managedby":
			if lname == "managedby" && !mayBeManaged(e) {
				return res(resultObjectClassViolation, managedByViolation(e.dn))
			}
			if kind != 1 {
				for _, v := range vals {
					if s.dir.lookup(v) == nil {
						return res(resultNoSuchObject, "0000208D: NameErr: no such object for "+name+": "+v)
					}
				}
			}
		}
		have := e.get(name)
		switch kind {
		case 0: // add
			for _, v := range vals {
				if containsValue(lname, have, v) {
					if permissive {
						continue
					}
					return res(resultAttributeOrValueExists, "attribute "+name+" already has value "+v)
				}
				have = append(have, v)
			}
			e.set(name, have...)
		case 1: // delete
			if len(vals) == 0 {
				if len(have) == 0 && !permissive {
					return res(resultNoSuchAttribute, "no attribute "+name)
				}
				e.set(name)
				continue
			}
			for _, v := range vals {
				if !containsValue(lname, have, v) {
					if lname == "member" {
						// Samba 4.17 says this, permissive modify or not.
						return res(resultUnwillingToPerform, "Attribute member doesn't exist for target "+v)
					}
					if permissive {
						continue
					}
					return res(resultNoSuchAttribute, "attribute "+name+" has no value "+v)
				}
				have = slices.DeleteFunc(have, func(h string) bool { return equalValue(lname, h, v) })
			}
			e.set(name, have...)
		case 2: // replace
			e.set(name, vals...)
		default:
			return res(resultUnwillingToPerform, "ldapdir: modify operation not supported")
		}
	}
	s.dir.entries[key(e.rdns)] = e
	if newPassword != "" {
		s.dir.passwords[key(e.rdns)] = newPassword
	}
	return res(resultSuccess, "")
}

// delete removes a leaf entry and its group memberships.
// add creates an entry below an existing one, as an administrator may: the
// sandbox keeps no schema beyond "objectClass is required".
func (s *Server) add(sess *session, op *ber.Packet) *ber.Packet {
	res := func(code int, msg string) *ber.Packet { return result(appAddResponse, code, "", msg) }
	if len(op.Children) != 2 {
		return res(resultProtocolError, "malformed add")
	}
	dn := str(op.Children[0])
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.bound == nil {
		return res(resultOperationsError, "00002020: Operation unavailable without authentication")
	}
	rdns, err := normDN(dn)
	if err != nil || len(rdns) < 2 {
		return res(resultInvalidDNSyntax, "00002081: NameErr: invalid DN "+dn)
	}
	parent := s.dir.entries[key(rdns[1:])]
	if parent == nil {
		return res(resultNoSuchObject, "0000208D: NameErr: DSID-0310028B, problem 2001 (NO_OBJECT), the parent of "+dn+" does not exist")
	}
	if !sess.admin {
		return res(resultInsufficientAccessRight, "00000005: SecErr: DSID-03152857, problem 4003 (INSUFF_ACCESS_RIGHTS): no Create Child right on "+parent.dn)
	}
	if s.dir.entries[key(rdns)] != nil {
		return res(resultEntryAlreadyExists, "00002071: UpdErr: DSID-0305038D, problem 6005 (ENTRY_EXISTS): "+dn)
	}
	e := &entry{dn: dn, attrs: map[string]*attr{}}
	for _, a := range op.Children[1].Children {
		if len(a.Children) != 2 {
			return res(resultProtocolError, "malformed attribute")
		}
		var vals []string
		for _, v := range a.Children[1].Children {
			vals = append(vals, str(v))
		}
		e.set(str(a.Children[0]), vals...)
	}
	if len(e.get("objectClass")) == 0 {
		return res(resultObjectClassViolation, "00002014: objectclass: no objectClass given for "+dn)
	}
	if len(e.get("managedBy")) > 0 && !mayBeManaged(e) {
		return res(resultObjectClassViolation, managedByViolation(dn))
	}
	if err := s.dir.add(e); err != nil {
		return res(resultOperationsError, err.Error())
	}
	return res(resultSuccess, "")
}

func (s *Server) delete(sess *session, op *ber.Packet, controls []*ber.Packet) *ber.Packet {
	res := func(code int, msg string) *ber.Packet { return result(appDeleteResponse, code, "", msg) }
	dn := op.Data.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.bound == nil {
		return res(resultOperationsError, "00002020: Operation unavailable without authentication")
	}
	e := s.dir.lookup(dn)
	if e == nil {
		return res(resultNoSuchObject, "00002030: objectclass: Cannot delete "+dn+", entry does not exist!")
	}
	if !sess.admin {
		return res(resultInsufficientAccessRight, "dsdb_access: Access check failed on "+dn)
	}
	tree := hasControl(controls, oidTreeDelete)
	if s.dir.hasChildren(e) && !tree {
		return res(resultNotAllowedOnNonLeaf, "00002015: cannot delete "+dn+": it has child objects")
	}
	if sameDN(s.opts.BindDN, e.rdns) || strings.EqualFold(e.first("cn"), "Domain Users") {
		return res(resultUnwillingToPerform, "0000209F: cannot delete critical system object "+dn)
	}
	for _, c := range s.dir.subtree(e) { // leaves first
		s.dir.remove(c)
	}
	return res(resultSuccess, "")
}

func hasControl(controls []*ber.Packet, oid string) bool {
	for _, c := range controls {
		if len(c.Children) > 0 && str(c.Children[0]) == oid {
			return true
		}
	}
	return false
}

func containsValue(lname string, have []string, v string) bool {
	return slices.ContainsFunc(have, func(h string) bool { return equalValue(lname, h, v) })
}

func equalValue(lname, a, b string) bool {
	if dnValued[lname] {
		na, errA := normDN(a)
		nb, errB := normDN(b)
		if errA == nil && errB == nil {
			return key(na) == key(nb)
		}
	}
	return strings.EqualFold(a, b)
}

// decodeUnicodePwd reads AD's password form: `"secret"` in UTF-16LE.
func decodeUnicodePwd(v string) (string, bool) {
	b := []byte(v)
	if len(b) < 4 || len(b)%2 != 0 {
		return "", false
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	s := string(utf16.Decode(u))
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	return s[1 : len(s)-1], true
}

// meetsComplexity is AD's default policy: 7+ characters from 3 of 4 classes.
func meetsComplexity(pw string) bool {
	var upper, lower, digit, other int
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			upper = 1
		case unicode.IsLower(r):
			lower = 1
		case unicode.IsDigit(r):
			digit = 1
		default:
			other = 1
		}
	}
	return len([]rune(pw)) >= 7 && upper+lower+digit+other >= 3
}
