// Package graph is an in-memory Microsoft Graph v1.0 simulator: the users,
// groups, directory roles and licences of the demo company, and the app
// registrations and service principals they own, served the way Graph serves them
// (OData JSON, $select, $filter, @odata.nextLink paging, OData error bodies,
// gzip-encoded request bodies, request-id headers, 429 throttling).
//
// It deliberately imports nothing from msgraph-sdk-go, so the sandbox builds fast.
package graph

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
)

// Well-known SKU ids, so the seeded licences look like a real tenant's.
const (
	SkuOffice365E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900" // ENTERPRISEPACK
	SkuEMSE3       = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e" // EMS
	SkuPowerBIPro  = "f8a1db68-be16-40ed-86d5-cb42ce701560" // POWER_BI_PRO, granted by group-based licensing
)

// DynamicGroup is the extra group every user is in through a membership rule;
// Graph refuses to remove members from it.
const DynamicGroup = "dyn-all"

// GlobalReader is the directory role every privileged person holds; its
// roleTemplateId is the built-in role's, the same in every tenant.
const (
	GlobalReader         = "Global Reader"
	GlobalReaderTemplate = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
)

// LicensedGroup grants SkuPowerBIPro through group-based licensing, so some
// users hold a licence that assignLicense cannot remove directly.
const LicensedGroup = "finance"

// Options configure a simulator.
type Options struct {
	Faults            *fault.Injector
	People            []demo.Person
	RequestsPerSecond int // past it → 429 with Retry-After; 0 = 100
}

// User is a snapshot of one simulated user.
type User struct {
	ID                      string    `json:"id"`
	UPN                     string    `json:"userPrincipalName"`
	Mail                    string    `json:"mail"`
	DisplayName             string    `json:"displayName"`
	AccountEnabled          bool      `json:"accountEnabled"`
	SignInSessionsValidFrom time.Time `json:"signInSessionsValidFromDateTime"`
	LastPasswordChange      time.Time `json:"lastPasswordChangeDateTime"`
	Groups                  []string  `json:"groups"`        // display names, including the dynamic group
	Roles                   []string  `json:"roles"`         // directory roles held, by display name
	Licenses                []string  `json:"licenses"`      // directly assigned skuIds
	GroupLicenses           []string  `json:"groupLicenses"` // skuIds inherited from group-based licensing
}

// Transition is one change the simulator made to a user.
type Transition struct {
	Action string    `json:"action"` // disable, enable, revoke_sessions, remove_group, remove_role, remove_license, set_password, delete
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Sim is the simulator. It is safe for concurrent use.
type Sim struct {
	faults  *fault.Injector
	limiter *limiter

	mu     sync.Mutex
	users  map[string]*user  // by object id
	upns   map[string]string // lower-case UPN → object id, kept after deletion
	groups []*group          // in creation order, which is memberOf order
	roles  []*group          // directory roles: listed in memberOf, never groups
	apps   []*app            // applications and service principals, in creation order
	log    map[string][]Transition
}

type user struct {
	id, upn, mail, displayName, given, surname, jobTitle, department string
	enabled                                                          bool
	validFrom                                                        time.Time
	licenses                                                         []string
	otherMails                                                       []string
	pwdChanged                                                       time.Time // lastPasswordChangeDateTime
	pwdDigest                                                        [32]byte  // SHA-256 of the password, zero when unknown
}

type group struct {
	id, name  string
	template  string // roleTemplateId of a directory role
	dynamic   bool
	rule      string
	licenses  []string
	members   map[string]bool
	odataType string
}

// New seeds a simulator with opts.People.
func New(opts Options) *Sim {
	if opts.Faults == nil {
		opts.Faults = fault.New()
	}
	rps := opts.RequestsPerSecond
	if rps <= 0 {
		rps = 100
	}
	s := &Sim{
		faults:  opts.Faults,
		limiter: newLimiter(rps),
		users:   map[string]*user{},
		upns:    map[string]string{},
		log:     map[string][]Transition{},
	}
	byName := map[string]*group{}
	for _, name := range demo.Groups {
		g := &group{id: guid("group:" + name), name: name, members: map[string]bool{}, odataType: "#microsoft.graph.group"}
		if name == LicensedGroup {
			g.licenses = []string{SkuPowerBIPro}
		}
		byName[name] = g
		s.groups = append(s.groups, g)
	}
	dyn := &group{id: guid("group:" + DynamicGroup), name: DynamicGroup, dynamic: true,
		rule: `(user.accountEnabled -ne null)`, members: map[string]bool{}, odataType: "#microsoft.graph.group"}
	s.groups = append(s.groups, dyn)
	reader := &group{id: guid("role:global-reader"), name: GlobalReader, template: GlobalReaderTemplate,
		members: map[string]bool{}, odataType: "#microsoft.graph.directoryRole"}
	s.roles = append(s.roles, reader)

	for _, p := range opts.People {
		u := &user{
			id: guid("user:" + p.EmployeeID), upn: p.Email, mail: p.Email, displayName: p.Name(),
			given: p.First, surname: p.Last, department: p.Department, enabled: true,
			validFrom:  time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC),
			pwdChanged: time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC),
			licenses:   []string{SkuOffice365E3},
		}
		if p.Privileged || p.Department == "engineering" {
			u.licenses = append(u.licenses, SkuEMSE3)
		}
		if p.Privileged {
			u.jobTitle = "Administrator"
			reader.members[u.id] = true
		}
		s.users[u.id] = u
		s.upns[strings.ToLower(u.upn)] = u.id
		for _, name := range demo.GroupsOf(p) {
			g := byName[name]
			if g == nil { // a department outside demo.Groups
				g = &group{id: guid("group:" + name), name: name, members: map[string]bool{}, odataType: "#microsoft.graph.group"}
				byName[name] = g
				s.groups = append(s.groups, g)
			}
			g.members[u.id] = true
		}
		dyn.members[u.id] = true
	}
	s.seedNonHuman(opts.People)
	return s
}

// Faults returns the fault injector wrapped around the Graph endpoints.
func (s *Sim) Faults() *fault.Injector { return s.faults }

// User returns a snapshot of a live user by object id or UPN.
func (s *Sim) User(idOrUPN string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(idOrUPN)
	if u == nil {
		return User{}, false
	}
	return s.snapshot(u), true
}

// SetOtherMails sets a user's otherMails (addresses besides mail and the
// UPN), as an admin would in the portal. It reports whether the user exists.
func (s *Sim) SetOtherMails(idOrUPN string, mails ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(idOrUPN)
	if u != nil {
		u.otherMails = slices.Clone(mails)
	}
	return u != nil
}

// Transitions lists what the simulator changed for a user (object id or UPN),
// oldest first; it survives the user's deletion.
func (s *Sim) Transitions(idOrUPN string) []Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := idOrUPN
	if known, ok := s.upns[strings.ToLower(idOrUPN)]; ok {
		id = known
	}
	return slices.Clone(s.log[id])
}

func (s *Sim) snapshot(u *user) User {
	out := User{
		ID: u.id, UPN: u.upn, Mail: u.mail, DisplayName: u.displayName,
		AccountEnabled: u.enabled, SignInSessionsValidFrom: u.validFrom, LastPasswordChange: u.pwdChanged,
		Licenses: slices.Clone(u.licenses),
	}
	for _, g := range s.groups {
		if g.members[u.id] {
			out.Groups = append(out.Groups, g.name)
			out.GroupLicenses = append(out.GroupLicenses, g.licenses...)
		}
	}
	for _, r := range s.roles {
		if r.members[u.id] {
			out.Roles = append(out.Roles, r.name)
		}
	}
	return out
}

// lookup finds a live user by object id or UPN (case-insensitive). Callers hold s.mu.
func (s *Sim) lookup(idOrUPN string) *user {
	if u, ok := s.users[strings.ToLower(idOrUPN)]; ok {
		return u
	}
	if id, ok := s.upns[strings.ToLower(idOrUPN)]; ok {
		return s.users[id]
	}
	return nil
}

func (s *Sim) groupByID(id string) *group {
	for _, g := range s.groups {
		if strings.EqualFold(g.id, id) {
			return g
		}
	}
	return nil
}

// roleByID finds a directory role by object id or roleTemplateId; Graph
// accepts either. Callers hold s.mu.
func (s *Sim) roleByID(id string) *group {
	for _, r := range s.roles {
		if strings.EqualFold(r.id, id) || strings.EqualFold(r.template, id) {
			return r
		}
	}
	return nil
}

func (s *Sim) record(id, action, detail string, at time.Time) {
	s.log[id] = append(s.log[id], Transition{Action: action, Detail: detail, At: at})
}

// Handler serves /v1.0/... (behind the fault injector and the throttle) and /_sandbox/.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_sandbox/faults", s.faults.AdminHandler())
	mux.HandleFunc("GET /_sandbox/users/{upn}", s.sandboxUser)
	mux.HandleFunc("GET /_sandbox/applications", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"applications": s.Applications()})
	})
	mux.Handle("/v1.0/", s.throttle(http.StripPrefix("/v1.0", s.api())))
	return withRequestID(readAhead(s.faults.Middleware(mux, writeFault)))
}

// readAhead reads the request body before the handler runs. Go's server only
// notices a client hanging up once the body has been consumed, so without
// this a "hang" fault on a PATCH would outlive the client's deadline.
func readAhead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
			if err != nil {
				writeError(w, r, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "Request body too large.")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Sim) sandboxUser(w http.ResponseWriter, r *http.Request) {
	u, ok := s.User(r.PathValue("upn"))
	if !ok {
		writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "no such user")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": u, "transitions": s.Transitions(u.ID)})
}

// guid derives a stable GUID-shaped id from a seed, so ids are the same on every run.
func guid(seed string) string {
	h := sha1.Sum([]byte(seed))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
