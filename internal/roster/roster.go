// Package roster reads the HR roster reconciliation matches accounts to: who
// works here now, who has left, and who manages whom. A roster CSV exported
// from the HR system, or the sandbox's demo company.
package roster

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/sandbox/demo"
)

// Statuses of a person in the roster.
const (
	Active     = "active"
	Terminated = "terminated"
)

// Person is one roster row.
type Person struct {
	EmployeeID string `json:"employeeId"`
	Email      string `json:"email,omitempty"`
	Login      string `json:"login,omitempty"`
	Name       string `json:"name,omitempty"`
	Status     string `json:"status"` // active or terminated
	Manager    string `json:"manager,omitempty"`
}

// Roster is the HR system's list of people.
type Roster interface {
	People(ctx context.Context) ([]Person, error)
}

// Open returns the roster the configuration's reconcile.roster names;
// bamboohr uses relay.sources.bamboohr's API settings, workday
// reconcile.roster's url, username and password.
func Open(c config.Config) (Roster, error) {
	cfg := c.Reconcile.Roster
	switch cfg.Kind {
	case "", "sandbox":
		return Sandbox{Size: cfg.SandboxSize, Leavers: cfg.SandboxLeavers}, nil
	case "csv":
		return CSV{Path: cfg.Path}, nil
	case "bamboohr":
		src := c.Relay.Sources.BambooHR
		if src == nil || src.CompanyDomain == "" || !src.APIKey.IsSet() {
			return nil, fmt.Errorf("roster: kind bamboohr needs relay.sources.bamboohr with companyDomain and apiKey")
		}
		key, err := src.APIKey.Value()
		if err != nil {
			return nil, fmt.Errorf("roster: bamboohr apiKey: %w", err)
		}
		return BambooHR{BaseURL: src.APIBaseURL, CompanyDomain: src.CompanyDomain, APIKey: key}, nil
	case "workday":
		pw, err := cfg.Password.Value()
		if err != nil {
			return nil, fmt.Errorf("roster: workday password: %w", err)
		}
		return Workday{URL: cfg.URL, Username: cfg.Username, Password: pw, CacheFor: 10 * time.Minute}, nil
	}
	return nil, fmt.Errorf("roster: unknown kind %q", cfg.Kind)
}

// Sandbox is the demo company every simulator seeds, with the given people
// marked as having left.
type Sandbox struct {
	Size    int
	Leavers []string
}

// People lists the demo company.
func (s Sandbox) People(context.Context) ([]Person, error) {
	n := s.Size
	if n <= 0 {
		n = demo.Size
	}
	out := make([]Person, 0, n)
	for _, p := range demo.People(n) {
		status := Active
		if slices.Contains(s.Leavers, p.EmployeeID) {
			status = Terminated
		}
		out = append(out, Person{EmployeeID: p.EmployeeID, Email: p.Email, Login: p.Login, Name: p.Name(), Status: status})
	}
	return out, nil
}

// CSV is a roster file with a header row naming at least employee_id and
// status, and any of email, login, name, manager.
type CSV struct {
	Path string
}

// People reads the file. A row without an employee id or with a status
// other than active/terminated is an error naming the line: a roster read
// wrongly would turn everyone into an orphan.
func (c CSV) People(context.Context) ([]Person, error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	defer f.Close()
	return ParseCSV(f, c.Path)
}

// ParseCSV reads a roster CSV from r; name is for errors.
func ParseCSV(r io.Reader, name string) ([]Person, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("roster %s: header: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"employee_id", "status"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("roster %s: header has no %s column", name, need)
		}
	}
	get := func(row []string, k string) string {
		if i, ok := col[k]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	var out []Person
	for line := 2; ; line++ {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("roster %s: %w", name, err)
		}
		p := Person{EmployeeID: get(row, "employee_id"), Email: get(row, "email"), Login: get(row, "login"),
			Name: get(row, "name"), Status: strings.ToLower(get(row, "status")), Manager: get(row, "manager")}
		if p.EmployeeID == "" {
			return nil, fmt.Errorf("roster %s: line %d: no employee_id", name, line)
		}
		if p.Status != Active && p.Status != Terminated {
			return nil, fmt.Errorf("roster %s: line %d: status %q is neither active nor terminated", name, line, p.Status)
		}
		out = append(out, p)
	}
	return out, nil
}

// Index finds roster people by employee id, e-mail or login (case-insensitive).
type Index struct {
	byID, byEmail, byLogin map[string]*Person
}

// NewIndex indexes people; a later row for the same key wins only if it is active.
func NewIndex(people []Person) *Index {
	x := &Index{byID: map[string]*Person{}, byEmail: map[string]*Person{}, byLogin: map[string]*Person{}}
	put := func(m map[string]*Person, k string, p *Person) {
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" {
			return
		}
		if old, ok := m[k]; ok && old.Status == Active && p.Status != Active {
			return // a rehire's active row beats the old terminated one
		}
		m[k] = p
	}
	for i := range people {
		p := &people[i]
		put(x.byID, p.EmployeeID, p)
		put(x.byEmail, p.Email, p)
		put(x.byLogin, p.Login, p)
		if at := strings.IndexByte(p.Email, '@'); at > 0 {
			put(x.byLogin, p.Email[:at], p)
		}
	}
	return x
}

// Match finds the person an account belongs to: by employee id, else e-mail,
// else login (also a login's part before '@').
func (x *Index) Match(employeeID, email, login string) (Person, bool) {
	lk := func(m map[string]*Person, k string) *Person {
		return m[strings.ToLower(strings.TrimSpace(k))]
	}
	if p := lk(x.byID, employeeID); p != nil {
		return *p, true
	}
	if p := lk(x.byEmail, email); p != nil {
		return *p, true
	}
	if p := lk(x.byEmail, login); p != nil {
		return *p, true
	}
	if p := lk(x.byLogin, login); p != nil {
		return *p, true
	}
	if at := strings.IndexByte(login, '@'); at > 0 {
		if p := lk(x.byLogin, login[:at]); p != nil {
			return *p, true
		}
	}
	return Person{}, false
}
