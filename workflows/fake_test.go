package workflows

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/offboard/offboard/internal/control"
)

// fakeTarget is an in-memory system: each control is a flag per account, and
// failures can be scripted per control.
type fakeTarget struct {
	name string
	mu   sync.Mutex
	// holds[control] is whether the control is in force for the one account.
	holds    map[string]bool
	enforced map[string]int
	// fail[control] = how many more Enforce calls fail, and with which kind.
	fail     map[string]int
	failKind map[string]error
	params   map[string]control.Params
	missing  bool // the person has no account here
	// privileges are the admin rights Resolve reports for the account.
	privileges []string
	// acknowledgedOnly controls can't be read back.
	acknowledgedOnly map[string]bool
}

func newFake(name string) *fakeTarget {
	return &fakeTarget{
		name:             name,
		holds:            map[string]bool{},
		enforced:         map[string]int{},
		fail:             map[string]int{},
		failKind:         map[string]error{},
		params:           map[string]control.Params{},
		acknowledgedOnly: map[string]bool{"clear_sessions": true},
	}
}

func (f *fakeTarget) Name() string { return f.name }
func (f *fakeTarget) Kind() string { return "fake" }

func (f *fakeTarget) Resolve(_ context.Context, p control.Person) (control.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missing {
		return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: f.name + ": resolve", Searched: []string{"email " + p.Email + ": 0 users"}}
	}
	return control.Account{ID: "u-" + p.EmployeeID, Login: p.Email, Privileges: f.privileges}, nil
}

func (f *fakeTarget) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{"suspend", "clear_sessions"}
	case control.Removal:
		return []string{"remove_groups", "deactivate"}
	case control.Deletion:
		return []string{"delete"}
	case control.RoleChange:
		return []string{"remove_groups"}
	case control.Restore:
		return []string{"unsuspend"}
	}
	return nil
}

func (f *fakeTarget) Observe(_ context.Context, name string, _ control.Account, _ control.Params) (control.Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.acknowledgedOnly[name] {
		return control.Observation{Readable: false}, nil
	}
	h := f.holds[name]
	return control.Observation{Holds: h, Readable: true, Detail: fmt.Sprintf("%s=%v", name, h),
		Call: control.Response{RequestID: "req-" + name, HTTPStatus: 200, Digest: control.Digest([]byte(name))}}, nil
}

func (f *fakeTarget) Enforce(_ context.Context, name string, _ control.Account, p control.Params) (control.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[name] > 0 {
		f.fail[name]--
		kind := f.failKind[name]
		if kind == nil {
			kind = control.ErrPermanent
		}
		e := &control.Error{Kind: kind, Op: f.name + ": " + name, HTTPStatus: 400, RequestID: "req-fail", Digest: "sha256:bad"}
		if kind == control.ErrRateLimited {
			e.HTTPStatus, e.RetryAfter = 429, 2*time.Second
		}
		return control.Response{}, e
	}
	f.enforced[name]++
	f.params[name] = p
	f.holds[name] = true
	if name == "unsuspend" {
		f.holds["suspend"] = false
	}
	return control.Response{RequestID: "req-" + name, HTTPStatus: 200}, nil
}

func (f *fakeTarget) setHolds(name string, v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holds[name] = v
}

func (f *fakeTarget) failNext(name string, n int, kind error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[name], f.failKind[name] = n, kind
}

func (f *fakeTarget) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.enforced[name]
}

func (f *fakeTarget) enforcedNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, v := range f.enforced {
		if v > 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
