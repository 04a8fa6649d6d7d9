package graph

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// memberOfPageSize is deliberately small so clients must follow @odata.nextLink;
// Graph may return fewer items than $top asks for.
const memberOfPageSize = 2

// userDefaults are the properties Graph returns for a user when there is no $select.
var userDefaults = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
	"officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

func (s *Sim) api() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /organization", s.organization)
	mux.HandleFunc("GET /users", s.listUsers)
	mux.HandleFunc("GET /users/{id}", s.getUser)
	mux.HandleFunc("PATCH /users/{id}", s.patchUser)
	mux.HandleFunc("DELETE /users/{id}", s.deleteUser)
	mux.HandleFunc("POST /users/{id}/revokeSignInSessions", s.revokeSessions)
	mux.HandleFunc("POST /users/{id}/assignLicense", s.assignLicense)
	mux.HandleFunc("GET /users/{id}/memberOf", s.memberOf)
	mux.HandleFunc("GET /users/{id}/memberOf/{cast}", s.memberOf)
	mux.HandleFunc("DELETE /groups/{gid}/members/{uid}/{ref}", s.removeMember)
	mux.HandleFunc("DELETE /directoryRoles/{rid}/members/{uid}/{ref}", s.removeRoleMember)
	s.routeApps(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+strings.TrimPrefix(r.URL.Path, "/")+"'.")
	})
	return mux
}

func (s *Sim) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sel, ok := selection(w, r, q.Get("$select"), userProperties, "microsoft.graph.user")
	if !ok {
		return
	}
	var f filter
	if src := q.Get("$filter"); src != "" {
		var err error
		if f, err = parseFilter(src); err != nil {
			writeError(w, r, http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid filter clause: "+err.Error())
			return
		}
	}
	top, ok := topParam(w, r, q, 100)
	if !ok {
		return
	}
	s.mu.Lock()
	var all []map[string]any
	for _, u := range s.sortedUsers() {
		if f != nil && !f.match(map[string]string{"mail": u.mail, "userprincipalname": u.upn, "id": u.id, "displayname": u.displayName,
			"othermails": strings.Join(u.otherMails, "\n"), "accountenabled": strconv.FormatBool(u.enabled)}) {
			continue
		}
		all = append(all, project(s.userJSON(u), sel, userDefaults))
	}
	s.mu.Unlock()
	writePage(w, r, contextURL(r, "users", sel, false), all, top)
}

func (s *Sim) getUser(w http.ResponseWriter, r *http.Request) {
	sel, ok := selection(w, r, r.URL.Query().Get("$select"), userProperties, "microsoft.graph.user")
	if !ok {
		return
	}
	s.mu.Lock()
	u := s.lookup(r.PathValue("id"))
	var body map[string]any
	if u != nil {
		body = project(s.userJSON(u), sel, userDefaults)
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, r, r.PathValue("id"))
		return
	}
	body["@odata.context"] = contextURL(r, "users", sel, true)
	writeJSON(w, http.StatusOK, body)
}

func (s *Sim) patchUser(w http.ResponseWriter, r *http.Request) {
	var patch map[string]json.RawMessage
	if !readBody(w, r, &patch) {
		return
	}
	var enabled *bool
	var profile *struct {
		Password                      *string `json:"password"`
		ForceChangePasswordNextSignIn bool    `json:"forceChangePasswordNextSignIn"`
	}
	for k, v := range patch {
		switch {
		case strings.HasPrefix(k, "@odata."):
		case k == "accountEnabled":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				writeError(w, r, http.StatusBadRequest, "BadRequest", "Cannot convert the literal '"+string(v)+"' to the expected type 'Edm.Boolean'.")
				return
			}
			enabled = &b
		case k == "passwordProfile":
			if err := json.Unmarshal(v, &profile); err != nil || profile == nil {
				writeError(w, r, http.StatusBadRequest, "BadRequest", "Invalid passwordProfile.")
				return
			}
			// Graph's own words; it never echoes the password.
			if profile.Password != nil && !complexPassword(*profile.Password) {
				writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "The specified password does not comply with password complexity requirements. Please provide a different password.")
				return
			}
		default:
			writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid property '"+k+"'.")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(r.PathValue("id"))
	if u == nil {
		notFound(w, r, r.PathValue("id"))
		return
	}
	if enabled != nil && *enabled != u.enabled {
		u.enabled = *enabled
		action := "disable"
		if u.enabled {
			action = "enable"
		}
		s.record(u.id, action, "", time.Now())
	}
	if profile != nil && profile.Password != nil {
		s.setPassword(u, *profile.Password, time.Now())
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) deleteUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(r.PathValue("id"))
	if u == nil {
		notFound(w, r, r.PathValue("id"))
		return
	}
	delete(s.users, u.id)
	for _, g := range append(slices.Clone(s.groups), s.roles...) {
		delete(g.members, u.id)
	}
	// A deleted user no longer owns anything (the apps keep their other owners).
	for _, a := range s.apps {
		a.owners = slices.DeleteFunc(a.owners, func(o string) bool { return o == u.id })
	}
	s.record(u.id, "delete", "", time.Now())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) revokeSessions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u := s.lookup(r.PathValue("id"))
	if u != nil {
		// Graph keeps this timestamp to the second.
		u.validFrom = time.Now().UTC().Truncate(time.Second)
		s.record(u.id, "revoke_sessions", "", time.Now())
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, r, r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": base(r) + "/$metadata#Edm.Boolean", "value": true})
}

func (s *Sim) assignLicense(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AddLicenses *[]struct {
			SkuID         string   `json:"skuId"`
			DisabledPlans []string `json:"disabledPlans"`
		} `json:"addLicenses"`
		RemoveLicenses *[]string `json:"removeLicenses"`
	}
	if !readBody(w, r, &body) {
		return
	}
	if body.AddLicenses == nil || body.RemoveLicenses == nil {
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Both addLicenses and removeLicenses are required.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(r.PathValue("id"))
	if u == nil {
		notFound(w, r, r.PathValue("id"))
		return
	}
	inherited := s.snapshot(u).GroupLicenses
	for _, sku := range *body.RemoveLicenses {
		if !slices.Contains(u.licenses, strings.ToLower(sku)) {
			if slices.Contains(inherited, strings.ToLower(sku)) {
				writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "User license is inherited from a group membership and it cannot be removed directly from the user.")
			} else {
				writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "User does not have a corresponding license.")
			}
			return
		}
	}
	now := time.Now()
	for _, sku := range *body.RemoveLicenses {
		u.licenses = slices.DeleteFunc(u.licenses, func(have string) bool { return have == strings.ToLower(sku) })
		s.record(u.id, "remove_license", strings.ToLower(sku), now)
	}
	for _, add := range *body.AddLicenses {
		if sku := strings.ToLower(add.SkuID); !slices.Contains(u.licenses, sku) {
			u.licenses = append(u.licenses, sku)
			s.record(u.id, "assign_license", sku, now)
		}
	}
	out := project(s.userJSON(u), nil, userDefaults)
	out["@odata.context"] = base(r) + "/$metadata#users/$entity"
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) memberOf(w http.ResponseWriter, r *http.Request) {
	// The SDKs write casts with Graph's namespace alias: graph.group.
	cast := r.PathValue("cast")
	if strings.HasPrefix(cast, "graph.") {
		cast = "microsoft." + cast
	}
	if cast != "" && cast != "microsoft.graph.group" && cast != "microsoft.graph.directoryRole" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+cast+"'.")
		return
	}
	q := r.URL.Query()
	sel, ok := selection(w, r, q.Get("$select"), directoryObjectProperties, "microsoft.graph.directoryObject")
	if !ok {
		return
	}
	top, ok := topParam(w, r, q, memberOfPageSize)
	if !ok {
		return
	}
	s.mu.Lock()
	u := s.lookup(r.PathValue("id"))
	var items []map[string]any
	if u != nil {
		for _, g := range append(slices.Clone(s.groups), s.roles...) {
			if g.members[u.id] && (cast == "" || "#"+cast == g.odataType) {
				item := project(g.json(), sel, nil)
				item["@odata.type"] = g.odataType
				items = append(items, item)
			}
		}
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, r, r.PathValue("id"))
		return
	}
	entity := "directoryObjects"
	switch cast {
	case "microsoft.graph.group":
		entity = "groups"
	case "microsoft.graph.directoryRole":
		entity = "directoryRoles"
	}
	writePage(w, r, contextURL(r, entity, sel, false), items, min(top, memberOfPageSize))
}

func (s *Sim) removeMember(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("ref") != "$ref" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+r.PathValue("ref")+"'.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groupByID(r.PathValue("gid"))
	if g == nil {
		notFound(w, r, r.PathValue("gid"))
		return
	}
	u := s.lookup(r.PathValue("uid"))
	if u == nil || !g.members[u.id] {
		writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "One or more removed object references do not exist for the following modified properties: 'members'.")
		return
	}
	if g.dynamic {
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Insufficient privileges to complete the operation: membership of a group with dynamic membership cannot be changed.")
		return
	}
	delete(g.members, u.id)
	s.record(u.id, "remove_group", g.name, time.Now())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) removeRoleMember(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("ref") != "$ref" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+r.PathValue("ref")+"'.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	role := s.roleByID(r.PathValue("rid"))
	if role == nil {
		notFound(w, r, r.PathValue("rid"))
		return
	}
	u := s.lookup(r.PathValue("uid"))
	if u == nil || !role.members[u.id] {
		writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "One or more removed object references do not exist for the following modified properties: 'members'.")
		return
	}
	delete(role.members, u.id)
	s.record(u.id, "remove_role", role.name, time.Now())
	w.WriteHeader(http.StatusNoContent)
}

func notFound(w http.ResponseWriter, r *http.Request, id string) {
	writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+id+"' does not exist or one of its queried reference-property objects are not present.")
}

// sortedUsers returns the live users by UPN. Callers hold s.mu.
func (s *Sim) sortedUsers() []*user {
	out := make([]*user, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *user) int { return strings.Compare(a.upn, b.upn) })
	return out
}

// userProperties maps lower-case names to the spelling Graph uses.
var userProperties = propertyNames("id", "userPrincipalName", "mail", "displayName", "givenName", "surname",
	"jobTitle", "department", "accountEnabled", "signInSessionsValidFromDateTime", "assignedLicenses",
	"licenseAssignmentStates", "businessPhones", "mobilePhone", "officeLocation", "preferredLanguage", "otherMails",
	"lastPasswordChangeDateTime")

var directoryObjectProperties = propertyNames("id", "displayName", "description", "groupTypes", "membershipRule",
	"membershipRuleProcessingState", "securityEnabled", "mailEnabled", "onPremisesSyncEnabled", "roleTemplateId")

func propertyNames(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}

// userJSON is every property of u. Callers hold s.mu.
func (s *Sim) userJSON(u *user) map[string]any {
	assigned := []map[string]any{}
	states := []map[string]any{}
	for _, sku := range u.licenses {
		assigned = append(assigned, map[string]any{"disabledPlans": []string{}, "skuId": sku})
		states = append(states, licenseState(sku, nil))
	}
	for _, g := range s.groups {
		if !g.members[u.id] {
			continue
		}
		for _, sku := range g.licenses {
			if !slices.Contains(u.licenses, sku) {
				assigned = append(assigned, map[string]any{"disabledPlans": []string{}, "skuId": sku})
			}
			states = append(states, licenseState(sku, &g.id))
		}
	}
	return map[string]any{
		"id": u.id, "userPrincipalName": u.upn, "mail": u.mail, "displayName": u.displayName,
		"givenName": u.given, "surname": u.surname, "jobTitle": nullable(u.jobTitle), "department": u.department,
		"accountEnabled": u.enabled, "signInSessionsValidFromDateTime": u.validFrom.UTC().Format(time.RFC3339),
		"assignedLicenses": assigned, "licenseAssignmentStates": states, "businessPhones": []string{},
		"mobilePhone": nil, "officeLocation": nil, "preferredLanguage": nil, "otherMails": append([]string{}, u.otherMails...),
		"lastPasswordChangeDateTime": u.pwdChanged.UTC().Format(time.RFC3339),
	}
}

func licenseState(sku string, group *string) map[string]any {
	return map[string]any{"assignedByGroup": group, "disabledPlans": []string{}, "error": "None",
		"lastUpdatedDateTime": "2024-01-15T09:00:00Z", "skuId": sku, "state": "Active"}
}

func (g *group) json() map[string]any {
	if g.odataType == "#microsoft.graph.directoryRole" {
		return map[string]any{"id": g.id, "displayName": g.name, "description": "Can read everything a Global Administrator can, but not update anything.",
			"roleTemplateId": g.template}
	}
	types := []string{}
	var rule, state any
	if g.dynamic {
		types, rule, state = []string{"DynamicMembership"}, g.rule, "On"
	}
	return map[string]any{"id": g.id, "displayName": g.name, "description": nil, "groupTypes": types,
		"membershipRule": rule, "membershipRuleProcessingState": state, "securityEnabled": true,
		"mailEnabled": false, "onPremisesSyncEnabled": nil}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// selection parses $select against known properties; unknown names are a 400, as on Graph.
func selection(w http.ResponseWriter, r *http.Request, raw string, known map[string]string, typ string) ([]string, bool) {
	if raw == "" {
		return nil, true
	}
	var sel []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		name, ok := known[strings.ToLower(p)]
		if !ok {
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Parsing OData Select and Expand failed: Could not find a property named '"+p+"' on type '"+typ+"'.")
			return nil, false
		}
		sel = append(sel, name)
	}
	return sel, true
}

// project keeps the selected properties, or the defaults when nothing is selected.
func project(all map[string]any, sel, defaults []string) map[string]any {
	keep := sel
	if keep == nil {
		keep = defaults
	}
	if keep == nil {
		return all
	}
	out := make(map[string]any, len(keep))
	for _, k := range keep {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out
}

func contextURL(r *http.Request, entitySet string, sel []string, entity bool) string {
	u := base(r) + "/$metadata#" + entitySet
	if sel != nil {
		u += "(" + strings.Join(sel, ",") + ")"
	}
	if entity {
		u += "/$entity"
	}
	return u
}

func topParam(w http.ResponseWriter, r *http.Request, q url.Values, def int) (int, bool) {
	raw := q.Get("$top")
	if raw == "" {
		return def, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > 999 {
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid page size specified: '"+raw+"'. Must be between 1 and 999 inclusive.")
		return 0, false
	}
	return n, true
}

// writePage writes one page of a collection, with @odata.nextLink when more remain.
func writePage(w http.ResponseWriter, r *http.Request, context string, items []map[string]any, size int) {
	q := r.URL.Query()
	offset := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || err2 != nil || n < 0 {
			writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken.")
			return
		}
		offset = min(n, len(items))
	}
	end := min(offset+size, len(items))
	page := items[offset:end]
	if page == nil {
		page = []map[string]any{}
	}
	body := map[string]any{"@odata.context": context, "value": page}
	if end < len(items) {
		q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(end))))
		// Graph writes the $ of system query options literally.
		body["@odata.nextLink"] = base(r) + r.URL.Path + "?" + strings.ReplaceAll(q.Encode(), "%24", "$")
	}
	writeJSON(w, http.StatusOK, body)
}

// TenantID is the simulated tenant's id, as /organization reports it.
var TenantID = guid("tenant:offboard-sandbox")

// organization answers GET /organization: the tenant the token is for.
func (s *Sim) organization(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": base(r) + "/$metadata#organization",
		"value": []map[string]any{{
			"id": TenantID, "displayName": "Offboard Sandbox",
			"verifiedDomains": []map[string]any{{"name": "example.test", "isDefault": true, "isInitial": false, "type": "Managed"}},
		}},
	})
}
