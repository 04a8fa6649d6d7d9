package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// The blast-radius guard: one long-running workflow per namespace counts the
// HR events that act on people (terminations, contract ends, role changes,
// rescinds, rehires, reschedules) for every relay replica and the CLI alike.
// Each admission is a Workflow Update, so counting and deciding is one step
// in one place: two replicas cannot both see "19 so far" and both let the
// 20th through. Its state is in the history, so a restart forgets nothing.
const (
	GuardWorkflowType = "BlastRadiusGuard"
	GuardWorkflowID   = "offboard-blast-radius-guard"
	UpdateAdmit       = "admit"
	QueryGuard        = "guard"

	// DeliveryWorkflowType remembers one signed HR delivery (workflow id
	// DeliveryWorkflowID(digest)) until its signature can no longer be
	// replayed: the id is the memory, the run keeps it for the skew window.
	DeliveryWorkflowType = "HRDelivery"
)

// DeliveryWorkflowID names the memory of one delivery by its digest.
func DeliveryWorkflowID(digest string) string { return "hr-delivery-" + digest }

// Guard classes: each has its own budget of Max per Window.
const (
	GuardRemoval    = "removal"     // termination, contract_end
	GuardRoleChange = "role_change" // role_change
	GuardReversal   = "reversal"    // rescind, rehire, reschedule
)

// guardHorizon is how long an admission is kept by arrival: events that take
// effect at the same moment are counted together even when they arrive over
// hours.
const guardHorizon = 24 * time.Hour

// guardMaxEntries bounds the state; beyond it every admission is quarantined
// (failing safe) until old entries age out.
const guardMaxEntries = 5000

// guardContinueAfter admissions, the guard continues as new with its entries.
const guardContinueAfter = 1000

// Admission asks the guard whether one HR event may act without a person.
type Admission struct {
	// Key makes an admission idempotent: the same key again gets the first
	// verdict and is not counted twice (the event id and what it does).
	Key         string    `json:"key"`
	Class       string    `json:"class"` // GuardRemoval, GuardRoleChange, GuardReversal
	EmployeeID  string    `json:"employeeId"`
	Source      string    `json:"source"`
	EffectiveAt time.Time `json:"effectiveAt"`
	// Max and Window are the configured limits; each admission carries them
	// so a configuration change applies from the next event on.
	Max    int           `json:"max"`
	Window time.Duration `json:"window"`
}

// GuardClass is the budget an HR event of this kind counts against.
func GuardClass(k Kind) string {
	switch k {
	case KindRoleChange:
		return GuardRoleChange
	case KindTermination, KindContractEnd:
		return GuardRemoval
	}
	return GuardReversal
}

// AdmissionFor is the admission of one HR event, the same from the relay
// and the CLI: what is "start", "rescind" or "reschedule"; starts count
// against their kind's class, the others are reversals.
func AdmissionFor(what, source string, t Termination, max int, window time.Duration) Admission {
	class := GuardClass(t.Kind)
	if what != "start" {
		class = GuardReversal
	}
	return Admission{
		Key:   what + "|" + t.EmployeeID + "|" + t.EventID + "|" + t.EffectiveAt.UTC().Format(time.RFC3339),
		Class: class, EmployeeID: t.EmployeeID, Source: source, EffectiveAt: t.EffectiveAt, Max: max, Window: window,
	}
}

// AdmitVerdict is the guard's answer.
type AdmitVerdict struct {
	Quarantined bool   `json:"quarantined"`
	Reason      string `json:"reason,omitempty"`
	// Repeat is true when the key was admitted before: the first verdict.
	Repeat bool `json:"repeat,omitempty"`
}

// GuardEntry is one admitted event.
type GuardEntry struct {
	Key         string    `json:"key"`
	Class       string    `json:"class"`
	EmployeeID  string    `json:"employeeId"`
	Source      string    `json:"source"`
	ArrivedAt   time.Time `json:"arrivedAt"`
	EffectiveAt time.Time `json:"effectiveAt"`
	Quarantined bool      `json:"quarantined"`
	Reason      string    `json:"reason,omitempty"`
}

// GuardState is the guard's memory, carried across continue-as-new and
// returned by the guard query.
type GuardState struct {
	Entries []GuardEntry `json:"entries"`
}

// Guard is the blast-radius guard workflow.
func Guard(ctx workflow.Context, st GuardState) error {
	admitted := 0
	if err := workflow.SetQueryHandler(ctx, QueryGuard, func() (GuardState, error) { return st, nil }); err != nil {
		return fmt.Errorf("guard query: %w", err)
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateAdmit,
		func(ctx workflow.Context, a Admission) (AdmitVerdict, error) {
			admitted++
			v := st.Admit(a, workflow.Now(ctx))
			return v, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(a Admission) error { return a.check() }})
	if err != nil {
		return fmt.Errorf("guard admit: %w", err)
	}
	// Keep the history short: continue as new once it has grown, after the
	// admissions in flight have been answered.
	_ = workflow.Await(ctx, func() bool {
		return admitted >= guardContinueAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	})
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	return workflow.NewContinueAsNewError(ctx, GuardWorkflowType, st)
}

func (a Admission) check() error {
	switch {
	case a.Key == "":
		return errors.New("admission: key is required")
	case a.Class != GuardRemoval && a.Class != GuardRoleChange && a.Class != GuardReversal:
		return fmt.Errorf("admission: class %q is not %s, %s or %s", a.Class, GuardRemoval, GuardRoleChange, GuardReversal)
	case a.Max <= 0 || a.Window <= 0:
		return errors.New("admission: max and window must be positive")
	}
	return nil
}

// Admit counts the event and decides. An event is quarantined when Max
// events of its class already arrived within the last Window, or when Max
// events of its class take effect within one Window of its effective time
// (arrived within the horizon): a flood spread over hours but all effective
// at once is caught as well as a burst.
func (st *GuardState) Admit(a Admission, now time.Time) AdmitVerdict {
	for _, e := range st.Entries {
		if e.Key == a.Key {
			return AdmitVerdict{Quarantined: e.Quarantined, Reason: e.Reason, Repeat: true}
		}
	}
	st.prune(now, a.Window)
	arrived, together := 0, 0
	for _, e := range st.Entries {
		if e.Class != a.Class {
			continue
		}
		if now.Sub(e.ArrivedAt) < a.Window {
			arrived++
		}
		if d := e.EffectiveAt.Sub(a.EffectiveAt); d < a.Window && d > -a.Window {
			together++
		}
	}
	e := GuardEntry{Key: a.Key, Class: a.Class, EmployeeID: a.EmployeeID, Source: a.Source, ArrivedAt: now, EffectiveAt: a.EffectiveAt}
	switch {
	case len(st.Entries) >= guardMaxEntries:
		e.Quarantined, e.Reason = true, fmt.Sprintf("the guard holds %d events, its limit: every new one waits for security", len(st.Entries))
	case arrived >= a.Max:
		e.Quarantined, e.Reason = true, fmt.Sprintf("%d %s events already arrived within %s (max %d)", arrived, a.Class, a.Window, a.Max)
	case together >= a.Max:
		e.Quarantined, e.Reason = true, fmt.Sprintf("%d %s events already take effect within %s of this one (max %d)", together, a.Class, a.Window, a.Max)
	}
	if len(st.Entries) < guardMaxEntries {
		st.Entries = append(st.Entries, e)
	}
	return AdmitVerdict{Quarantined: e.Quarantined, Reason: e.Reason}
}

// prune forgets entries that can no longer count: arrived before the
// horizon, or arrived before the window and effective before it.
func (st *GuardState) prune(now time.Time, window time.Duration) {
	kept := st.Entries[:0]
	for _, e := range st.Entries {
		old := now.Sub(e.ArrivedAt)
		if old >= guardHorizon || old >= window && now.Sub(e.EffectiveAt) >= window {
			continue
		}
		kept = append(kept, e)
	}
	st.Entries = kept
}

// Delivery keeps a delivery's id in use until the delivery's signature can
// no longer be replayed (until), so a replay finds it; then it completes and
// its id stays unusable until the namespace's retention ends.
func Delivery(ctx workflow.Context, until time.Time) error {
	if d := until.Sub(workflow.Now(ctx)); d > 0 {
		// A labelled timer: the same StartTimer command as workflow.Sleep.
		return workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: "remember the delivery until its signature expires"}).Get(ctx, nil)
	}
	return nil
}
