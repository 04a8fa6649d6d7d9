package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
)

func TestPlanRemoves(t *testing.T) {
	acct := control.Account{Target: "aws", ID: "1:ann", Holds: []string{
		"group all-staff", "group Engineering", "built-in group Everyone",
		"directory role Global Reader", "access key …1234 (Active)",
		"ssh keys could not be read: AccessDenied", "MFA device arn:aws:iam::1:mfa/ann",
		"policy arn:aws:iam::aws:policy/ReadOnlyAccess", "policies could not be read: AccessDenied",
	}}
	cases := []struct {
		name   string
		params control.Params
		want   []string
	}{
		{"remove_groups", control.Params{}, []string{"group all-staff", "group Engineering"}},
		{"remove_groups", control.Params{KeepGroups: []string{"engineering"}}, []string{"group all-staff"}},
		{"remove_directory_roles", control.Params{}, []string{"directory role Global Reader"}},
		{"delete_access_keys", control.Params{}, []string{"access key …1234 (Active)"}},
		{"deactivate_ssh_keys", control.Params{}, []string{"ssh keys could not be read: AccessDenied"}},
		{"delete_credentials", control.Params{}, []string{"ssh keys could not be read: AccessDenied"}},
		{"delete_mfa_devices", control.Params{}, []string{"MFA device arn:aws:iam::1:mfa/ann"}},
		{"detach_policies", control.Params{}, []string{"policy arn:aws:iam::aws:policy/ReadOnlyAccess", "policies could not be read: AccessDenied"}},
		{"delete", control.Params{}, []string{"the account itself"}},
		{"delete_user", control.Params{}, []string{"the account itself"}},
		{"deactivate", control.Params{}, nil},
	}
	for _, c := range cases {
		require.Equal(t, c.want, removes(c.name, acct, c.params), "%s %v", c.name, c.params.KeepGroups)
	}
}

// The plan an approver reads names what each step removes.
func TestPlanListsRemovals(t *testing.T) {
	wf := &deprovision{accounts: map[string]control.Account{
		"okta": {Target: "okta", ID: "00u1", Holds: []string{"group all-staff", "admin role SUPER_ADMIN"}},
	}}
	wf.status.Controls = []ControlStatus{
		{ID: "okta/suspend", Target: "okta", Control: "suspend", Phase: control.Containment},
		{ID: "okta/remove_groups", Target: "okta", Control: "remove_groups", Phase: control.Removal},
		{ID: "okta/delete", Target: "okta", Control: "delete", Phase: control.Deletion},
	}
	plan := wf.plan()
	require.Len(t, plan, 2)
	require.Equal(t, []string{"group all-staff"}, plan[0].Removes)
	require.Equal(t, []string{"the account itself"}, plan[1].Removes)
}
