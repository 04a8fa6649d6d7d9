package awsiam

import (
	"context"
	"fmt"
)

// holds says what the user holds in IAM, for the approver's plan: groups,
// long-lived credentials (ids only; an access key id shows its last four
// characters), MFA devices and policies. A kind that cannot be listed is
// said, with the kind of failure, so the plan never shows less than is there.
func (c *Client) holds(ctx context.Context, user string, again *error) []string {
	ctx, rec := withRecorder(ctx)
	r := &run{c: c, ctx: ctx, rec: rec, user: user}
	var out []string
	unread := func(plural string, err error) {
		if retryableRead(err, again) {
			return
		}
		out = append(out, fmt.Sprintf("%s could not be read: %s", plural, kindOf(err)))
	}
	if groups, err := r.groups(); err != nil {
		unread("groups", err)
	} else {
		for _, g := range groups {
			out = append(out, "group "+g)
		}
	}
	for _, k := range []struct {
		kind string
		cred credKind
		show func(id string) string
	}{
		{"access key", accessKeys, lastFour},
		{"ssh key", sshKeys, nil},
		{"service credential", serviceCreds, nil},
		{"signing certificate", signingCerts, nil},
	} {
		items, err := k.cred.list(r)
		if err != nil {
			unread(k.kind+"s", err)
			continue
		}
		for _, it := range items {
			id := it.id
			if k.show != nil {
				id = k.show(id)
			}
			out = append(out, fmt.Sprintf("%s %s (%s)", k.kind, id, it.status))
		}
	}
	if serials, err := r.mfaSerials(); err != nil {
		unread("MFA devices", err)
	} else {
		for _, s := range serials {
			out = append(out, "MFA device "+s)
		}
	}
	attached, inline, err := r.policies()
	if err != nil {
		unread("policies", err)
	}
	for _, arn := range attached {
		out = append(out, "policy "+arn)
	}
	for _, name := range withoutDenyAll(inline) {
		out = append(out, "policy "+name+" (inline)")
	}
	return out
}

// lastFour shows an access key id as "…" and its last four characters: the
// id is not the secret, but a whole one in an approval mail invites misuse.
func lastFour(id string) string {
	if len(id) <= 4 {
		return id
	}
	return "…" + id[len(id)-4:]
}
