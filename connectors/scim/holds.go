package scim

import (
	"slices"
	"strings"
)

// holds says what a User resource carries, for the approver's plan: its
// groups (read-only in SCIM, served by apps that have them), every role and
// every entitlement, each by display name or value. Attribute names are
// case-insensitive; the kinds come out in this fixed order.
func holds(m map[string]any) []string {
	var out []string
	for _, a := range []struct{ attr, kind string }{{"groups", "group"}, {"roles", "role"}, {"entitlements", "entitlement"}} {
		var got []string
		for k, v := range m {
			if strings.EqualFold(k, a.attr) {
				for _, s := range values(v, "display", "value", "type") {
					got = append(got, a.kind+" "+s)
				}
			}
		}
		slices.Sort(got) // one attribute in practice; sorted all the same, as map order is random
		out = append(out, got...)
	}
	return out
}
