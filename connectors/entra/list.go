package entra

import (
	"context"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/offboard/offboard/internal/control"
)

var _ control.Lister = (*Client)(nil)

// enabledFilter is every user who can sign in.
const enabledFilter = "accountEnabled eq true"

// ListActive returns one page of users with accountEnabled eq true. The
// cursor is Graph's @odata.nextLink. A nextLink equal to the one asked for
// (a server ignoring $skiptoken), or a disabled user in a filtered page (a
// server ignoring $filter), is an unexpected answer: a partial list must not
// read as the whole tenant.
func (c *Client) ListActive(ctx context.Context, cursor string, limit int) (control.Page, error) {
	if limit <= 0 || limit > 999 {
		limit = 999
	}
	op := c.name + ": list enabled users"
	var page models.UserCollectionResponseable
	_, err := c.call(ctx, op, permRead, func(ctx context.Context) error {
		var err error
		if cursor == "" {
			filter, top := enabledFilter, int32(limit)
			page, err = c.graph.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
				QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Filter: &filter, Top: &top,
					Select: []string{"id", "userPrincipalName", "mail", "displayName", "accountEnabled"}},
			})
		} else {
			page, err = c.graph.Users().WithUrl(cursor).Get(ctx, nil)
		}
		if err == nil && (page == nil || page.GetValue() == nil) {
			err = errNoPage
		}
		if err == nil && cursor != "" && deref(page.GetOdataNextLink()) == cursor {
			err = &pagingError{what: "users", msg: "@odata.nextLink repeated"}
		}
		if err == nil {
			for _, u := range page.GetValue() {
				if e := u.GetAccountEnabled(); e != nil && !*e {
					err = &pagingError{what: "users", msg: deref(u.GetId()) + " is disabled: the server did not apply " + enabledFilter}
					break
				}
			}
		}
		return err
	})
	if err != nil {
		return control.Page{}, err
	}
	out := control.Page{Accounts: []control.ActiveAccount{}, Next: deref(page.GetOdataNextLink())}
	for _, u := range page.GetValue() {
		out.Accounts = append(out.Accounts, control.ActiveAccount{
			ID: deref(u.GetId()), Login: deref(u.GetUserPrincipalName()), Email: deref(u.GetMail()),
			Name: deref(u.GetDisplayName()),
		})
	}
	return out, nil
}
