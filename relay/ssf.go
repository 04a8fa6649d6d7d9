package relay

// OpenID Shared Signals, both ways.
//
// In: POST /ssf/events takes a SET pushed by the configured transmitter
// (RFC 8935, Content-Type application/secevent+jwt). The SET is checked
// (internal/ssf: RS256/ES256 signature against the transmitter's JWKS,
// typ, iss, aud, iat age), its jti is remembered in the HR edge's delivery
// memory, and each event becomes a Termination through the same path as HR
// webhooks and Okta hooks (act/apply: the blast-radius guard, idempotency,
// per-item results). A refusal is 400 with RFC 8935's error JSON
// {"err": ..., "description": ...}; a replayed jti is refused the same way.
// 202 when accepted, with the per-item results as the body.
//
// Out: GET /.well-known/ssf-configuration and GET /ssf/jwks.json publish
// Offboard's transmitter metadata and public key (siem.ssf); the SETs
// themselves are pushed by the worker (internal/siem's SSF sink).

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/hris"
	"github.com/offboard/offboard/internal/ssf"
	"github.com/offboard/offboard/workflows"
)

// SourceSSF names Shared Signals in Terminations, metrics and the guard.
const SourceSSF = "ssf"

// Paths of the Shared Signals routes.
const (
	SSFEventsPath = "/ssf/events"
	SSFJWKSPath   = "/ssf/jwks.json"
	SSFConfigPath = "/.well-known/ssf-configuration"
)

type ssfReceiver struct {
	verify *ssf.Verifier
	events map[string]string
	token  []byte // nil: no bearer token asked
	users  OktaUsers
	orgURL string
	target string
	maxAge time.Duration
}

// newSSFReceiver reads the source's secrets once; nil when not configured.
func newSSFReceiver(ctx context.Context, src *config.SSFSource, now func() time.Time) (*ssfReceiver, error) {
	if src == nil {
		return nil, nil
	}
	r := &ssfReceiver{events: src.Events, target: src.Target, orgURL: strings.TrimRight(src.OrgURL, "/"), maxAge: src.MaxAge.D()}
	if len(r.events) == 0 {
		r.events = config.DefaultSSFEvents
	}
	if r.target == "" {
		r.target = config.DefaultOktaHookTarget
	}
	if r.maxAge <= 0 {
		r.maxAge = config.DefaultSSFMaxAge
	}
	keys := ssf.RemoteKeys(src.JWKSURI, &http.Client{Timeout: 10 * time.Second})
	if src.JWKS != "" {
		var err error
		if keys, err = ssf.StaticKeys([]byte(src.JWKS)); err != nil {
			return nil, fmt.Errorf("relay: relay.sources.ssf.jwks: %w", err)
		}
	}
	r.verify = &ssf.Verifier{Issuer: src.Issuer, Audience: src.Audience, Keys: keys, MaxAge: r.maxAge, Now: now}
	if src.Token.IsSet() {
		v, err := src.Token.Value()
		if err != nil {
			return nil, fmt.Errorf("relay: relay.sources.ssf.token (%s): %w", src.Token, err)
		}
		if v == "" {
			return nil, fmt.Errorf("relay: relay.sources.ssf.token (%s) is empty", src.Token)
		}
		r.token = []byte("Bearer " + v)
	}
	if src.OrgURL != "" {
		tok, err := src.APIToken.Value()
		if err != nil {
			return nil, fmt.Errorf("relay: relay.sources.ssf.apiToken (%s): %w", src.APIToken, err)
		}
		if r.users, err = newOktaUsers(ctx, src.OrgURL, tok); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ssfRefuse answers with RFC 8935's error JSON.
func (rl *Relay) ssfRefuse(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	rl.metrics.webhook(SourceSSF, "rejected")
	rl.log.Warn("shared signal refused", "remote", r.RemoteAddr, "err", code, "description", desc)
	writeJSON(w, status, ssf.Error{Code: code, Description: desc})
}

func (rl *Relay) handleSSFEvents(w http.ResponseWriter, r *http.Request) {
	h := rl.ssfIn
	if h == nil {
		writeError(w, http.StatusNotFound, "the ssf source is not configured")
		return
	}
	if h.token != nil && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), h.token) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="offboard-ssf"`)
		rl.ssfRefuse(w, r, http.StatusUnauthorized, ssf.ErrAuthenticationFailed, "the bearer token is missing or wrong")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ssf.MediaType {
		rl.ssfRefuse(w, r, http.StatusBadRequest, ssf.ErrInvalidRequest, "send the SET as "+ssf.MediaType)
		return
	}
	body, ok := rl.readBody(w, r, SourceSSF)
	if !ok {
		return
	}
	set, err := h.verify.Verify(r.Context(), string(body))
	var refused *ssf.Error
	switch {
	case errors.As(err, &refused):
		rl.ssfRefuse(w, r, http.StatusBadRequest, refused.Code, refused.Description)
		return
	case err != nil:
		rl.metrics.webhook(SourceSSF, "unavailable")
		rl.log.Error("shared signal not checked: asking the transmitter to push again", "error", err.Error())
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, "the transmitter's keys cannot be read now; push again later")
		return
	}
	// The jti is the SET's identity: remembered for longer than iat stays acceptable.
	sum := sha256.Sum256([]byte(SourceSSF + "\x00" + set.Issuer + "\x00" + set.JTI))
	delivery := &signedDelivery{digest: hex.EncodeToString(sum[:])[:40], until: time.Unix(set.IssuedAt, 0).Add(h.maxAge + 2*time.Minute)}
	seen, err := rl.edge.Seen(r.Context(), delivery.digest)
	switch {
	case err != nil:
		rl.metrics.webhook(SourceSSF, "unavailable")
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, "temporal is unavailable; push again later")
		return
	case seen:
		rl.metrics.webhook(SourceSSF, "duplicate")
		rl.ssfRefuse(w, r, http.StatusBadRequest, ssf.ErrInvalidRequest, fmt.Sprintf("jti %q was already received and acted on: a replay changes nothing", set.JTI))
		return
	}
	// act answers as it does for HR systems; RFC 8935 wants 202 or a 400 with its error.
	rec := &bufferedReply{header: http.Header{}}
	rl.act(rec, r, SourceSSF, rl.ssfEvents(r.Context(), h, set), nil, delivery)
	switch {
	case rec.code == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfter)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.code)
		_, _ = w.Write(rec.body.Bytes())
	case rec.code >= 400:
		writeJSON(w, http.StatusBadRequest, ssf.Error{Code: ssf.ErrInvalidRequest, Description: strings.TrimSpace(rec.body.String())})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(rec.body.Bytes())
	}
}

// ssfEvents maps a SET's events by policy, event by event.
func (rl *Relay) ssfEvents(ctx context.Context, h *ssfReceiver, set ssf.SET) hris.Result {
	var res hris.Result
	types := make([]string, 0, len(set.Events))
	for typ := range set.Events {
		types = append(types, typ)
	}
	slices.Sort(types)
	for _, typ := range types {
		what := h.events[typ]
		if what == "" || what == config.OktaIgnore {
			res.Ignored = append(res.Ignored, hris.Ignored{Reason: fmt.Sprintf("event %s (jti %s) starts nothing by policy", typ, set.JTI)})
			continue
		}
		sub, err := set.SubjectOf(typ)
		if err != nil {
			res.Rejected = append(res.Rejected, hris.Rejected{Err: fmt.Errorf("%w: %v", hris.ErrMalformed, err)})
			continue
		}
		t, err := rl.ssfTermination(ctx, h, set, typ, sub)
		if err != nil {
			res.Rejected = append(res.Rejected, hris.Rejected{EmployeeID: sub.Format + ":" + cmp.Or(sub.Email, sub.Sub, sub.ID), Err: err})
			continue
		}
		// Containment only: contained at once, nothing removed until a person approves.
		t.ContainOnly = what == config.OktaStartContainment
		res.Events = append(res.Events, hris.Event{Action: hris.ActionStart, Termination: t})
	}
	return res
}

// ssfTermination finds the person a subject names through the Okta Users
// API: an email by login, an iss_sub of this org or transmitter or an
// opaque id by user id.
func (rl *Relay) ssfTermination(ctx context.Context, h *ssfReceiver, set ssf.SET, typ string, sub ssf.Subject) (workflows.Termination, error) {
	var userID, email string
	switch sub.Format {
	case "email":
		userID, email = sub.Email, sub.Email
	case "iss_sub":
		if iss := strings.TrimRight(sub.Iss, "/"); iss != h.orgURL && sub.Iss != set.Issuer {
			return workflows.Termination{}, fmt.Errorf("%w: subject iss %q is neither relay.sources.ssf.orgURL nor the transmitter", hris.ErrMalformed, sub.Iss)
		}
		userID = sub.Sub
	default:
		userID = sub.ID
	}
	if h.users == nil {
		return workflows.Termination{}, fmt.Errorf("%w: subject %s: relay.sources.ssf.orgURL is not set to find the person", hris.ErrMalformed, sub.Format)
	}
	emp, mail, err := h.users.Employee(ctx, userID)
	if err != nil {
		return workflows.Termination{}, err
	}
	id, err := hris.NormalizeEmployeeID(emp)
	if err != nil {
		return workflows.Termination{}, fmt.Errorf("%w: subject %s: employeeNumber %v", hris.ErrMalformed, sub.Format, err)
	}
	if mail != "" {
		email = mail
	}
	at := time.Unix(set.IssuedAt, 0).UTC()
	var body ssf.EventBody
	if json.Unmarshal(set.Events[typ], &body) == nil && body.EventTimestamp > 0 && body.EventTimestamp <= set.IssuedAt {
		at = time.Unix(body.EventTimestamp, 0).UTC()
	}
	eid := sha256.Sum256([]byte(set.Issuer + "\x00" + set.JTI + "\x00" + typ))
	t := workflows.Termination{
		EventID: "ssf-" + hex.EncodeToString(eid[:12]), Source: SourceSSF, EmployeeID: id, Email: email,
		Kind: workflows.KindTermination, EffectiveAt: at, RequestedBy: "ssf:" + set.Issuer,
	}
	if sub.Format != "email" {
		t.Accounts = map[string]string{h.target: userID}
	}
	return t, nil
}

// bufferedReply holds what act answers, so the SSF route can answer in RFC 8935's terms.
type bufferedReply struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedReply) Header() http.Header { return b.header }
func (b *bufferedReply) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedReply) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

// ssfTransmitter is what `starter serve` publishes about Offboard as a
// Shared Signals transmitter (siem.ssf).
type ssfTransmitter struct {
	issuer string
	jwks   []byte
}

func newSSFTransmitter(c *config.SIEMSSF) (*ssfTransmitter, error) {
	if c == nil {
		return nil, nil
	}
	v, err := c.SigningKey.Value()
	if err != nil {
		return nil, fmt.Errorf("relay: siem.ssf.signingKey (%s): %w", c.SigningKey, err)
	}
	key, err := ssf.ParseKey(v)
	if err != nil {
		return nil, fmt.Errorf("relay: siem.ssf.signingKey (%s): %w", c.SigningKey, err)
	}
	jwks, err := json.Marshal(key.JWKS())
	if err != nil {
		return nil, err
	}
	return &ssfTransmitter{issuer: strings.TrimRight(c.Issuer, "/"), jwks: jwks}, nil
}

// SSFConfiguration is the transmitter metadata (SSF 1.0 section 7.1).
type SSFConfiguration struct {
	SpecVersion              string   `json:"spec_version"`
	Issuer                   string   `json:"issuer"`
	JWKSURI                  string   `json:"jwks_uri"`
	DeliveryMethodsSupported []string `json:"delivery_methods_supported"`
	EventsSupported          []string `json:"events_supported"`
}

func (rl *Relay) handleSSFConfiguration(w http.ResponseWriter, _ *http.Request) {
	t := rl.ssfOut
	if t == nil {
		writeError(w, http.StatusNotFound, "Offboard is not a Shared Signals transmitter here (siem.ssf is not configured)")
		return
	}
	writeJSON(w, http.StatusOK, SSFConfiguration{SpecVersion: "1_0", Issuer: t.issuer, JWKSURI: t.issuer + SSFJWKSPath,
		DeliveryMethodsSupported: []string{ssf.DeliveryPush}, EventsSupported: []string{ssf.EventSessionRevoked, ssf.EventAccountDisabled}})
}

func (rl *Relay) handleSSFJWKS(w http.ResponseWriter, _ *http.Request) {
	t := rl.ssfOut
	if t == nil {
		writeError(w, http.StatusNotFound, "siem.ssf is not configured")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(t.jwks)
}
