package awsiam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"github.com/offboard/offboard/internal/control"
)

// Resolve finds the IAM user: the hint for this target if IAM knows it, else
// the user tagged email=<person's email>, else a user named after the email
// (its local part, or the whole address) that carries no other email tag.
//
// "No account" is a claim: it is made only when every path answered (GetUser
// by each name said NoSuchEntity, and ListUsers was walked to its last page
// with each user's tags read), and the error's Searched says so. Any lookup
// that fails is that error, never "no account".
func (c *Client) Resolve(ctx context.Context, p control.Person) (control.Account, error) {
	acct, err := c.Find(ctx, p)
	if err != nil {
		return control.Account{}, err
	}
	return c.Rights(ctx, acct)
}

var _ control.Finder = (*Client)(nil)

// Rights reads the admin rights and holdings of a user Find returned
// (control.Finder). A read that asking again may cure fails it: Temporal
// retries it.
func (c *Client) Rights(ctx context.Context, acct control.Account) (control.Account, error) {
	ctx, rec := withRecorder(ctx)
	name := acct.ID
	// Rights and holdings are independent reads: both at once.
	var againP, againH error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		acct.Holds = c.holds(ctx, name, &againH)
	}()
	acct.Privileges = c.privileges(ctx, name, &againP)
	wg.Wait()
	if again := cmp.Or(againP, againH); again != nil {
		return control.Account{}, classify(c.cfg.Name+": resolve rights and holdings of "+name, again, rec)
	}
	return acct, nil
}

// Find is Resolve without the admin rights and holdings (control.Finder).
func (c *Client) Find(ctx context.Context, p control.Person) (control.Account, error) {
	ctx, rec := withRecorder(ctx)
	var searched []string
	fail := func(subject string, err error) error {
		return classify(c.cfg.Name+": resolve "+subject, err, rec)
	}
	found := func(name string) (control.Account, error) {
		return control.Account{Target: c.cfg.Name, ID: name, Login: name}, nil
	}
	hint := p.Hints[c.cfg.Name]
	if hint != "" {
		out, err := c.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(hint)})
		switch {
		case err == nil:
			return found(aws.ToString(out.User.UserName))
		case !isNoSuchEntity(err):
			return control.Account{}, fail(hint, err)
		}
		searched = append(searched, "GetUser UserName="+hint+" (the hint): NoSuchEntity")
	}
	email := strings.TrimSpace(p.Email)
	if email == "" {
		if hint != "" {
			return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: c.cfg.Name + ": resolve " + hint, Searched: searched,
				Err: errors.New("the hint names no IAM user, and there is no email to look up")}
		}
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: c.cfg.Name + ": resolve " + p.EmployeeID,
			Err: errors.New("no hint and no email: nothing to look the person up by")}
	}
	local, _, _ := strings.Cut(email, "@")

	// Fast path: the user named after the email is usually the one tagged with it
	// (GetUser returns tags; ListUsers does not).
	byName := map[string]string{} // candidate user name → its email tag ("" = none)
	for _, name := range []string{local, email} {
		out, err := c.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(name)})
		if isNoSuchEntity(err) {
			searched = append(searched, "GetUser UserName="+name+": NoSuchEntity")
			continue
		}
		if err != nil {
			return control.Account{}, fail(email, err)
		}
		tag := tagValue(out.User.Tags, "email")
		if strings.EqualFold(tag, email) {
			return found(name)
		}
		byName[name] = tag
		searched = append(searched, fmt.Sprintf("GetUser UserName=%s: exists, email tag %q", name, tag))
	}

	var match string
	users, pages := 0, 0
	in := &iam.ListUsersInput{}
	err := walk("ListUsers", func(marker *string) ([]string, bool, *string, error) {
		in.Marker = marker
		pg, err := c.iam.ListUsers(ctx, in)
		if err != nil {
			return nil, false, nil, err
		}
		pages++
		var names []string
		for _, u := range pg.Users {
			names = append(names, aws.ToString(u.UserName))
		}
		users += len(names)
		for _, name := range names {
			if _, seen := byName[name]; seen || match != "" {
				continue
			}
			tags, err := c.userTags(ctx, name)
			if isNoSuchEntity(err) {
				continue // deleted while we listed: not this person's account any more
			}
			if err != nil {
				return nil, false, nil, err
			}
			if strings.EqualFold(tags["email"], email) {
				match = name
			}
		}
		// Walk to the end even after a match: the paging checks cover the whole list.
		return names, pg.IsTruncated, pg.Marker, nil
	})
	if err != nil {
		return control.Account{}, fail(email, err)
	}
	if match != "" {
		return found(match)
	}
	searched = append(searched, fmt.Sprintf("ListUsers: %d users on %d pages, GetUser on each: none tagged email=%s", users, pages, email))
	for _, name := range []string{local, email} {
		if tag, ok := byName[name]; ok && tag == "" {
			return found(name)
		}
	}
	return control.Account{}, &control.Error{Kind: control.ErrNotFound, Op: c.cfg.Name + ": resolve " + email, Searched: searched,
		Err: errors.New("no IAM user tagged or named for this email")}
}

// adminPolicy is AWS's managed policy that grants everything.
const adminPolicy = "arn:aws:iam::aws:policy/AdministratorAccess"

// privileges reads the admin rights the user holds: AdministratorAccess, or
// any policy (managed or inline, on the user or a group it is in) that
// allows every action on every resource. A read that fails is said too: a
// person whose rights cannot be read is treated as privileged, the safe side.
//
// The user's own policies and each group's are read side by side (at most
// readersPerResolve at once); the lines keep the order of a sequential read.
func (c *Client) privileges(ctx context.Context, user string, again *error) []string {
	var mu sync.Mutex // guards *again
	unknown := func(out *[]string, what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if retryableRead(err, again) {
			return
		}
		*out = append(*out, fmt.Sprintf("aws: admin rights unknown: %s failed (%s)", what, kindOf(err)))
	}
	check := func(out *[]string, holder string, attached []string, inline map[string]string) {
		for _, arn := range attached {
			if arn == adminPolicy {
				*out = append(*out, "aws: AdministratorAccess attached to "+holder)
				continue
			}
			if strings.HasPrefix(arn, "arn:aws:iam::aws:") {
				continue // AWS's other managed policies are not admin
			}
			doc, err := c.managedDocument(ctx, arn)
			if err != nil {
				unknown(out, "GetPolicyVersion "+arn, err)
				continue
			}
			if allowsAll(doc) {
				*out = append(*out, "aws: policy "+arn+" attached to "+holder+" allows *:*")
			}
		}
		for _, name := range slices.Sorted(maps.Keys(inline)) {
			if allowsAll(inline[name]) {
				*out = append(*out, "aws: inline policy "+name+" of "+holder+" allows *:*")
			}
		}
	}
	var g errgroup.Group
	g.SetLimit(readersPerResolve)
	var userOut []string
	g.Go(func() error {
		attached, inline, err := c.userPolicies(ctx, user)
		if err != nil {
			unknown(&userOut, "reading the policies of user "+user, err)
		} else {
			check(&userOut, "user "+user, attached, inline)
		}
		return nil
	})
	var listOut []string
	var groups []string
	in := &iam.ListGroupsForUserInput{UserName: aws.String(user)}
	err := walk("ListGroupsForUser", func(marker *string) ([]string, bool, *string, error) {
		in.Marker = marker
		pg, err := c.iam.ListGroupsForUser(ctx, in)
		if err != nil {
			return nil, false, nil, err
		}
		var names []string
		for _, g := range pg.Groups {
			names = append(names, aws.ToString(g.GroupName))
		}
		groups = append(groups, names...)
		return names, pg.IsTruncated, pg.Marker, nil
	})
	if err != nil {
		unknown(&listOut, "ListGroupsForUser "+user, err)
	}
	groupOut := make([][]string, len(groups))
	for i, group := range groups {
		g.Go(func() error {
			attached, inline, err := c.groupPolicies(ctx, group)
			if err != nil {
				unknown(&groupOut[i], "reading the policies of group "+group, err)
				return nil
			}
			check(&groupOut[i], "group "+group, attached, inline)
			return nil
		})
	}
	_ = g.Wait()
	out := append(userOut, listOut...)
	for _, lines := range groupOut {
		out = append(out, lines...)
	}
	return out
}

// readersPerResolve bounds the IAM reads one resolve makes at once.
const readersPerResolve = 4

// policyLists are the three IAM calls that say which policies a user or a
// group has: attached managed policies, inline policy names, an inline
// policy's document.
type policyLists struct {
	what     string // "User" or "Group", as the API names it
	attached func(marker *string) (arns []string, truncated bool, next *string, err error)
	inline   func(marker *string) (names []string, truncated bool, next *string, err error)
	document func(name string) (string, error)
}

func (c *Client) userPolicies(ctx context.Context, user string) (attached []string, inline map[string]string, err error) {
	return readPolicies(policyLists{
		what: "User",
		attached: func(marker *string) ([]string, bool, *string, error) {
			pg, err := c.iam.ListAttachedUserPolicies(ctx, &iam.ListAttachedUserPoliciesInput{UserName: aws.String(user), Marker: marker})
			if err != nil {
				return nil, false, nil, err
			}
			return policyARNs(pg.AttachedPolicies), pg.IsTruncated, pg.Marker, nil
		},
		inline: func(marker *string) ([]string, bool, *string, error) {
			pg, err := c.iam.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: aws.String(user), Marker: marker})
			if err != nil {
				return nil, false, nil, err
			}
			return pg.PolicyNames, pg.IsTruncated, pg.Marker, nil
		},
		document: func(name string) (string, error) {
			out, err := c.iam.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: aws.String(user), PolicyName: aws.String(name)})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.PolicyDocument), nil
		},
	})
}

func (c *Client) groupPolicies(ctx context.Context, group string) (attached []string, inline map[string]string, err error) {
	return readPolicies(policyLists{
		what: "Group",
		attached: func(marker *string) ([]string, bool, *string, error) {
			pg, err := c.iam.ListAttachedGroupPolicies(ctx, &iam.ListAttachedGroupPoliciesInput{GroupName: aws.String(group), Marker: marker})
			if err != nil {
				return nil, false, nil, err
			}
			return policyARNs(pg.AttachedPolicies), pg.IsTruncated, pg.Marker, nil
		},
		inline: func(marker *string) ([]string, bool, *string, error) {
			pg, err := c.iam.ListGroupPolicies(ctx, &iam.ListGroupPoliciesInput{GroupName: aws.String(group), Marker: marker})
			if err != nil {
				return nil, false, nil, err
			}
			return pg.PolicyNames, pg.IsTruncated, pg.Marker, nil
		},
		document: func(name string) (string, error) {
			out, err := c.iam.GetGroupPolicy(ctx, &iam.GetGroupPolicyInput{GroupName: aws.String(group), PolicyName: aws.String(name)})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.PolicyDocument), nil
		},
	})
}

// readPolicies walks both lists to their end (paging checked by walk) and
// reads every inline policy's document.
func readPolicies(l policyLists) (attached []string, inline map[string]string, err error) {
	err = walk("ListAttached"+l.what+"Policies", func(marker *string) ([]string, bool, *string, error) {
		arns, truncated, next, err := l.attached(marker)
		attached = append(attached, arns...)
		return arns, truncated, next, err
	})
	if err != nil {
		return nil, nil, err
	}
	var names []string
	err = walk("List"+l.what+"Policies", func(marker *string) ([]string, bool, *string, error) {
		page, truncated, next, err := l.inline(marker)
		names = append(names, page...)
		return page, truncated, next, err
	})
	if err != nil {
		return nil, nil, err
	}
	inline = map[string]string{}
	for _, n := range names {
		doc, err := l.document(n)
		if err != nil {
			return nil, nil, err
		}
		inline[n] = doc
	}
	return attached, inline, nil
}

func policyARNs(ps []types.AttachedPolicy) []string {
	arns := make([]string, 0, len(ps))
	for _, p := range ps {
		arns = append(arns, aws.ToString(p.PolicyArn))
	}
	return arns
}

// managedDocument reads a customer managed policy's default version.
func (c *Client) managedDocument(ctx context.Context, arn string) (string, error) {
	p, err := c.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if err != nil {
		return "", err
	}
	v, err := c.iam.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: p.Policy.DefaultVersionId})
	if err != nil {
		return "", err
	}
	return aws.ToString(v.PolicyVersion.Document), nil
}

// allowsAll reports whether a policy document (URL-encoded, as IAM returns
// it) has a statement allowing every action on every resource.
func allowsAll(raw string) bool {
	if dec, err := url.QueryUnescape(raw); err == nil {
		raw = dec
	}
	var doc struct {
		Statement any `json:"Statement"`
	}
	if jsonUnmarshal(raw, &doc) != nil {
		return false
	}
	var stmts []statement
	switch s := doc.Statement.(type) {
	case []any:
		for _, one := range s {
			var st statement
			if remarshal(one, &st) == nil {
				stmts = append(stmts, st)
			}
		}
	case map[string]any:
		var st statement
		if remarshal(s, &st) == nil {
			stmts = append(stmts, st)
		}
	}
	for _, s := range stmts {
		if strings.EqualFold(s.Effect, "Allow") && s.NotAction == nil && len(s.Condition) == 0 && isStar(s.Action) && isStar(s.Resource) {
			return true
		}
	}
	return false
}

// kindOf names an error's kind for people, without its text (which may be long).
// retryableRead keeps the first read failure that asking again may cure
// (throttling, a 5xx, a timeout) in *again and reports it: the resolve then
// fails and is retried, instead of recording rights or holdings as unknown,
// which is what a lasting failure (a 403, a foreign answer) becomes.
func retryableRead(err error, again *error) bool {
	var ce *control.Error
	if !errors.As(err, &ce) {
		ce = classify("", err, &recorder{})
	}
	if !errors.Is(ce, control.ErrTransient) && !errors.Is(ce, control.ErrRateLimited) {
		return false
	}
	if *again == nil {
		*again = err
	}
	return true
}

func kindOf(err error) string {
	var ce *control.Error
	if errors.As(err, &ce) {
		return ce.Kind.Error()
	}
	var apiErr interface{ ErrorCode() string }
	if errors.As(err, &apiErr) && apiErr.ErrorCode() != "" {
		return apiErr.ErrorCode()
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		return fmt.Sprintf("HTTP %d, not an IAM answer", respErr.HTTPStatusCode())
	}
	if isPagingError(err) {
		return err.Error()
	}
	return "no answer"
}

// Probe checks the target's configuration: STS GetCallerIdentity proves the
// credentials (and the assumed role) work and names the account they act in;
// ListUsers proves the endpoint answers as IAM and the read permission is there.
func (c *Client) Probe(ctx context.Context) (control.Probe, error) {
	ctx, rec := withRecorder(ctx)
	var p control.Probe
	id, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		e := classify(c.cfg.Name+": probe: sts:GetCallerIdentity at "+c.endpoint(), err, rec)
		e.Err = fmt.Errorf("%w (%s)", e.Err, probeHint(e))
		return p, e
	}
	acct := aws.ToString(id.Account)
	p.Checks = append(p.Checks, fmt.Sprintf("sts:GetCallerIdentity: %s in account %s", aws.ToString(id.Arn), acct))
	if c.cfg.AccountID != "" && acct != c.cfg.AccountID {
		return p, &control.Error{Kind: control.ErrPermanent, Op: c.cfg.Name + ": probe",
			Err: fmt.Errorf("the credentials act in account %s, but the target is configured for account %s", acct, c.cfg.AccountID)}
	}
	_, err = c.iam.ListUsers(ctx, &iam.ListUsersInput{MaxItems: aws.Int32(1)})
	switch {
	case err == nil:
		p.Checks = append(p.Checks, "iam:ListUsers: answered as IAM")
	case isUnauthorized(err):
		p.Missing = append(p.Missing, "iam:ListUsers")
	default:
		e := classify(c.cfg.Name+": probe: iam:ListUsers at "+c.endpoint(), err, rec)
		e.Err = fmt.Errorf("%w (%s)", e.Err, probeHint(e))
		return p, e
	}
	return p, nil
}

func (c *Client) endpoint() string {
	if c.cfg.Endpoint != "" {
		return c.cfg.Endpoint
	}
	return "the AWS endpoint for " + c.cfg.Region
}

func isUnauthorized(err error) bool {
	var apiErr interface{ ErrorCode() string }
	return errors.As(err, &apiErr) && (apiErr.ErrorCode() == "AccessDenied" || apiErr.ErrorCode() == "AccessDeniedException")
}

// probeHint says in a few words what a failed probe most likely means.
func probeHint(e *control.Error) string {
	switch {
	case errors.Is(e, control.ErrUnauthorized):
		return "the credentials were refused: check the access key, secret and role"
	case errors.Is(e, control.ErrUnexpected), errors.Is(e, control.ErrPermanent):
		return "the endpoint did not answer as AWS IAM/STS: check the endpoint URL"
	default:
		return "the endpoint could not be reached"
	}
}
