package entra

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/organization"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/offboard/offboard/internal/control"
)

var _ control.Prober = (*Client)(nil)

// pagingError is a collection that cannot be trusted to be whole: a
// nextLink served again (a server that ignores $skiptoken serves page 1
// again) or an object listed twice.
type pagingError struct{ what, msg string }

func (e *pagingError) Error() string {
	return e.what + ": " + e.msg + ": the list cannot be trusted to be whole"
}

// Resolve finds the person's user: by the hint (object id or UPN) when HR
// carried one, else by mail, userPrincipalName or otherMails, and by a
// direct GET /users/{email} (a UPN) when the search finds nothing.
//
// "No account" is a claim: it is made only when Graph itself answered
// Request_ResourceNotFound for the direct GET and the search, walked to its
// last page, found nobody; the error's Searched says so. Any lookup that
// fails is that error, never "no account".
func (c *Client) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	acct, err := c.Find(ctx, p)
	if err != nil {
		return control.Account{}, err
	}
	return c.Rights(ctx, acct)
}

var _ control.Finder = (*Client)(nil)

// Rights reads the directory roles and holdings of a user Find returned
// (control.Finder), as account does.
func (c *Client) Rights(ctx context.Context, acct control.Account) (control.Account, error) {
	u := models.NewUser()
	u.SetId(&acct.ID)
	u.SetUserPrincipalName(&acct.Login)
	return c.account(ctx, "entra: resolve rights of "+acct.ID, u)
}

// Find is Resolve without the directory roles and holdings (control.Finder).
func (c *Client) Find(ctx context.Context, p control.Person) (control.Account, error) {
	var searched []string
	hint := p.Hints[c.name]
	if hint != "" {
		op := "entra: resolve " + hint
		u, _, err := c.getUser(ctx, op, hint, "id", "userPrincipalName")
		switch {
		case err == nil:
			return c.found(op, u)
		case !gone(err):
			return control.Account{}, err
		}
		searched = append(searched, "GET /users/"+hint+" (the hint): Request_ResourceNotFound")
	}
	email := strings.TrimSpace(p.Email)
	if email == "" {
		if hint != "" {
			return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: "entra: resolve " + hint, Searched: searched,
				Err: errors.New("the hint names no user, and there is no email to look up")}
		}
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: "entra: resolve employee " + p.EmployeeID,
			Err: errors.New("no email and no hint: nothing to look the person up by")}
	}
	op := "entra: resolve " + email
	quoted := "'" + strings.ReplaceAll(email, "'", "''") + "'"
	filter := "mail eq " + quoted + " or userPrincipalName eq " + quoted + " or otherMails/any(m:m eq " + quoted + ")"
	found, pages, err := c.searchUsers(ctx, op, filter)
	if err != nil {
		return control.Account{}, err
	}
	searched = append(searched, fmt.Sprintf("GET /users?$filter=%s: %d users on %d pages", filter, len(found), pages))
	switch {
	case len(found) == 1:
		return c.found(op, found[0])
	case len(found) > 1:
		var upns []string
		for _, u := range found {
			upns = append(upns, deref(u.GetUserPrincipalName()))
		}
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: op,
			Err: fmt.Errorf("%d users have this mail, userPrincipalName or otherMails (%s); set a hint", len(found), strings.Join(upns, ", "))}
	}
	// A search can miss what a direct read finds (an index that lags, a
	// filter the server ignores): read the email as a UPN too.
	u, _, err := c.getUser(ctx, op, email, "id", "userPrincipalName")
	switch {
	case err == nil:
		return c.found(op, u)
	case !gone(err):
		return control.Account{}, err
	}
	searched = append(searched, "GET /users/"+email+": Request_ResourceNotFound")
	return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: op, Searched: searched,
		Err: errors.New("no user has this mail, userPrincipalName or otherMails")}
}

// found is the account of u, its rights not yet read.
func (c *Client) found(op string, u models.Userable) (control.Account, error) {
	if u == nil || deref(u.GetId()) == "" {
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New("user without an id")}
	}
	return control.Account{Target: c.name, ID: deref(u.GetId()), Login: deref(u.GetUserPrincipalName())}, nil
}

// searchUsers runs a $filter over /users, following every nextLink.
func (c *Client) searchUsers(ctx context.Context, op, filter string) ([]models.Userable, int, error) {
	var found []models.Userable
	pages := 0
	_, err := c.call(ctx, op, permRead, func(ctx context.Context) error {
		page, err := c.graph.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Filter: &filter, Select: []string{"id", "userPrincipalName"}},
		})
		links, ids := map[string]bool{}, map[string]bool{}
		for err == nil {
			if page == nil || page.GetValue() == nil {
				return errNoPage
			}
			pages++
			for _, u := range page.GetValue() {
				id := deref(u.GetId())
				if ids[id] {
					return &pagingError{what: "users", msg: id + " listed twice"}
				}
				ids[id] = true
				found = append(found, u)
			}
			next := deref(page.GetOdataNextLink())
			switch {
			case next == "":
				return nil
			case links[next]:
				return &pagingError{what: "users", msg: "@odata.nextLink repeated"}
			case pages >= maxPages:
				return fmt.Errorf("more than %d pages of users", maxPages)
			}
			links[next] = true
			page, err = c.graph.Users().WithUrl(next).Get(ctx, nil)
		}
		return err
	})
	return found, pages, err
}

// privileges lists the directory roles the user holds, as admin rights for
// people. A read that fails is said too: a person whose roles cannot be
// read is treated as privileged, the safe side.
func (c *Client) privileges(ctx context.Context, op, id string, again *error) []string {
	m, _, err := c.memberOf(ctx, op, permReadRoles, id)
	if err != nil && retryableRead(err, again) {
		return nil
	}
	if err != nil {
		var ce *control.Error
		kind := err.Error()
		if errors.As(err, &ce) {
			kind = ce.Kind.Error()
		}
		return []string{"entra: admin rights unknown: GET /users/" + id + "/memberOf failed (" + kind + ")"}
	}
	var out []string
	for _, r := range m.roles {
		out = append(out, "entra directory role "+roleName(r))
	}
	return out
}

// retryableRead keeps the first read failure that asking again may cure
// (throttling, a 5xx, a timeout) in *again and reports it: the resolve then
// fails and is retried, instead of recording rights or holdings as unknown,
// which is what a lasting failure (a 403, a foreign answer) becomes.
func retryableRead(err error, again *error) bool {
	if !errors.Is(err, control.ErrTransient) && !errors.Is(err, control.ErrRateLimited) {
		return false
	}
	if *again == nil {
		*again = err
	}
	return true
}

// goneOrUnexpected settles a Request_ResourceNotFound from a sub-resource of
// the user (memberOf): the user is gone only if GET /users/{id} says so too;
// a user that reads back makes the answer unexpected, naming the endpoint.
func (c *Client) goneOrUnexpected(ctx context.Context, op, id, endpoint string, err error) (control.Observation, error) {
	if err = c.subResource(ctx, op, id, endpoint, err); gone(err) {
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "GET /users/" + id + ": Request_ResourceNotFound"}, nil
	}
	return control.Observation{}, err
}

// subResource returns err, unless it is a not-found from a call under the
// user: then the user itself is read, and only its own not-found stands.
func (c *Client) subResource(ctx context.Context, op, id, endpoint string, err error) error {
	if !gone(err) {
		return err
	}
	_, resp, uerr := c.getUser(ctx, op, id, "id")
	if uerr != nil {
		return uerr // the user's own not-found, or why it could not be read
	}
	return &control.Error{Kind: control.ErrUnexpected, Op: op, HTTPStatus: resp.HTTPStatus, RequestID: resp.RequestID, Digest: resp.Digest,
		// %v, not %w: this answer must not pass for the not-found it contradicts.
		Err: fmt.Errorf("%s answered not found, but GET /users/%s reads the user: %v", endpoint, id, err)}
}

// Probe checks the target's configuration: GET /organization proves the
// token is accepted and the base URL answers as Microsoft Graph (and names
// the tenant), GET /users?$top=1 that the app may read users.
func (c *Client) Probe(ctx context.Context) (control.Probe, error) {
	var p control.Probe
	op := "entra " + c.name + ": probe: GET /organization at " + c.baseURL
	var orgs []models.Organizationable
	_, err := c.call(ctx, op, "Organization.Read.All (or User.Read.All)", func(ctx context.Context) error {
		res, err := c.graph.Organization().Get(ctx, &organization.OrganizationRequestBuilderGetRequestConfiguration{
			QueryParameters: &organization.OrganizationRequestBuilderGetQueryParameters{Select: []string{"id", "displayName"}},
		})
		if err == nil {
			orgs = res.GetValue()
		}
		return err
	})
	switch {
	case errors.Is(err, control.ErrUnauthorized) && forbidden(err):
		p.Missing = append(p.Missing, "Organization.Read.All")
	case err != nil:
		return p, probeError(err)
	case len(orgs) == 0 || deref(orgs[0].GetId()) == "":
		return p, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: errors.New("the answer names no tenant: the base URL does not answer as Microsoft Graph")}
	default:
		tenant := deref(orgs[0].GetId())
		if c.tenantID != "" && !strings.EqualFold(tenant, c.tenantID) {
			return p, &control.Error{Kind: control.ErrPermanent, Op: op, Err: fmt.Errorf("the token is for tenant %s, but the target is configured for %s", tenant, c.tenantID)}
		}
		p.Checks = append(p.Checks, fmt.Sprintf("GET /organization: 200, tenant %s (%s)", tenant, deref(orgs[0].GetDisplayName())))
	}
	top := int32(1)
	_, err = c.call(ctx, "entra "+c.name+": probe: GET /users?$top=1", permRead, func(ctx context.Context) error {
		_, err := c.graph.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Top: &top, Select: []string{"id"}},
		})
		return err
	})
	switch {
	case errors.Is(err, control.ErrUnauthorized) && forbidden(err):
		p.Missing = append(p.Missing, permRead)
	case err != nil:
		return p, probeError(err)
	default:
		p.Checks = append(p.Checks, "GET /users?$top=1: 200, users readable")
	}
	return p, nil
}

func forbidden(err error) bool {
	var ce *control.Error
	return errors.As(err, &ce) && ce.HTTPStatus == 403
}

// probeError adds what a failed probe most likely means.
func probeError(err error) error {
	var ce *control.Error
	if !errors.As(err, &ce) {
		return err
	}
	hint := "Graph could not be reached"
	switch {
	case errors.Is(err, control.ErrUnauthorized):
		hint = "the credentials were refused: check the tenant id, client id and secret"
	case errors.Is(err, control.ErrUnexpected), errors.Is(err, control.ErrPermanent), errors.Is(err, control.ErrNotFound),
		ce.HTTPStatus >= 200 && ce.HTTPStatus < 300: // an unreadable 200 is retried, but at a probe it names the URL
		hint = "the base URL did not answer as Microsoft Graph: check it"
	}
	out := *ce
	out.Err = fmt.Errorf("%w (%s)", ce.Err, hint)
	return &out
}
