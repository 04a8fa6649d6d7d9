// Package secrets is an in-memory simulator of AWS Secrets Manager, enough of
// it for Offboard's rotations and its awsiam connector: secrets with tags,
// versions and staging labels (AWSCURRENT, AWSPENDING, AWSPREVIOUS), the
// ClientRequestToken idempotency of PutSecretValue, RotateSecret with a
// simulated rotation function, and scheduled deletion. It speaks the real
// wire format (JSON 1.1 POSTs to "/" with X-Amz-Target, SigV4 checked, errors
// as {"__type","Message"}) so the official SDK can be pointed at it.
//
// Admin endpoints (never throttled or faulted):
//
//	/_sandbox/faults                    fault rules (see package fault)
//	GET  /_sandbox/secrets/{name...}    one secret: versions, stages, value digests (never values)
//	POST /_sandbox/reset                forget every change and reseed
package secrets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
)

// Staging labels with a meaning to Secrets Manager itself.
const (
	Current  = "AWSCURRENT"
	Pending  = "AWSPENDING"
	Previous = "AWSPREVIOUS"
)

// Options configure a Sim.
type Options struct {
	AccountID string // default "123456789012"
	Region    string // default "us-east-1"
	// AccessKeyID and SecretAccessKey are the credentials callers must sign
	// with. When AccessKeyID is empty any key id is accepted; when
	// SecretAccessKey is set the SigV4 signature is checked too.
	AccessKeyID, SecretAccessKey string
	// RequestsPerSecond is a token bucket over the API; past it callers get
	// 400 ThrottlingException "Rate exceeded". 0 = 50.
	RequestsPerSecond int
	Faults            *fault.Injector
	People            []demo.Person
}

// Version is one version of a secret, as tests see it.
type Version struct {
	ID      string    `json:"versionId"`
	Stages  []string  `json:"stages"`
	Value   []byte    `json:"-"` // SecretString's bytes, or SecretBinary
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
}

// Secret is a snapshot of one secret.
type Secret struct {
	Name           string            `json:"name"`
	ARN            string            `json:"arn"`
	Tags           map[string]string `json:"tags"`
	Versions       []Version         `json:"versions"` // oldest first
	RotationLambda string            `json:"rotationLambda,omitempty"`
	LastRotated    *time.Time        `json:"lastRotated,omitempty"`
	Deleted        *time.Time        `json:"deleted,omitempty"`
}

// CurrentValue is the value staged AWSCURRENT, if any.
func (s Secret) CurrentValue() ([]byte, bool) {
	for _, v := range s.Versions {
		if slices.Contains(v.Stages, Current) {
			return v.Value, true
		}
	}
	return nil, false
}

// Sim is the simulator. It is safe for concurrent use.
type Sim struct {
	opts   Options
	faults *fault.Injector
	bucket *bucket

	mu      sync.Mutex
	secrets map[string]*secret // by name
}

type tag struct{ key, value string }

type version struct {
	id      string
	str     *string // SecretString
	bin     []byte  // SecretBinary
	stages  []string
	created time.Time
}

func (v *version) value() []byte {
	if v.str != nil {
		return []byte(*v.str)
	}
	return v.bin
}

type secret struct {
	name, arn, description string
	tags                   []tag
	versions               []*version // oldest first
	created, lastChanged   time.Time
	lastRotated, deleted   *time.Time
	lastAccessed           *time.Time
	rotationLambda         string
	rotationDays           int64
}

// New builds a simulator seeded with the demo company's secrets.
func New(opts Options) *Sim {
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
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

// Handler serves the Secrets Manager API on "/" and the admin endpoints under /_sandbox/.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_sandbox/faults", s.faults.AdminHandler())
	mux.HandleFunc("GET /_sandbox/secrets/{name...}", func(w http.ResponseWriter, r *http.Request) {
		sec, ok := s.Secret(r.PathValue("name"))
		if !ok {
			http.Error(w, "no such secret", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, sec)
	})
	mux.HandleFunc("POST /_sandbox/reset", func(w http.ResponseWriter, r *http.Request) {
		s.seed()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/", s.bucket.limit(http.HandlerFunc(s.serveAPI)))
	return readBody(s.faults.Middleware(mux, s.writeFault))
}

// Secret returns a snapshot of the named secret (by name or ARN), values included.
func (s *Sim) Secret(id string) (Secret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.find(id)
	if sec == nil {
		return Secret{}, false
	}
	snap := Secret{Name: sec.name, ARN: sec.arn, Tags: map[string]string{}, RotationLambda: sec.rotationLambda,
		LastRotated: sec.lastRotated, Deleted: sec.deleted}
	for _, t := range sec.tags {
		snap.Tags[t.key] = t.value
	}
	for _, v := range sec.versions {
		sum := sha256.Sum256(v.value())
		snap.Versions = append(snap.Versions, Version{ID: v.id, Stages: slices.Clone(v.stages), Value: slices.Clone(v.value()),
			Digest: "sha256:" + hex.EncodeToString(sum[:]), Created: v.created})
	}
	return snap, true
}

// find looks a secret up by name or ARN; callers hold s.mu.
func (s *Sim) find(id string) *secret {
	if sec, ok := s.secrets[id]; ok {
		return sec
	}
	for _, sec := range s.secrets {
		if sec.arn == id {
			return sec
		}
	}
	return nil
}

// names lists the secrets by name, the order ListSecrets answers in; callers hold s.mu.
func (s *Sim) names() []string {
	out := make([]string, 0, len(s.secrets))
	for n := range s.secrets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// arn makes the secret's ARN: AWS appends six random characters to the
// name; the simulator derives them from it, so a reseed gives the same ARN.
func (s *Sim) arn(name string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	sum := sha256.Sum256([]byte(name))
	suffix := make([]byte, 6)
	for i := range suffix {
		suffix[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.opts.Region, s.opts.AccountID, name, suffix)
}

// seed (re)builds the demo secrets: one per break-glass account, and the
// service owner's deploy-bot/api (tagged owner=<e-mail>, rotation configured).
func (s *Sim) seed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	epoch := time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC)
	s.secrets = map[string]*secret{}
	accounts := map[string]string{"okta": demo.BreakGlassOkta, "entra": demo.BreakGlassEntra, "ldap": demo.BreakGlassAD, "awsiam": demo.BreakGlassAWS}
	for _, kind := range []string{"awsiam", "entra", "ldap", "okta"} {
		name := demo.BreakGlassSecrets[kind]
		value := fmt.Sprintf(`{"username":%q,"password":"seeded-%s"}`, accounts[kind], seedID("pw/" + name)[:20])
		s.put(&secret{name: name, arn: s.arn(name), description: "break-glass password (" + kind + ")", created: epoch,
			tags: []tag{{"purpose", "break-glass"}, {"known-by", demo.BreakGlassGroup}}}, value, epoch)
	}
	if len(s.opts.People) > 1 {
		owner := demo.ServiceOwner(s.opts.People)
		name := demo.OwnedSecretName
		sec := &secret{name: name, arn: s.arn(name), description: "deploy-bot's API key", created: epoch,
			tags:           []tag{{demo.OwnerTag, owner.Email}, {"service", demo.ServiceUserName}},
			rotationLambda: "arn:aws:lambda:" + s.opts.Region + ":" + s.opts.AccountID + ":function:deploy-bot-api-rotation",
			rotationDays:   90}
		s.put(sec, `{"apiKey":"seeded-`+seedID("api/" + name)[:24]+`"}`, epoch)
	}
}

// put stores a seeded secret with one AWSCURRENT version; callers hold s.mu.
func (s *Sim) put(sec *secret, value string, at time.Time) {
	sec.lastChanged = at
	sec.versions = []*version{{id: uuidFrom(seedID("version/" + sec.name)), str: &value, stages: []string{Current}, created: at}}
	s.secrets[sec.name] = sec
}

func seedID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

// uuidFrom shapes 32+ hex characters as a UUID, like the SDK's tokens.
func uuidFrom(h string) string {
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
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
			writeError(w, &apiError{400, "ThrottlingException", "Rate exceeded"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
