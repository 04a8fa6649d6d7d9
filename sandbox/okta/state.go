package okta

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/sandbox/simstate"
)

// stateVersion is the format SaveState writes.
const stateVersion = 1

// stateDoc is the saved directory: everything an API client can change or
// see. Configuration (token, rate limit, seed), fault rules and rate-limit
// windows are not part of it. Lists are sorted, so an unchanged directory
// saves to the same bytes.
type stateDoc struct {
	Version int          `json:"version"`
	Users   []stateUser  `json:"users"`  // by id
	Groups  []stateGroup `json:"groups"` // by id, each with its members
	// Transitions are keyed by user id; they include deleted users'.
	Transitions map[string][]Transition `json:"transitions"`
	// APITokens are by id. Passwords are not saved: the simulator keeps
	// only keyed hashes, and the key dies with the process.
	APITokens []stateToken `json:"apiTokens,omitempty"`
}

type stateToken struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	UserID      string    `json:"userId"`
	ClientName  string    `json:"clientName"`
	Created     time.Time `json:"created"`
	LastUpdated time.Time `json:"lastUpdated"`
}

type stateUser struct {
	ID                    string       `json:"id"`
	Status                string       `json:"status"`
	TransitioningToStatus string       `json:"transitioningToStatus,omitempty"`
	Login                 string       `json:"login"`
	Email                 string       `json:"email"`
	FirstName             string       `json:"firstName"`
	LastName              string       `json:"lastName"`
	EmployeeNumber        string       `json:"employeeNumber"`
	Department            string       `json:"department"`
	Created               time.Time    `json:"created"`
	Activated             time.Time    `json:"activated,omitzero"`
	StatusChanged         time.Time    `json:"statusChanged,omitzero"`
	LastLogin             time.Time    `json:"lastLogin,omitzero"`
	LastUpdated           time.Time    `json:"lastUpdated"`
	PasswordChanged       time.Time    `json:"passwordChanged,omitzero"`
	Sessions              int          `json:"sessions"`
	Grants                []stateGrant `json:"grants"` // in the order they were granted
}

type stateGrant struct {
	ID       string    `json:"id"`
	ClientID string    `json:"clientId"`
	ScopeID  string    `json:"scopeId"`
	Created  time.Time `json:"created"`
}

type stateGroup struct {
	ID                    string    `json:"id"`
	Name                  string    `json:"name"`
	Type                  string    `json:"type"`
	Description           string    `json:"description"`
	Created               time.Time `json:"created"`
	LastUpdated           time.Time `json:"lastUpdated"`
	LastMembershipUpdated time.Time `json:"lastMembershipUpdated"`
	Members               []string  `json:"members"` // user ids, sorted
}

// SaveState writes the simulator's directory state as JSON: users with
// their profile, status, sessions and OAuth grants, groups with their
// members, and every user's transitions (deleted users' too). Users and
// groups have no id counters to save: their ids derive from login and name.
// Configuration, fault rules and rate-limit windows are not saved.
func (s *Sim) SaveState(w io.Writer) error {
	s.mu.Lock()
	doc := stateDoc{
		Version: stateVersion, Users: []stateUser{}, Groups: []stateGroup{},
		Transitions: make(map[string][]Transition, len(s.transitions)),
	}
	for _, id := range slices.Sorted(maps.Keys(s.users)) {
		u := s.users[id]
		su := stateUser{
			ID: u.id, Status: u.status, TransitioningToStatus: u.transitioningStatus,
			Login: u.login, Email: u.email, FirstName: u.first, LastName: u.last,
			EmployeeNumber: u.employeeNumber, Department: u.department,
			Created: u.created, Activated: u.activated, StatusChanged: u.statusChanged,
			LastLogin: u.lastLogin, LastUpdated: u.updated, PasswordChanged: u.passwordChanged,
			Sessions: u.sessions, Grants: []stateGrant{},
		}
		for _, g := range u.grants {
			su.Grants = append(su.Grants, stateGrant{ID: g.id, ClientID: g.clientID, ScopeID: g.scopeID, Created: g.created})
		}
		doc.Users = append(doc.Users, su)
	}
	for _, id := range slices.Sorted(maps.Keys(s.groups)) {
		g := s.groups[id]
		doc.Groups = append(doc.Groups, stateGroup{
			ID: g.id, Name: g.name, Type: g.typ, Description: g.description,
			Created: g.created, LastUpdated: g.updated, LastMembershipUpdated: g.membershipUpdated,
			Members: simstate.SortedKeys(g.members),
		})
	}
	for id, ts := range s.transitions {
		doc.Transitions[id] = slices.Clone(ts)
	}
	for _, t := range s.sortedTokensLocked() {
		doc.APITokens = append(doc.APITokens, stateToken{ID: t.id, Name: t.name, UserID: t.userID, ClientName: t.clientName,
			Created: t.created, LastUpdated: t.lastUpdated})
	}
	s.mu.Unlock()

	if err := simstate.Encode(w, doc); err != nil {
		return fmt.Errorf("okta: save state: %w", err)
	}
	return nil
}

// LoadState replaces the simulator's directory state with what SaveState
// wrote, rebuilding the login index and both sides of every membership.
// The document is checked whole first (version 1, well-formed, no unknown
// fields, unique ids and logins, known statuses, every member a user, the
// Everyone group present); on any error the state is left as it was.
// Configuration, fault rules and rate-limit windows are kept, and Reset
// still goes back to this simulator's own seed.
func (s *Sim) LoadState(r io.Reader) error {
	doc, err := decodeState(r)
	if err != nil {
		return fmt.Errorf("okta: load state: %w", err)
	}
	st, err := doc.build()
	if err != nil {
		return fmt.Errorf("okta: load state: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users, s.logins = st.users, st.logins
	s.groups, s.groupNames = st.groups, st.groupNames
	s.transitions = st.transitions
	s.apiTokens = st.apiTokens
	return nil
}

func decodeState(r io.Reader) (*stateDoc, error) {
	var doc stateDoc
	if err := simstate.Decode(r, stateVersion, &doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

// directoryState is what LoadState swaps in.
type directoryState struct {
	users       map[string]*user
	logins      map[string]string
	groups      map[string]*group
	groupNames  map[string]string
	transitions map[string][]Transition
	apiTokens   map[string]*apiToken
}

var knownStatuses = []string{StatusStaged, StatusActive, StatusSuspended, StatusDeprovisioned}

// build checks the document and turns it into fresh structures that share
// nothing with it.
func (doc *stateDoc) build() (*directoryState, error) {
	st := &directoryState{
		users:       make(map[string]*user, len(doc.Users)),
		logins:      make(map[string]string, len(doc.Users)),
		groups:      make(map[string]*group, len(doc.Groups)),
		groupNames:  make(map[string]string, len(doc.Groups)),
		transitions: make(map[string][]Transition, len(doc.Transitions)),
		apiTokens:   make(map[string]*apiToken, len(doc.APITokens)),
	}
	for i, su := range doc.Users {
		switch {
		case su.ID == "":
			return nil, fmt.Errorf("user %d has no id", i)
		case st.users[su.ID] != nil:
			return nil, fmt.Errorf("user id %s appears twice", su.ID)
		case su.Login == "":
			return nil, fmt.Errorf("user %s has no login", su.ID)
		case st.logins[strings.ToLower(su.Login)] != "":
			return nil, fmt.Errorf("login %s belongs to both %s and %s", su.Login, st.logins[strings.ToLower(su.Login)], su.ID)
		case !slices.Contains(knownStatuses, su.Status):
			return nil, fmt.Errorf("user %s has unknown status %q", su.ID, su.Status)
		case su.Sessions < 0:
			return nil, fmt.Errorf("user %s has %d sessions", su.ID, su.Sessions)
		}
		u := &user{
			id: su.ID, status: su.Status, transitioningStatus: su.TransitioningToStatus,
			login: su.Login, email: su.Email, first: su.FirstName, last: su.LastName,
			employeeNumber: su.EmployeeNumber, department: su.Department,
			created: su.Created, activated: su.Activated, statusChanged: su.StatusChanged,
			lastLogin: su.LastLogin, updated: su.LastUpdated, passwordChanged: su.PasswordChanged,
			groups: map[string]bool{}, sessions: su.Sessions,
		}
		for _, sg := range su.Grants {
			switch {
			case sg.ID == "":
				return nil, fmt.Errorf("user %s has a grant without an id", su.ID)
			case slices.ContainsFunc(u.grants, func(g *grant) bool { return g.id == sg.ID }):
				return nil, fmt.Errorf("user %s has grant %s twice", su.ID, sg.ID)
			}
			u.grants = append(u.grants, &grant{id: sg.ID, clientID: sg.ClientID, scopeID: sg.ScopeID, created: sg.Created})
		}
		st.users[u.id] = u
		st.logins[strings.ToLower(u.login)] = u.id
	}
	for i, sg := range doc.Groups {
		switch {
		case sg.ID == "":
			return nil, fmt.Errorf("group %d has no id", i)
		case st.groups[sg.ID] != nil:
			return nil, fmt.Errorf("group id %s appears twice", sg.ID)
		case sg.Name == "":
			return nil, fmt.Errorf("group %s has no name", sg.ID)
		case st.groupNames[sg.Name] != "":
			return nil, fmt.Errorf("group name %q belongs to both %s and %s", sg.Name, st.groupNames[sg.Name], sg.ID)
		case sg.Type == "":
			return nil, fmt.Errorf("group %s has no type", sg.ID)
		}
		g := &group{
			id: sg.ID, name: sg.Name, typ: sg.Type, description: sg.Description,
			created: sg.Created, updated: sg.LastUpdated, membershipUpdated: sg.LastMembershipUpdated,
			members: make(map[string]bool, len(sg.Members)),
		}
		for _, uid := range sg.Members {
			u := st.users[uid]
			if u == nil {
				return nil, fmt.Errorf("group %s (%s) has member %s, which is not a user", g.id, g.name, uid)
			}
			g.members[uid] = true
			u.groups[g.id] = true
		}
		st.groups[g.id] = g
		st.groupNames[g.name] = g.id
	}
	if gid, ok := st.groupNames[everyone]; !ok || st.groups[gid].typ != "BUILT_IN" {
		return nil, fmt.Errorf("no BUILT_IN group %s", everyone)
	}
	for i, t := range doc.APITokens {
		switch {
		case t.ID == "":
			return nil, fmt.Errorf("api token %d has no id", i)
		case st.apiTokens[t.ID] != nil:
			return nil, fmt.Errorf("api token id %s appears twice", t.ID)
		case t.UserID == "":
			return nil, fmt.Errorf("api token %s has no userId", t.ID)
		}
		st.apiTokens[t.ID] = &apiToken{id: t.ID, name: t.Name, userID: t.UserID, clientName: t.ClientName,
			created: t.Created, lastUpdated: t.LastUpdated}
	}
	for id, ts := range doc.Transitions {
		if id == "" {
			return nil, errors.New("transitions for an empty user id")
		}
		st.transitions[id] = slices.Clone(ts)
	}
	return st, nil
}
