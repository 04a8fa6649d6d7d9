// Package demo is the made-up company every simulator seeds, so one
// employee has matching accounts in Okta, Entra, AWS, AD and the SCIM apps.
package demo

import "fmt"

// Person is one employee of the demo company.
type Person struct {
	EmployeeID string // "E1001"
	First      string
	Last       string
	Login      string // "ada.lovelace1001"; sAMAccountName, IAM user name, SCIM userName prefix
	Email      string // "ada.lovelace1001@example.test"; Okta login, Entra UPN, SCIM userName
	Department string
	Privileged bool // every tenth person is an admin
}

// Name is "First Last".
func (p Person) Name() string { return p.First + " " + p.Last }

var (
	firsts = []string{"Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis"}
	lasts  = []string{"Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie"}
	depts  = []string{"engineering", "sales", "finance", "support", "engineering"}
)

// Groups every simulator creates: each person is in "all-staff", their
// department's group, and admins also in "admins".
var Groups = []string{"all-staff", "engineering", "sales", "finance", "support", "admins"}

// Size is how many people the demo company has by default.
const Size = 1000

// People returns the first n people, always the same ones. n may exceed Size:
// the benchmark needs more leavers than the sandbox seeds by default.
func People(n int) []Person {
	out := make([]Person, 0, n)
	for i := 0; i < n; i++ {
		num := 1001 + i
		first, last := firsts[i%len(firsts)], lasts[(i/len(firsts))%len(lasts)]
		login := fmt.Sprintf("%s.%s%d", lower(first), lower(last), num)
		out = append(out, Person{
			EmployeeID: fmt.Sprintf("E%d", num),
			First:      first,
			Last:       last,
			Login:      login,
			Email:      login + "@example.test",
			Department: depts[i%len(depts)],
			Privileged: i%10 == 9,
		})
	}
	return out
}

// GroupsOf lists the groups p belongs to in every system.
func GroupsOf(p Person) []string {
	g := []string{"all-staff", p.Department}
	if p.Privileged {
		g = append(g, "admins")
	}
	return g
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
