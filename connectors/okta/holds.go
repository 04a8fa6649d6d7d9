package okta

import (
	"errors"

	oktasdk "github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/offboard/offboard/internal/control"
)

// holds says what the user holds in Okta, for the approver's plan: its
// groups (the built-in Everyone apart: Okta manages it) and active admin
// roles. A list that cannot be read is said, not left out.
// The groups were read by the caller (beside the roles): gs, err.
func holds(gs groups, err error, roles []*oktasdk.Role, rolesErr error) ([]string, error) {
	var out []string
	if errors.Is(err, control.ErrRateLimited) || errors.Is(err, control.ErrTransient) {
		return nil, err // asking again may cure it: the resolve fails and is retried
	}
	if err != nil {
		out = append(out, "groups could not be read: "+err.Error())
	}
	for _, g := range gs.remove {
		out = append(out, "group "+groupName(g))
	}
	for _, name := range gs.builtIn {
		out = append(out, "built-in group "+name+" (Okta manages it)")
	}
	if rolesErr != nil {
		return append(out, "admin roles could not be read: "+rolesErr.Error()), nil
	}
	for _, r := range roles {
		if r.Status != "" && r.Status != "ACTIVE" {
			continue
		}
		h := "admin role " + r.Type
		if r.AssignmentType == "GROUP" {
			h += " (through a group)"
		}
		out = append(out, h)
	}
	return out, nil
}
