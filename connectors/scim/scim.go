// Package scim removes a leaver's access from applications provisioned over
// SCIM 2.0 (RFC 7643/7644): it deactivates the user (PATCH active=false, or
// GET + PUT where the app has no PATCH), reactivates on a rescind, and
// deletes the user after retention. It is a plain net/http client; retries
// are the caller's business.
package scim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/offboard/offboard/internal/control"
)

// Control names.
const (
	Deactivate = "deactivate"
	Reactivate = "reactivate"
	Delete     = "delete"
)

// Config describes one SCIM application.
type Config struct {
	Name    string // target name, e.g. "scim-github"
	BaseURL string // up to and including /scim/v2
	// Bearer is the bearer token; alternatively Username and Password for
	// HTTP basic auth. Secrets: they never appear in errors.
	Bearer             string
	Username, Password string
	// HTTPClient carries timeouts and transport; nil uses a client with a 30 s timeout.
	HTTPClient *http.Client
}

// Client is a control.Target for one SCIM application.
type Client struct {
	name   string
	base   string
	auth   func(*http.Request)
	http   *http.Client
	mu     sync.Mutex
	config *providerConfig // read lazily from /ServiceProviderConfig
}

var _ control.Target = (*Client)(nil)

// New checks cfg and returns a client; it makes no request.
func New(cfg Config) (*Client, error) {
	if cfg.Name == "" {
		return nil, errors.New("scim: name is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("scim: %s: base URL must be an absolute http(s) URL", cfg.Name)
	}
	c := &Client{name: cfg.Name, base: strings.TrimRight(cfg.BaseURL, "/"), http: cfg.HTTPClient}
	switch {
	case cfg.Bearer != "" && cfg.Username != "":
		return nil, fmt.Errorf("scim: %s: set either a bearer token or a username and password, not both", cfg.Name)
	case cfg.Bearer != "":
		token := cfg.Bearer
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	case cfg.Username != "":
		user, pass := cfg.Username, cfg.Password
		c.auth = func(r *http.Request) { r.SetBasicAuth(user, pass) }
	default:
		return nil, fmt.Errorf("scim: %s: a bearer token or a username and password is required", cfg.Name)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	return c, nil
}

// Name is the configured target name.
func (c *Client) Name() string { return c.name }

// Kind is "scim".
func (c *Client) Kind() string { return "scim" }

// Controls lists the controls per phase. SCIM apps get no removal or role
// change controls: group membership in a deactivated app grants nothing.
func (c *Client) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{Deactivate}
	case control.Deletion:
		return []string{Delete}
	case control.Restore:
		return []string{Reactivate}
	default:
		return nil
	}
}

// Resolve finds the person's user: by the hint for this target (a SCIM id)
// if HR sent one, else by userName, then by email.
func (c *Client) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	if id := p.Hints[c.name]; id != "" {
		u, _, err := c.getUser(ctx, "resolve "+id, id)
		if err != nil {
			return control.Account{}, err
		}
		return c.account(u), nil
	}
	if p.Email == "" {
		return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: c.op("resolve " + p.EmployeeID), Err: errors.New("no email and no hint")}
	}
	op := "resolve " + p.Email
	cfg, err := c.providerConfig(ctx)
	if err != nil {
		return control.Account{}, err
	}
	for _, f := range []string{
		`userName eq ` + quote(p.Email),
		`emails.value eq ` + quote(p.Email),
	} {
		users, err := c.findUsers(ctx, op, f, cfg.filterSupported, p.Email)
		if err != nil {
			return control.Account{}, err
		}
		switch len(users) {
		case 0:
			continue
		case 1:
			return c.account(users[0]), nil
		default:
			ids := make([]string, len(users))
			for i, u := range users {
				ids[i] = u.ID
			}
			return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: c.op(op),
				Err: fmt.Errorf("%d users match %s: %s", len(users), f, strings.Join(ids, ", "))}
		}
	}
	return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: c.op(op), Err: errors.New("no user with that userName or email")}
}

func (c *Client) account(u user) control.Account {
	return control.Account{Target: c.name, ID: u.ID, Login: u.UserName}
}

// Observe reads the user back and says whether the control holds.
func (c *Client) Observe(ctx context.Context, name string, acct control.Account, _ control.Params) (control.Observation, error) {
	if err := c.check(name, acct); err != nil {
		return control.Observation{}, err
	}
	u, call, err := c.getUser(ctx, name+" "+acct.ID, acct.ID)
	if errors.Is(err, control.ErrNotFound) {
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "user does not exist", Call: call}, nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	if name == Delete {
		return control.Observation{Holds: false, Readable: true, Detail: "user exists", Call: call}, nil
	}
	if u.Active == nil {
		return control.Observation{Readable: false, Detail: "app does not return the active attribute", Call: call}, nil
	}
	want := name == Reactivate
	return control.Observation{Holds: *u.Active == want, Readable: true, Detail: fmt.Sprintf("active=%t", *u.Active), Call: call}, nil
}

// Enforce makes the control hold; repeating it changes nothing more.
func (c *Client) Enforce(ctx context.Context, name string, acct control.Account, _ control.Params) (control.Response, error) {
	if err := c.check(name, acct); err != nil {
		return control.Response{}, err
	}
	op := name + " " + acct.ID
	switch name {
	case Deactivate:
		return c.setActive(ctx, op, acct.ID, false)
	case Reactivate:
		return c.setActive(ctx, op, acct.ID, true)
	default: // Delete
		resp, _, err := c.do(ctx, op, http.MethodDelete, "/Users/"+url.PathEscape(acct.ID), nil, nil)
		return resp, err
	}
}

func (c *Client) check(name string, acct control.Account) error {
	switch name {
	case Deactivate, Reactivate, Delete:
	default:
		return control.Unknown(c.name, name)
	}
	if acct.ID == "" {
		return &control.Error{Kind: control.ErrPermanent, Op: c.op(name), Err: errors.New("account has no SCIM id")}
	}
	return nil
}

// setActive uses PATCH where the app supports it, else GET + PUT of the full resource.
func (c *Client) setActive(ctx context.Context, op, id string, active bool) (control.Response, error) {
	cfg, err := c.providerConfig(ctx)
	if err != nil {
		return control.Response{}, err
	}
	path := "/Users/" + url.PathEscape(id)
	if cfg.patchSupported {
		body := map[string]any{
			"schemas":    []string{patchOpSchema},
			"Operations": []map[string]any{{"op": "replace", "path": "active", "value": active}},
		}
		resp, _, err := c.do(ctx, op, http.MethodPatch, path, body, nil)
		var cerr *control.Error
		if !errors.As(err, &cerr) || (cerr.HTTPStatus != http.StatusNotImplemented && cerr.HTTPStatus != http.StatusMethodNotAllowed) {
			return resp, err
		}
		// The app advertised PATCH but refuses it: remember, and replace instead.
		c.mu.Lock()
		c.config.patchSupported = false
		c.mu.Unlock()
	}

	_, raw, err := c.do(ctx, op, http.MethodGet, path, nil, nil)
	if err != nil {
		return control.Response{}, err
	}
	u, err := parseUser(raw.body)
	if err != nil {
		return control.Response{}, c.garbage(op, raw, err)
	}
	if u.Active != nil && *u.Active == active {
		return raw.response(), nil // already so: a PUT would only bump the version
	}
	// Send back what we read, minus what the server owns (RFC 7643 §3.1: id and meta are read-only).
	resource := u.Raw
	delete(resource, "meta")
	resource["active"] = active
	var header http.Header
	if etag := raw.header.Get("ETag"); etag != "" && cfg.etagSupported {
		header = http.Header{"If-Match": {etag}}
	}
	resp, _, err := c.do(ctx, op, http.MethodPut, path, resource, header)
	return resp, err
}

// getUser reads one user by id.
func (c *Client) getUser(ctx context.Context, op, id string) (user, control.Response, error) {
	resp, raw, err := c.do(ctx, op, http.MethodGet, "/Users/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return user{}, resp, err
	}
	u, err := parseUser(raw.body)
	if err != nil {
		return user{}, resp, c.garbage(op, raw, err)
	}
	return u, resp, nil
}

// findUsers lists the users matching filter. Apps without filtering are
// scanned page by page and matched on userName and emails here.
func (c *Client) findUsers(ctx context.Context, op, filter string, filterSupported bool, email string) ([]user, error) {
	if filterSupported {
		q := url.Values{"filter": {filter}, "count": {"10"}}
		_, raw, err := c.do(ctx, op, http.MethodGet, "/Users?"+q.Encode(), nil, nil)
		if err != nil {
			return nil, err
		}
		list, err := parseList(raw.body)
		if err != nil {
			return nil, c.garbage(op, raw, err)
		}
		return list.Resources, nil
	}
	var found []user
	for start := 1; ; {
		q := url.Values{"startIndex": {fmt.Sprint(start)}, "count": {"100"}}
		_, raw, err := c.do(ctx, op, http.MethodGet, "/Users?"+q.Encode(), nil, nil)
		if err != nil {
			return nil, err
		}
		list, err := parseList(raw.body)
		if err != nil {
			return nil, c.garbage(op, raw, err)
		}
		byUserName := strings.HasPrefix(filter, "userName")
		for _, u := range list.Resources {
			if (byUserName && strings.EqualFold(u.UserName, email)) || (!byUserName && u.hasEmail(email)) {
				found = append(found, u)
			}
		}
		start += len(list.Resources)
		if len(list.Resources) == 0 || start > list.TotalResults {
			return found, nil
		}
	}
}

// providerConfig reads /ServiceProviderConfig once; a failed read is retried next time.
func (c *Client) providerConfig(ctx context.Context) (providerConfig, error) {
	c.mu.Lock()
	if c.config != nil {
		defer c.mu.Unlock()
		return *c.config, nil
	}
	c.mu.Unlock()

	op := "read ServiceProviderConfig"
	_, raw, err := c.do(ctx, op, http.MethodGet, "/ServiceProviderConfig", nil, nil)
	if err != nil {
		return providerConfig{}, err
	}
	cfg, err := parseProviderConfig(raw.body)
	if err != nil {
		return providerConfig{}, c.garbage(op, raw, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.config == nil {
		c.config = &cfg
	}
	return *c.config, nil
}

// op names an operation for errors: "scim-github: deactivate 2819c223".
func (c *Client) op(what string) string {
	if strings.HasPrefix(c.name, "scim") {
		return c.name + ": " + what
	}
	return "scim " + c.name + ": " + what
}
