package ldap

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/offboard/offboard/internal/control"
)

var _ control.Lister = (*Client)(nil)

// activeUsers is every person account without ACCOUNTDISABLE (bit 2 of
// userAccountControl, tested with AD's bitwise-AND matching rule).
const activeUsers = "(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2))%s)"

// partitions split the directory by the first character of sAMAccountName.
// An LDAP paging cookie is bound to its connection, so it cannot survive a
// crash; a partition can: the cursor names the next one, and each is read
// whole with the paged search Resolve uses (paging checked the same way).
// The last partition is everything the others do not cover.
var partitions = strings.Split("0123456789abcdefghijklmnopqrstuvwxyz", "")

func partitionFilter(i int) string {
	if i < len(partitions) {
		return fmt.Sprintf("(sAMAccountName=%s*)", partitions[i])
	}
	var or strings.Builder
	for _, p := range partitions {
		or.WriteString("(sAMAccountName=" + p + "*)")
	}
	return "(!(|" + or.String() + "))"
}

// ListActive returns the enabled users of one partition; the cursor is the
// partition's index ("" is the first). limit is not used: a partition is
// read whole, in the server's pages.
func (c *Client) ListActive(ctx context.Context, cursor string, _ int) (control.Page, error) {
	i := 0
	if cursor != "" {
		if _, err := fmt.Sscanf(cursor, "p%d", &i); err != nil || i < 0 || i > len(partitions) {
			return control.Page{}, c.fail("list active users", control.ErrPermanent, fmt.Errorf("cursor %q is not a partition", cursor))
		}
	}
	filter := fmt.Sprintf(activeUsers, partitionFilter(i))
	entries, _, err := c.searchUsers(ctx, "list active users", filter)
	if err != nil {
		return control.Page{}, err
	}
	page := control.Page{Accounts: make([]control.ActiveAccount, 0, len(entries))}
	for _, e := range entries {
		login := e.GetAttributeValue("sAMAccountName")
		if i < len(partitions) && !strings.HasPrefix(strings.ToLower(login), partitions[i]) {
			return control.Page{}, c.fail("list active users", control.ErrUnexpected,
				fmt.Errorf("%s (%s) is outside the partition %s*: the server did not apply the filter", e.DN, login, partitions[i]))
		}
		email := e.GetAttributeValue("mail")
		if email == "" {
			email = e.GetAttributeValue("userPrincipalName")
		}
		if uac, err := strconv.Atoi(e.GetAttributeValue("userAccountControl")); err != nil || uac&uacDisabled != 0 {
			return control.Page{}, c.fail("list active users", control.ErrUnexpected,
				fmt.Errorf("%s has userAccountControl %q: the server did not apply the enabled-only filter", e.DN, e.GetAttributeValue("userAccountControl")))
		}
		page.Accounts = append(page.Accounts, control.ActiveAccount{ID: e.DN, Login: login, Email: email})
	}
	if i < len(partitions) {
		page.Next = fmt.Sprintf("p%d", i+1)
	}
	return page, nil
}
