// Package oktahook sends Okta Event Hooks as Okta does, for the sandbox:
// first the one-time verification (a GET carrying
// X-Okta-Verification-Challenge, which the endpoint must echo), then
// deliveries of user.lifecycle.deactivate events, every request with the
// hook's configured Authorization header value.
package oktahook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Sender is one event hook, registered on the relay's /hooks/okta.
type Sender struct {
	URL    string // the relay's hook endpoint
	Secret string // the Authorization header value configured on the hook
	HTTP   *http.Client
	// Lookup finds the Okta user a login names (the sandbox's Okta).
	Lookup func(login string) (id, displayName string, ok bool)

	mu       sync.Mutex
	verified bool
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Verify runs Okta's one-time verification; the endpoint must echo the challenge.
func (s *Sender) Verify(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verified {
		return nil
	}
	challenge := newID()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Okta-Verification-Challenge", challenge)
	req.Header.Set("Authorization", s.Secret)
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("okta hook: verify: %w", err)
	}
	defer resp.Body.Close()
	var got struct {
		Verification string `json:"verification"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&got) != nil || got.Verification != challenge {
		return fmt.Errorf("okta hook: verify: the endpoint did not echo the challenge (HTTP %d)", resp.StatusCode)
	}
	s.verified = true
	return nil
}

// Delivery is the body Okta posts for one user.lifecycle.deactivate.
func Delivery(userID, login, displayName, actor string, at time.Time) map[string]any {
	event := map[string]any{
		"uuid": newID(), "published": at.UTC().Format(time.RFC3339Nano), "eventType": "user.lifecycle.deactivate",
		"displayMessage": "Deactivate Okta user", "severity": "INFO",
		"actor":   map[string]any{"id": "00usandboxadmin", "type": "User", "alternateId": actor, "displayName": "Sandbox Admin"},
		"outcome": map[string]any{"result": "SUCCESS"},
		"target":  []map[string]any{{"id": userID, "type": "User", "alternateId": login, "displayName": displayName}},
	}
	return map[string]any{"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
		"source": "https://sandbox.okta.test/api/v1/eventHooks/whosandbox", "eventId": newID(), "eventTime": at.UTC().Format(time.RFC3339),
		"contentType": "application/json", "data": map[string]any{"events": []any{event}}}
}

// Deactivate verifies the hook if it was not yet, then delivers one
// user.lifecycle.deactivate for the user; it returns the relay's answer.
func (s *Sender) Deactivate(ctx context.Context, userID, login, displayName string) (int, []byte, error) {
	if err := s.Verify(ctx); err != nil {
		return 0, nil, err
	}
	body, _ := json.Marshal(Delivery(userID, login, displayName, "admin@sandbox.okta.test", time.Now()))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", s.Secret)
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("okta hook: deliver: %w", err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, reply, nil
}

// Handler serves POST /_sandbox/okta-hook/send {"email": "..."}: the
// sandbox's Okta deactivated that user, and tells the relay so.
func (s *Sender) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_sandbox/okta-hook/send", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Email string `json:"email"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil || in.Email == "" {
			http.Error(w, `send {"email":"..."}`, http.StatusBadRequest)
			return
		}
		id, name, ok := s.Lookup(in.Email)
		if !ok {
			http.Error(w, "no sandbox Okta user "+in.Email, http.StatusNotFound)
			return
		}
		status, reply, err := s.Deactivate(r.Context(), id, in.Email, name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !json.Valid(reply) {
			reply, _ = json.Marshal(string(reply))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"relayStatus": status, "relayReply": json.RawMessage(reply)})
	})
	return mux
}
