package activities

import (
	"context"
	"slices"

	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/control"
)

// DrillPlan is who the drill terminates and in which targets.
type DrillPlan struct {
	Canary  control.Person `json:"canary"`
	Targets []PlanTarget   `json:"targets"`
}

// LoadDrillPlan reads the canary and the targets' containment and restore
// controls. A configuration without a canary refuses: a drill on a real
// person would be a real termination.
func (a *Activities) LoadDrillPlan(ctx context.Context) (DrillPlan, error) {
	c := a.Config.Drill.Canary
	if c.EmployeeID == "" || (c.Email == "" && len(c.Accounts) == 0) {
		return DrillPlan{}, temporal.NewNonRetryableApplicationError(
			"drill: no canary configured (drill.canary.employeeId and email or accounts): a drill needs an identity that is nobody's", ErrTypePermanent, nil)
	}
	p := DrillPlan{Canary: control.Person{EmployeeID: c.EmployeeID, Email: c.Email, Name: "drill canary", Hints: c.Accounts}}
	for _, name := range a.Order {
		if len(a.Config.Drill.Targets) > 0 && !slices.Contains(a.Config.Drill.Targets, name) {
			continue
		}
		t := a.Targets[name]
		p.Targets = append(p.Targets, PlanTarget{Name: name, Kind: t.Kind(), Containment: t.Controls(control.Containment),
			Restore: t.Controls(control.Restore), TaskQueue: a.Config.TaskQueue(name)})
	}
	return p, nil
}
