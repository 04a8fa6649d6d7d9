package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Reconcile is the nightly comparison of every target's active accounts with
// the HR roster (issue 14).
type Reconcile struct {
	// Every is how often the Reconcile schedule runs; default 24h.
	Every Duration `yaml:"every" json:"every,omitempty"`
	// Roster is where the HR roster comes from: "sandbox" (the demo company),
	// or a CSV file (roster.csv: employee_id,email,login,status,manager).
	Roster RosterSource `yaml:"roster" json:"roster"`
	// Orphans says what happens to an active account with no active HR
	// record: "report" (default: an exception for its owner) or "contain"
	// (a leaver HR knows and never offboarded is offboarded now; an account
	// HR does not know at all stays an exception, it names nobody to offboard).
	Orphans string `yaml:"orphans" json:"orphans,omitempty"`
	// Owner is who owns an orphan exception; default the first security person.
	Owner string `yaml:"owner" json:"owner,omitempty"`
	// DueIn is how long an owner has to resolve a finding; default 7 days.
	DueIn Duration `yaml:"dueIn" json:"dueIn,omitempty"`
	// ServicePrefixes mark service accounts by login prefix ("svc-"); a
	// service account is matched to an owner, not to HR.
	ServicePrefixes []string `yaml:"servicePrefixes" json:"servicePrefixes,omitempty"`
	// ServiceOwners maps a service account's login to the person who owns it.
	ServiceOwners map[string]string `yaml:"serviceOwners" json:"serviceOwners,omitempty"`
}

// RosterSource names the HR roster.
type RosterSource struct {
	Kind string `yaml:"kind" json:"kind,omitempty"` // "sandbox", "csv", "bamboohr" (its employee directory) or "workday" (Get_Workers)
	Path string `yaml:"path" json:"path,omitempty"` // the CSV file
	// SandboxSize is how many demo people the sandbox roster holds (default demo.Size).
	SandboxSize int `yaml:"sandboxSize" json:"sandboxSize,omitempty"`
	// SandboxLeavers are employee ids the sandbox roster marks terminated.
	SandboxLeavers []string `yaml:"sandboxLeavers" json:"sandboxLeavers,omitempty"`
	// Kind workday: Get_Workers from the tenant's Human_Resources endpoint
	// (https://HOST/ccx/service/TENANT/Human_Resources/v42.0) as an
	// integration system user, with basic auth.
	URL      string `yaml:"url" json:"url,omitempty"`
	Username string `yaml:"username" json:"username,omitempty"`
	Password Secret `yaml:"password" json:"-"`
}

// Reconcile policies for orphans.
const (
	OrphansReport  = "report"
	OrphansContain = "contain"
)

// Interval is how often reconciliation runs.
func (r Reconcile) Interval() time.Duration {
	if r.Every > 0 {
		return r.Every.D()
	}
	return 24 * time.Hour
}

// Due is how long an owner has to act on a finding.
func (r Reconcile) Due() time.Duration {
	if r.DueIn > 0 {
		return r.DueIn.D()
	}
	return 7 * 24 * time.Hour
}

// OrphanPolicy is Orphans with its default.
func (r Reconcile) OrphanPolicy() string {
	if r.Orphans == "" {
		return OrphansReport
	}
	return r.Orphans
}

// IsService reports whether a login names a service account: it has a
// service prefix, or serviceOwners names its owner.
func (r Reconcile) IsService(login string) bool {
	if r.ServiceOwner(login) != "" {
		return true
	}
	for _, p := range r.ServicePrefixes {
		if p != "" && strings.HasPrefix(strings.ToLower(login), strings.ToLower(p)) {
			return true
		}
	}
	return false
}

// ServiceOwner is who owns a service account, by login (case-insensitive).
func (r Reconcile) ServiceOwner(login string) string {
	if o, ok := r.ServiceOwners[login]; ok {
		return o
	}
	for _, l := range slices.Sorted(maps.Keys(r.ServiceOwners)) {
		if strings.EqualFold(l, login) {
			return r.ServiceOwners[l]
		}
	}
	return ""
}

// Check says what is wrong with the section, if anything.
func (r Reconcile) Check() error {
	switch r.OrphanPolicy() {
	case OrphansReport, OrphansContain:
	default:
		return fmt.Errorf("reconcile.orphans: %q is neither %q nor %q", r.Orphans, OrphansReport, OrphansContain)
	}
	switch r.Roster.Kind {
	case "", "sandbox":
	case "csv":
		if r.Roster.Path == "" {
			return fmt.Errorf("reconcile.roster: kind csv needs a path")
		}
	case "bamboohr": // the directory, with relay.sources.bamboohr's API settings
	case "workday":
		if r.Roster.URL == "" || r.Roster.Username == "" || !r.Roster.Password.IsSet() {
			return fmt.Errorf("reconcile.roster: kind workday needs url, username and password")
		}
		if err := r.Roster.Password.check(); err != nil {
			return fmt.Errorf("reconcile.roster.password: %v", err)
		}
	default:
		return fmt.Errorf("reconcile.roster.kind: %q is not sandbox, csv, bamboohr or workday", r.Roster.Kind)
	}
	return nil
}

// Drill is the quarterly simulated termination of a canary identity (issue
// 14): contained, verified and restored in each target, as evidence the
// pipeline works end to end.
type Drill struct {
	// Canary is the designated identity: an account in each target that is
	// nobody's, kept for drills. Without one, drills refuse to run.
	Canary DrillCanary `yaml:"canary" json:"canary"`
	// Targets limits the drill to these targets; empty is every target.
	Targets []string `yaml:"targets" json:"targets,omitempty"`
}

// DrillCanary names the canary as HR would.
type DrillCanary struct {
	EmployeeID string `yaml:"employeeId" json:"employeeId"`
	Email      string `yaml:"email" json:"email"`
	// Accounts are per-target account hints (target name → id or login).
	Accounts map[string]string `yaml:"accounts" json:"accounts,omitempty"`
}
