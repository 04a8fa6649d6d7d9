package okta

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/offboard/offboard/sandbox/demo"
)

// API tokens and passwords (issue 15): the non-human side of an Okta org.
// Okta API tokens belong to the admin who created them, cannot be rotated
// or handed over, and are revoked with their owner's deactivation.

// APIToken is a snapshot of one simulated API token.
type APIToken struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	UserID string `json:"userId"`
}

// apiToken expires 30 days after its last use (tokenWindow), which the
// simulator takes to be lastUpdated.
type apiToken struct {
	id, name, userID, clientName string
	created, lastUpdated         time.Time
}

// passwordHistory is how many passwords Okta's default policy remembers:
// setting one of them again is refused.
const passwordHistory = 4

// breakGlassPerson is the shared emergency admin Options.BreakGlass seeds.
func breakGlassPerson() demo.Person {
	return demo.Person{First: "Break", Last: "Glass", Login: demo.BreakGlassOkta, Email: demo.BreakGlassOkta, Department: "admins"}
}

// seedTokensLocked gives demo.ServiceOwner the token demo.APITokenName and
// the admin the simulator's token belongs to (GET /users/me) two: the one
// Offboard signs in with and another. Nobody else owns a token, as
// sandbox/demo promises: other leavers' plans stay free of non-human steps.
func (s *Sim) seedTokensLocked() {
	s.apiTokens = map[string]*apiToken{}
	created := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	add := func(name, userID, client string) {
		t := &apiToken{id: newID("00T", name+"\x00"+userID), name: name, userID: userID, clientName: client,
			created: created, lastUpdated: created}
		s.apiTokens[t.id] = t
	}
	add("offboard", tokenOwner().id, "Okta API")
	add("terraform", tokenOwner().id, "Okta Admin Console")
	if len(s.seed) < 2 {
		return
	}
	p := demo.ServiceOwner(s.seed)
	if u := s.findLocked(cmp.Or(p.Email, p.Login)); u != nil {
		add(demo.APITokenName, u.id, "Okta API")
	}
}

// APITokens lists the API tokens, by id.
func (s *Sim) APITokens() []APIToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []APIToken
	for _, t := range s.sortedTokensLocked() {
		out = append(out, APIToken{ID: t.id, Name: t.name, UserID: t.userID})
	}
	return out
}

func (s *Sim) sortedTokensLocked() []*apiToken {
	out := make([]*apiToken, 0, len(s.apiTokens))
	for _, t := range s.apiTokens {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *apiToken) int { return strings.Compare(a.id, b.id) })
	return out
}

func tokenJSON(base string, t *apiToken) map[string]any {
	return map[string]any{
		"id":          t.id,
		"name":        t.name,
		"userId":      t.userID,
		"clientName":  t.clientName,
		"created":     oktaTime(t.created),
		"lastUpdated": oktaTime(t.lastUpdated),
		"expiresAt":   oktaTime(t.lastUpdated.Add(30 * 24 * time.Hour)),
		"tokenWindow": "P30D",
		"network":     map[string]any{"connection": "ANYWHERE"},
		"_links": map[string]any{
			"self": link{Href: base + "/api/v1/api-tokens/" + t.id, Method: "GET"},
			"user": []link{{Href: base + "/api/v1/users/" + t.userID, Method: "GET"}},
		},
	}
}

// listAPITokens answers GET /api/v1/api-tokens: every token of the org,
// 20 a page by default, at most 200, with Okta's Link paging.
func (s *Sim) listAPITokens(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	items, ok := page(w, r, s.sortedTokensLocked(), func(t *apiToken) string { return t.id }, 20, 200)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, len(items))
	for _, t := range items {
		out = append(out, tokenJSON(baseURL(r), t))
	}
	writeJSON(w, http.StatusOK, out)
}

// getCurrentAPIToken answers GET /api/v1/api-tokens/current: the token the
// request authenticated with, the simulator's own.
func (s *Sim) getCurrentAPIToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.apiTokens[currentTokenID()]
	if t == nil {
		notFound(w, "current", "ApiToken")
		return
	}
	writeJSON(w, http.StatusOK, tokenJSON(baseURL(r), t))
}

// currentTokenID is the id of the token Options.Token stands for.
func currentTokenID() string { return newID("00T", "offboard\x00"+tokenOwner().id) }

func (s *Sim) getAPIToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.apiTokens[r.PathValue("tid")]
	if t == nil {
		notFound(w, r.PathValue("tid"), "ApiToken")
		return
	}
	writeJSON(w, http.StatusOK, tokenJSON(baseURL(r), t))
}

// deleteAPIToken revokes a token: 204, and from then on the token is 404.
func (s *Sim) deleteAPIToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.apiTokens[r.PathValue("tid")]
	if t == nil {
		notFound(w, r.PathValue("tid"), "ApiToken")
		return
	}
	delete(s.apiTokens, t.id)
	w.WriteHeader(http.StatusNoContent)
}

// revokeTokensLocked revokes every token u created, as Okta does when it
// deactivates the user. Token revocations are not user transitions: those
// stay the user's own lifecycle.
func (s *Sim) revokeTokensLocked(u *user) {
	for id, t := range s.apiTokens {
		if t.userID == u.id {
			delete(s.apiTokens, id)
		}
	}
}

// updateUser answers POST /api/v1/users/{id}, Okta's partial update: the
// profile properties given are merged, and credentials.password.value sets
// the password (complexity and history checked as Okta's default policy
// does; passwordChanged moves to now). Only a keyed hash of it is kept.
func (s *Sim) updateUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Profile     map[string]any `json:"profile"`
		Credentials *struct {
			Password *struct {
				Value *string `json:"value"`
			} `json:"password"`
		} `json:"credentials"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "E0000003", "The request body was not well-formed.", err.Error())
		return
	}
	s.withUser(w, r, func(u *user) {
		profile := map[string]*string{"firstName": &u.first, "lastName": &u.last, "email": &u.email,
			"employeeNumber": &u.employeeNumber, "department": &u.department}
		for k, v := range body.Profile {
			_, known := profile[k]
			if _, isString := v.(string); !known || !isString {
				writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: profile", k+": Property name '"+k+"' is not defined in the profile or is not a string")
				return
			}
		}
		c := body.Credentials
		setPassword := c != nil && c.Password != nil && c.Password.Value != nil
		var password string
		if setPassword {
			password = *c.Password.Value
			if why := s.passwordRefusal(u, password); why != "" {
				writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: password", "password: "+why)
				return
			}
		}
		for k, v := range body.Profile {
			*profile[k] = v.(string)
		}
		now := time.Now().UTC()
		if setPassword {
			u.passwords = append([]string{s.hashPassword(password)}, u.passwords...)
			u.passwords = u.passwords[:min(len(u.passwords), passwordHistory)]
			u.passwordChanged = now
			s.recordLocked(u.id, "set_password", "")
		}
		if setPassword || len(body.Profile) > 0 {
			u.updated = now
		}
		writeJSON(w, http.StatusOK, s.userJSON(baseURL(r), u))
	})
}

// passwordRefusal is why Okta's default policy refuses pw for u, or "".
func (s *Sim) passwordRefusal(u *user, pw string) string {
	var upper, lower, digit bool
	for _, r := range pw {
		upper = upper || unicode.IsUpper(r)
		lower = lower || unicode.IsLower(r)
		digit = digit || unicode.IsDigit(r)
	}
	local, _, _ := strings.Cut(u.login, "@")
	switch {
	case len(pw) < 8 || !upper || !lower || !digit:
		return "Password requirements were not met. Password requirements: at least 8 characters, a lowercase letter, an uppercase letter, a number."
	case strings.Contains(strings.ToLower(pw), strings.ToLower(local)):
		return "Password requirements were not met. Password requirements: no parts of your username."
	case slices.Contains(u.passwords, s.hashPassword(pw)):
		return "Password has been used too recently"
	}
	return ""
}

func (s *Sim) hashPassword(pw string) string {
	m := hmac.New(sha256.New, s.pepper)
	m.Write([]byte(pw))
	return hex.EncodeToString(m.Sum(nil))
}

// PasswordIs reports whether pw is the user's current password, for tests
// that check a rotation really set the value it stored.
func (s *Sim) PasswordIs(idOrLogin, pw string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.findLocked(idOrLogin)
	return u != nil && len(u.passwords) > 0 && hmac.Equal([]byte(u.passwords[0]), []byte(s.hashPassword(pw)))
}

// PasswordChanged is when the user's password last changed.
func (s *Sim) PasswordChanged(idOrLogin string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.findLocked(idOrLogin)
	if u == nil {
		return time.Time{}, false
	}
	return u.passwordChanged, true
}
