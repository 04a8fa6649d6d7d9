// Package okta removes a person's access in an Okta org, over the official
// okta-sdk-golang client: suspend, clear sessions, revoke OAuth grants,
// remove group memberships, deactivate, delete, and unsuspend to restore.
package okta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	oktasdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"

	"github.com/offboard/offboard/internal/control"
)

// Control names, as Controls returns them.
const (
	Suspend       = "suspend"
	ClearSessions = "clear_sessions"
	RevokeGrants  = "revoke_grants"
	RemoveGroups  = "remove_groups"
	Deactivate    = "deactivate"
	Delete        = "delete"
	Unsuspend     = "unsuspend"
)

// Okta user statuses this connector reads.
const (
	statusActive        = "ACTIVE"
	statusSuspended     = "SUSPENDED"
	statusDeprovisioned = "DEPROVISIONED"
)

// maxPages bounds how many pages of a list we follow.
const maxPages = 100

// Config says which Okta org to talk to and how.
type Config struct {
	Name       string       // target name, e.g. "okta"
	OrgURL     string       // https://acme.okta.com or the simulator URL
	Token      string       // SSWS API token (secret)
	AllowHTTP  bool         // only for loopback simulators
	HTTPClient *http.Client // optional
}

// Client is one Okta org as a control.Target.
type Client struct {
	name string
	sdk  *oktasdk.Client
}

var _ control.Target = (*Client)(nil)

// New builds the client. Every setting that matters is set explicitly, so an
// ~/.okta/okta.yaml, ./.okta.yaml or OKTA_CLIENT_* variable cannot change
// where calls go or how they authenticate. The SDK neither caches nor retries:
// Temporal owns retries.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Name == "" {
		cfg.Name = "okta"
	}
	org, err := url.Parse(strings.TrimRight(cfg.OrgURL, "/"))
	switch {
	case err != nil || org.Host == "":
		return nil, fmt.Errorf("%s: org URL %q is not an absolute URL", cfg.Name, cfg.OrgURL)
	case org.Scheme == "http" && !cfg.AllowHTTP:
		return nil, fmt.Errorf("%s: org URL %s is plain http; only a local simulator may use it (AllowHTTP)", cfg.Name, org.Redacted())
	case org.Scheme != "http" && org.Scheme != "https":
		return nil, fmt.Errorf("%s: org URL scheme %q is not https", cfg.Name, org.Scheme)
	case cfg.Token == "":
		return nil, fmt.Errorf("%s: no API token", cfg.Name)
	}
	_, sdk, err := oktasdk.NewClient(ctx,
		oktasdk.WithOrgUrl(org.String()),
		oktasdk.WithToken(cfg.Token),
		oktasdk.WithAuthorizationMode("SSWS"),
		oktasdk.WithTestingDisableHttpsCheck(cfg.AllowHTTP),
		oktasdk.WithHttpClientPtr(httpClient(cfg.HTTPClient)),
		oktasdk.WithCache(false),
		oktasdk.WithRateLimitMaxRetries(0),
		oktasdk.WithRateLimitMaxBackOff(0),
		oktasdk.WithRequestTimeout(0),
		oktasdk.WithUserAgentExtra("offboard"),
	)
	if err != nil {
		// The SDK's messages name the URL, never the token.
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	return &Client{name: cfg.Name, sdk: sdk}, nil
}

// Name is the configured target name.
func (c *Client) Name() string { return c.name }

// Kind is "okta".
func (c *Client) Kind() string { return "okta" }

// Controls lists the controls of a phase, in the order they run.
func (c *Client) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{Suspend, ClearSessions, RevokeGrants}
	case control.Removal:
		return []string{RemoveGroups, Deactivate}
	case control.RoleChange:
		return []string{RemoveGroups}
	case control.Deletion:
		return []string{Delete}
	case control.Restore:
		return []string{Unsuspend}
	}
	return nil
}

// call runs one SDK call with a recorder for its HTTP exchange, and turns a
// failure into a *control.Error.
func (c *Client) call(ctx context.Context, op, scope string, fn func(ctx context.Context) error) (control.Response, error) {
	rctx, ex := withExchange(ctx)
	if err := fn(rctx); err != nil {
		return ex.response(), classify(ctx, op, scope, ex, err)
	}
	return ex.response(), nil
}

func (c *Client) op(action, subject string) string {
	return fmt.Sprintf("%s: %s %s", c.name, action, subject)
}

// Resolve finds the person's user: by the hint for this target (an id or a
// login), else by profile.email or profile.login equal to the email.
func (c *Client) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	if hint := p.Hints[c.name]; hint != "" {
		u, _, err := c.getUser(ctx, "resolve", hint)
		if err != nil {
			return control.Account{}, err
		}
		return c.account(u), nil
	}
	if p.Email == "" {
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: c.op("resolve", p.EmployeeID),
			Err: errors.New("the person has no email and no okta hint")}
	}
	op := c.op("resolve", p.Email)
	lit := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.Email)
	search := fmt.Sprintf(`profile.email eq "%s" or profile.login eq "%s"`, lit, lit)
	var users []*oktasdk.User
	resp, err := c.call(ctx, op, scopeUsersRead, func(ctx context.Context) error {
		first, r, err := c.sdk.User.ListUsers(ctx, query.NewQueryParams(query.WithSearch(search), query.WithLimit(200)))
		users = first
		for pages := 1; err == nil && r.HasNextPage() && pages < maxPages; pages++ {
			var more []*oktasdk.User
			if r, err = r.Next(ctx, &more); err == nil {
				users = append(users, more...)
			}
		}
		return err
	})
	if err != nil {
		return control.Account{}, err
	}
	// A rehired person can have an old DEPROVISIONED user beside the live one.
	if len(users) > 1 {
		live := slices.DeleteFunc(slices.Clone(users), func(u *oktasdk.User) bool { return u.Status == statusDeprovisioned })
		if len(live) > 0 {
			users = live
		}
	}
	switch len(users) {
	case 0:
		return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: op, HTTPStatus: resp.HTTPStatus,
			RequestID: resp.RequestID, Digest: resp.Digest, Err: errors.New("no user with that email or login")}
	case 1:
		return c.account(users[0]), nil
	}
	ids := make([]string, 0, len(users))
	for _, u := range users {
		ids = append(ids, u.Id)
	}
	return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: op, HTTPStatus: resp.HTTPStatus,
		RequestID: resp.RequestID, Digest: resp.Digest,
		Err: fmt.Errorf("%d users match (%s); set an okta hint", len(users), strings.Join(ids, ", "))}
}

func (c *Client) account(u *oktasdk.User) control.Account {
	return control.Account{Target: c.name, ID: u.Id, Login: profileString(u, "login")}
}

func profileString(u *oktasdk.User, key string) string {
	if u.Profile == nil {
		return ""
	}
	s, _ := (*u.Profile)[key].(string)
	return s
}

// Observe reads whether the control holds. A user that no longer exists
// makes every control hold (Gone).
func (c *Client) Observe(ctx context.Context, name string, acct control.Account, params control.Params) (control.Observation, error) {
	obs, err := c.observe(ctx, name, acct, params)
	if errors.Is(err, control.ErrNotFound) {
		var cerr *control.Error
		errors.As(err, &cerr)
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "user not found",
			Call: control.Response{RequestID: cerr.RequestID, HTTPStatus: cerr.HTTPStatus, Digest: cerr.Digest}}, nil
	}
	return obs, err
}

func (c *Client) observe(ctx context.Context, name string, acct control.Account, params control.Params) (control.Observation, error) {
	switch name {
	case Suspend, Unsuspend, Deactivate, Delete, ClearSessions:
		u, resp, err := c.getUser(ctx, "observe "+name, acct.ID)
		if err != nil {
			return control.Observation{}, err
		}
		obs := control.Observation{Readable: true, Detail: "status=" + u.Status, Call: resp}
		switch name {
		case Suspend:
			obs.Holds = u.Status == statusSuspended || u.Status == statusDeprovisioned
		case Unsuspend:
			obs.Holds = u.Status == statusActive
		case Deactivate:
			obs.Holds = u.Status == statusDeprovisioned
		case Delete:
			obs.Holds = false // the user is still there
		case ClearSessions:
			// Okta has no API to list a user's sessions: clearing them can
			// only be acknowledged, never observed.
			obs.Readable = false
			obs.Detail = "sessions cannot be read back; " + obs.Detail
		}
		return obs, nil
	case RevokeGrants:
		grants, resp, err := c.listGrants(ctx, "observe "+name, acct.ID)
		if err != nil {
			return control.Observation{}, err
		}
		ids := make([]string, 0, len(grants))
		for _, g := range grants {
			ids = append(ids, g.Id)
		}
		return control.Observation{Holds: len(grants) == 0, Readable: true, Detail: countDetail(len(grants), "grant", ids), Call: resp}, nil
	case RemoveGroups:
		left, resp, err := c.removableGroups(ctx, "observe "+name, acct.ID, params.KeepGroups)
		if err != nil {
			return control.Observation{}, err
		}
		names := make([]string, 0, len(left))
		for _, g := range left {
			names = append(names, groupName(g))
		}
		return control.Observation{Holds: len(left) == 0, Readable: true, Detail: countDetail(len(left), "group", names), Call: resp}, nil
	}
	return control.Observation{}, control.Unknown(c.name, name)
}

func countDetail(n int, noun string, names []string) string {
	switch n {
	case 0:
		return "no " + noun + "s left"
	case 1:
		return "1 " + noun + " left: " + names[0]
	}
	return fmt.Sprintf("%d %ss left: %s", n, noun, strings.Join(names, ", "))
}

// Enforce makes the control hold. Repeating it is harmless: a lifecycle call
// Okta refuses because the user is already in the wanted state counts as done.
func (c *Client) Enforce(ctx context.Context, name string, acct control.Account, params control.Params) (control.Response, error) {
	id := url.PathEscape(acct.ID)
	switch name {
	case Suspend:
		return c.lifecycle(ctx, name, acct.ID, func(ctx context.Context) error {
			_, err := c.sdk.User.SuspendUser(ctx, id)
			return err
		}, statusSuspended, statusDeprovisioned)
	case Unsuspend:
		return c.lifecycle(ctx, name, acct.ID, func(ctx context.Context) error {
			_, err := c.sdk.User.UnsuspendUser(ctx, id)
			return err
		}, statusActive)
	case Deactivate:
		return c.lifecycle(ctx, name, acct.ID, func(ctx context.Context) error {
			_, err := c.sdk.User.DeactivateUser(ctx, id, query.NewQueryParams(query.WithSendEmail(false)))
			return err
		}, statusDeprovisioned)
	case ClearSessions:
		return c.call(ctx, c.op(name, acct.ID), scopeUsersManage, func(ctx context.Context) error {
			_, err := c.sdk.User.ClearUserSessions(ctx, id, query.NewQueryParams(query.WithOauthTokens(true)))
			return err
		})
	case RevokeGrants:
		return c.call(ctx, c.op(name, acct.ID), scopeUsersManage, func(ctx context.Context) error {
			_, err := c.sdk.User.RevokeUserGrants(ctx, id)
			return err
		})
	case RemoveGroups:
		return c.removeGroups(ctx, acct.ID, params.KeepGroups)
	case Delete:
		return c.delete(ctx, acct.ID)
	}
	return control.Response{}, control.Unknown(c.name, name)
}

// lifecycle posts a lifecycle operation. Okta answers 400 E0000001 when the
// user's status does not allow it; if that is because the user is already
// where we want it, the read-back proves it and the call counts as done.
func (c *Client) lifecycle(ctx context.Context, name, userID string, post func(context.Context) error, done ...string) (control.Response, error) {
	resp, err := c.call(ctx, c.op(name, userID), scopeUsersManage, post)
	var oe *oktasdk.Error
	if err == nil || resp.HTTPStatus != http.StatusBadRequest || !errors.As(err, &oe) || oe.ErrorCode != "E0000001" {
		return resp, err
	}
	u, readBack, rerr := c.getUser(ctx, name+" read-back", userID)
	if rerr != nil {
		return resp, err
	}
	if slices.Contains(done, u.Status) {
		return readBack, nil
	}
	var cerr *control.Error
	errors.As(err, &cerr)
	cerr.Err = fmt.Errorf("user is %s: %w", u.Status, cerr.Err)
	return resp, cerr
}

// delete removes the user. Okta's DELETE of a user that is not yet
// DEPROVISIONED only deactivates it, so such a user takes two calls.
func (c *Client) delete(ctx context.Context, userID string) (control.Response, error) {
	u, _, err := c.getUser(ctx, "delete", userID)
	if err != nil {
		return control.Response{}, err
	}
	calls := 1
	if u.Status != statusDeprovisioned {
		calls = 2
	}
	var resp control.Response
	for range calls {
		resp, err = c.call(ctx, c.op("delete", userID), scopeUsersManage, func(ctx context.Context) error {
			_, err := c.sdk.User.DeactivateOrDeleteUser(ctx, url.PathEscape(userID), query.NewQueryParams(query.WithSendEmail(false)))
			return err
		})
		if err != nil {
			return resp, err
		}
	}
	return resp, nil
}

// removeGroups takes the user out of every group it may leave; the response
// is that of the last removal (or of the listing when nothing was left).
func (c *Client) removeGroups(ctx context.Context, userID string, keep []string) (control.Response, error) {
	groups, resp, err := c.removableGroups(ctx, RemoveGroups, userID, keep)
	if err != nil {
		return resp, err
	}
	for _, g := range groups {
		resp, err = c.call(ctx, c.op(RemoveGroups, userID+" from "+groupName(g)), scopeGroupsManage, func(ctx context.Context) error {
			_, err := c.sdk.Group.RemoveUserFromGroup(ctx, url.PathEscape(g.Id), url.PathEscape(userID))
			return err
		})
		if err != nil {
			return resp, err
		}
	}
	return resp, nil
}

// removableGroups lists the user's groups minus BUILT_IN ones (Everyone;
// Okta manages those) and the ones to keep.
func (c *Client) removableGroups(ctx context.Context, action, userID string, keep []string) ([]*oktasdk.Group, control.Response, error) {
	var groups []*oktasdk.Group
	resp, err := c.call(ctx, c.op(action, userID), scopeUsersRead, func(ctx context.Context) error {
		first, r, err := c.sdk.User.ListUserGroups(ctx, url.PathEscape(userID))
		groups = first
		for pages := 1; err == nil && r.HasNextPage() && pages < maxPages; pages++ {
			var more []*oktasdk.Group
			if r, err = r.Next(ctx, &more); err == nil {
				groups = append(groups, more...)
			}
		}
		return err
	})
	if err != nil {
		return nil, resp, err
	}
	groups = slices.DeleteFunc(groups, func(g *oktasdk.Group) bool {
		return g.Type == "BUILT_IN" || slices.Contains(keep, groupName(g))
	})
	return groups, resp, nil
}

func groupName(g *oktasdk.Group) string {
	if g.Profile == nil {
		return g.Id
	}
	return g.Profile.Name
}

func (c *Client) getUser(ctx context.Context, action, idOrLogin string) (*oktasdk.User, control.Response, error) {
	var u *oktasdk.User
	resp, err := c.call(ctx, c.op(action, idOrLogin), scopeUsersRead, func(ctx context.Context) error {
		var err error
		u, _, err = c.sdk.User.GetUser(ctx, url.PathEscape(idOrLogin))
		if err == nil && (u == nil || u.Id == "") {
			err = errors.New("response has no user id")
		}
		return err
	})
	return u, resp, err
}

func (c *Client) listGrants(ctx context.Context, action, userID string) ([]*oktasdk.OAuth2ScopeConsentGrant, control.Response, error) {
	var grants []*oktasdk.OAuth2ScopeConsentGrant
	resp, err := c.call(ctx, c.op(action, userID), scopeUsersRead, func(ctx context.Context) error {
		first, r, err := c.sdk.User.ListUserGrants(ctx, url.PathEscape(userID), query.NewQueryParams(query.WithLimit(200)))
		grants = first
		for pages := 1; err == nil && r.HasNextPage() && pages < maxPages; pages++ {
			var more []*oktasdk.OAuth2ScopeConsentGrant
			if r, err = r.Next(ctx, &more); err == nil {
				grants = append(grants, more...)
			}
		}
		return err
	})
	return grants, resp, err
}
