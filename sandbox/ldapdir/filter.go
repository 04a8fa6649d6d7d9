package ldapdir

import (
	"errors"
	"strconv"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// Filter choices (RFC 4511 4.5.1).
const (
	filterAnd        = 0
	filterOr         = 1
	filterNot        = 2
	filterEquality   = 3
	filterSubstrings = 4
	filterGreater    = 5
	filterLess       = 6
	filterPresent    = 7
	filterApprox     = 8
	filterExtensible = 9
)

// AD's bitwise matching rules and LDAP_MATCHING_RULE_IN_CHAIN.
const (
	ruleBitAnd  = "1.2.840.113556.1.4.803"
	ruleBitOr   = "1.2.840.113556.1.4.804"
	ruleInChain = "1.2.840.113556.1.4.1941"
)

var errFilter = errors.New("malformed filter")

// dnValued are compared as DNs, not strings.
var dnValued = map[string]bool{"member": true, "memberof": true, "distinguishedname": true, "objectcategory": true, "managedby": true}

// match evaluates a BER-encoded filter against e. vals returns an
// attribute's values, computed ones (memberOf) included.
func match(f *ber.Packet, vals func(string) []string) (bool, error) {
	if f.ClassType != ber.ClassContext {
		return false, errFilter
	}
	switch f.Tag {
	case filterAnd, filterOr:
		for _, c := range f.Children {
			ok, err := match(c, vals)
			if err != nil {
				return false, err
			}
			if f.Tag == filterOr && ok {
				return true, nil
			}
			if f.Tag == filterAnd && !ok {
				return false, nil
			}
		}
		return f.Tag == filterAnd, nil
	case filterNot:
		if len(f.Children) != 1 {
			return false, errFilter
		}
		ok, err := match(f.Children[0], vals)
		return !ok, err
	case filterPresent:
		return len(vals(f.Data.String())) > 0, nil
	case filterEquality, filterApprox, filterGreater, filterLess:
		if len(f.Children) != 2 {
			return false, errFilter
		}
		name, want := str(f.Children[0]), str(f.Children[1])
		for _, v := range vals(name) {
			if compare(f.Tag, name, v, want) {
				return true, nil
			}
		}
		return false, nil
	case filterSubstrings:
		if len(f.Children) != 2 {
			return false, errFilter
		}
		name := str(f.Children[0])
		for _, v := range vals(name) {
			if substrings(strings.ToLower(v), f.Children[1].Children) {
				return true, nil
			}
		}
		return false, nil
	case filterExtensible:
		var rule, name, want string
		for _, c := range f.Children {
			switch c.Tag {
			case 1:
				rule = c.Data.String()
			case 2:
				name = c.Data.String()
			case 3:
				want = c.Data.String()
			}
		}
		for _, v := range vals(name) {
			if extensible(rule, name, v, want) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, errFilter
}

func compare(op ber.Tag, name, have, want string) bool {
	lname := strings.ToLower(name)
	if op == filterEquality || op == filterApprox {
		if dnValued[lname] {
			if lname == "objectcategory" && !strings.Contains(want, "=") {
				// AD accepts the class name as a shorthand: (objectCategory=person).
				return strings.EqualFold(firstValue(have), want)
			}
			a, errA := normDN(have)
			b, errB := normDN(want)
			if errA == nil && errB == nil {
				return key(a) == key(b)
			}
		}
		return strings.EqualFold(have, want)
	}
	h, errH := strconv.ParseInt(have, 10, 64)
	w, errW := strconv.ParseInt(want, 10, 64)
	if errH == nil && errW == nil {
		if op == filterGreater {
			return h >= w
		}
		return h <= w
	}
	c := strings.Compare(strings.ToLower(have), strings.ToLower(want))
	if op == filterGreater {
		return c >= 0
	}
	return c <= 0
}

func substrings(v string, parts []*ber.Packet) bool {
	for i, p := range parts {
		s := strings.ToLower(p.Data.String())
		switch p.Tag {
		case 0: // initial
			if !strings.HasPrefix(v, s) {
				return false
			}
			v = v[len(s):]
		case 1: // any
			j := strings.Index(v, s)
			if j < 0 {
				return false
			}
			v = v[j+len(s):]
		case 2: // final
			if i != len(parts)-1 || !strings.HasSuffix(v, s) {
				return false
			}
		}
	}
	return true
}

func extensible(rule, name, have, want string) bool {
	switch rule {
	case ruleBitAnd, ruleBitOr:
		h, err1 := strconv.ParseInt(have, 10, 64)
		w, err2 := strconv.ParseInt(want, 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if rule == ruleBitAnd {
			return h&w == w
		}
		return h&w != 0
	case ruleInChain, "":
		// No nested groups here, so "in chain" is plain equality.
		return compare(filterEquality, name, have, want)
	}
	return false
}

// firstValue is the value of a DN's first RDN (cn of CN=Person,CN=Schema,...).
func firstValue(dn string) string {
	head, _, _ := strings.Cut(dn, ",")
	_, v, _ := strings.Cut(head, "=")
	return v
}

// str is a primitive packet's content.
func str(p *ber.Packet) string {
	if p == nil || p.Data == nil {
		return ""
	}
	return p.Data.String()
}
