package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/roster"
)

// Kinds of reconciliation finding.
const (
	// FindingLeaverActive: the account belongs to someone HR says has left.
	// Whether that is drift (a closed run's leaver active again) or a leaver
	// never offboarded is decided against Temporal afterwards.
	FindingLeaverActive = "leaver_active"
	// FindingOrphan: no HR record at all matches the account.
	FindingOrphan = "orphan"
	// FindingServiceNoOwner: a service account nobody is named as owning.
	FindingServiceNoOwner = "service_without_owner"
)

// ReconcileTargetPlan is one target reconciliation can list.
type ReconcileTargetPlan struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	TaskQueue string `json:"taskQueue,omitempty"`
	// Listable is false for a target whose connector cannot list accounts:
	// it is reported as not covered, never as clean.
	Listable bool `json:"listable"`
}

// ReconcilePlan is what one reconciliation covers and the policy it follows.
type ReconcilePlan struct {
	Targets []ReconcileTargetPlan `json:"targets"`
	Policy  config.Reconcile      `json:"policy"`
	Owner   string                `json:"owner"`
	// The blast-radius guard's limits (relay.blastRadius): re-containments
	// a reconciliation starts count against them like HR terminations.
	GuardMax    int           `json:"guardMax,omitempty"`
	GuardWindow time.Duration `json:"guardWindow,omitempty"`
}

// LoadReconcilePlan lists the configured targets and the reconcile policy.
func (a *Activities) LoadReconcilePlan(ctx context.Context) (ReconcilePlan, error) {
	p := ReconcilePlan{Policy: a.Config.Reconcile, Owner: a.Config.Reconcile.Owner,
		GuardMax: a.Config.Relay.BlastRadius.Max, GuardWindow: a.Config.Relay.BlastRadius.Window.D()}
	if p.Owner == "" && len(a.Config.People.Security) > 0 {
		p.Owner = a.Config.People.Security[0]
	}
	for _, name := range a.Order {
		t := a.Targets[name]
		_, ok := t.(control.Lister)
		p.Targets = append(p.Targets, ReconcileTargetPlan{Name: name, Kind: t.Kind(), TaskQueue: a.Config.TaskQueue(name), Listable: ok})
	}
	return p, nil
}

// Finding is one account reconciliation flags.
type Finding struct {
	Kind       string `json:"kind"`
	Target     string `json:"target"`
	AccountID  string `json:"accountId"`
	Login      string `json:"login,omitempty"`
	Email      string `json:"email,omitempty"`
	EmployeeID string `json:"employeeId,omitempty"` // the HR person matched, if any
	Name       string `json:"name,omitempty"`
	Manager    string `json:"manager,omitempty"`
}

// ReconcileCounts are per-target tallies.
type ReconcileCounts struct {
	Accounts       int `json:"accounts"` // active accounts listed
	Pages          int `json:"pages"`
	Matched        int `json:"matched"` // an active HR person holds it
	ServiceOwned   int `json:"serviceOwned"`
	LeaverActive   int `json:"leaverActive"`
	Orphans        int `json:"orphans"`
	ServiceNoOwner int `json:"serviceNoOwner"`
	Canary         int `json:"canary,omitempty"` // the drill's canary: known, not an orphan
}

// ListPageInput asks one activity for up to MaxPages pages of one target.
type ListPageInput struct {
	Target   string `json:"target"`
	Cursor   string `json:"cursor,omitempty"`
	MaxPages int    `json:"maxPages,omitempty"` // default 5
	Limit    int    `json:"limit,omitempty"`    // accounts per page asked for; default the connector's
}

// ListPageResult is what those pages held. Next is "" when the target was
// read to its end.
type ListPageResult struct {
	Target   string          `json:"target"`
	Next     string          `json:"next,omitempty"`
	Done     bool            `json:"done"`
	Counts   ReconcileCounts `json:"counts"`
	Findings []Finding       `json:"findings"`
	// Resumed is the cursor a retry picked up from the last heartbeat, when it did.
	Resumed string `json:"resumed,omitempty"`
}

// ReconcileListPages pages through a target's active accounts from in.Cursor
// and matches each to the HR roster. After every page it heartbeats the
// next cursor with what it found so far, so an attempt that dies (a worker
// crash, a heartbeat timeout) is retried from that cursor, not from the top.
// With the target's ActivitiesPerSecond set, pages are spaced by the calls
// each took, to about four requests per allowed activity.
func (a *Activities) ReconcileListPages(ctx context.Context, in ListPageInput) (ListPageResult, error) {
	t, err := a.target(in.Target)
	if err != nil {
		return ListPageResult{}, err
	}
	lister, ok := t.(control.Lister)
	if !ok {
		return ListPageResult{}, temporal.NewNonRetryableApplicationError(in.Target+": this connector cannot list accounts", ErrTypePermanent, nil)
	}
	people, err := openRoster(ctx, a.Config)
	if err != nil {
		return ListPageResult{}, err
	}
	idx := roster.NewIndex(people)

	res := ListPageResult{Target: in.Target, Next: in.Cursor, Findings: []Finding{}}
	if activity.HasHeartbeatDetails(ctx) {
		var saved ListPageResult
		if err := activity.GetHeartbeatDetails(ctx, &saved); err == nil && saved.Target == in.Target {
			res = saved
			res.Resumed = saved.Next
			if res.Done {
				return res, nil // the attempt that died had read its last page
			}
		}
	}
	maxPages := in.MaxPages
	if maxPages <= 0 {
		maxPages = 5
	}
	// The target's limit is in activities per second, about a quarter of its
	// request budget (config.Limits): pages are spaced by the calls they took.
	rate := a.targetRate(in.Target)
	var gap time.Duration
	seen := map[string]bool{}
	for pages := 0; pages < maxPages; pages++ {
		page, err := lister.ListActive(ctx, res.Next, in.Limit)
		if err != nil {
			return ListPageResult{}, classify(fmt.Errorf("reconcile %s at cursor %q: %w", in.Target, res.Next, err))
		}
		for _, acct := range page.Accounts {
			if seen[acct.ID] {
				return ListPageResult{}, classify(&control.Error{Kind: control.ErrUnexpected, Op: "reconcile " + in.Target,
					Err: fmt.Errorf("account %s listed twice: the target does not honour its paging cursor", acct.ID)})
			}
			seen[acct.ID] = true
			a.classifyAccount(&res, idx, acct)
		}
		res.Counts.Pages++
		if rate > 0 {
			// 90 % of the budget: a second's count also catches the next
			// page's calls, which timing alone cannot keep apart.
			gap = time.Duration(float64(max(page.Calls, 1)) / (0.9 * 4 * rate) * float64(time.Second))
		}
		res.Next = page.Next
		res.Done = page.Next == ""
		activity.RecordHeartbeat(ctx, res)
		if res.Done {
			break
		}
		// Spaced after every page, the activity's last one too: the next
		// activity's first page follows at once, and the task queue's limit
		// counts activities, not the requests each makes.
		if gap > 0 {
			select {
			case <-time.After(gap):
			case <-ctx.Done():
				return ListPageResult{}, ctx.Err()
			}
		}
	}
	return res, nil
}

func (a *Activities) classifyAccount(res *ListPageResult, idx *roster.Index, acct control.ActiveAccount) {
	rc := a.Config.Reconcile
	res.Counts.Accounts++
	f := Finding{Target: res.Target, AccountID: acct.ID, Login: acct.Login, Email: acct.Email, Name: acct.Name}
	if a.isCanary(res.Target, acct) {
		res.Counts.Canary++
		return
	}
	if _, ok := a.Config.BreakGlassAccount(res.Target, acct.ID, acct.Login, acct.Email); ok {
		res.Counts.ServiceOwned++ // declared in the break-glass registry: owned, known
		return
	}
	if rc.IsService(acct.Login) {
		if rc.ServiceOwner(acct.Login) != "" {
			res.Counts.ServiceOwned++
			return
		}
		f.Kind = FindingServiceNoOwner
		res.Counts.ServiceNoOwner++
		res.Findings = append(res.Findings, f)
		return
	}
	p, ok := idx.Match(acct.EmployeeID, acct.Email, acct.Login)
	switch {
	case !ok:
		f.Kind = FindingOrphan
		res.Counts.Orphans++
	case p.Status == roster.Active:
		res.Counts.Matched++
		return
	default:
		f.Kind, f.EmployeeID, f.Name, f.Manager = FindingLeaverActive, p.EmployeeID, p.Name, p.Manager
		if f.Email == "" {
			f.Email = p.Email
		}
		res.Counts.LeaverActive++
	}
	res.Findings = append(res.Findings, f)
}

// isCanary reports whether the account is the drill's canary in this target.
func (a *Activities) isCanary(target string, acct control.ActiveAccount) bool {
	c := a.Config.Drill.Canary
	if c.EmployeeID == "" {
		return false
	}
	hint := c.Accounts[target]
	return (c.Email != "" && (strings.EqualFold(acct.Email, c.Email) || strings.EqualFold(acct.Login, c.Email))) ||
		(hint != "" && (acct.ID == hint || strings.EqualFold(acct.Login, hint))) ||
		(acct.EmployeeID != "" && acct.EmployeeID == c.EmployeeID)
}

func (a *Activities) targetRate(name string) float64 {
	for _, t := range a.Config.Targets {
		if t.Name == name && t.Limits != nil {
			return t.Limits.ActivitiesPerSecond
		}
	}
	return 0
}

// openRoster reads the HR roster. A roster that cannot be read fails the
// activity for good: matching against nobody would make everyone an orphan.
func openRoster(ctx context.Context, cfg config.Config) ([]roster.Person, error) {
	r, err := roster.Open(cfg)
	if err == nil {
		var people []roster.Person
		people, err = r.People(ctx)
		if err == nil && len(people) == 0 {
			err = errors.New("the roster is empty")
		}
		if err == nil {
			return people, nil
		}
	}
	return nil, temporal.NewNonRetryableApplicationError("reconcile: HR roster: "+err.Error(), ErrTypePermanent, nil)
}
