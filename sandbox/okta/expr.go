package okta

import (
	"errors"
	"fmt"
	"strings"
)

// expr is a parsed search or filter expression: comparisons such as
// profile.email eq "a@b.test" joined by and/or, with parentheses.
// Supported operators: eq, ne, sw (case-insensitive) and pr.
type expr struct {
	op          string // "and", "or", or a comparison operator
	left, right *expr
	attr, value string
}

func (e *expr) matches(u *user) bool {
	switch e.op {
	case "and":
		return e.left.matches(u) && e.right.matches(u)
	case "or":
		return e.left.matches(u) || e.right.matches(u)
	}
	got := attribute(u, e.attr)
	switch e.op {
	case "eq":
		return strings.EqualFold(got, e.value)
	case "ne":
		return !strings.EqualFold(got, e.value)
	case "sw":
		return strings.HasPrefix(strings.ToLower(got), strings.ToLower(e.value))
	case "pr":
		return got != ""
	}
	return false
}

// mentions reports whether the expression compares attr anywhere.
func (e *expr) mentions(attr string) bool {
	if e == nil {
		return false
	}
	return e.attr == attr || e.left.mentions(attr) || e.right.mentions(attr)
}

func attribute(u *user, attr string) string {
	switch attr {
	case "id":
		return u.id
	case "status":
		return u.status
	case "profile.login":
		return u.login
	case "profile.email":
		return u.email
	case "profile.firstName":
		return u.first
	case "profile.lastName":
		return u.last
	case "profile.employeeNumber":
		return u.employeeNumber
	case "profile.department":
		return u.department
	}
	return ""
}

var knownAttrs = map[string]bool{"id": true, "status": true, "lastUpdated": true, "created": true, "type.id": true}

func parseExpr(s string) (*expr, error) {
	p := &parser{src: s}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.skipSpace(); p.pos != len(p.src) {
		return nil, fmt.Errorf("unexpected %q at %d", p.src[p.pos:], p.pos)
	}
	return e, nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && p.src[p.pos] == ' ' {
		p.pos++
	}
}

// word reads the next space- or parenthesis-delimited word.
func (p *parser) word() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.src) && !strings.ContainsRune(" ()\"", rune(p.src[p.pos])) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// keyword consumes kw (case-insensitively) if it comes next.
func (p *parser) keyword(kw string) bool {
	save := p.pos
	if strings.EqualFold(p.word(), kw) {
		return true
	}
	p.pos = save
	return false
}

func (p *parser) or() (*expr, error) {
	left, err := p.and()
	for err == nil && p.keyword("or") {
		var right *expr
		if right, err = p.and(); err == nil {
			left = &expr{op: "or", left: left, right: right}
		}
	}
	return left, err
}

func (p *parser) and() (*expr, error) {
	left, err := p.term()
	for err == nil && p.keyword("and") {
		var right *expr
		if right, err = p.term(); err == nil {
			left = &expr{op: "and", left: left, right: right}
		}
	}
	return left, err
}

func (p *parser) term() (*expr, error) {
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '(' {
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.skipSpace(); p.pos >= len(p.src) || p.src[p.pos] != ')' {
			return nil, errors.New("missing )")
		}
		p.pos++
		return e, nil
	}
	attr := p.word()
	if attr == "" {
		return nil, fmt.Errorf("expected an attribute at %d", p.pos)
	}
	if !knownAttrs[attr] && !strings.HasPrefix(attr, "profile.") {
		return nil, fmt.Errorf("unknown attribute %q", attr)
	}
	op := strings.ToLower(p.word())
	switch op {
	case "pr":
		return &expr{op: op, attr: attr}, nil
	case "eq", "ne", "sw", "gt", "ge", "lt", "le":
	default:
		return nil, fmt.Errorf("unknown operator %q", op)
	}
	value, err := p.value()
	if err != nil {
		return nil, err
	}
	return &expr{op: op, attr: attr, value: value}, nil
}

// value reads a double-quoted string (with \" and \\ escapes) or a bare word.
func (p *parser) value() (string, error) {
	p.skipSpace()
	if p.pos >= len(p.src) || p.src[p.pos] != '"' {
		if w := p.word(); w != "" {
			return w, nil
		}
		return "", fmt.Errorf("expected a value at %d", p.pos)
	}
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		p.pos++
		switch {
		case c == '\\' && p.pos < len(p.src):
			b.WriteByte(p.src[p.pos])
			p.pos++
		case c == '"':
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated string")
}
