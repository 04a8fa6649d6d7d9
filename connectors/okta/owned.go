package okta

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	oktasdk "github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/offboard/offboard/internal/control"
)

// Non-human identities (issue 15): the API tokens a leaver created, and
// break-glass admins whose password is rotated when someone who may know it
// leaves.

// Step names of non-human actions, as OwnedSteps returns them.
const (
	RevokeAPIToken = "revoke_api_token"
	RotatePassword = "rotate_password"
)

// Admin permissions the API token calls need; named in 401/403 errors.
const (
	scopeAPITokensRead   = "okta.apiTokens.read"
	scopeAPITokensManage = "okta.apiTokens.manage"
)

var _ control.Owner = (*Client)(nil)

// apiToken is Okta's API token object; okta-sdk-golang v2 has no model or
// call for it, so the connector asks through the SDK's request executor.
type apiToken struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	UserID     string     `json:"userId"`
	ClientName string     `json:"clientName"`
	ExpiresAt  *time.Time `json:"expiresAt"`
}

// Discover lists the API tokens acct's user created. Every page of
// GET /api/v1/api-tokens is read, with the same checks as any list (a
// cursor that does not advance, too many pages): an empty result is a
// claim that the org holds no token of theirs.
func (c *Client) Discover(ctx context.Context, acct control.Account) ([]control.Owned, error) {
	if acct.ID == "" {
		return nil, &control.Error{Kind: control.ErrPermanent, Op: c.op("discover api tokens of", "?"), Err: errors.New("no okta user id")}
	}
	op := c.op("discover api tokens of", acct.ID)
	var tokens []*apiToken
	_, err := c.call(ctx, op, scopeAPITokensRead, func(ctx context.Context) error {
		var first []*apiToken
		r, err := c.raw(ctx, http.MethodGet, "/api/v1/api-tokens?limit=200", nil, &first)
		tokens, err = listAll(ctx, op, first, r, err, func(t *apiToken) string { return t.ID })
		return err
	})
	if err != nil {
		return nil, err
	}
	out := []control.Owned{}
	for _, t := range tokens {
		if t == nil || t.ID == "" || t.UserID == "" {
			return nil, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: errors.New("an api token without id or userId: not Okta's answer")}
		}
		if t.UserID != acct.ID {
			continue
		}
		cred := control.Credential{Kind: "api token", ID: t.ID}
		if t.ExpiresAt != nil {
			cred.Status = "expires " + t.ExpiresAt.UTC().Format(time.DateOnly)
		}
		out = append(out, control.Owned{Target: c.name, Kind: control.KindAPIToken, ID: t.ID, Name: t.Name, Credentials: []control.Credential{cred}})
	}
	return out, nil
}

// OwnedSteps lists the steps of action on an identity of kind.
func (c *Client) OwnedSteps(kind string, action control.Action) []control.Step {
	switch {
	case kind == control.KindAPIToken:
		// Okta API tokens can be neither rotated nor handed to another
		// admin: whatever the policy, the token is revoked, and whoever
		// runs its service makes a new one under their own name.
		return []control.Step{{Name: RevokeAPIToken}}
	case kind == control.KindBreakGlass && action == control.Rotate:
		return []control.Step{{Name: RotatePassword}}
	}
	return nil
}

// ObserveOwned reads whether the step holds for o.
func (c *Client) ObserveOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	switch {
	case name == RevokeAPIToken && o.Kind == control.KindAPIToken:
		t, resp, err := c.getToken(ctx, "observe "+name, o.ID)
		var cerr *control.Error
		if errors.Is(err, control.ErrNotFound) && errors.As(err, &cerr) {
			return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "api token " + last4(o.ID) + " revoked (GET /api/v1/api-tokens/{id}: E0000007)",
				Call: control.Response{RequestID: cerr.RequestID, HTTPStatus: cerr.HTTPStatus, Digest: cerr.Digest}}, nil
		}
		if err != nil {
			return control.Observation{}, err
		}
		return control.Observation{Readable: true, Call: resp,
			Detail: fmt.Sprintf("api token %s %s active, created by %s", t.Name, last4(t.ID), t.UserID)}, nil
	case name == RotatePassword && o.Kind == control.KindBreakGlass:
		return c.observeRotation(ctx, o, p)
	}
	return control.Observation{}, control.Unknown(c.name, name+" on a "+o.Kind)
}

// EnforceOwned makes the step hold for o; repeating it is harmless.
func (c *Client) EnforceOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	switch {
	case name == RevokeAPIToken && o.Kind == control.KindAPIToken:
		op := c.op(name, "api token "+o.ID)
		if err := c.notOurToken(ctx, op, o.ID); err != nil {
			return control.Response{}, err
		}
		resp, err := c.call(ctx, op, scopeAPITokensManage, func(ctx context.Context) error {
			_, err := c.raw(ctx, http.MethodDelete, "/api/v1/api-tokens/"+url.PathEscape(o.ID), nil, nil)
			return err
		})
		if err = tokenGone(err); errors.Is(err, control.ErrNotFound) {
			return resp, nil // already revoked
		}
		return resp, err
	case name == RotatePassword && o.Kind == control.KindBreakGlass:
		return c.rotatePassword(ctx, o, p)
	}
	return control.Response{}, control.Unknown(c.name, name+" on a "+o.Kind)
}

// notOurToken refuses to revoke the token this connector signs in with
// (GET /api/v1/api-tokens/current): every later call of every run would
// fail. A person gives Offboard another token first.
func (c *Client) notOurToken(ctx context.Context, op, id string) error {
	var cur apiToken
	_, err := c.call(ctx, op+": read the token in use", scopeAPITokensRead, func(ctx context.Context) error {
		_, err := c.raw(ctx, http.MethodGet, "/api/v1/api-tokens/current", nil, &cur)
		return err
	})
	switch {
	case err != nil:
		return err
	case cur.ID == "":
		return &control.Error{Kind: control.ErrUnexpected, Op: op, Err: errors.New("GET /api/v1/api-tokens/current answered no token id")}
	case cur.ID == id:
		return &control.Error{Kind: control.ErrPermanent, Op: op,
			Err: fmt.Errorf("api token %s is the one this connector uses: give Offboard another admin's token, then retry", last4(id))}
	}
	return nil
}

func (c *Client) getToken(ctx context.Context, action, id string) (*apiToken, control.Response, error) {
	var t apiToken
	resp, err := c.call(ctx, c.op(action, "api token "+id), scopeAPITokensRead, func(ctx context.Context) error {
		_, err := c.raw(ctx, http.MethodGet, "/api/v1/api-tokens/"+url.PathEscape(id), nil, &t)
		return err
	})
	if err = tokenGone(err); err != nil {
		return nil, resp, err
	}
	if t.ID != id {
		return nil, resp, &control.Error{Kind: control.ErrUnexpected, Op: c.op(action, "api token "+id), HTTPStatus: resp.HTTPStatus,
			RequestID: resp.RequestID, Digest: resp.Digest, Err: fmt.Errorf("the answer is token %q, not the one asked for", t.ID)}
	}
	return &t, resp, nil
}

// tokenGone makes a 404 ErrNotFound only when it is Okta's own "no such
// API token": errorCode E0000007 about an ApiToken. classify leaves every
// 404 that is not about a user unexpected, so this is the one place a
// token's absence is claimed.
func tokenGone(err error) error {
	var cerr *control.Error
	var oe *oktasdk.Error
	if !errors.As(err, &cerr) || cerr.HTTPStatus != http.StatusNotFound || !errors.As(err, &oe) ||
		oe.ErrorCode != "E0000007" || !strings.HasSuffix(strings.TrimSpace(oe.ErrorSummary), "(ApiToken)") {
		return err
	}
	op, _, _ := strings.Cut(cerr.Op, " (")
	return &control.Error{Kind: control.ErrNotFound, Op: op, HTTPStatus: cerr.HTTPStatus, RequestID: cerr.RequestID, Digest: cerr.Digest, Err: oktaErr{oe}}
}

// raw sends one request the SDK has no call for, through its request
// executor: same org URL, token, HTTP client and error type as the rest.
func (c *Client) raw(ctx context.Context, method, path string, body, v any) (*oktasdk.Response, error) {
	rq := c.sdk.CloneRequestExecutor()
	req, err := rq.WithAccept("application/json").WithContentType("application/json").NewRequest(method, path, body)
	if err != nil {
		return nil, err
	}
	return rq.Do(ctx, req, v)
}

// observeRotation: the rotation holds when the secret's current version is
// this rotation's (p.Token) and Okta says the password changed since the
// rotation began. o.ID is the break-glass user's login.
func (c *Client) observeRotation(ctx context.Context, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	op := c.op("observe "+RotatePassword, o.ID)
	if err := rotationReady(op, o, p); err != nil {
		return control.Observation{}, err
	}
	u, resp, err := c.getUser(ctx, "observe "+RotatePassword, o.ID)
	var cerr *control.Error
	if errors.Is(err, control.ErrNotFound) && errors.As(err, &cerr) {
		// Okta's own "no such user": nobody can sign in with the old password.
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "user " + o.ID + " not found (E0000007)",
			Call: control.Response{RequestID: cerr.RequestID, HTTPStatus: cerr.HTTPStatus, Digest: cerr.Digest}}, nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	current, err := p.Store.Current(ctx, o.Secret)
	if err != nil {
		return control.Observation{}, storeErr(op, "read the current version of "+o.Secret, err)
	}
	changed := changedSince(u, p.Since)
	ours := current == p.Token
	pc := "never"
	if u.PasswordChanged != nil {
		pc = u.PasswordChanged.UTC().Format(time.RFC3339)
	}
	return control.Observation{Holds: ours && changed, Readable: true, Call: resp,
		Detail: fmt.Sprintf("secret %s version %s is current (this rotation's: %t); passwordChanged %s (since the rotation began: %t)",
			o.Secret, shortVersion(current), ours, pc, changed)}, nil
}

// rotatePassword follows the store's rotation protocol: the new password is
// stored as the pending version first (or the pending version a crashed try
// stored is reused), then set on the user, then made current. A store that
// fails before the set leaves the old password working.
func (c *Client) rotatePassword(ctx context.Context, o control.Owned, p control.OwnedParams) (control.Response, error) {
	op := c.op(RotatePassword, o.ID)
	if err := rotationReady(op, o, p); err != nil {
		return control.Response{}, err
	}
	u, _, err := c.getUser(ctx, RotatePassword, o.ID)
	if err != nil {
		return control.Response{}, err
	}
	value, err := pendingValue(ctx, op, o.Secret, p, newPassword)
	if err != nil {
		return control.Response{}, err
	}
	resp, err := c.call(ctx, op, scopeUsersManage, func(ctx context.Context) error {
		body := oktasdk.User{Credentials: &oktasdk.UserCredentials{Password: &oktasdk.PasswordCredential{Value: string(value)}}}
		_, _, err := c.sdk.User.PartialUpdateUser(ctx, url.PathEscape(u.Id), body, nil)
		return err
	})
	if err != nil && usedTooRecently(err) {
		// A try that crashed after the set: Okta refuses the same password
		// again. It is ours if the password changed since the rotation began.
		again, _, rerr := c.getUser(ctx, RotatePassword+" read-back", u.Id)
		if rerr != nil || !changedSince(again, p.Since) {
			return resp, err
		}
		err = nil
	}
	if err != nil {
		return resp, err
	}
	if err := p.Store.Promote(ctx, o.Secret, p.Token); err != nil {
		return resp, storeErr(op, "make version "+shortVersion(p.Token)+" of "+o.Secret+" current", err)
	}
	return resp, nil
}

// usedTooRecently is Okta's refusal of a password in the user's history.
func usedTooRecently(err error) bool {
	var oe *oktasdk.Error
	if !errors.As(err, &oe) || oe.ErrorCode != "E0000001" {
		return false
	}
	for _, cause := range oe.ErrorCauses {
		if s, _ := cause["errorSummary"].(string); strings.Contains(s, "used too recently") {
			return true
		}
	}
	return false
}

// clockSlack: Okta's clock is not the workflow's, so a change this much
// before the rotation began still counts as after it. The store's current
// version carries the claim as much: it moves only after a set succeeded.
const clockSlack = time.Minute

// changedSince reports whether the user's password changed at or after since.
func changedSince(u *oktasdk.User, since time.Time) bool {
	return u.PasswordChanged != nil && !u.PasswordChanged.Before(since.Add(-clockSlack))
}

// newPassword is a random password Okta's default policy accepts: upper,
// lower, digit, symbol, and 26 random base32 characters (130 bits).
func newPassword() []byte { return []byte("Aa1!" + rand.Text()) }

func last4(id string) string {
	if len(id) > 4 {
		id = id[len(id)-4:]
	}
	return "…" + id
}

// rotationReady checks what every rotation needs before it touches anything.
func rotationReady(op string, o control.Owned, p control.OwnedParams) error {
	if why := p.RotationMissing(o); why != "" {
		return &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New(why)}
	}
	return nil
}

// pendingValue is this rotation's new value: the pending version a crashed
// try stored under p.Token, or a fresh one stored now. Nothing on the
// system changes before the store holds the value.
func pendingValue(ctx context.Context, op, secret string, p control.OwnedParams, fresh func() []byte) ([]byte, error) {
	value, ok, err := p.Store.Pending(ctx, secret, p.Token)
	if err != nil {
		return nil, storeErr(op, "read pending version "+shortVersion(p.Token)+" of "+secret, err)
	}
	if ok {
		return value, nil
	}
	value = fresh()
	if err := p.Store.PutPending(ctx, secret, p.Token, value); err != nil {
		return nil, storeErr(op, "store pending version "+shortVersion(p.Token)+" of "+secret, err)
	}
	return value, nil
}

// storeErr keeps the kind a store already gave its failure; any other is
// transient: nothing changed on the system, so asking again is safe.
func storeErr(op, what string, err error) error {
	kind, retry := control.ErrTransient, time.Duration(0)
	var cerr *control.Error
	if errors.As(err, &cerr) {
		kind, retry = cerr.Kind, cerr.RetryAfter
	}
	return &control.Error{Kind: kind, Op: op, RetryAfter: retry, Err: fmt.Errorf("secret store: %s: %w", what, err)}
}

// shortVersion is a version id as people see it: its first 8 characters.
func shortVersion(v string) string {
	switch {
	case v == "":
		return "(none)"
	case len(v) > 8:
		return v[:8] + "…"
	}
	return v
}
