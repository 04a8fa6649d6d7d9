package entra

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/offboard/offboard/internal/control"
)

// holds says what the user holds in Entra, for the approver's plan: direct
// groups and directory roles (memberOf) and licences. Groups remove_groups
// leaves (dynamic, synced from on-premises) and licences that come with a
// group are named apart. A read that fails is said, with its kind.
//
// The licences are read beside memberOf: neither needs the other. *again is
// the caller's alone (holds runs beside privileges, which has its own).
func (c *Client) holds(ctx context.Context, op, id string, again *error) []string {
	var u models.Userable
	var uerr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		u, _, uerr = c.getUser(ctx, op, id, "id", "assignedLicenses", "licenseAssignmentStates")
	}()
	var out []string
	m, _, err := c.memberOf(ctx, op, permReadRoles, id)
	wg.Wait()
	if err != nil && retryableRead(err, again) {
		return nil
	}
	if err != nil {
		out = append(out, "groups could not be read: "+failure(err), "directory roles could not be read: "+failure(err))
	}
	for _, g := range m.groups {
		name := deref(g.GetDisplayName())
		switch {
		case slices.Contains(g.GetGroupTypes(), "DynamicMembership"):
			out = append(out, "dynamic group "+name+" (membership by rule)")
		case deref(g.GetOnPremisesSyncEnabled()):
			out = append(out, "on-premises group "+name+" (synced from AD)")
		default:
			out = append(out, "group "+name)
		}
	}
	for _, r := range m.roles {
		out = append(out, "directory role "+roleName(r))
	}
	err = uerr
	if err != nil && retryableRead(err, again) {
		return nil
	}
	if err != nil {
		return append(out, "licenses could not be read: "+failure(err))
	}
	direct, inherited := licenses(u)
	for _, sku := range skuStrings(direct) {
		out = append(out, "license "+sku)
	}
	if inherited > 0 {
		out = append(out, fmt.Sprintf("group-assigned licenses: %d (they go with their groups)", inherited))
	}
	return out
}

// failure names an error's kind for people, not its (long) text.
func failure(err error) string {
	var ce *control.Error
	if errors.As(err, &ce) {
		return ce.Kind.Error()
	}
	return err.Error()
}
