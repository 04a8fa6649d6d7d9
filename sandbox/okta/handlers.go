package okta

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/sandbox/demo"
)

// --- users ---

func (s *Sim) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var match func(*user) bool
	// Okta hides DEPROVISIONED users from a plain list and from filters that
	// don't ask for a status; search returns every status.
	hideDeprovisioned := true
	switch {
	case q.Get("search") != "":
		expr, err := parseExpr(q.Get("search"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.", err.Error())
			return
		}
		match, hideDeprovisioned = expr.matches, false
	case q.Get("filter") != "":
		expr, err := parseExpr(q.Get("filter"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.", err.Error())
			return
		}
		match, hideDeprovisioned = expr.matches, !expr.mentions("status")
	case q.Get("q") != "":
		prefix := strings.ToLower(q.Get("q"))
		match = func(u *user) bool {
			for _, v := range []string{u.first, u.last, u.email} {
				if strings.HasPrefix(strings.ToLower(v), prefix) {
					return true
				}
			}
			return false
		}
	default:
		match = func(*user) bool { return true }
	}

	s.mu.Lock()
	var found []*user
	for _, u := range s.users {
		if hideDeprovisioned && u.status == StatusDeprovisioned {
			continue
		}
		if match(u) {
			found = append(found, u)
		}
	}
	slices.SortFunc(found, func(a, b *user) int { return strings.Compare(a.id, b.id) })
	items, ok := page(w, r, found, func(u *user) string { return u.id }, 200, 200)
	if !ok {
		s.mu.Unlock()
		return
	}
	out := make([]map[string]any, 0, len(items))
	for _, u := range items {
		out = append(out, s.userJSON(baseURL(r), u))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// withUser runs fn under the lock with the user named in the path, or answers 404.
func (s *Sim) withUser(w http.ResponseWriter, r *http.Request, fn func(u *user)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	u := s.findLocked(id)
	if u == nil {
		notFound(w, id, "User")
		return
	}
	fn(u)
}

func (s *Sim) getUser(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("id") == "me" {
		writeJSON(w, http.StatusOK, s.userJSON(baseURL(r), tokenOwner()))
		return
	}
	s.withUser(w, r, func(u *user) { writeJSON(w, http.StatusOK, s.userJSON(baseURL(r), u)) })
}

// tokenOwner is the admin whose API token the simulator accepts: what
// GET /api/v1/users/me answers. It is not in the directory's lists.
func tokenOwner() *user {
	created := time.Date(2023, 1, 2, 9, 0, 0, 0, time.UTC)
	return &user{id: newID("00u", "offboard-api-token-owner"), status: StatusActive,
		login: "offboard-api@sandbox.okta.test", email: "offboard-api@sandbox.okta.test", first: "Offboard", last: "API",
		created: created, activated: created, statusChanged: created, updated: created}
}

// listUserRoles answers GET /api/v1/users/{id}/roles like Okta: the admin
// roles assigned to the user, directly or through a group. Members of the
// "admins" group hold SUPER_ADMIN through it; the token's owner holds it
// directly.
func (s *Sim) listUserRoles(w http.ResponseWriter, r *http.Request) {
	role := func(assignment, assignee string) map[string]any {
		created := oktaTime(time.Date(2023, 1, 2, 9, 0, 0, 0, time.UTC))
		return map[string]any{
			"id": newID("ra1", assignee), "label": "Super Organization Administrator", "type": "SUPER_ADMIN",
			"status": "ACTIVE", "created": created, "lastUpdated": created, "assignmentType": assignment,
			"_links": map[string]any{"assignee": link{Href: assignee}},
		}
	}
	if owner := tokenOwner(); r.PathValue("id") == "me" || r.PathValue("id") == owner.id {
		writeJSON(w, http.StatusOK, []map[string]any{role("USER", baseURL(r)+"/api/v1/users/"+owner.id)})
		return
	}
	s.withUser(w, r, func(u *user) {
		out := []map[string]any{}
		if gid, ok := s.groupNames["admins"]; ok && u.groups[gid] {
			out = append(out, role("GROUP", baseURL(r)+"/api/v1/groups/"+gid))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// deleteUser is Okta's two-step delete: the first DELETE of a user that is
// not DEPROVISIONED deactivates it; a DELETE of a DEPROVISIONED user removes it.
func (s *Sim) deleteUser(w http.ResponseWriter, r *http.Request) {
	s.withUser(w, r, func(u *user) {
		if u.status != StatusDeprovisioned {
			s.deactivateLocked(u, "DELETE of a "+u.status+" user deactivates it first")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		for gid := range u.groups {
			delete(s.groups[gid].members, u.id)
		}
		delete(s.users, u.id)
		delete(s.logins, strings.ToLower(u.login))
		s.recordLocked(u.id, "delete", "")
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Sim) deactivateLocked(u *user, detail string) {
	s.setStatusLocked(u, StatusDeprovisioned)
	// A deactivated user can no longer sign in; Okta keeps its group
	// memberships and revokes the API tokens the user created.
	u.sessions = 0
	s.revokeTokensLocked(u)
	s.recordLocked(u.id, "deactivate", detail)
}

// lifecycle applies suspend, unsuspend, deactivate and activate, refusing a
// transition from the wrong status with 400 E0000001 as Okta does.
func (s *Sim) lifecycle(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	s.withUser(w, r, func(u *user) {
		refuse := func(why string) {
			writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: "+op, why)
		}
		switch op {
		case "suspend":
			if u.status != StatusActive {
				refuse("Cannot suspend a user that is not active. Current status: " + u.status)
				return
			}
			s.setStatusLocked(u, StatusSuspended)
			s.recordLocked(u.id, "suspend", "")
		case "unsuspend":
			if u.status != StatusSuspended {
				refuse("Cannot unsuspend a user that is not suspended. Current status: " + u.status)
				return
			}
			s.setStatusLocked(u, StatusActive)
			s.recordLocked(u.id, "unsuspend", "")
		case "deactivate":
			if u.status == StatusDeprovisioned {
				refuse("Cannot deactivate a user that is already deprovisioned.")
				return
			}
			s.deactivateLocked(u, "sendEmail="+cmp.Or(r.URL.Query().Get("sendEmail"), "false"))
		case "activate":
			if u.status != StatusDeprovisioned && u.status != StatusStaged {
				refuse("Cannot activate a user with status " + u.status)
				return
			}
			s.setStatusLocked(u, StatusActive)
			u.activated = u.statusChanged
			s.recordLocked(u.id, "activate", "")
			if r.URL.Query().Get("sendEmail") == "false" {
				token := randomToken(15)
				writeJSON(w, http.StatusOK, map[string]string{
					"activationUrl":   baseURL(r) + "/welcome/" + token,
					"activationToken": token,
				})
				return
			}
		default:
			notFound(w, r.URL.Path, "Endpoint")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	})
}

func (s *Sim) clearSessions(w http.ResponseWriter, r *http.Request) {
	s.withUser(w, r, func(u *user) {
		if u.sessions > 0 {
			detail := fmt.Sprintf("%d sessions, oauthTokens=%s", u.sessions, cmp.Or(r.URL.Query().Get("oauthTokens"), "false"))
			u.sessions = 0
			s.recordLocked(u.id, "clear_sessions", detail)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// --- grants ---

func (s *Sim) listGrants(w http.ResponseWriter, r *http.Request) {
	s.withUser(w, r, func(u *user) {
		grants := slices.Clone(u.grants)
		slices.SortFunc(grants, func(a, b *grant) int { return strings.Compare(a.id, b.id) })
		items, ok := page(w, r, grants, func(g *grant) string { return g.id }, 20, 200)
		if !ok {
			return
		}
		out := make([]map[string]any, 0, len(items))
		for _, g := range items {
			out = append(out, grantJSON(baseURL(r), u, g))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *Sim) revokeGrants(w http.ResponseWriter, r *http.Request) {
	s.withUser(w, r, func(u *user) {
		for _, g := range u.grants {
			s.recordLocked(u.id, "revoke_grant", g.id)
		}
		u.grants = nil
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Sim) getGrant(w http.ResponseWriter, r *http.Request) {
	s.withUser(w, r, func(u *user) {
		i := slices.IndexFunc(u.grants, func(g *grant) bool { return g.id == r.PathValue("grantId") })
		if i < 0 {
			notFound(w, r.PathValue("grantId"), "OAuth2ScopeConsentGrant")
			return
		}
		writeJSON(w, http.StatusOK, grantJSON(baseURL(r), u, u.grants[i]))
	})
}

func (s *Sim) revokeGrant(w http.ResponseWriter, r *http.Request) {
	s.withUser(w, r, func(u *user) {
		i := slices.IndexFunc(u.grants, func(g *grant) bool { return g.id == r.PathValue("grantId") })
		if i < 0 {
			notFound(w, r.PathValue("grantId"), "OAuth2ScopeConsentGrant")
			return
		}
		s.recordLocked(u.id, "revoke_grant", u.grants[i].id)
		u.grants = slices.Delete(u.grants, i, i+1)
		w.WriteHeader(http.StatusNoContent)
	})
}

// --- groups ---

func (s *Sim) sortedGroupsLocked(ids map[string]bool) []*group {
	out := make([]*group, 0, len(ids))
	for id := range ids {
		out = append(out, s.groups[id])
	}
	slices.SortFunc(out, func(a, b *group) int { return strings.Compare(a.id, b.id) })
	return out
}

func (s *Sim) listUserGroups(w http.ResponseWriter, r *http.Request) {
	s.withUser(w, r, func(u *user) {
		out := []map[string]any{}
		for _, g := range s.sortedGroupsLocked(u.groups) {
			out = append(out, groupJSON(baseURL(r), g))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *Sim) listGroups(w http.ResponseWriter, r *http.Request) {
	prefix := strings.ToLower(r.URL.Query().Get("q"))
	s.mu.Lock()
	all := map[string]bool{}
	for id, g := range s.groups {
		if strings.HasPrefix(strings.ToLower(g.name), prefix) {
			all[id] = true
		}
	}
	items, ok := page(w, r, s.sortedGroupsLocked(all), func(g *group) string { return g.id }, 10000, 10000)
	out := make([]map[string]any, 0, len(items))
	for _, g := range items {
		out = append(out, groupJSON(baseURL(r), g))
	}
	s.mu.Unlock()
	if ok {
		writeJSON(w, http.StatusOK, out)
	}
}

// withGroup runs fn under the lock with the group named in the path, or answers 404.
func (s *Sim) withGroup(w http.ResponseWriter, r *http.Request, fn func(g *group)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.PathValue("gid")]
	if g == nil {
		notFound(w, r.PathValue("gid"), "UserGroup")
		return
	}
	fn(g)
}

func (s *Sim) getGroup(w http.ResponseWriter, r *http.Request) {
	s.withGroup(w, r, func(g *group) { writeJSON(w, http.StatusOK, groupJSON(baseURL(r), g)) })
}

func (s *Sim) listGroupUsers(w http.ResponseWriter, r *http.Request) {
	s.withGroup(w, r, func(g *group) {
		out := []map[string]any{}
		ids := make([]string, 0, len(g.members))
		for id := range g.members {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			out = append(out, s.userJSON(baseURL(r), s.users[id]))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// membership resolves the group and user of a membership call, or answers.
func (s *Sim) membership(w http.ResponseWriter, r *http.Request) (*group, *user) {
	g := s.groups[r.PathValue("gid")]
	if g == nil {
		notFound(w, r.PathValue("gid"), "UserGroup")
		return nil, nil
	}
	u := s.findLocked(r.PathValue("id"))
	if u == nil {
		notFound(w, r.PathValue("id"), "User")
		return nil, nil
	}
	if g.typ != "OKTA_GROUP" {
		// Okta manages BUILT_IN and APP_GROUP memberships itself.
		writeError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
		return nil, nil
	}
	return g, u
}

func (s *Sim) addMember(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, u := s.membership(w, r)
	if g == nil {
		return
	}
	if !u.groups[g.id] {
		u.groups[g.id] = true
		g.members[u.id] = true
		g.membershipUpdated = time.Now().UTC()
		s.recordLocked(u.id, "add_group", g.name)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) removeMember(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, u := s.membership(w, r)
	if g == nil {
		return
	}
	if u.groups[g.id] {
		delete(u.groups, g.id)
		delete(g.members, u.id)
		g.membershipUpdated = time.Now().UTC()
		s.recordLocked(u.id, "remove_group", g.name)
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- admin ---

type adminView struct {
	User
	Transitions []Transition `json:"transitions"`
}

func (s *Sim) adminUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	u, ok := s.User(id)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such user", "id": id, "transitions": s.Transitions(id)})
		return
	}
	writeJSON(w, http.StatusOK, adminView{User: u, Transitions: s.Transitions(u.ID)})
}

func (s *Sim) adminAddUser(w http.ResponseWriter, r *http.Request) {
	var p demo.Person
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&p); err != nil {
		http.Error(w, "person: "+err.Error(), http.StatusBadRequest)
		return
	}
	u, err := s.AddUser(p)
	switch {
	case errors.Is(err, ErrExists):
		http.Error(w, err.Error(), http.StatusConflict)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		writeJSON(w, http.StatusCreated, adminView{User: u, Transitions: []Transition{}})
	}
}
