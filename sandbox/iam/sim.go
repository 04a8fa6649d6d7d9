// Package iam is an in-memory simulator of the AWS IAM and STS Query APIs,
// enough of them for Offboard's awsiam connector: users, tags, access keys,
// login profiles, SSH keys, service-specific credentials, signing
// certificates, virtual MFA devices, groups, managed and inline policies, and
// STS AssumeRole. It speaks the real wire format (form-encoded POSTs, XML
// answers, IAM error bodies) so the official SDK can be pointed at it.
//
// Admin endpoints (never throttled or faulted):
//
//	/_sandbox/faults                    fault rules (see package fault)
//	GET  /_sandbox/users/{name}          snapshot of one user (JSON)
//	GET  /_sandbox/users/{name}/transitions  every state change applied to that user
//	POST /_sandbox/reset                 forget every change and reseed
package iam

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
)

// Options configure a Sim.
type Options struct {
	AccountID string // default "123456789012"
	// AccessKeyID and SecretAccessKey are the credentials callers must sign
	// with. When AccessKeyID is empty any key id is accepted; when
	// SecretAccessKey is set the SigV4 signature is checked too.
	AccessKeyID, SecretAccessKey string
	// RequestsPerSecond is a token bucket over the API (not the admin
	// endpoints); past it callers get 400 Throttling "Rate exceeded". 0 = 50.
	RequestsPerSecond int
	Faults            *fault.Injector
	People            []demo.Person
}

// Credential is one access key, SSH key, service-specific credential or
// signing certificate.
type Credential struct {
	ID     string `json:"id"`
	Status string `json:"status"` // "Active" or "Inactive"
}

// User is a snapshot of one IAM user and everything attached to it.
type User struct {
	Name                       string            `json:"name"`
	UserID                     string            `json:"userId"`
	ARN                        string            `json:"arn"`
	Tags                       map[string]string `json:"tags"`
	AccessKeys                 []Credential      `json:"accessKeys"`
	LoginProfile               bool              `json:"loginProfile"`
	PasswordSHA256             string            `json:"passwordSHA256,omitempty"` // of the console password UpdateLoginProfile last set
	SSHPublicKeys              []Credential      `json:"sshPublicKeys"`
	ServiceSpecificCredentials []Credential      `json:"serviceSpecificCredentials"`
	SigningCertificates        []Credential      `json:"signingCertificates"`
	MFADevices                 []string          `json:"mfaDevices"` // serial numbers assigned to the user
	Groups                     []string          `json:"groups"`
	AttachedPolicies           []string          `json:"attachedPolicies"` // ARNs
	InlinePolicies             map[string]string `json:"inlinePolicies"`   // name → JSON document
}

// Transition is one state change the simulator applied.
type Transition struct {
	Action string    `json:"action"` // the API action, e.g. "UpdateAccessKey"
	Detail string    `json:"detail"` // e.g. "AKIA... Active→Inactive"
	At     time.Time `json:"at"`
}

// Sim is the simulator. It is safe for concurrent use.
type Sim struct {
	opts   Options
	faults *fault.Injector
	bucket *bucket

	mu          sync.Mutex
	users       map[string]*user
	names       []string // sorted user names, the order ListUsers answers in
	groups      map[string]*group
	virtualMFA  map[string]string // serial → assigned user name ("" = unassigned)
	transitions map[string][]Transition
	sessions    map[string]session // temporary credentials from AssumeRole, by key id
}

type cred struct {
	id, status string
	created    time.Time
	service    string // service-specific credentials only
	secret     string // access keys made by CreateAccessKey: the secret it answered
}

type tag struct{ key, value string }

type user struct {
	name, id, arn, path string
	created             time.Time
	tags                []tag
	accessKeys          []*cred
	loginProfile        *time.Time
	password            string // hex SHA-256 of the console password, when UpdateLoginProfile set one
	sshKeys             []*cred
	serviceCreds        []*cred
	signingCerts        []*cred
	mfa                 []string // serials, in enable order
	groups              []string
	attached            []string // policy ARNs
	inline              []string // policy names, in creation order
	inlineDocs          map[string]string
}

type group struct {
	name, id, arn string
	created       time.Time
}

type session struct {
	secret, token string
	expires       time.Time
}

// New builds a simulator seeded with opts.People.
func New(opts Options) *Sim {
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.RequestsPerSecond <= 0 {
		opts.RequestsPerSecond = 50
	}
	if opts.Faults == nil {
		opts.Faults = fault.New()
	}
	s := &Sim{opts: opts, faults: opts.Faults, bucket: newBucket(opts.RequestsPerSecond)}
	s.seed()
	return s
}

// Faults returns the simulator's fault injector.
func (s *Sim) Faults() *fault.Injector { return s.faults }

// Handler serves the IAM and STS Query APIs on "/" and the admin endpoints under /_sandbox/.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_sandbox/faults", s.faults.AdminHandler())
	mux.HandleFunc("GET /_sandbox/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.User(r.PathValue("name"))
		if !ok {
			http.Error(w, "no such user", http.StatusNotFound)
			return
		}
		writeJSON(w, u)
	})
	mux.HandleFunc("GET /_sandbox/users/{name}/transitions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Transitions(r.PathValue("name")))
	})
	mux.HandleFunc("POST /_sandbox/reset", func(w http.ResponseWriter, r *http.Request) {
		s.seed()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/", s.bucket.limit(http.HandlerFunc(s.serveAPI)))
	return readBody(s.faults.Middleware(mux, s.writeFault))
}

// readBody reads the whole request body up front: only then does net/http
// notice a client hanging up, which an injected hang waits for.
func readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			r.Form = url.Values{}
			writeError(w, r, http.StatusRequestEntityTooLarge, "Sender", "RequestEntityTooLarge", "Request body too large.")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// User returns a snapshot of the named user.
func (s *Sim) User(name string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return User{}, false
	}
	snap := User{
		Name: u.name, UserID: u.id, ARN: u.arn,
		Tags:                       map[string]string{},
		LoginProfile:               u.loginProfile != nil,
		PasswordSHA256:             u.password,
		AccessKeys:                 creds(u.accessKeys),
		SSHPublicKeys:              creds(u.sshKeys),
		ServiceSpecificCredentials: creds(u.serviceCreds),
		SigningCertificates:        creds(u.signingCerts),
		MFADevices:                 slices.Clone(u.mfa),
		Groups:                     slices.Clone(u.groups),
		AttachedPolicies:           slices.Clone(u.attached),
		InlinePolicies:             map[string]string{},
	}
	for _, t := range u.tags {
		snap.Tags[t.key] = t.value
	}
	for _, n := range u.inline {
		snap.InlinePolicies[n] = u.inlineDocs[n]
	}
	return snap, true
}

// Transitions returns every state change applied to the named user, oldest first.
// They outlive the user, so a deletion can be inspected afterwards.
func (s *Sim) Transitions(name string) []Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.transitions[name])
}

// AccessKeySecret is the secret CreateAccessKey answered for the key, for
// tests checking that a rotation stored the working value.
func (s *Sim) AccessKeySecret(userName, keyID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userName]
	if !ok {
		return "", false
	}
	for _, c := range u.accessKeys {
		if c.id == keyID && c.secret != "" {
			return c.secret, true
		}
	}
	return "", false
}

func passwordDigest(pw string) string {
	sum := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(sum[:])
}

// randomChars draws n characters of alphabet from crypto/rand.
func randomChars(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func creds(cs []*cred) []Credential {
	out := make([]Credential, 0, len(cs))
	for _, c := range cs {
		out = append(out, Credential{ID: c.id, Status: c.status})
	}
	return out
}

// record notes a state change; callers hold s.mu.
func (s *Sim) record(name, action, format string, args ...any) {
	s.transitions[name] = append(s.transitions[name], Transition{Action: action, Detail: fmt.Sprintf(format, args...), At: time.Now().UTC()})
}

// seed (re)builds the state from opts.People.
func (s *Sim) seed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.opts.AccountID
	epoch := time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC)
	s.users = make(map[string]*user, len(s.opts.People))
	s.groups = map[string]*group{}
	s.virtualMFA = map[string]string{}
	s.transitions = map[string][]Transition{}
	s.sessions = map[string]session{}
	s.names = s.names[:0]
	for _, g := range demo.Groups {
		s.groups[g] = &group{name: g, id: ident("AGPA", "group/"+g, 17), arn: "arn:aws:iam::" + acct + ":group/" + g, created: epoch}
	}
	for i, p := range s.opts.People {
		created := epoch.Add(time.Duration(i) * time.Hour)
		u := &user{
			name: p.Login, path: "/", created: created,
			id:           ident("AIDA", "user/"+p.Login, 17),
			arn:          "arn:aws:iam::" + acct + ":user/" + p.Login,
			tags:         []tag{{"email", p.Email}, {"employee-id", p.EmployeeID}, {"department", p.Department}},
			loginProfile: &created,
			inlineDocs:   map[string]string{},
		}
		u.accessKeys = []*cred{{id: ident("AKIA", "key1/"+p.Login, 16), status: "Active", created: created}}
		if p.Privileged || i%3 == 0 {
			u.accessKeys = append(u.accessKeys, &cred{id: ident("AKIA", "key2/"+p.Login, 16), status: "Active", created: created.Add(time.Minute)})
		}
		u.sshKeys = []*cred{{id: ident("APKA", "ssh/"+p.Login, 17), status: "Active", created: created}}
		u.serviceCreds = []*cred{{id: ident("ACCA", "svc/"+p.Login, 17), status: "Active", created: created, service: "codecommit.amazonaws.com"}}
		u.signingCerts = []*cred{{id: ident("", "cert/"+p.Login, 32), status: "Active", created: created}}
		serial := "arn:aws:iam::" + acct + ":mfa/" + p.Login
		u.mfa = []string{serial}
		s.virtualMFA[serial] = p.Login
		u.groups = demo.GroupsOf(p)
		policy := "ReadOnlyAccess"
		if p.Privileged {
			policy = "AdministratorAccess"
		}
		u.attached = []string{"arn:aws:iam::aws:policy/" + policy}
		u.inline = []string{"personal-scratch"}
		u.inlineDocs["personal-scratch"] = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::scratch-` + p.Login + `/*"}]}`
		if _, dup := s.users[u.name]; !dup {
			s.names = append(s.names, u.name)
		}
		s.users[u.name] = u
	}
	s.seedNonHuman(epoch)
	sort.Strings(s.names)
}

// seedNonHuman adds the demo's non-human identities (sandbox/demo/nonhuman.go):
// the service user the service owner owns, tagged with their e-mail and
// holding one access key, and the break-glass user with a console password;
// callers hold s.mu.
func (s *Sim) seedNonHuman(epoch time.Time) {
	acct := s.opts.AccountID
	add := func(name, path string, tags []tag) *user {
		if _, dup := s.users[name]; dup {
			return s.users[name]
		}
		u := &user{name: name, path: path, created: epoch, id: ident("AIDA", "user/"+name, 17),
			arn: "arn:aws:iam::" + acct + ":user" + path + name, tags: tags, inlineDocs: map[string]string{},
			accessKeys: []*cred{}, sshKeys: []*cred{}, serviceCreds: []*cred{}, signingCerts: []*cred{},
			mfa: []string{}, groups: []string{}, attached: []string{}, inline: []string{}}
		s.users[name] = u
		s.names = append(s.names, name)
		return u
	}
	if len(s.opts.People) > 1 {
		bot := add(demo.ServiceUserName, "/service/", []tag{{demo.OwnerTag, demo.ServiceOwner(s.opts.People).Email}, {"purpose", "deploys"}})
		bot.accessKeys = []*cred{{id: ident("AKIA", "key1/"+demo.ServiceUserName, 16), status: "Active", created: epoch}}
	}
	bg := add(demo.BreakGlassAWS, "/breakglass/", []tag{{"purpose", "break-glass"}, {"known-by", demo.BreakGlassGroup}})
	created := epoch
	bg.loginProfile = &created
	bg.password = passwordDigest("seeded-" + demo.BreakGlassAWS)
	bg.attached = []string{"arn:aws:iam::aws:policy/AdministratorAccess"}
}

// ident makes a stable AWS-looking identifier: prefix plus n base32 characters.
func ident(prefix, seed string, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	sum := sha256.Sum256([]byte(seed))
	b := []byte(prefix)
	for i := 0; i < n; i++ {
		b = append(b, alphabet[sum[i%len(sum)]%32])
	}
	return string(b)
}

// bucket is a token bucket shared by every API request.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rps int) *bucket {
	return &bucket{rate: float64(rps), tokens: float64(rps), last: time.Now()}
}

func (b *bucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !b.take() {
			_ = r.ParseForm()
			writeError(w, r, http.StatusBadRequest, "Sender", "Throttling", "Rate exceeded")
			return
		}
		next.ServeHTTP(w, r)
	})
}
