package awsiam

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// holds says what the user holds in IAM, for the approver's plan: groups,
// long-lived credentials (ids only; an access key id shows its last four
// characters), MFA devices and policies. A kind that cannot be listed is
// said, with the kind of failure, so the plan never shows less than is there.
// The kinds are listed side by side (at most readersPerResolve at once), and
// said in a fixed order.
func (c *Client) holds(ctx context.Context, user string, again *error) []string {
	ctx, rec := withRecorder(ctx)
	r := &run{c: c, ctx: ctx, rec: rec, user: user}
	var mu sync.Mutex // guards *again
	unread := func(out *[]string, plural string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if retryableRead(err, again) {
			return
		}
		*out = append(*out, fmt.Sprintf("%s could not be read: %s", plural, kindOf(err)))
	}
	creds := []struct {
		kind string
		cred credKind
		show func(id string) string
	}{
		{"access key", accessKeys, lastFour},
		{"ssh key", sshKeys, nil},
		{"service credential", serviceCreds, nil},
		{"signing certificate", signingCerts, nil},
	}
	reads := []func(out *[]string){
		func(out *[]string) {
			groups, err := r.groups()
			if err != nil {
				unread(out, "groups", err)
				return
			}
			for _, g := range groups {
				*out = append(*out, "group "+g)
			}
		},
	}
	for _, k := range creds {
		reads = append(reads, func(out *[]string) {
			items, err := k.cred.list(r)
			if err != nil {
				unread(out, k.kind+"s", err)
				return
			}
			for _, it := range items {
				id := it.id
				if k.show != nil {
					id = k.show(id)
				}
				*out = append(*out, fmt.Sprintf("%s %s (%s)", k.kind, id, it.status))
			}
		})
	}
	reads = append(reads, func(out *[]string) {
		serials, err := r.mfaSerials()
		if err != nil {
			unread(out, "MFA devices", err)
			return
		}
		for _, s := range serials {
			*out = append(*out, "MFA device "+s)
		}
	}, func(out *[]string) {
		attached, inline, err := r.policies()
		if err != nil {
			unread(out, "policies", err)
		}
		for _, arn := range attached {
			*out = append(*out, "policy "+arn)
		}
		for _, name := range withoutDenyAll(inline) {
			*out = append(*out, "policy "+name+" (inline)")
		}
	})
	parts := make([][]string, len(reads))
	var g errgroup.Group
	g.SetLimit(readersPerResolve)
	for i, read := range reads {
		g.Go(func() error { read(&parts[i]); return nil })
	}
	_ = g.Wait()
	var out []string
	for _, p := range parts {
		out = append(out, p...)
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
