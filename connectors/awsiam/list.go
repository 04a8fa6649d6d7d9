package awsiam

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/offboard/offboard/internal/control"
)

var _ control.Lister = (*Client)(nil)

// ListActive returns one page of IAM users (ListUsers, Marker as cursor)
// that hold an active credential: an access key with Status Active or a
// console password (login profile). A user with neither cannot sign in or
// call the API, so it is left out. A Marker served again is a paging error.
func (c *Client) ListActive(ctx context.Context, cursor string, limit int) (control.Page, error) {
	ctx, rec := withRecorder(ctx)
	op := c.cfg.Name + ": list active users"
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	in := &iam.ListUsersInput{MaxItems: aws.Int32(int32(limit))}
	if cursor != "" {
		in.Marker = aws.String(cursor)
	}
	pg, err := c.iam.ListUsers(ctx, in)
	if err != nil {
		return control.Page{}, classify(op, err, rec)
	}
	page := control.Page{Accounts: []control.ActiveAccount{}, Calls: 1}
	for _, u := range pg.Users {
		name := aws.ToString(u.UserName)
		active, calls, err := c.hasActiveCredential(ctx, name)
		page.Calls += calls
		if isNoSuchEntity(err) {
			continue // deleted while we listed: no access left
		}
		if err != nil {
			return control.Page{}, classify(op+" ("+name+")", err, rec)
		}
		if active {
			page.Accounts = append(page.Accounts, control.ActiveAccount{ID: name, Login: name})
		}
	}
	if pg.IsTruncated {
		next := aws.ToString(pg.Marker)
		switch {
		case next == "":
			return control.Page{}, classify(op, &pagingError{"ListUsers", "IsTruncated without a Marker"}, rec)
		case next == cursor:
			return control.Page{}, classify(op, &pagingError{"ListUsers", fmt.Sprintf("Marker %q served again", cursor)}, rec)
		}
		page.Next = next
	}
	return page, nil
}

// hasActiveCredential: an Active access key, else a login profile; and how
// many calls it took.
func (c *Client) hasActiveCredential(ctx context.Context, user string) (bool, int, error) {
	active, calls := false, 0
	in := &iam.ListAccessKeysInput{UserName: aws.String(user)}
	err := walk("ListAccessKeys", func(marker *string) ([]string, bool, *string, error) {
		in.Marker = marker
		calls++
		pg, err := c.iam.ListAccessKeys(ctx, in)
		if err != nil {
			return nil, false, nil, err
		}
		var ids []string
		for _, k := range pg.AccessKeyMetadata {
			ids = append(ids, aws.ToString(k.AccessKeyId))
			active = active || k.Status == types.StatusTypeActive
		}
		return ids, pg.IsTruncated, pg.Marker, nil
	})
	if err != nil || active {
		return active, calls, err
	}
	calls++
	_, err = c.iam.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(user)})
	switch {
	case err == nil:
		return true, calls, nil
	case isNoSuchEntity(err):
		// No console password. The user itself may also be gone; either way no credential.
		return false, calls, nil
	}
	return false, calls, err
}
