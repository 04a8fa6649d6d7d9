package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/relay"
	"github.com/offboard/offboard/sandbox/demo"
)

// webhookSecret signs the bench's generic HR webhooks.
const webhookSecret = "bench-webhook-secret"

// hrRelay is the relay (`starter serve`'s HR edge) in this process, with
// the arrival time of the last webhook it received.
type hrRelay struct {
	srv     *httptest.Server
	mu      sync.Mutex
	arrived time.Time
}

func startRelay(c client.Client, dir string) (*hrRelay, error) {
	secret := filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(secret, []byte(webhookSecret+"\n"), 0o600); err != nil {
		return nil, err
	}
	var rc config.Relay
	rc.Sources.Generic = &config.GenericSource{Secrets: []config.Secret{{File: secret}}}
	rc.BlastRadius = config.BlastRadius{Max: 1 << 30, Window: config.Duration(time.Minute)}
	rl, err := relay.New(relay.Config{Relay: rc}, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	h := &hrRelay{}
	inner := rl.Handler()
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.arrived = time.Now()
		h.mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	return h, nil
}

func (h *hrRelay) close() { h.srv.Close() }

// send posts one signed termination as the HR simulator does and returns
// when it arrived at the relay.
func (h *hrRelay) send(ctx context.Context, p demo.Person) (time.Time, error) {
	body, _ := json.Marshal(map[string]any{"eventId": "bench-hook-" + p.EmployeeID, "type": "termination", "employeeId": p.EmployeeID,
		"email": p.Email, "name": p.Name(), "effectiveAt": time.Now().UTC().Format(time.RFC3339), "reason": "voluntary", "requestedBy": "bench"})
	ts, sig := relay.SignGeneric([]byte(webhookSecret), body, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+"/hris/generic", bytes.NewReader(body))
	if err != nil {
		return time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Offboard-Timestamp", ts)
	req.Header.Set("X-Offboard-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return time.Time{}, fmt.Errorf("webhook for %s: HTTP %d: %s", p.EmployeeID, resp.StatusCode, reply)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.arrived, nil
}

// containFromWebhook sends one webhook at a time and returns each one's time
// from its arrival at the relay to the workflow's record of full containment.
func containFromWebhook(ctx context.Context, c client.Client, h *hrRelay, people []demo.Person) ([]time.Duration, []time.Time, error) {
	var out []time.Duration
	var starts []time.Time
	for _, p := range people {
		t0, err := h.send(ctx, p)
		if err != nil {
			return nil, nil, err
		}
		st, err := waitContained(ctx, c, p.EmployeeID, pollEvery)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, st.ContainedAt.Sub(t0))
		starts = append(starts, t0)
	}
	return out, starts, nil
}
