package main

import (
	"flag"
	"net/http"
	"strings"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/hr"
)

// The HR roster the sandbox serves on :8108 (sandbox/hr), so that `make run`
// reconciles against a roster read over HTTP, as production does: BambooHR's
// employee directory and Workday's Get_Workers. The embedded default reads
// Get_Workers (reconcile.roster in internal/config/default.yaml).
const (
	HRPort          = 8108
	HRTenant        = "sandbox" // Workday tenant and BambooHR company domain
	WorkdayUser     = "ISU_Offboard@sandbox"
	WorkdayPassword = "sandbox-workday-roster-password"
	BambooHRKey     = "sandbox-bamboohr-key"
)

var hrLeavers = flag.String("hr-leavers", "", "employee ids (comma-separated) HR shows as terminated; PUT /_sandbox/workers/{id} changes one later")

// hrRoster serves the demo company's roster.
func hrRoster(seed []demo.Person) http.Handler {
	var leavers []string
	for _, id := range strings.Split(*hrLeavers, ",") {
		if id = strings.TrimSpace(id); id != "" {
			leavers = append(leavers, id)
		}
	}
	return hr.New(hr.Options{People: seed, Leavers: leavers, CompanyDomain: HRTenant, APIKey: BambooHRKey,
		Username: WorkdayUser, Password: WorkdayPassword}).Handler()
}
