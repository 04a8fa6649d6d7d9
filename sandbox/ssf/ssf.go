// Package ssf is the sandbox's two Shared Signals peers:
//
//   - a Transmitter, standing in for an identity provider: it signs RISC
//     account-disabled and CAEP session-revoked SETs with its own key,
//     publishes that key (GET /ssf/jwks.json) and pushes them (RFC 8935) to
//     the relay's POST /ssf/events;
//   - a Receiver, standing in for a relying party: it takes the SETs
//     Offboard pushes (POST /ssf/events), checks each against Offboard's
//     JWKS as a real receiver must, and shows what it took (GET /received).
package ssf

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offboard/offboard/internal/ssf"
)

// KeyFor is the sandbox's well-known P-256 key named by seed, as base64
// (what siem.ssf.signingKey takes): sha256 of the seed is the scalar.
func KeyFor(seed string) string {
	s := sha256.Sum256([]byte(seed))
	return base64.StdEncoding.EncodeToString(s[:])
}

// Transmitter signs and pushes SETs.
type Transmitter struct {
	Issuer   string // its iss
	Audience string // the relay receiver's aud
	URL      string // the relay's push endpoint
	key      *ssf.Key
	http     *http.Client
	n        atomic.Int64
}

// NewTransmitter signs with the key made from seed (KeyFor).
func NewTransmitter(issuer, audience, url, seed string) (*Transmitter, error) {
	k, err := ssf.ParseKey(KeyFor(seed))
	if err != nil {
		return nil, err
	}
	return &Transmitter{Issuer: issuer, Audience: audience, URL: url, key: k, http: &http.Client{Timeout: 10 * time.Second}}, nil
}

// SET is one event about the subject, ready to sign.
func (t *Transmitter) SET(eventType string, sub ssf.Subject, at time.Time) ssf.SET {
	body, _ := json.Marshal(ssf.EventBody{Subject: &sub, EventTimestamp: at.Unix(), InitiatingEntity: "admin",
		ReasonAdmin: map[string]string{"en": "disabled in the sandbox identity provider"}})
	jti := fmt.Sprintf("sandbox-%d-%d", at.UnixNano(), t.n.Add(1))
	return ssf.SET{Issuer: t.Issuer, Audience: ssf.Audience{t.Audience}, IssuedAt: at.Unix(), JTI: jti,
		Events: map[string]json.RawMessage{eventType: body}}
}

// Push signs set and pushes it; it returns the relay's status and body.
func (t *Transmitter) Push(ctx context.Context, set ssf.SET) (int, []byte, error) {
	tok, err := t.key.Sign(set)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, strings.NewReader(tok))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", ssf.MediaType)
	resp, err := t.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("sandbox ssf: push: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, body, nil
}

// Handler serves GET /ssf/jwks.json and POST /_sandbox/ssf/send
// {"event":"account-disabled"|"session-revoked","email":"..."}, which
// pushes one SET to the relay and answers with the relay's reply.
func (t *Transmitter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ssf/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(t.key.JWKS())
	})
	mux.HandleFunc("POST /_sandbox/ssf/send", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Event string `json:"event"`
			Email string `json:"email"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil || in.Email == "" {
			http.Error(w, `send {"event":"account-disabled"|"session-revoked","email":"..."}`, http.StatusBadRequest)
			return
		}
		typ := ssf.EventAccountDisabled
		if in.Event == "session-revoked" {
			typ = ssf.EventSessionRevoked
		}
		status, body, err := t.Push(r.Context(), t.SET(typ, ssf.Subject{Format: "email", Email: in.Email}, time.Now()))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"relayStatus": status, "relayReply": json.RawMessage(orNull(body))})
	})
	return mux
}

// Received is one SET a receiver took.
type Received struct {
	JTI     string      `json:"jti"`
	Type    string      `json:"type"`
	Subject ssf.Subject `json:"subject"`
	Txn     string      `json:"txn"`
	At      time.Time   `json:"at"`
}

// Receiver is a relying party taking Offboard's SETs.
type Receiver struct {
	verify *ssf.Verifier
	token  string
	// Hang, when set, makes every push wait until the request ends: a
	// receiver that is down in the worst way.
	Hang atomic.Bool
	hung atomic.Int64
	mu   sync.Mutex
	got  []Received
	byID map[string]int
}

// NewReceiver checks SETs from issuer for audience against the JWKS at
// jwksURI (Offboard's /ssf/jwks.json), and asks for a bearer token if set.
func NewReceiver(issuer, audience, jwksURI, token string) *Receiver {
	keys := ssf.RemoteKeys(jwksURI, nil)
	keys.MinRefresh = time.Second
	return &Receiver{verify: &ssf.Verifier{Issuer: issuer, Audience: audience, Keys: keys}, token: token, byID: map[string]int{}}
}

// Handler serves POST /ssf/events and GET /received.
func (rc *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ssf/events", rc.events)
	mux.HandleFunc("GET /received", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"sets": rc.Received(), "byJti": rc.Counts()})
	})
	return mux
}

func (rc *Receiver) events(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(ssf.Error{Code: code, Description: desc})
	}
	if rc.token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+rc.token)) != 1 {
		refuse(http.StatusUnauthorized, ssf.ErrAuthenticationFailed, "bearer token missing or wrong")
		return
	}
	if r.Header.Get("Content-Type") != ssf.MediaType {
		refuse(http.StatusBadRequest, ssf.ErrInvalidRequest, "not "+ssf.MediaType)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if rc.Hang.Load() {
		rc.hung.Add(1)
		<-r.Context().Done() // the body is read, so the server notices the client leave
		return
	}
	set, err := rc.verify.Verify(r.Context(), string(body))
	var refused *ssf.Error
	switch {
	case errors.As(err, &refused):
		refuse(http.StatusBadRequest, refused.Code, refused.Description)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	rc.mu.Lock()
	rc.byID[set.JTI]++
	first := rc.byID[set.JTI] == 1
	for typ := range set.Events {
		sub, _ := set.SubjectOf(typ)
		if first {
			rc.got = append(rc.got, Received{JTI: set.JTI, Type: typ, Subject: sub, Txn: set.Txn, At: time.Now()})
		}
	}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// Received lists the SETs taken, each jti once.
func (rc *Receiver) Received() []Received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Received(nil), rc.got...)
}

// Hung is how many pushes were held while Hang was set.
func (rc *Receiver) Hung() int64 { return rc.hung.Load() }

// Counts is how many times each jti arrived.
func (rc *Receiver) Counts() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]int, len(rc.byID))
	for k, v := range rc.byID {
		out[k] = v
	}
	return out
}

func orNull(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	return []byte(strconv.Quote(string(b)))
}
