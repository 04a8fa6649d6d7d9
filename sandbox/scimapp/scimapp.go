// Package scimapp simulates SaaS applications that are provisioned over SCIM
// 2.0 (RFC 7643/7644). Each App is an in-memory user store behind the real
// SCIM server library github.com/elimity-com/scim, so request validation,
// PATCH parsing, filters and error bodies are the library's, not ours.
//
// Routes of App.Handler:
//
//	/scim/v2/...              the SCIM API (bearer token, rate limit, faults)
//	/_sandbox/faults          fault rules (see package fault)
//	/_sandbox/users/{userName} GET: the user's state and transitions, as JSON
package scimapp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
)

// Options configure one simulated app.
type Options struct {
	Name   string // "crm", "wiki"
	Bearer string // the token every SCIM request must carry
	// PatchSupported false makes the app advertise patch.supported=false and
	// answer PATCH with 501, so clients must fall back to GET + PUT.
	PatchSupported bool
	Faults         *fault.Injector // nil: a fresh one
	// People are seeded as active users: userName = Email, externalId = EmployeeID.
	People []demo.Person
	// RequestsPerSecond past which the app answers 429 with Retry-After; 0 = 100.
	RequestsPerSecond int
}

// User is a snapshot of one user's state.
type User struct {
	ID         string `json:"id"`
	UserName   string `json:"userName"`
	ExternalID string `json:"externalId,omitempty"`
	Active     bool   `json:"active"`
	// HasActive is false when the resource carries no "active" attribute
	// (a PUT may drop it).
	HasActive   bool     `json:"hasActive"`
	DisplayName string   `json:"displayName,omitempty"`
	Emails      []string `json:"emails,omitempty"`
}

// Transition is one state change the app recorded for a user.
type Transition struct {
	Action string    `json:"action"` // "deactivate", "reactivate", "delete", "replace"
	At     time.Time `json:"at"`
}

// App is one simulated SCIM application.
type App struct {
	name           string
	bearer         string
	patchSupported bool
	faults         *fault.Injector
	limiter        *limiter
	handler        http.Handler

	mu          sync.Mutex
	users       map[string]*record // by id
	order       []string           // ids in creation order, for stable paging
	transitions map[string][]Transition
}

type record struct {
	attrs    scim.ResourceAttributes
	external optional.String
	created  time.Time
	modified time.Time
	version  int
}

// New builds an app and seeds its people.
func New(opts Options) (*App, error) {
	if opts.Name == "" {
		return nil, errors.New("scimapp: name is required")
	}
	if opts.Bearer == "" {
		return nil, errors.New("scimapp: bearer token is required")
	}
	rps := opts.RequestsPerSecond
	if rps <= 0 {
		rps = 100
	}
	a := &App{
		name:           opts.Name,
		bearer:         opts.Bearer,
		patchSupported: opts.PatchSupported,
		faults:         opts.Faults,
		limiter:        newLimiter(rps),
		users:          map[string]*record{},
		transitions:    map[string][]Transition{},
	}
	if a.faults == nil {
		a.faults = fault.New()
	}
	now := time.Now().UTC()
	for _, p := range opts.People {
		id := newID()
		a.users[id] = &record{
			attrs: scim.ResourceAttributes{
				"userName":    p.Email,
				"displayName": p.Name(),
				"name":        map[string]any{"givenName": p.First, "familyName": p.Last, "formatted": p.Name()},
				"emails":      []any{map[string]any{"value": p.Email, "type": "work", "primary": true}},
				"active":      true,
			},
			external: optional.NewString(p.EmployeeID),
			created:  now,
			modified: now,
			version:  1,
		}
		a.order = append(a.order, id)
	}

	server, err := scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{
			DocumentationURI: optional.NewString("https://" + opts.Name + ".example.test/docs/scim"),
			AuthenticationSchemes: []scim.AuthenticationScheme{{
				Type:        scim.AuthenticationTypeOauthBearerToken,
				Name:        "OAuth Bearer Token",
				Description: "Authentication scheme using the OAuth Bearer Token Standard",
				SpecURI:     optional.NewString("https://www.rfc-editor.org/info/rfc6750"),
				Primary:     true,
			}},
			MaxResults:       100,
			SupportFiltering: true,
			SupportPatch:     opts.PatchSupported,
		},
		ResourceTypes: []scim.ResourceType{{
			ID:          optional.NewString("User"),
			Name:        "User",
			Description: optional.NewString("User Account"),
			Endpoint:    "/Users",
			Schema:      schema.CoreUserSchema(),
			Handler:     userHandler{a},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("scimapp: %w", err)
	}

	api := http.StripPrefix("/scim", server)
	mux := http.NewServeMux()
	mux.Handle("/scim/v2/", a.faults.Middleware(a.authenticate(a.rateLimit(a.guardPatch(api))), writeError))
	mux.Handle("/_sandbox/faults", a.faults.AdminHandler())
	mux.HandleFunc("GET /_sandbox/users/{userName}", a.serveSandboxUser)
	a.handler = mux
	return a, nil
}

// Handler serves the SCIM API under /scim/v2 and the admin endpoints under /_sandbox/.
func (a *App) Handler() http.Handler { return a.handler }

// Faults is the app's fault injector.
func (a *App) Faults() *fault.Injector { return a.faults }

// Name is the app's name.
func (a *App) Name() string { return a.name }

// User returns a snapshot of the user with that userName (case-insensitive).
func (a *App) User(userName string) (User, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range a.order {
		rec := a.users[id]
		if strings.EqualFold(str(rec.attrs["userName"]), userName) {
			return snapshot(id, rec), true
		}
	}
	return User{}, false
}

// Transitions lists the state changes recorded for the user id, oldest first;
// a deleted user's history is kept.
func (a *App) Transitions(id string) []Transition {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Transition(nil), a.transitions[id]...)
}

func (a *App) serveSandboxUser(w http.ResponseWriter, r *http.Request) {
	u, ok := a.User(r.PathValue("userName"))
	if !ok {
		http.Error(w, "no such user", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		User
		Transitions []Transition `json:"transitions"`
	}{u, a.Transitions(u.ID)})
}

// record appends a transition; the caller holds a.mu.
func (a *App) record(id, action string, at time.Time) {
	a.transitions[id] = append(a.transitions[id], Transition{Action: action, At: at})
}

func snapshot(id string, rec *record) User {
	u := User{
		ID:          id,
		UserName:    str(rec.attrs["userName"]),
		ExternalID:  rec.external.Value(),
		DisplayName: str(rec.attrs["displayName"]),
	}
	if b, ok := rec.attrs["active"].(bool); ok {
		u.Active, u.HasActive = b, true
	}
	if emails, ok := rec.attrs["emails"].([]any); ok {
		for _, e := range emails {
			if m, ok := e.(map[string]any); ok {
				u.Emails = append(u.Emails, str(m["value"]))
			}
		}
	}
	return u
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeError writes a SCIM error body (RFC 7644 §3.12); it is also the fault
// injector's error writer.
func writeError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	e := scimerrors.ScimError{Status: status, Detail: http.StatusText(status)}
	switch status {
	case http.StatusBadRequest:
		e.ScimType = scimerrors.ScimTypeInvalidValue
		e.Detail = scimerrors.ScimErrorInvalidValue.Detail
	case http.StatusTooManyRequests:
		e.Detail = "Too many requests; slow down."
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	writeSCIMError(w, e)
}

func writeSCIMError(w http.ResponseWriter, e scimerrors.ScimError) {
	body, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// authenticate checks the bearer token the way SCIM providers do: 401 with a
// SCIM error body and a WWW-Authenticate challenge.
func (a *App) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(a.bearer)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+a.name+`", error="invalid_token"`)
			writeSCIMError(w, scimerrors.ScimError{Status: http.StatusUnauthorized, Detail: "Authorization failure. The authorization header is invalid or missing."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *App) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait := a.limiter.take(time.Now()); wait > 0 {
			writeError(w, r, http.StatusTooManyRequests, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guardPatch answers PATCH with 501 when the app does not support it: the
// library routes PATCH whatever the ServiceProviderConfig says.
func (a *App) guardPatch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && !a.patchSupported {
			writeSCIMError(w, scimerrors.ScimError{Status: http.StatusNotImplemented, Detail: "PATCH is not supported; use PUT."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limiter is a token bucket holding one second's worth of requests.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newLimiter(rps int) *limiter {
	return &limiter{rate: float64(rps), tokens: float64(rps)}
}

// take spends a token, or says how long until one is available.
func (l *limiter) take(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = math.Min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return 0
	}
	return time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
}
