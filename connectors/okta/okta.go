// Package okta removes a person's access in an Okta org, over the official
// okta-sdk-golang client: suspend, clear sessions, revoke OAuth grants,
// remove group memberships, deactivate, delete, and unsuspend to restore.
package okta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

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
	org  string // the org URL, for errors that must name it
	sdk  *oktasdk.Client
}

var (
	_ control.Target = (*Client)(nil)
	_ control.Prober = (*Client)(nil)
	_ control.Finder = (*Client)(nil)
)

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
	return &Client{name: cfg.Name, org: org.Redacted(), sdk: sdk}, nil
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
	err := fn(rctx)
	var cerr *control.Error
	switch {
	case err == nil:
		return ex.response(), nil
	case errors.As(err, &cerr):
		// Already classified (a list whose paging cannot be trusted).
		resp := ex.response()
		cerr.RequestID, cerr.Digest = resp.RequestID, resp.Digest
		return resp, cerr
	}
	return ex.response(), classify(ctx, op, scope, ex, err)
}

func (c *Client) op(action, subject string) string {
	return fmt.Sprintf("%s: %s %s", c.name, action, subject)
}

// Resolve finds the person's user. With a hint for this target (an id or a
// login) that reads back, that is the user. Otherwise two lookups that must
// agree: list-users `filter` on profile.email / profile.login (Okta's
// up-to-date index; `search` is another index that may lag) and a direct
// GET /api/v1/users/{email} (the email as login). "No account" is claimed
// only when every lookup answered with Okta's own "none", and the error
// then says what was searched (control.Error.Searched).
func (c *Client) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	acct, err := c.Find(ctx, p)
	if err != nil {
		return control.Account{}, err
	}
	return c.Rights(ctx, acct)
}

// Find is Resolve without the admin roles and holdings (control.Finder).
func (c *Client) Find(ctx context.Context, p control.Person) (control.Account, error) {
	var searched []string
	hint := p.Hints[c.name]
	if hint != "" {
		u, resp, err := c.getUser(ctx, "resolve", hint)
		if err == nil {
			return c.account(u), nil
		}
		if !errors.Is(err, control.ErrNotFound) {
			return control.Account{}, err
		}
		searched = append(searched, fmt.Sprintf("GET /api/v1/users/%s (the okta hint): %s", hint, answer(resp, err)))
	}
	if p.Email == "" {
		if hint != "" {
			return control.Account{}, c.noAccount(c.op("resolve", hint), searched)
		}
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: c.op("resolve", p.EmployeeID),
			Err: errors.New("the person has no email and no okta hint")}
	}
	op := c.op("resolve", p.Email)
	lit := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.Email)
	filter := fmt.Sprintf(`profile.email eq "%s" or profile.login eq "%s"`, lit, lit)
	// The two lookups are independent: ask both at once, read them in order.
	var users []*oktasdk.User
	var byLogin *oktasdk.User
	var resp, loginResp control.Response
	var err, loginErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		byLogin, loginResp, loginErr = c.getUser(ctx, "resolve", p.Email)
	}()
	resp, err = c.call(ctx, op, scopeUsersRead, func(ctx context.Context) error {
		first, r, err := c.sdk.User.ListUsers(ctx, query.NewQueryParams(query.WithFilter(filter), query.WithLimit(200)))
		users, err = listAll(ctx, op, first, r, err, func(u *oktasdk.User) string { return u.Id })
		return err
	})
	wg.Wait()
	if err != nil {
		return control.Account{}, err
	}
	searched = append(searched, fmt.Sprintf("GET /api/v1/users?filter=%s: %s", filter, userList(users, resp)))

	resp, err = loginResp, loginErr
	switch {
	case err == nil:
		if !slices.ContainsFunc(users, func(u *oktasdk.User) bool { return u.Id == byLogin.Id }) {
			users = append(users, byLogin)
		}
	case errors.Is(err, control.ErrNotFound):
	default:
		return control.Account{}, err
	}
	searched = append(searched, fmt.Sprintf("GET /api/v1/users/%s: %s", p.Email, answer(resp, err)))

	// A rehired person can have an old DEPROVISIONED user beside the live one.
	if len(users) > 1 {
		live := slices.DeleteFunc(slices.Clone(users), func(u *oktasdk.User) bool { return u.Status == statusDeprovisioned })
		if len(live) > 0 {
			users = live
		}
	}
	ids := make([]string, 0, len(users))
	for _, u := range users {
		ids = append(ids, u.Id)
	}
	switch {
	case len(users) == 0:
		return control.Account{}, c.noAccount(op, searched)
	case hint != "":
		// The hint names nobody, yet the email finds someone: which one is
		// the leaver is for a person to say.
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: op, Searched: searched,
			Err: fmt.Errorf("the okta hint %q names no user, but the email finds %s; correct the hint", hint, strings.Join(ids, ", "))}
	case len(users) == 1:
		return c.account(users[0]), nil
	}
	return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: op, Searched: searched,
		Err: fmt.Errorf("%d users match (%s); set an okta hint", len(users), strings.Join(ids, ", "))}
}

func (c *Client) noAccount(op string, searched []string) error {
	return &control.Error{Kind: control.ErrNotFound, Op: op, Searched: searched,
		Err: errors.New("no user: " + strings.Join(searched, "; "))}
}

// answer says for a Searched line what one call answered.
func answer(resp control.Response, err error) string {
	s := fmt.Sprintf("HTTP %d", resp.HTTPStatus)
	var oe *oktasdk.Error
	switch {
	case err == nil:
		s += ", a user"
	case errors.As(err, &oe):
		s += ", " + oktaErr{oe}.Error()
	default:
		s += ", " + err.Error()
	}
	if resp.RequestID != "" {
		s += ", request " + resp.RequestID
	}
	return s
}

func userList(users []*oktasdk.User, resp control.Response) string {
	ids := make([]string, 0, len(users))
	for _, u := range users {
		ids = append(ids, u.Id+" "+u.Status)
	}
	s := fmt.Sprintf("HTTP %d, %d users", resp.HTTPStatus, len(users))
	if len(ids) > 0 {
		s += " (" + strings.Join(ids, ", ") + ")"
	}
	if resp.RequestID != "" {
		s += ", request " + resp.RequestID
	}
	return s
}

// resolved is the account of u with the admin roles Okta reports for it
// (GET /api/v1/users/{id}/roles), so a person who is an admin is treated as
// privileged whatever HR says. Roles that cannot be read are said too: a
// person whose rights are unknown is treated as privileged, not as none.
func (c *Client) resolved(ctx context.Context, u *oktasdk.User) (control.Account, error) {
	return c.Rights(ctx, c.account(u))
}

// Rights reads the admin roles and holdings of an account Find returned
// (control.Finder), as resolved says.
func (c *Client) Rights(ctx context.Context, acct control.Account) (control.Account, error) {
	id := acct.ID
	// The groups (for holds) are read beside the roles: neither needs the other.
	var gs groups
	var gerr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		gs, _, gerr = c.userGroups(ctx, "read groups of", id, nil)
	}()
	var roles []*oktasdk.Role
	_, err := c.call(ctx, c.op("read admin roles of", id), scopeRolesRead, func(ctx context.Context) error {
		var err error
		roles, _, err = c.sdk.User.ListAssignedRolesForUser(ctx, url.PathEscape(id), nil)
		if nerr := notAList(ctx, c.op("read admin roles of", id), err); nerr != nil {
			return nerr // null must not read as "no admin roles"
		}
		return err
	})
	wg.Wait()
	switch {
	case errors.Is(err, control.ErrRateLimited), errors.Is(err, control.ErrTransient):
		return control.Account{}, err
	case err != nil:
		var cerr *control.Error
		errors.As(err, &cerr)
		acct.Privileges = []string{fmt.Sprintf("okta admin roles unreadable (GET /api/v1/users/%s/roles: %v, HTTP %d)", id, cerr.Kind, cerr.HTTPStatus)}
		if acct.Holds, err = holds(gs, gerr, nil, err); err != nil { // holds.go
			return control.Account{}, err
		}
		return acct, nil
	}
	if acct.Holds, err = holds(gs, gerr, roles, nil); err != nil {
		return control.Account{}, err
	}
	for _, r := range roles {
		if r.Status != "" && r.Status != "ACTIVE" {
			continue
		}
		p := "okta admin role " + r.Type
		if r.AssignmentType == "GROUP" {
			p += " (through a group)"
		}
		acct.Privileges = append(acct.Privileges, p)
	}
	return acct, nil
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

// Observe reads whether the control holds. Only the user resource itself
// answering Okta's own "no such user" makes every control hold (Gone); a
// sub-resource (grants, groups) that answers 404 for a user that still reads
// back is an unexpected answer naming the endpoint.
func (c *Client) Observe(ctx context.Context, name string, acct control.Account, params control.Params) (control.Observation, error) {
	obs, err := c.observe(ctx, name, acct, params)
	if errors.Is(err, control.ErrNotFound) {
		var cerr *control.Error
		errors.As(err, &cerr)
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "user not found (GET /api/v1/users/" + acct.ID + ": E0000007)",
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
			return control.Observation{}, c.subResource(ctx, acct.ID, err)
		}
		ids := make([]string, 0, len(grants))
		for _, g := range grants {
			ids = append(ids, g.Id)
		}
		return control.Observation{Holds: len(grants) == 0, Readable: true, Detail: countDetail(len(grants), "grant", ids), Call: resp}, nil
	case RemoveGroups:
		gs, resp, err := c.userGroups(ctx, "observe "+name, acct.ID, params.KeepGroups)
		if err != nil {
			return control.Observation{}, c.subResource(ctx, acct.ID, err)
		}
		return control.Observation{Holds: len(gs.remove) == 0, Readable: true, Detail: gs.detail(), Call: resp}, nil
	}
	return control.Observation{}, control.Unknown(c.name, name)
}

// subResource decides what a 404 from a sub-resource of a user means (its
// grants, groups, sessions, lifecycle). The user resource itself is read:
// only its own "no such user" makes the account gone (that error is
// returned); a user that reads back makes the 404 an unexpected answer that
// names the endpoint, and never an observation.
func (c *Client) subResource(ctx context.Context, userID string, err error) error {
	var cerr *control.Error
	if !errors.As(err, &cerr) || (cerr.HTTPStatus != http.StatusNotFound && cerr.HTTPStatus != http.StatusGone) {
		return err
	}
	u, _, uerr := c.getUser(ctx, "confirm the user behind a 404 of", userID)
	switch {
	case errors.Is(uerr, control.ErrNotFound):
		return uerr
	case uerr != nil:
		return fmt.Errorf("%w (and reading the user failed too: %v)", err, uerr)
	}
	return &control.Error{Kind: control.ErrUnexpected, Op: cerr.Op, HTTPStatus: cerr.HTTPStatus, RequestID: cerr.RequestID,
		Digest: cerr.Digest, Err: fmt.Errorf("the user %s exists (status=%s), so this 404 is not the account's: %w", userID, u.Status, cerr.Err)}
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
		resp, err := c.call(ctx, c.op(name, acct.ID), scopeUsersManage, func(ctx context.Context) error {
			_, err := c.sdk.User.ClearUserSessions(ctx, id, query.NewQueryParams(query.WithOauthTokens(true)))
			return err
		})
		return resp, c.subResource(ctx, acct.ID, err)
	case RevokeGrants:
		resp, err := c.call(ctx, c.op(name, acct.ID), scopeUsersManage, func(ctx context.Context) error {
			_, err := c.sdk.User.RevokeUserGrants(ctx, id)
			return err
		})
		return resp, c.subResource(ctx, acct.ID, err)
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
	if err != nil && resp.HTTPStatus == http.StatusNotFound {
		return resp, c.subResource(ctx, userID, err)
	}
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
	gs, resp, err := c.userGroups(ctx, RemoveGroups, userID, keep)
	if err != nil {
		return resp, c.subResource(ctx, userID, err)
	}
	for _, g := range gs.remove {
		resp, err = c.call(ctx, c.op(RemoveGroups, userID+" from "+groupName(g)), scopeGroupsManage, func(ctx context.Context) error {
			_, err := c.sdk.Group.RemoveUserFromGroup(ctx, url.PathEscape(g.Id), url.PathEscape(userID))
			return err
		})
		if err != nil {
			return resp, c.subResource(ctx, userID, err)
		}
	}
	return resp, nil
}

// groups is a user's group memberships as read back, sorted three ways.
type groups struct {
	remove  []*oktasdk.Group // the ones the user must leave
	kept    []string         // names the new role still grants
	builtIn []string         // BUILT_IN (Everyone): Okta manages them
}

// detail says all that was read, so a receipt never hides what stays.
func (gs groups) detail() string {
	names := make([]string, 0, len(gs.remove))
	for _, g := range gs.remove {
		names = append(names, groupName(g))
	}
	d := countDetail(len(names), "group", names)
	if len(names) == 0 {
		d = "no groups left to remove"
	}
	switch len(gs.kept) {
	case 0:
	case 1:
		d += "; kept 1 group the new role grants: " + gs.kept[0]
	default:
		d += fmt.Sprintf("; kept %d groups the new role grants: %s", len(gs.kept), strings.Join(gs.kept, ", "))
	}
	if len(gs.builtIn) > 0 {
		d += "; " + strings.Join(gs.builtIn, ", ") + " stays (Okta's built-in group, not removable)"
	}
	return d
}

// userGroups reads every group of the user, to the last page.
func (c *Client) userGroups(ctx context.Context, action, userID string, keep []string) (groups, control.Response, error) {
	var all []*oktasdk.Group
	op := c.op(action, userID)
	resp, err := c.call(ctx, op, scopeUsersRead, func(ctx context.Context) error {
		first, r, err := c.sdk.User.ListUserGroups(ctx, url.PathEscape(userID))
		all, err = listAll(ctx, op, first, r, err, func(g *oktasdk.Group) string { return g.Id })
		return err
	})
	if err != nil {
		return groups{}, resp, err
	}
	var gs groups
	for _, g := range all {
		switch {
		case g.Type == "BUILT_IN":
			gs.builtIn = append(gs.builtIn, groupName(g))
		case slices.ContainsFunc(keep, func(k string) bool { return strings.EqualFold(k, groupName(g)) }):
			gs.kept = append(gs.kept, groupName(g))
		default:
			gs.remove = append(gs.remove, g)
		}
	}
	return gs, resp, nil
}

// listAll follows Link rel="next" to the end of a list. A list cut short
// (more than maxPages) or a next page that repeats what was already read
// (a server ignoring the cursor) is an error: a partial list must never
// read as "nothing left".
func listAll[T any](ctx context.Context, op string, items []T, r *oktasdk.Response, err error, id func(T) string) ([]T, error) {
	if nerr := notAList(ctx, op, err); nerr != nil {
		return nil, nerr
	}
	seen := map[string]bool{}
	for _, it := range items {
		seen[id(it)] = true
	}
	for pages := 1; err == nil && r != nil && r.HasNextPage(); pages++ {
		if pages >= maxPages {
			return nil, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: fmt.Errorf("more than %d pages; the list was not read to its end", maxPages)}
		}
		next := r.NextPage
		var more []T
		r, err = r.Next(ctx, &more)
		if nerr := notAList(ctx, op, err); nerr != nil {
			return nil, nerr
		}
		if err != nil {
			break
		}
		for _, it := range more {
			if seen[id(it)] {
				return nil, &control.Error{Kind: control.ErrUnexpected, Op: op, HTTPStatus: r.StatusCode,
					Err: fmt.Errorf("page %s repeats %s, already read: the server does not honour the paging cursor", next, id(it))}
			}
			seen[id(it)] = true
		}
		items = append(items, more...)
	}
	return items, err
}

// notAList: Okta sends a list as a JSON array ([] when empty), but the SDK
// reads a 200 with an empty body or null as an empty list ("no groups", "no
// user"). Any 2xx to a list read that is not an array is an error: as in
// classify (and entra), one that is not JSON is asked again, a well-formed
// wrong one (null, {}) will say the same again, so a person looks.
func notAList(ctx context.Context, op string, err error) error {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	if ex == nil {
		return nil
	}
	status, header, body := ex.snapshot()
	if status < 200 || status >= 300 || bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
		return nil
	}
	msg := fmt.Sprintf("%s answered %d without a list (%d bytes)", ex.lastEndpoint(), status, len(body))
	if err != nil {
		msg += ": " + err.Error()
	}
	kind := control.ErrPermanent
	if !json.Valid(body) {
		kind = control.ErrTransient
	}
	return &control.Error{Kind: kind, Op: op, HTTPStatus: status, RequestID: header.Get("X-Okta-Request-Id"),
		Digest: control.Digest(body), Err: errors.New(msg)}
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
		grants, err = listAll(ctx, c.op(action, userID), first, r, err, func(g *oktasdk.OAuth2ScopeConsentGrant) string { return g.Id })
		return err
	})
	return grants, resp, err
}

// Probe checks the org URL and the token: GET /api/v1/users/me must answer
// 200 with an Okta user (the token's owner), and that user's admin roles say
// what the token may do. A 401 E0000011 names the token; a 404, HTML or any
// non-Okta answer names the org URL.
func (c *Client) Probe(ctx context.Context) (control.Probe, error) {
	var pr control.Probe
	me, resp, err := c.getUser(ctx, "probe", "me")
	if err != nil {
		var cerr *control.Error
		// An unparseable 200 is retried as a read, but at a probe it names the URL.
		unparseable := errors.As(err, &cerr) && cerr.HTTPStatus >= 200 && cerr.HTTPStatus < 300
		if errors.As(err, &cerr) && cerr.Kind != control.ErrUnauthorized && cerr.Kind != control.ErrRateLimited && (cerr.Kind != control.ErrTransient || unparseable) {
			return pr, fmt.Errorf("%s: the org URL %s does not answer with Okta's API: %w", c.name, c.org, err)
		}
		return pr, fmt.Errorf("%s: probe %s: %w", c.name, c.org, err)
	}
	pr.Checks = append(pr.Checks, fmt.Sprintf("GET /api/v1/users/me: %d, Okta user %s (%s), the token's owner", resp.HTTPStatus, profileString(me, "login"), me.Status))
	acct, err := c.resolved(ctx, me)
	if err != nil {
		return pr, fmt.Errorf("%s: probe: %w", c.name, err)
	}
	switch {
	case len(acct.Privileges) == 0:
		pr.Missing = append(pr.Missing, "an Okta admin role for the token's owner (it has none: it cannot suspend or deactivate users)")
		return pr, nil
	case strings.HasPrefix(acct.Privileges[0], "okta admin roles unreadable"):
		pr.Missing = append(pr.Missing, scopeRolesRead+": "+acct.Privileges[0])
		return pr, nil
	}
	pr.Checks = append(pr.Checks, "GET /api/v1/users/"+me.Id+"/roles: "+strings.Join(acct.Privileges, ", "))
	return pr, nil
}
