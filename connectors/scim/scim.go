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
	"maps"
	"net/http"
	"net/url"
	"slices"
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

var (
	_ control.Target = (*Client)(nil)
	_ control.Prober = (*Client)(nil)
)

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
// if HR sent one and it reads back, else by userName and by email, both
// asked (or, for an app without filtering, one scan of every page matched
// here). "No account" is claimed only when every lookup answered cleanly
// and found no one; the error then says what was searched. A list whose
// paging cannot be trusted (an app ignoring startIndex, a filter it did not
// apply) is an unexpected answer, never "no account".
func (c *Client) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	var searched []string
	hint := p.Hints[c.name]
	if hint != "" {
		u, raw, err := c.getUser(ctx, "resolve "+hint, hint)
		if err == nil {
			return c.account(u), nil
		}
		if !errors.Is(err, control.ErrNotFound) {
			return control.Account{}, err
		}
		searched = append(searched, fmt.Sprintf("GET /Users/%s (the hint): HTTP %d, the app's SCIM not-found", hint, raw.status))
	}
	if p.Email == "" {
		if hint != "" {
			return control.Account{}, c.noAccount("resolve "+hint, searched)
		}
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: c.op("resolve " + p.EmployeeID), Err: errors.New("the person has no email and no hint for this app")}
	}
	op := "resolve " + p.Email
	cfg, err := c.providerConfig(ctx)
	if err != nil {
		return control.Account{}, err
	}
	var found []user
	add := func(users []user) {
		for _, u := range users {
			if !slices.ContainsFunc(found, func(f user) bool { return f.ID == u.ID }) {
				found = append(found, u)
			}
		}
	}
	if cfg.filterSupported {
		// The two lookups are independent: both at once, read in order.
		filters := []string{`userName eq ` + quote(p.Email), `emails.value eq ` + quote(p.Email)}
		type result struct {
			users []user
			line  string
			err   error
		}
		results := make([]result, len(filters))
		var wg sync.WaitGroup
		for i, f := range filters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				byUserName := i == 0
				r := &results[i]
				r.users, r.line, r.err = c.listUsers(ctx, op, f, func(u user) bool {
					return (byUserName && strings.EqualFold(u.UserName, p.Email)) || (!byUserName && u.hasEmail(p.Email))
				})
			}()
		}
		wg.Wait()
		for _, r := range results {
			if r.err != nil {
				return control.Account{}, r.err
			}
			searched = append(searched, r.line)
			add(r.users)
		}
	} else {
		users, line, err := c.listUsers(ctx, op, "", func(u user) bool { return strings.EqualFold(u.UserName, p.Email) || u.hasEmail(p.Email) })
		if err != nil {
			return control.Account{}, err
		}
		searched = append(searched, line)
		add(users)
	}
	ids := make([]string, len(found))
	for i, u := range found {
		ids[i] = u.ID
	}
	switch {
	case len(found) == 0:
		return control.Account{}, c.noAccount(op, searched)
	case hint != "":
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: c.op(op), Searched: searched,
			Err: fmt.Errorf("the hint %q names no user, but the email finds %s; correct the hint", hint, strings.Join(ids, ", "))}
	case len(found) == 1:
		return c.account(found[0]), nil
	}
	return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: c.op(op), Searched: searched,
		Err: fmt.Errorf("%d users match %s: %s", len(found), p.Email, strings.Join(ids, ", "))}
}

func (c *Client) noAccount(op string, searched []string) error {
	return &control.Error{Kind: control.ErrNotFound, Op: c.op(op), Searched: searched,
		Err: errors.New("no user: " + strings.Join(searched, "; "))}
}

func (c *Client) account(u user) control.Account {
	return control.Account{Target: c.name, ID: u.ID, Login: u.UserName, Privileges: u.Privileges, Holds: holds(u.Raw)}
}

// Observe reads the user back and says whether the control holds. With a
// control.Memo it leaves the user it read for a GET + PUT enforce.
func (c *Client) Observe(ctx context.Context, name string, acct control.Account, _ control.Params) (control.Observation, error) {
	if err := c.check(name, acct); err != nil {
		return control.Observation{}, err
	}
	u, raw, err := c.getUser(ctx, name+" "+acct.ID, acct.ID)
	call := raw.response()
	if err == nil && name != Delete {
		control.MemoFrom(ctx).Put(c.memoKey(acct.ID), userRead{u: u, raw: raw})
	}
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

	if v, ok := control.MemoFrom(ctx).Take(c.memoKey(id)); ok {
		// What the observe just read. Stale is safe: the If-Match refuses a
		// changed user (where the app gives ETags), and the read-back reads afresh.
		resp, err := c.replace(ctx, op, path, cfg, v.(userRead), active)
		var cerr *control.Error
		if !errors.As(err, &cerr) || cerr.HTTPStatus != http.StatusPreconditionFailed {
			return resp, err
		}
		// The user changed since the observe: read it again and replace once
		// more below; a second 412 fails the control (transient), as always.
	}
	u, raw, err := c.getUser(ctx, op, id)
	if err != nil {
		return control.Response{}, err
	}
	return c.replace(ctx, op, path, cfg, userRead{u: u, raw: raw}, active)
}

// userRead is one GET of a user: parsed, and as it came (for its ETag).
type userRead struct {
	u   user
	raw rawResponse
}

// memoKey names the user an observe leaves in a control.Memo.
func (c *Client) memoKey(id string) string { return "scim " + c.name + " " + id }

// replace PUTs the user read back with active set, unless it is already so.
func (c *Client) replace(ctx context.Context, op, path string, cfg providerConfig, read userRead, active bool) (control.Response, error) {
	u, raw := read.u, read.raw
	if u.Active != nil && *u.Active == active {
		return raw.response(), nil // already so: a PUT would only bump the version
	}
	// Send back what we read, minus what the server owns (RFC 7643 §3.1: id and meta are read-only).
	resource := maps.Clone(u.Raw)
	delete(resource, "meta")
	resource["active"] = active
	var header http.Header
	if etag := raw.header.Get("ETag"); etag != "" && cfg.etagSupported {
		header = http.Header{"If-Match": {etag}}
	}
	resp, _, err := c.do(ctx, op, http.MethodPut, path, resource, header)
	return resp, err
}

// getUser reads one user by id; raw is what came back, also on failure.
func (c *Client) getUser(ctx context.Context, op, id string) (user, rawResponse, error) {
	_, raw, err := c.do(ctx, op, http.MethodGet, "/Users/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return user{}, raw, err
	}
	u, err := parseUser(raw.body)
	if err != nil {
		return user{}, raw, c.garbage(op, raw, err)
	}
	return u, raw, nil
}

// pageSize is how many users one list request asks for; maxPages bounds a scan.
const (
	pageSize = 100
	maxPages = 1000
)

// listUsers reads every page of GET /Users (with filter, when not empty)
// and returns the users match accepts, with a line for Searched. Each page
// must be the page asked for: the startIndex, itemsPerPage and totalResults
// it reports are checked, and a page that repeats a user already read means
// the app ignores startIndex. With a filter, every user returned must match
// it. Anything else is an unexpected answer: a partial list is never "none".
func (c *Client) listUsers(ctx context.Context, op, filter string, match func(user) bool) ([]user, string, error) {
	var found []user
	seen := map[string]bool{}
	total, pages := -1, 0
	endpoint := "GET /Users"
	for start := 1; ; pages++ {
		if pages == maxPages {
			return nil, "", c.unexpected(op, endpoint, fmt.Errorf("more than %d pages; the list was not read to its end", maxPages))
		}
		q := url.Values{"startIndex": {fmt.Sprint(start)}, "count": {fmt.Sprint(pageSize)}}
		if filter != "" {
			q.Set("filter", filter)
		}
		endpoint = "GET /Users?" + q.Encode()
		_, raw, err := c.do(ctx, op, http.MethodGet, "/Users?"+q.Encode(), nil, nil)
		if err != nil {
			return nil, "", err
		}
		list, err := parseList(raw.body)
		if err != nil {
			return nil, "", c.garbage(op, raw, err)
		}
		switch {
		case list.StartIndex != nil && *list.StartIndex != start:
			return nil, "", c.unexpected(op, endpoint, fmt.Errorf("asked for startIndex %d, the app answered startIndex %d", start, *list.StartIndex))
		case list.StartIndex == nil && start > 1:
			return nil, "", c.unexpected(op, endpoint, errors.New("a second page without startIndex: the app's paging cannot be checked"))
		case list.ItemsPerPage != nil && *list.ItemsPerPage != len(list.Resources) && *list.ItemsPerPage != pageSize:
			return nil, "", c.unexpected(op, endpoint, fmt.Errorf("itemsPerPage %d, but %d resources came back", *list.ItemsPerPage, len(list.Resources)))
		case total >= 0 && list.TotalResults != total:
			return nil, "", &control.Error{Kind: control.ErrTransient, Op: c.op(op), HTTPStatus: raw.status, RequestID: raw.requestID,
				Err: fmt.Errorf("totalResults changed from %d to %d while paging; read again", total, list.TotalResults)}
		}
		total = list.TotalResults
		for _, u := range list.Resources {
			if seen[u.ID] {
				return nil, "", c.unexpected(op, endpoint, fmt.Errorf("the page at startIndex %d repeats user %s, already read: the app ignores startIndex", start, u.ID))
			}
			seen[u.ID] = true
			switch {
			case match(u):
				found = append(found, u)
			case filter != "":
				return nil, "", c.unexpected(op, endpoint, fmt.Errorf("user %s (%s) does not match the filter: the app did not apply it", u.ID, u.UserName))
			}
		}
		start += len(list.Resources)
		if start > total {
			break
		}
		if len(list.Resources) == 0 {
			return nil, "", c.unexpected(op, endpoint, fmt.Errorf("totalResults is %d but the page at startIndex %d is empty", total, start))
		}
	}
	asked := "GET /Users (every page: the app cannot filter)"
	if filter != "" {
		asked = "GET /Users?filter=" + filter
	}
	return found, fmt.Sprintf("%s: %d of totalResults %d read in %d page(s), %d match", asked, len(seen), total, pages+1, len(found)), nil
}

func (c *Client) unexpected(op, endpoint string, err error) error {
	return &control.Error{Kind: control.ErrUnexpected, Op: c.op(op) + " (" + endpoint + ")", Err: err}
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

// SCIM schema URNs the self-check expects (RFC 7643 §8.7, RFC 7644 §3.4.2).
const (
	schemaProviderConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	schemaResourceType   = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	schemaListResponse   = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
)

// Probe checks the base URL and the credential: /ServiceProviderConfig and
// /ResourceTypes must answer SCIM JSON with their schema URNs (and a User
// resource type at /Users), and GET /Users must answer a ListResponse to
// this credential. A 404, HTML or any other body names the base URL; a 401
// or 403 names the credential.
func (c *Client) Probe(ctx context.Context) (control.Probe, error) {
	var pr control.Probe
	wrong := func(path string, err error) error {
		var cerr *control.Error
		if errors.As(err, &cerr) && cerr.Kind == control.ErrUnauthorized {
			return fmt.Errorf("%s: the credential was refused at %s%s: %w", c.name, c.base, path, err)
		}
		return fmt.Errorf("%s: the base URL %s does not answer with a SCIM API at %s: %w", c.name, c.base, path, err)
	}
	get := func(path, wantSchema string) (map[string]any, error) {
		_, raw, err := c.do(ctx, "probe", http.MethodGet, path, nil, nil)
		if err != nil {
			return nil, wrong(path, err)
		}
		m, err := decodeObject(raw.body)
		if err != nil || !hasSchema(m, wantSchema) {
			return nil, wrong(path, c.unexpected("probe", "GET "+path, fmt.Errorf("the answer does not carry the schema %s", wantSchema)))
		}
		pr.Checks = append(pr.Checks, fmt.Sprintf("GET %s: %d, SCIM %s", path, raw.status, wantSchema))
		return m, nil
	}
	if _, err := get("/ServiceProviderConfig", schemaProviderConfig); err != nil {
		return pr, err
	}
	types, err := get("/ResourceTypes", schemaListResponse)
	if err != nil {
		return pr, err
	}
	users := false
	list, _ := types["Resources"].([]any)
	for _, r := range list {
		m, _ := r.(map[string]any)
		users = users || (hasSchema(m, schemaResourceType) && m["endpoint"] == "/Users")
	}
	if !users {
		pr.Missing = append(pr.Missing, "a User resource type at /Users (GET /ResourceTypes lists none)")
	}
	if _, err := get("/Users?startIndex=1&count=1", schemaListResponse); err != nil {
		return pr, err
	}
	return pr, nil
}

func hasSchema(m map[string]any, urn string) bool {
	list, _ := m["schemas"].([]any)
	for _, s := range list {
		if s == urn {
			return true
		}
	}
	return false
}
