// Package okta is an in-memory simulator of the parts of the Okta management
// API that Offboard uses: users and their lifecycle, sessions, OAuth grants,
// group memberships, API tokens (apitokens.go) and password updates. It answers with Okta's JSON shapes, error bodies,
// request ids and rate-limit headers, so the official okta-sdk-golang client
// can be pointed at it unchanged.
//
// Besides /api/v1/... it serves, without authentication:
//
//	GET  /_sandbox/users/{idOrLogin}   the user's state and every transition applied to it
//	POST /_sandbox/users               seed one more person (a demo.Person as JSON)
//	POST /_sandbox/reset               back to the seeded state
//	     /_sandbox/faults              the fault injector's admin endpoint
package okta

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
)

// User statuses the simulator uses, as Okta spells them.
const (
	StatusStaged        = "STAGED"
	StatusActive        = "ACTIVE"
	StatusSuspended     = "SUSPENDED"
	StatusDeprovisioned = "DEPROVISIONED"
)

// Options configure a simulator.
type Options struct {
	// Token is the SSWS API token every /api/v1 call must carry.
	Token string
	// RateLimitPerMinute is the limit of each endpoint bucket; 0 means 600.
	RateLimitPerMinute int
	// Faults injects latency and failures; nil means a new, empty injector.
	Faults *fault.Injector
	// People are seeded ACTIVE, in demo.Groups plus Everyone, each with two
	// sessions and one OAuth grant. demo.ServiceOwner(People) has the API
	// token demo.APITokenName; a few others have tokens too (apitokens.go).
	People []demo.Person
	// BreakGlass also seeds the break-glass admin demo.BreakGlassOkta
	// (ACTIVE, in admins). Off by default: it is a directory user HR does
	// not know, which reconciliation would count.
	BreakGlass bool
}

// User is a snapshot of one simulated user.
type User struct {
	ID       string   `json:"id"`
	Status   string   `json:"status"`
	Login    string   `json:"login"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"` // group names, sorted, including Everyone
	Sessions int      `json:"sessions"`
	Grants   int      `json:"grants"` // active OAuth grants
}

// Transition is one state change the simulator applied to a user.
type Transition struct {
	// Action is suspend, unsuspend, deactivate, activate, delete,
	// clear_sessions, revoke_grant, remove_group or add_group.
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Sim is the simulator. All methods are safe for concurrent use.
type Sim struct {
	token      string
	limit      int
	faults     *fault.Injector
	seed       []demo.Person
	breakGlass bool
	// pepper keys the password hashes, so nothing stored is the value.
	pepper []byte

	mu          sync.Mutex
	users       map[string]*user  // by id
	logins      map[string]string // lower-case login → id
	groups      map[string]*group // by id
	groupNames  map[string]string // name → id
	transitions map[string][]Transition
	buckets     map[string]*bucket
	apiTokens   map[string]*apiToken // by id

	handler http.Handler
}

type user struct {
	id, status          string
	login, email        string
	first, last         string
	employeeNumber      string
	department          string
	created, activated  time.Time
	statusChanged       time.Time
	lastLogin, updated  time.Time
	passwordChanged     time.Time
	passwords           []string        // keyed hashes of the current and earlier passwords, newest first
	groups              map[string]bool // group ids
	sessions            int
	grants              []*grant
	transitioningStatus string
}

type group struct {
	id, name, typ, description string
	created, updated           time.Time
	membershipUpdated          time.Time
	members                    map[string]bool // user ids
}

type grant struct {
	id, clientID, scopeID string
	created               time.Time
}

// everyone is Okta's BUILT_IN group every user belongs to.
const everyone = "Everyone"

// New builds a simulator seeded with opts.People.
func New(opts Options) *Sim {
	s := &Sim{
		token:  opts.Token,
		limit:  cmp.Or(opts.RateLimitPerMinute, 600),
		faults: opts.Faults,
		seed:   slices.Clone(opts.People),

		breakGlass: opts.BreakGlass,
		pepper:     []byte(randomToken(32)),
	}
	if s.faults == nil {
		s.faults = fault.New()
	}
	s.reset()
	s.handler = s.routes()
	return s
}

// Handler serves the API and the /_sandbox admin endpoints.
func (s *Sim) Handler() http.Handler { return s.handler }

// Faults is the injector the handler consults on every /api/v1 call.
func (s *Sim) Faults() *fault.Injector { return s.faults }

// Reset puts the simulator back in its seeded state: users, groups,
// transitions and rate-limit windows. Fault rules are left alone.
func (s *Sim) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Sim) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Sim) resetLocked() {
	s.users = map[string]*user{}
	s.logins = map[string]string{}
	s.groups = map[string]*group{}
	s.groupNames = map[string]string{}
	s.transitions = map[string][]Transition{}
	s.buckets = map[string]*bucket{}
	created := time.Date(2023, 1, 2, 9, 0, 0, 0, time.UTC)
	s.addGroupLocked(everyone, "BUILT_IN", "All users in your organization", created)
	for _, name := range demo.Groups {
		s.addGroupLocked(name, "OKTA_GROUP", "Demo company group "+name, created)
	}
	for _, p := range s.seed {
		_, _ = s.addUserLocked(p)
	}
	if s.breakGlass {
		_, _ = s.addUserLocked(breakGlassPerson())
	}
	s.seedTokensLocked()
}

// User returns a snapshot of the user with this id or login.
func (s *Sim) User(idOrLogin string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.findLocked(idOrLogin)
	if u == nil {
		return User{}, false
	}
	return s.snapshotLocked(u), true
}

// Transitions lists every state change applied to the user, oldest first.
// They are kept after the user is deleted.
func (s *Sim) Transitions(userID string) []Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.findLocked(userID); u != nil {
		userID = u.id
	}
	return slices.Clone(s.transitions[userID])
}

// AddUser seeds one more person: ACTIVE, in demo.GroupsOf(p) and Everyone,
// with two sessions and one OAuth grant.
func (s *Sim) AddUser(p demo.Person) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.addUserLocked(p)
	if err != nil {
		return User{}, err
	}
	return s.snapshotLocked(u), nil
}

// ErrExists is returned by AddUser when the login is taken.
var ErrExists = errors.New("okta sim: login already exists")

func (s *Sim) addUserLocked(p demo.Person) (*user, error) {
	login := cmp.Or(p.Email, p.Login)
	if login == "" {
		return nil, errors.New("okta sim: person has neither email nor login")
	}
	if _, ok := s.logins[strings.ToLower(login)]; ok {
		return nil, fmt.Errorf("%w: %s", ErrExists, login)
	}
	now := time.Now().UTC()
	created := now.Add(-90 * 24 * time.Hour).Truncate(time.Second)
	u := &user{
		id:              newID("00u", login),
		status:          StatusActive,
		login:           login,
		email:           cmp.Or(p.Email, login),
		first:           p.First,
		last:            p.Last,
		employeeNumber:  p.EmployeeID,
		department:      p.Department,
		created:         created,
		activated:       created,
		statusChanged:   created,
		updated:         created,
		passwordChanged: created,
		lastLogin:       now.Add(-time.Hour).Truncate(time.Second),
		groups:          map[string]bool{},
		sessions:        2,
	}
	u.grants = []*grant{{
		id:       newID("oag", login+"#0"),
		clientID: newID("0oa", "offboard-demo-app"),
		scopeID:  newID("scp", "okta.users.read.self"),
		created:  created,
	}}
	s.users[u.id] = u
	s.logins[strings.ToLower(login)] = u.id
	names := append([]string{everyone}, demo.GroupsOf(p)...)
	for _, name := range names {
		gid, ok := s.groupNames[name]
		if !ok {
			gid = s.addGroupLocked(name, "OKTA_GROUP", "", created).id
		}
		u.groups[gid] = true
		s.groups[gid].members[u.id] = true
	}
	return u, nil
}

func (s *Sim) addGroupLocked(name, typ, description string, created time.Time) *group {
	g := &group{
		id: newID("00g", name), name: name, typ: typ, description: description,
		created: created, updated: created, membershipUpdated: created,
		members: map[string]bool{},
	}
	s.groups[g.id] = g
	s.groupNames[name] = g.id
	return g
}

// findLocked looks a user up by id, then by login (case-insensitively, as Okta does).
func (s *Sim) findLocked(idOrLogin string) *user {
	if u, ok := s.users[idOrLogin]; ok {
		return u
	}
	if id, ok := s.logins[strings.ToLower(idOrLogin)]; ok {
		return s.users[id]
	}
	return nil
}

func (s *Sim) snapshotLocked(u *user) User {
	out := User{ID: u.id, Status: u.status, Login: u.login, Email: u.email, Sessions: u.sessions, Grants: len(u.grants)}
	for gid := range u.groups {
		out.Groups = append(out.Groups, s.groups[gid].name)
	}
	slices.Sort(out.Groups)
	return out
}

func (s *Sim) recordLocked(userID, action, detail string) {
	s.transitions[userID] = append(s.transitions[userID], Transition{Action: action, Detail: detail, At: time.Now().UTC()})
}

func (s *Sim) setStatusLocked(u *user, status string) {
	now := time.Now().UTC()
	u.status = status
	u.statusChanged = now
	u.updated = now
}

// newID makes an Okta-looking id (prefix + 17 base62 characters) that is
// the same for the same seed, so demo runs and tests see stable ids.
func newID(prefix, seed string) string {
	sum := sha256.Sum256([]byte(prefix + "\x00" + seed))
	n := new(big.Int).SetBytes(sum[:])
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b strings.Builder
	b.WriteString(prefix)
	base := big.NewInt(62)
	mod := new(big.Int)
	for range 17 {
		n.DivMod(n, base, mod)
		b.WriteByte(alphabet[mod.Int64()])
	}
	return b.String()
}

// randomToken is a URL-safe random string, like Okta's request and error ids.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorized reports whether r carries the configured SSWS token.
func (s *Sim) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "SSWS ")
	return ok && s.token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}
