package ldap

import goldap "github.com/go-ldap/ldap/v3"

// holds says what the entry holds, for the approver's plan: each group its
// memberOf names, by CN (the primary group, Domain Users, is not listed
// there and remove_groups leaves it).
func holds(e *goldap.Entry) []string {
	var out []string
	for _, g := range e.GetAttributeValues("memberOf") {
		out = append(out, "group "+groupName(g))
	}
	return out
}
