package scim

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/offboard/offboard/internal/control"
)

var _ control.Lister = (*Client)(nil)

// ListActive returns one page of users with `active eq true` (or, for an app
// that cannot filter, every user, keeping the active ones). The cursor is
// the next startIndex. The page must be the one asked for (startIndex
// checked), and with a filter every user must be active: an app that ignores
// either would make a partial list read as the whole.
func (c *Client) ListActive(ctx context.Context, cursor string, limit int) (control.Page, error) {
	if limit <= 0 || limit > pageSize {
		limit = pageSize
	}
	start := 1
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 1 {
			return control.Page{}, &control.Error{Kind: control.ErrPermanent, Op: c.op("list active users"), Err: fmt.Errorf("cursor %q is not a startIndex", cursor)}
		}
		start = n
	}
	cfg, err := c.providerConfig(ctx)
	if err != nil {
		return control.Page{}, err
	}
	q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(limit)}}
	if cfg.filterSupported {
		q.Set("filter", "active eq true")
	}
	op := "list active users"
	endpoint := "GET /Users?" + q.Encode()
	_, raw, err := c.do(ctx, op, http.MethodGet, "/Users?"+q.Encode(), nil, nil)
	if err != nil {
		return control.Page{}, err
	}
	list, err := parseList(raw.body)
	if err != nil {
		return control.Page{}, c.garbage(op, raw, err)
	}
	switch {
	case list.StartIndex != nil && *list.StartIndex != start:
		return control.Page{}, c.unexpected(op, endpoint, fmt.Errorf("asked for startIndex %d, the app answered startIndex %d", start, *list.StartIndex))
	case list.StartIndex == nil && start > 1:
		return control.Page{}, c.unexpected(op, endpoint, fmt.Errorf("a page without startIndex: the app's paging cannot be checked"))
	case len(list.Resources) > limit:
		return control.Page{}, c.unexpected(op, endpoint, fmt.Errorf("asked for %d users, %d came back", limit, len(list.Resources)))
	}
	page := control.Page{Accounts: []control.ActiveAccount{}}
	for _, u := range list.Resources {
		active := u.Active == nil || *u.Active // no "active" attribute: the app cannot disable, so the user can sign in
		if !active {
			if cfg.filterSupported {
				return control.Page{}, c.unexpected(op, endpoint, fmt.Errorf("user %s (%s) is inactive: the app did not apply the filter", u.ID, u.UserName))
			}
			continue
		}
		a := control.ActiveAccount{ID: u.ID, Login: u.UserName}
		if len(u.Emails) > 0 {
			a.Email = u.Emails[0]
		}
		page.Accounts = append(page.Accounts, a)
	}
	next := start + len(list.Resources)
	switch {
	case next <= list.TotalResults && len(list.Resources) == 0:
		return control.Page{}, c.unexpected(op, endpoint, fmt.Errorf("totalResults is %d but the page at startIndex %d is empty", list.TotalResults, start))
	case next <= list.TotalResults:
		page.Next = strconv.Itoa(next)
	}
	return page, nil
}
