package siem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/ssf"
)

// SSF is one Shared Signals receiver as a sink: of the events it is given
// it keeps only the applied containment controls a read-back proved
// (outcome observed), and pushes for each a signed CAEP session-revoked or
// RISC account-disabled SET (RFC 8935). Riding the emitter, it has its own
// queue, retries and dropped count: a receiver that is down or hangs never
// slows an activity. The jti is made of the event's id, so the SET an
// activity retried after a crash sends again is the same SET to the
// receiver.
type SSF struct {
	Receiver        string // its name in siem.ssf.receivers
	URL             string
	Token           string
	Audience        string
	Issuer          string
	Key             *ssf.Key
	HTTP            *http.Client
	SessionRevoked  []string // controls, by name or id
	AccountDisabled []string
	Now             func() time.Time
	sent            map[string]bool // jtis of the batch being retried that already went
}

func (s *SSF) Name() string { return "ssf:" + s.Receiver }
func (s *SSF) Close() error { return nil }

// Send pushes one SET per announced control; a batch retried after a
// failure skips the SETs that already went.
func (s *SSF) Send(ctx context.Context, batch []Event) error {
	if s.sent == nil {
		s.sent = map[string]bool{}
	}
	for _, ev := range batch {
		for _, set := range s.SETs(ev) {
			if s.sent[set.JTI] {
				continue
			}
			tok, err := s.Key.Sign(set)
			if err != nil {
				return fmt.Errorf("siem: %s: %w: %w", s.Name(), ErrPermanent, err)
			}
			if err := ssf.Push(ctx, s.HTTP, s.URL, s.Token, tok); err != nil {
				if errors.Is(err, ssf.ErrRejected) {
					return fmt.Errorf("siem: %s: %w: %w", s.Name(), ErrPermanent, err)
				}
				return fmt.Errorf("siem: %s: %w", s.Name(), err)
			}
			s.sent[set.JTI] = true
		}
	}
	clear(s.sent)
	return nil
}

// SETs are the Security Event Tokens one event stands for: none unless it
// is an applied containment control, observed, of an announced kind.
func (s *SSF) SETs(ev Event) []ssf.SET {
	u := ev.Unmapped
	if u.Kind != "control" || u.Op != "apply" || u.Phase != string(control.Containment) ||
		u.Outcome != string(control.Observed) || ev.StatusID != StatusSuccess {
		return nil
	}
	name := u.ControlID[strings.LastIndex(u.ControlID, "/")+1:]
	announced := func(list []string) bool { return slices.Contains(list, name) || slices.Contains(list, u.ControlID) }
	var types []string
	if announced(s.SessionRevoked) {
		types = append(types, ssf.EventSessionRevoked)
	}
	if announced(s.AccountDisabled) {
		types = append(types, ssf.EventAccountDisabled)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	aud := s.Audience
	if aud == "" {
		aud = s.URL
	}
	var out []ssf.SET
	for _, typ := range types {
		body := ssf.EventBody{Subject: subjectOf(ev), EventTimestamp: ev.Time / 1000, InitiatingEntity: "policy",
			ReasonAdmin: map[string]string{"en": fmt.Sprintf("Offboard %s: %s observed (%s)", u.WorkflowID, u.ControlID, ev.StatusDetail)}}
		raw, _ := json.Marshal(body)
		out = append(out, ssf.SET{Issuer: s.Issuer, Audience: ssf.Audience{aud}, IssuedAt: now().Unix(),
			JTI: ID("ssf", ev.Metadata.UID, s.Receiver, typ), Txn: u.WorkflowID + "/" + u.RunID,
			Events: map[string]json.RawMessage{typ: raw}})
	}
	return out
}

// subjectOf names the account: by email when its login is one, else by
// the system and its account id.
func subjectOf(ev Event) *ssf.Subject {
	if strings.Contains(ev.User.Name, "@") {
		return &ssf.Subject{Format: "email", Email: ev.User.Name}
	}
	return &ssf.Subject{Format: "opaque", ID: ev.Unmapped.System + ":" + ev.User.UID}
}

// ssfSinks are siem.ssf's receivers, their secrets read once.
func ssfSinks(c *config.SIEMSSF) ([]Sink, error) {
	if c == nil || len(c.Receivers) == 0 {
		return nil, nil
	}
	v, err := c.SigningKey.Value()
	if err != nil {
		return nil, fmt.Errorf("siem: ssf signingKey (%s): %w", c.SigningKey, err)
	}
	key, err := ssf.ParseKey(v)
	if err != nil {
		return nil, fmt.Errorf("siem: ssf signingKey (%s): %w", c.SigningKey, err)
	}
	sessions, disabled := c.SessionRevoked, c.AccountDisabled
	if sessions == nil {
		sessions = config.DefaultSSFSessionRevoked
	}
	if disabled == nil {
		disabled = config.DefaultSSFAccountDisabled
	}
	var sinks []Sink
	for _, r := range c.Receivers {
		tok, err := r.Token.Value()
		if err != nil {
			return nil, fmt.Errorf("siem: ssf receiver %s token (%s): %w", r.Name, r.Token, err)
		}
		sinks = append(sinks, &SSF{Receiver: r.Name, URL: r.URL, Token: tok, Audience: r.Audience, Issuer: strings.TrimRight(c.Issuer, "/"),
			Key: key, HTTP: &http.Client{Timeout: 10 * time.Second}, SessionRevoked: sessions, AccountDisabled: disabled})
	}
	return sinks, nil
}
