package okta

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	oktasdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"

	"github.com/offboard/offboard/internal/control"
)

var _ control.Lister = (*Client)(nil)

// activeFilter is every user not DEPROVISIONED. It uses list-users `filter`
// (Okta's up-to-date index), not `search`, which may lag.
const activeFilter = `status ne "DEPROVISIONED"`

// ListActive returns one page of users that are not deprovisioned. The
// cursor is Okta's `after` value from the Link rel="next" header.
func (c *Client) ListActive(ctx context.Context, cursor string, limit int) (control.Page, error) {
	if limit <= 0 || limit > 200 {
		limit = 200
	}
	op := c.op("list active users after", fmt.Sprintf("%q", cursor))
	qp := []query.ParamOptions{query.WithFilter(activeFilter), query.WithLimit(int64(limit))}
	if cursor != "" {
		qp = append(qp, query.WithAfter(cursor))
	}
	var users []*oktasdk.User
	var r *oktasdk.Response
	_, err := c.call(ctx, op, scopeUsersRead, func(ctx context.Context) error {
		var err error
		users, r, err = c.sdk.User.ListUsers(ctx, query.NewQueryParams(qp...))
		if nerr := notAList(ctx, op, err); nerr != nil {
			return nerr // an empty or null page must not read as "nobody active"
		}
		return err
	})
	if err != nil {
		return control.Page{}, err
	}
	page := control.Page{Accounts: make([]control.ActiveAccount, 0, len(users))}
	for _, u := range users {
		if u.Id == "" {
			return control.Page{}, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: errors.New("a user without an id")}
		}
		if u.Status == statusDeprovisioned {
			continue // the filter should have left it out; it is not active either way
		}
		page.Accounts = append(page.Accounts, control.ActiveAccount{
			ID: u.Id, Login: profileString(u, "login"), Email: profileString(u, "email"),
			EmployeeID: profileString(u, "employeeNumber"),
			Name:       strings.TrimSpace(profileString(u, "firstName") + " " + profileString(u, "lastName")),
		})
	}
	if r != nil && r.HasNextPage() {
		next, err := url.Parse(r.NextPage)
		if err != nil || next.Query().Get("after") == "" {
			return control.Page{}, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: fmt.Errorf("next link %q has no after cursor", r.NextPage)}
		}
		page.Next = next.Query().Get("after")
		if page.Next == cursor {
			return control.Page{}, &control.Error{Kind: control.ErrUnexpected, Op: op,
				Err: fmt.Errorf("the next link repeats cursor %q: the server does not honour the paging cursor", cursor)}
		}
	}
	return page, nil
}
