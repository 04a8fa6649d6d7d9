package entra_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/graph"
)

// TestResolveReportsHolds: Resolve says which groups, directory roles and
// licences the user holds, for the approver's plan; what it cannot read is said.
func TestResolveReportsHolds(t *testing.T) {
	e := setup(t, 10000)
	p := people[9] // all-staff, department, admins, dyn-all; Global Reader
	acct := e.account(t, p)
	for _, h := range []string{"group all-staff", "group " + p.Department, "group admins", "directory role " + graph.GlobalReader} {
		assert.Contains(t, acct.Holds, h)
	}
	assert.Contains(t, acct.Holds, "dynamic group "+graph.DynamicGroup+" (membership by rule)")

	fin := e.account(t, people[2]) // direct E3, Power BI from the group
	assert.Contains(t, fin.Holds, "license "+graph.SkuOffice365E3)
	assert.Contains(t, fin.Holds, "group-assigned licenses: 1 (they go with their groups)")

	e.sim.Faults().Add(fault.Rule{PathPrefix: "/v1.0/users/" + acct.ID + "/memberOf", Status: 403})
	again, err := e.client.Resolve(t.Context(), control.Person{Email: p.Email})
	require.NoError(t, err, "an unreadable memberOf is said in Holds, not a failed resolve")
	assert.Contains(t, again.Holds, "groups could not be read: "+control.ErrUnauthorized.Error())
	assert.Contains(t, again.Holds, "directory roles could not be read: "+control.ErrUnauthorized.Error())
}
