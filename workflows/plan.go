package workflows

import (
	"slices"
	"strings"

	"github.com/offboard/offboard/internal/control"
)

// removedKinds names the kinds of Holds entry (control.Account.Holds) a
// destructive control takes away, by control name across connectors.
func removedKinds(name string) []string {
	switch name {
	case "remove_groups":
		return []string{"group"}
	case "remove_directory_roles":
		return []string{"directory role"}
	case "remove_licenses":
		return []string{"license"}
	case "deactivate_access_keys", "delete_access_keys":
		return []string{"access key"}
	case "deactivate_ssh_keys", "delete_ssh_keys":
		return []string{"ssh key"}
	case "deactivate_service_credentials", "delete_service_credentials":
		return []string{"service credential"}
	case "deactivate_signing_certificates", "delete_signing_certificates":
		return []string{"signing certificate"}
	case "deactivate_credentials", "delete_credentials": // plans recorded before the kinds were split
		return []string{"ssh key", "service credential", "signing certificate"}
	case "delete_mfa_devices":
		return []string{"MFA device"}
	case "detach_policies":
		return []string{"policy"}
	}
	return nil
}

// removes is the part of acct.Holds the named control takes away: its kinds'
// entries, minus the groups a role change keeps, plus any "could not be
// read" note for those kinds (the approver must see the plan is incomplete).
// Deleting the account removes the account itself.
func removes(name string, acct control.Account, params control.Params) []string {
	if name == "delete" || name == "delete_user" {
		return []string{"the account itself"}
	}
	var out []string
	for _, kind := range removedKinds(name) {
		for _, h := range acct.Holds {
			item, ok := strings.CutPrefix(h, kind+" ")
			switch {
			case strings.HasPrefix(h, plural(kind)+" could not be read"):
				out = append(out, h)
			case !ok:
			case kind == "group" && slices.ContainsFunc(params.KeepGroups, func(k string) bool { return strings.EqualFold(k, item) }):
			default:
				out = append(out, h)
			}
		}
	}
	return out
}

// plural is the kind as a "could not be read" note names it.
func plural(kind string) string {
	if kind == "policy" {
		return "policies"
	}
	return kind + "s"
}
