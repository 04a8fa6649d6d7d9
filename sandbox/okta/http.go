package okta

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// routes wires the API behind, from the outside in: request id and rate
// limit headers, the fault injector, the token check.
func (s *Sim) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/users", s.listUsers)
	api.HandleFunc("GET /api/v1/users/{id}", s.getUser)
	api.HandleFunc("POST /api/v1/users/{id}", s.updateUser)
	api.HandleFunc("DELETE /api/v1/users/{id}", s.deleteUser)
	api.HandleFunc("POST /api/v1/users/{id}/lifecycle/{op}", s.lifecycle)
	api.HandleFunc("DELETE /api/v1/users/{id}/sessions", s.clearSessions)
	api.HandleFunc("GET /api/v1/users/{id}/grants", s.listGrants)
	api.HandleFunc("DELETE /api/v1/users/{id}/grants", s.revokeGrants)
	api.HandleFunc("GET /api/v1/users/{id}/grants/{grantId}", s.getGrant)
	api.HandleFunc("DELETE /api/v1/users/{id}/grants/{grantId}", s.revokeGrant)
	api.HandleFunc("GET /api/v1/users/{id}/groups", s.listUserGroups)
	api.HandleFunc("GET /api/v1/users/{id}/roles", s.listUserRoles)
	api.HandleFunc("GET /api/v1/groups", s.listGroups)
	api.HandleFunc("GET /api/v1/groups/{gid}", s.getGroup)
	api.HandleFunc("GET /api/v1/groups/{gid}/users", s.listGroupUsers)
	api.HandleFunc("PUT /api/v1/groups/{gid}/users/{id}", s.addMember)
	api.HandleFunc("DELETE /api/v1/groups/{gid}/users/{id}", s.removeMember)
	api.HandleFunc("GET /api/v1/api-tokens", s.listAPITokens)
	api.HandleFunc("GET /api/v1/api-tokens/current", s.getCurrentAPIToken)
	api.HandleFunc("GET /api/v1/api-tokens/{tid}", s.getAPIToken)
	api.HandleFunc("DELETE /api/v1/api-tokens/{tid}", s.deleteAPIToken)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+r.URL.Path+" (Endpoint)")
	})

	authed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			writeError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
			return
		}
		api.ServeHTTP(w, r)
	})

	mux := http.NewServeMux()
	mux.Handle("/api/", s.rateLimited(s.faults.Middleware(authed, s.writeFault)))
	mux.HandleFunc("GET /_sandbox/users/{id}", s.adminUser)
	mux.HandleFunc("POST /_sandbox/users", s.adminAddUser)
	mux.HandleFunc("POST /_sandbox/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/_sandbox/faults", s.faults.AdminHandler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Okta-Request-Id", randomToken(20))
		mux.ServeHTTP(w, r)
	})
}

// --- rate limits ---

// bucket is one endpoint's fixed one-minute window, started by its first call.
type bucket struct {
	start time.Time
	count int
}

// bucketKey turns a path into its endpoint template: ids become {id}.
func bucketKey(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := 1; i < len(parts); i++ {
		switch parts[i-1] {
		case "users", "groups", "grants", "api-tokens":
			if i >= 3 { // after api/v1/<collection>
				parts[i] = "{id}"
			}
		}
	}
	return "/" + strings.Join(parts, "/")
}

func (s *Sim) rateLimited(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		key := bucketKey(r.URL.Path)
		s.mu.Lock()
		b := s.buckets[key]
		if b == nil || now.Sub(b.start) >= time.Minute {
			b = &bucket{start: now}
			s.buckets[key] = b
		}
		b.count++
		count, reset := b.count, b.start.Add(time.Minute)
		s.mu.Unlock()

		h := w.Header()
		h.Set("X-Rate-Limit-Limit", strconv.Itoa(s.limit))
		h.Set("X-Rate-Limit-Remaining", strconv.Itoa(max(s.limit-count, 0)))
		h.Set("X-Rate-Limit-Reset", strconv.FormatInt(ceilUnix(reset), 10))
		if count > s.limit {
			writeError(w, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func ceilUnix(t time.Time) int64 {
	return int64(math.Ceil(float64(t.UnixNano()) / 1e9))
}

// writeFault answers an injected failure in Okta's own error format.
func (s *Sim) writeFault(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration) {
	switch status {
	case http.StatusTooManyRequests:
		if retryAfter > 0 {
			w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(ceilUnix(time.Now().Add(retryAfter)), 10))
		}
		w.Header().Set("X-Rate-Limit-Remaining", "0")
		writeError(w, status, "E0000047", "API call exceeded rate limit due to too many requests.")
	case http.StatusBadRequest:
		writeError(w, status, "E0000001", "Api validation failed: injected fault")
	case http.StatusUnauthorized:
		writeError(w, status, "E0000011", "Invalid token provided")
	case http.StatusForbidden:
		writeError(w, status, "E0000006", "You do not have permission to perform the requested action")
	case http.StatusNotFound:
		writeError(w, status, "E0000007", "Not found: Resource not found: "+r.URL.Path+" (User)")
	default:
		if status >= 500 {
			writeError(w, status, "E0000009", "Internal Server Error")
			return
		}
		writeError(w, status, "E0000001", http.StatusText(status))
	}
}

// --- responses ---

// oktaError is Okta's error body.
type oktaError struct {
	ErrorCode    string              `json:"errorCode"`
	ErrorSummary string              `json:"errorSummary"`
	ErrorLink    string              `json:"errorLink"`
	ErrorID      string              `json:"errorId"`
	ErrorCauses  []map[string]string `json:"errorCauses"`
}

func writeError(w http.ResponseWriter, status int, code, summary string, causes ...string) {
	body := oktaError{ErrorCode: code, ErrorSummary: summary, ErrorLink: code, ErrorID: "oae" + randomToken(16), ErrorCauses: []map[string]string{}}
	for _, c := range causes {
		body.ErrorCauses = append(body.ErrorCauses, map[string]string{"errorSummary": c})
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, id, kind string) {
	writeError(w, http.StatusNotFound, "E0000007", fmt.Sprintf("Not found: Resource not found: %s (%s)", id, kind))
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// oktaTime formats like Okta: millisecond precision, Z.
type oktaTime time.Time

func (t oktaTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return oktaTime(t)
}

type link struct {
	Href   string `json:"href"`
	Method string `json:"method,omitempty"`
}

func (s *Sim) userJSON(base string, u *user) map[string]any {
	self := base + "/api/v1/users/" + u.id
	links := map[string]any{"self": link{Href: self}}
	lifecycle := func(op string) link { return link{Href: self + "/lifecycle/" + op, Method: "POST"} }
	switch u.status {
	case StatusActive:
		links["suspend"] = lifecycle("suspend")
		links["deactivate"] = lifecycle("deactivate")
		links["resetPassword"] = lifecycle("reset_password")
	case StatusSuspended:
		links["unsuspend"] = lifecycle("unsuspend")
		links["deactivate"] = lifecycle("deactivate")
	case StatusDeprovisioned:
		links["activate"] = lifecycle("activate")
	}
	var transitioning any
	if u.transitioningStatus != "" {
		transitioning = u.transitioningStatus
	}
	return map[string]any{
		"id":                    u.id,
		"status":                u.status,
		"created":               oktaTime(u.created),
		"activated":             timeOrNil(u.activated),
		"statusChanged":         timeOrNil(u.statusChanged),
		"lastLogin":             timeOrNil(u.lastLogin),
		"lastUpdated":           oktaTime(u.updated),
		"passwordChanged":       oktaTime(cmp.Or(u.passwordChanged, u.created)),
		"transitioningToStatus": transitioning,
		"type":                  map[string]string{"id": newID("oty", "default")},
		"profile": map[string]any{
			"firstName":      u.first,
			"lastName":       u.last,
			"mobilePhone":    nil,
			"secondEmail":    nil,
			"login":          u.login,
			"email":          u.email,
			"employeeNumber": u.employeeNumber,
			"department":     u.department,
		},
		"credentials": map[string]any{
			"password": map[string]any{},
			"provider": map[string]string{"type": "OKTA", "name": "OKTA"},
		},
		"_links": links,
	}
}

func groupJSON(base string, g *group) map[string]any {
	self := base + "/api/v1/groups/" + g.id
	return map[string]any{
		"id":                    g.id,
		"created":               oktaTime(g.created),
		"lastUpdated":           oktaTime(g.updated),
		"lastMembershipUpdated": oktaTime(g.membershipUpdated),
		"objectClass":           []string{"okta:user_group"},
		"type":                  g.typ,
		"profile":               map[string]any{"name": g.name, "description": g.description},
		"_links": map[string]any{
			"logo":  []map[string]string{{"name": "medium", "href": base + "/img/logos/groups/okta-medium.png", "type": "image/png"}},
			"users": link{Href: self + "/users"},
			"apps":  link{Href: self + "/apps"},
		},
	}
}

func grantJSON(base string, u *user, g *grant) map[string]any {
	return map[string]any{
		"id":          g.id,
		"status":      "ACTIVE",
		"created":     oktaTime(g.created),
		"lastUpdated": oktaTime(g.created),
		"issuer":      base + "/oauth2/default",
		"clientId":    g.clientID,
		"userId":      u.id,
		"scopeId":     g.scopeID,
		"source":      "END_USER",
		"createdBy":   map[string]string{"id": u.id, "type": "User"},
		"_links": map[string]any{
			"self":   link{Href: base + "/api/v1/users/" + u.id + "/grants/" + g.id},
			"client": link{Href: base + "/oauth2/v1/clients/" + g.clientID},
			"user":   link{Href: base + "/api/v1/users/" + u.id},
		},
	}
}

// page cuts a sorted list by Okta's limit/after cursor and sets the Link headers.
func page[T any](w http.ResponseWriter, r *http.Request, items []T, id func(T) string, defLimit, maxLimit int) ([]T, bool) {
	q := r.URL.Query()
	limit := defLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: limit", "limit: must be a positive integer")
			return nil, false
		}
		limit = min(n, maxLimit)
	}
	start := 0
	if after := q.Get("after"); after != "" {
		for start < len(items) && id(items[start]) <= after {
			start++
		}
	}
	end := min(start+limit, len(items))
	self := *r.URL
	w.Header().Add("Link", fmt.Sprintf(`<%s%s>; rel="self"`, baseURL(r), self.RequestURI()))
	if end < len(items) {
		next := *r.URL
		nq := next.Query()
		nq.Set("after", id(items[end-1]))
		nq.Set("limit", strconv.Itoa(limit))
		next.RawQuery = nq.Encode()
		w.Header().Add("Link", fmt.Sprintf(`<%s%s>; rel="next"`, baseURL(r), next.RequestURI()))
	}
	return items[start:end], true
}
