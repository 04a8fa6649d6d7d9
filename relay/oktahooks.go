package relay

// Okta Event Hooks: an admin who deactivates someone in Okta starts the same
// Deprovision run an HR termination does, through the same path (act/apply:
// id normalisation, the blast-radius guard, the delivery memory, per-item
// results).
//
// Okta first verifies the endpoint with a GET carrying
// X-Okta-Verification-Challenge, answered {"verification": value}. Every
// request (the GET too) carries the Authorization header value configured on
// the hook; it is compared in constant time with relay.sources.okta.secrets.
// A delivery is one JSON document with data.events[]; each event's User
// targets become Terminations:
//
//   - the employee id is profile.employeeNumber: taken from the target's
//     detailEntry when the event carries it, else read from Okta's Users API
//     (relay.sources.okta.orgURL/apiToken) by the target's user id;
//   - the event id is "okta-<event uuid>", so a redelivered event is the same
//     run; the delivery's eventId is remembered, so a replay starts nothing;
//   - relay.sources.okta.events maps the event type to termination,
//     containment or ignore. "containment" starts a run that contains at
//     once and removes nothing until a person approves (ContainOnly), whatever
//     the approval policy says.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	oktasdk "github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/hris"
	"github.com/offboard/offboard/workflows"
)

// SourceOkta names Okta Event Hooks in Terminations, metrics and the guard.
const SourceOkta = "okta"

// oktaMemory is how long a delivery's eventId is remembered: Okta retries
// a delivery once, within seconds; a day covers a replay well beyond that.
const oktaMemory = 24 * time.Hour

// OktaUsers reads what the relay needs of an Okta user.
type OktaUsers interface {
	// Employee returns the user's profile.employeeNumber and email; an
	// error wraps hris.ErrUnknownEmployee (no such user) or hris.ErrLookup.
	Employee(ctx context.Context, userID string) (employeeID, email string, err error)
}

type oktaHook struct {
	secrets [][]byte
	events  map[string]string
	target  string
	users   OktaUsers // nil: only events that carry employeeNumber can be mapped
}

// newOktaHook reads the source's secrets once; nil when it is not configured.
func newOktaHook(ctx context.Context, src *config.OktaHookSource) (*oktaHook, error) {
	if src == nil {
		return nil, nil
	}
	h := &oktaHook{events: src.Events, target: src.Target}
	if len(h.events) == 0 {
		h.events = config.DefaultOktaHookEvents
	}
	if h.target == "" {
		h.target = config.DefaultOktaHookTarget
	}
	for i, s := range src.Secrets {
		v, err := s.Value()
		if err != nil {
			return nil, fmt.Errorf("relay: okta hook secret %d (%s): %w", i, s, err)
		}
		if v == "" {
			return nil, fmt.Errorf("relay: relay.sources.okta.secrets.%d (%s) is empty", i, s)
		}
		h.secrets = append(h.secrets, []byte(v))
	}
	if src.OrgURL != "" {
		tok, err := src.APIToken.Value()
		if err != nil {
			return nil, fmt.Errorf("relay: okta apiToken (%s): %w", src.APIToken, err)
		}
		u, err := newOktaUsers(ctx, src.OrgURL, tok)
		if err != nil {
			return nil, err
		}
		h.users = u
	}
	return h, nil
}

func (h *oktaHook) authorized(r *http.Request) bool {
	got := []byte(r.Header.Get("Authorization"))
	ok := 0
	for _, s := range h.secrets {
		ok |= subtle.ConstantTimeCompare(got, s)
	}
	return ok == 1
}

// handleOktaHook serves GET (Okta's one-time verification) and POST (events).
func (rl *Relay) handleOktaHook(w http.ResponseWriter, r *http.Request) {
	const source = SourceOkta
	h := rl.okta
	if h == nil {
		writeError(w, http.StatusNotFound, "the okta source is not configured")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "GET (verification) or POST (events)")
		return
	}
	if !h.authorized(r) {
		rl.unauthorized(w, r, source, errors.New("the hook's Authorization header is missing or wrong"))
		return
	}
	if r.Method == http.MethodGet {
		challenge := r.Header.Get("X-Okta-Verification-Challenge")
		if challenge == "" {
			writeError(w, http.StatusBadRequest, "no X-Okta-Verification-Challenge header")
			return
		}
		rl.log.Info("okta event hook verified", "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, map[string]string{"verification": challenge})
		return
	}
	if _, ok := rl.mediaType(w, r, source, "application/json"); !ok {
		return
	}
	body, ok := rl.readBody(w, r, source)
	if !ok {
		return
	}
	var d oktaDelivery
	if err := json.Unmarshal(body, &d); err != nil || d.EventID == "" {
		rl.metrics.webhook(source, "rejected")
		writeError(w, http.StatusBadRequest, fmt.Sprintf("not an Okta event hook delivery (JSON with eventId and data.events): %v", err))
		return
	}
	sum := sha256.Sum256([]byte(source + "\x00" + d.EventID))
	delivery := &signedDelivery{digest: hex.EncodeToString(sum[:])[:40], until: rl.now().Add(oktaMemory)}
	if rl.replayed(w, r, source, delivery) {
		return
	}
	rl.act(w, r, source, rl.oktaEvents(r.Context(), h, d), nil, delivery)
}

type oktaDelivery struct {
	EventID string `json:"eventId"`
	Data    struct {
		Events []oktaEvent `json:"events"`
	} `json:"data"`
}

type oktaEvent struct {
	UUID      string    `json:"uuid"`
	Published time.Time `json:"published"`
	EventType string    `json:"eventType"`
	Actor     struct {
		AlternateID string `json:"alternateId"`
	} `json:"actor"`
	Outcome *struct {
		Result string `json:"result"`
	} `json:"outcome"`
	Target []oktaTarget `json:"target"`
}

type oktaTarget struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	AlternateID string         `json:"alternateId"`
	DisplayName string         `json:"displayName"`
	DetailEntry map[string]any `json:"detailEntry"`
}

// oktaEvents maps a delivery's events by policy, item by item.
func (rl *Relay) oktaEvents(ctx context.Context, h *oktaHook, d oktaDelivery) hris.Result {
	var res hris.Result
	for _, e := range d.Data.Events {
		what := h.events[e.EventType]
		switch {
		case what == "" || what == config.OktaIgnore:
			res.Ignored = append(res.Ignored, hris.Ignored{Reason: fmt.Sprintf("okta event %s (%s) starts nothing by policy", e.EventType, e.UUID)})
			continue
		case e.Outcome != nil && !strings.EqualFold(e.Outcome.Result, "SUCCESS"):
			res.Ignored = append(res.Ignored, hris.Ignored{Reason: fmt.Sprintf("okta event %s (%s) did not succeed (%s)", e.EventType, e.UUID, e.Outcome.Result)})
			continue
		case e.UUID == "" || e.Published.IsZero():
			res.Rejected = append(res.Rejected, hris.Rejected{Err: fmt.Errorf("%w: okta event %s has no uuid or published time", hris.ErrMalformed, e.EventType)})
			continue
		}
		users := 0
		for _, tg := range e.Target {
			if tg.Type != "User" {
				continue
			}
			users++
			t, err := rl.oktaTermination(ctx, h, e, tg)
			if err != nil {
				res.Rejected = append(res.Rejected, hris.Rejected{EmployeeID: tg.AlternateID, Err: err})
				continue
			}
			// Containment only: contained at once, nothing removed until a person approves.
			t.ContainOnly = what == config.OktaStartContainment
			res.Events = append(res.Events, hris.Event{Action: hris.ActionStart, Termination: t})
		}
		if users == 0 {
			res.Rejected = append(res.Rejected, hris.Rejected{Err: fmt.Errorf("%w: okta event %s (%s) names no User target", hris.ErrMalformed, e.EventType, e.UUID)})
		}
	}
	return res
}

func (rl *Relay) oktaTermination(ctx context.Context, h *oktaHook, e oktaEvent, tg oktaTarget) (workflows.Termination, error) {
	if tg.ID == "" {
		return workflows.Termination{}, fmt.Errorf("%w: okta target user has no id", hris.ErrMalformed)
	}
	emp, _ := tg.DetailEntry["employeeNumber"].(string)
	email := tg.AlternateID
	if emp == "" {
		if h.users == nil {
			return workflows.Termination{}, fmt.Errorf("%w: okta user %s: the event carries no employeeNumber and relay.sources.okta.orgURL is not set to read it", hris.ErrMalformed, tg.ID)
		}
		var mail string
		var err error
		if emp, mail, err = h.users.Employee(ctx, tg.ID); err != nil {
			return workflows.Termination{}, err
		}
		if mail != "" {
			email = mail
		}
	}
	id, err := hris.NormalizeEmployeeID(emp)
	if err != nil {
		return workflows.Termination{}, fmt.Errorf("%w: okta user %s: employeeNumber %v", hris.ErrMalformed, tg.ID, err)
	}
	return workflows.Termination{
		EventID: "okta-" + e.UUID, Source: SourceOkta, EmployeeID: id, Email: email, Name: tg.DisplayName,
		Kind: workflows.KindTermination, EffectiveAt: e.Published.UTC(), RequestedBy: "okta:" + e.Actor.AlternateID,
		Accounts: map[string]string{h.target: tg.ID},
	}, nil
}

// sdkOktaUsers reads users with Okta's SDK.
type sdkOktaUsers struct{ sdk *oktasdk.Client }

func newOktaUsers(ctx context.Context, orgURL, token string) (*sdkOktaUsers, error) {
	u, err := url.Parse(strings.TrimRight(orgURL, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("relay: okta orgURL %q is not an absolute URL", orgURL)
	}
	local := u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1")
	_, sdk, err := oktasdk.NewClient(ctx, oktasdk.WithOrgUrl(u.String()), oktasdk.WithToken(token), oktasdk.WithAuthorizationMode("SSWS"),
		oktasdk.WithTestingDisableHttpsCheck(local), oktasdk.WithCache(false), oktasdk.WithRateLimitMaxRetries(0),
		oktasdk.WithRequestTimeout(10), oktasdk.WithUserAgentExtra("offboard-relay"))
	if err != nil {
		return nil, fmt.Errorf("relay: okta users: %w", err) // the SDK names the URL, never the token
	}
	return &sdkOktaUsers{sdk: sdk}, nil
}

func (s *sdkOktaUsers) Employee(ctx context.Context, userID string) (string, string, error) {
	u, _, err := s.sdk.User.GetUser(ctx, url.PathEscape(userID))
	var oe *oktasdk.Error
	switch {
	case errors.As(err, &oe) && oe.ErrorCode == "E0000007":
		return "", "", fmt.Errorf("%w: okta user %s", hris.ErrUnknownEmployee, userID)
	case err != nil:
		return "", "", fmt.Errorf("%w: okta: get user %s: %w", hris.ErrLookup, userID, err)
	case u == nil || u.Profile == nil:
		return "", "", fmt.Errorf("%w: okta: get user %s: no profile", hris.ErrLookup, userID)
	}
	p := *u.Profile
	emp, _ := p["employeeNumber"].(string)
	mail, _ := p["email"].(string)
	if emp == "" {
		return "", "", fmt.Errorf("%w: okta user %s has no profile.employeeNumber", hris.ErrMalformed, userID)
	}
	return emp, mail, nil
}
