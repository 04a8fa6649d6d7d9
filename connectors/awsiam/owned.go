package awsiam

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/offboard/offboard/internal/control"
)

// Non-human identities (issue 15): IAM service users and Secrets Manager
// secrets whose owner tag names the leaver, and break-glass IAM users.

var _ control.Owner = (*Client)(nil)

// Steps of non-human actions.
const (
	RetagOwner              = "retag_owner"
	RotateAccessKeys        = "rotate_access_keys"
	DeactivateOldAccessKeys = "deactivate_old_access_keys"
	DeleteOldAccessKeys     = "delete_old_access_keys"
	RotateSecret            = "rotate_secret"
	ScheduleDeletion        = "schedule_deletion"
	RotatePassword          = "rotate_password"
)

// recoveryWindow is how long a decommissioned secret can still be restored.
const recoveryWindow = 30

// clockSkew is how far IAM's clock and ours may disagree when a key's
// CreateDate is compared with the rotation's start.
const clockSkew = 5 * time.Minute

// newSecretsManager builds the Secrets Manager client on the account's
// credentials. With a custom IAM endpoint (the sandbox) and no Secrets
// Manager endpoint there is none: it would go to the real AWS.
func newSecretsManager(cfg Config, creds aws.CredentialsProvider, doer bufferedBody) *secretsmanager.Client {
	if cfg.Endpoint != "" && cfg.SecretsEndpoint == "" {
		return nil
	}
	opts := secretsmanager.Options{Region: cfg.Region, Credentials: creds, RetryMaxAttempts: 1, HTTPClient: doer,
		APIOptions: []func(*middleware.Stack) error{recordResponses, requireLists}} // ListSecrets too: an empty 200 is not "owns no secrets"
	if cfg.SecretsEndpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.SecretsEndpoint)
	}
	return secretsmanager.New(opts)
}

func (c *Client) ownerTag() string { return cmp.Or(c.cfg.OwnerTag, "owner") }

// OwnedSteps lists the steps of each action this target can carry out.
func (c *Client) OwnedSteps(kind string, action control.Action) []control.Step {
	now := func(names ...string) []control.Step {
		var out []control.Step
		for _, n := range names {
			out = append(out, control.Step{Name: n})
		}
		return out
	}
	switch {
	case kind == control.KindServiceUser && action == control.Reown:
		return now(RetagOwner)
	case kind == control.KindServiceUser && action == control.Rotate:
		return []control.Step{{Name: RotateAccessKeys}, {Name: DeactivateOldAccessKeys, After: control.Grace}, {Name: DeleteOldAccessKeys, After: control.Purge}}
	case kind == control.KindServiceUser && action == control.Decommission:
		return now(DeactivateAccessKeys, DeleteLoginProfile)
	case kind == control.KindSecret && action == control.Reown:
		return now(RetagOwner)
	case kind == control.KindSecret && action == control.Rotate:
		return now(RotateSecret)
	case kind == control.KindSecret && action == control.Decommission:
		return now(ScheduleDeletion)
	case kind == control.KindBreakGlass && action == control.Rotate:
		return now(RotatePassword)
	}
	return nil
}

// Discover lists the service users and secrets whose owner tag names the
// person: their e-mail (the email tag of their IAM user) or their login,
// case-insensitive. Every list is walked to its end with the paging checks;
// anything short of that is an error, never a shorter list.
func (c *Client) Discover(ctx context.Context, acct control.Account) ([]control.Owned, error) {
	ctx, rec := withRecorder(ctx)
	op := c.cfg.Name + ": discover what " + cmp.Or(acct.Login, acct.ID) + " owns"
	fail := func(err error) error {
		var ce *control.Error
		if errors.As(err, &ce) {
			return ce
		}
		return classify(op, err, rec)
	}
	names := map[string]bool{}
	for _, n := range []string{acct.ID, acct.Login} {
		if n != "" {
			names[strings.ToLower(n)] = true
		}
	}
	if acct.ID != "" {
		tags, err := c.userTags(ctx, acct.ID)
		if err != nil {
			// Without the leaver's e-mail, owner tags naming it cannot be matched.
			return nil, fail(err)
		}
		if e := tags["email"]; e != "" {
			names[strings.ToLower(e)] = true
		}
	}
	if len(names) == 0 {
		return nil, &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New("no account id or login to match owner tags against")}
	}
	owns := func(v string) bool { return v != "" && names[strings.ToLower(strings.TrimSpace(v))] }

	var out []control.Owned
	in := &iam.ListUsersInput{PathPrefix: aws.String(cmp.Or(c.cfg.ServicePathPrefix, "/"))}
	err := walk("ListUsers", func(marker *string) ([]string, bool, *string, error) {
		in.Marker = marker
		pg, err := c.iam.ListUsers(ctx, in)
		if err != nil {
			return nil, false, nil, err
		}
		var page []string
		for _, u := range pg.Users {
			page = append(page, aws.ToString(u.UserName))
		}
		for _, name := range page {
			if name == acct.ID {
				continue
			}
			tags, err := c.userTags(ctx, name)
			if isNoSuchEntity(err) {
				continue // deleted while we listed: owned by no one now
			}
			if err != nil {
				return nil, false, nil, err
			}
			if !owns(tags[c.ownerTag()]) {
				continue
			}
			keys, err := c.listKeys(ctx, name)
			if err != nil && !isNoSuchEntity(err) {
				return nil, false, nil, err
			}
			// Secret is left to the activity: config.NonHuman names where rotations write.
			o := control.Owned{Target: c.cfg.Name, Kind: control.KindServiceUser, ID: name, Name: name}
			for _, k := range keys {
				o.Credentials = append(o.Credentials, control.Credential{Kind: "access key", ID: k.id, Status: k.status})
			}
			out = append(out, o)
		}
		return page, pg.IsTruncated, pg.Marker, nil
	})
	if err != nil {
		return nil, fail(err)
	}
	secrets, err := c.ownedSecrets(ctx, owns)
	if err != nil {
		return nil, fail(err)
	}
	return append(out, secrets...), nil
}

// ownedSecrets lists the secrets with an owner tag (ListSecrets' tag-key
// filter is a prefix match and tag values are matched apart from keys, so
// the exact tag is checked here) and keeps those owns accepts.
func (c *Client) ownedSecrets(ctx context.Context, owns func(string) bool) ([]control.Owned, error) {
	if c.sm == nil {
		return nil, &control.Error{Kind: control.ErrPermanent, Op: c.cfg.Name + ": list secrets",
			Err: errors.New("no Secrets Manager endpoint is configured beside the IAM endpoint, so owned secrets cannot be listed")}
	}
	var out []control.Owned
	in := &secretsmanager.ListSecretsInput{Filters: []smtypes.Filter{{Key: smtypes.FilterNameStringTypeTagKey, Values: []string{c.ownerTag()}}}}
	err := walk("ListSecrets", func(token *string) ([]string, bool, *string, error) {
		in.NextToken = token
		pg, err := c.sm.ListSecrets(ctx, in)
		if err != nil {
			return nil, false, nil, err
		}
		var arns []string
		for _, s := range pg.SecretList {
			arn := aws.ToString(s.ARN)
			arns = append(arns, arn)
			if s.DeletedDate != nil {
				continue // already scheduled for deletion: nothing can read it
			}
			owner := ""
			for _, t := range s.Tags {
				if aws.ToString(t.Key) == c.ownerTag() {
					owner = aws.ToString(t.Value)
				}
			}
			if owns(owner) {
				out = append(out, control.Owned{Target: c.cfg.Name, Kind: control.KindSecret, ID: arn, Name: aws.ToString(s.Name)})
			}
		}
		return arns, pg.NextToken != nil, pg.NextToken, nil
	})
	return out, err
}

// key is one access key as ListAccessKeys shows it.
type key struct {
	id, status string
	created    time.Time
}

func (c *Client) listKeys(ctx context.Context, user string) ([]key, error) {
	var keys []key
	in := &iam.ListAccessKeysInput{UserName: aws.String(user)}
	err := walk("ListAccessKeys", func(marker *string) ([]string, bool, *string, error) {
		in.Marker = marker
		pg, err := c.iam.ListAccessKeys(ctx, in)
		if err != nil {
			return nil, false, nil, err
		}
		var ids []string
		for _, k := range pg.AccessKeyMetadata {
			ids = append(ids, aws.ToString(k.AccessKeyId))
			keys = append(keys, key{aws.ToString(k.AccessKeyId), string(k.Status), aws.ToTime(k.CreateDate)})
		}
		return ids, pg.IsTruncated, pg.Marker, nil
	})
	return keys, err
}

// ObserveOwned reads whether the named step holds for o.
func (c *Client) ObserveOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	if c.isAccountControl(o, name) {
		return c.Observe(ctx, name, control.Account{Target: c.cfg.Name, ID: o.ID, Login: o.ID}, control.Params{})
	}
	ctx, rec := withRecorder(ctx)
	r := &ownedRun{c: c, ctx: ctx, rec: rec, step: name, o: o, p: p}
	obs, err := r.observe()
	if isNoSuchEntity(err) && o.Kind != control.KindSecret {
		// Gone only on GetUser's own NoSuchEntity for the identity itself.
		acct := &run{c: c, ctx: ctx, rec: rec, user: o.ID, control: name}
		gone, uerr := acct.userGone(err)
		if gone {
			return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "GetUser " + o.ID + ": NoSuchEntity", Call: rec.response()}, nil
		}
		return control.Observation{}, uerr
	}
	if err != nil {
		return control.Observation{}, r.fail(err)
	}
	obs.Call = rec.response()
	return obs, nil
}

// EnforceOwned changes the system so the named step holds.
func (c *Client) EnforceOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	if c.isAccountControl(o, name) {
		return c.Enforce(ctx, name, control.Account{Target: c.cfg.Name, ID: o.ID, Login: o.ID}, control.Params{})
	}
	ctx, rec := withRecorder(ctx)
	r := &ownedRun{c: c, ctx: ctx, rec: rec, step: name, o: o, p: p}
	if err := r.enforce(); err != nil {
		return control.Response{}, r.fail(err)
	}
	return rec.response(), nil
}

// isAccountControl: a service user's decommission steps are the leaver's
// own containment controls, applied to the service user.
func (c *Client) isAccountControl(o control.Owned, name string) bool {
	return o.Kind == control.KindServiceUser && (name == DeactivateAccessKeys || name == DeleteLoginProfile)
}

// ownedRun is one observe or enforce of one step on one identity.
type ownedRun struct {
	c    *Client
	ctx  context.Context
	rec  *recorder
	step string
	o    control.Owned
	p    control.OwnedParams
}

func (r *ownedRun) op() string { return r.c.cfg.Name + ": " + r.step + " " + r.o.Kind + " " + r.o.Name }

// fail classifies err. The secret store's not-found (a missing secret or
// version) is never the identity being gone: it is a permanent failure. A
// secret's own ResourceNotFoundException is Secrets Manager saying the
// secret is gone.
func (r *ownedRun) fail(err error) error {
	var ce *control.Error
	if errors.As(err, &ce) {
		kind := ce.Kind
		if kind == control.ErrNotFound {
			kind = control.ErrPermanent
		}
		if kind != ce.Kind || !strings.HasPrefix(ce.Op, r.c.cfg.Name+": ") {
			ce = &control.Error{Kind: kind, Op: r.op() + ": " + ce.Op, HTTPStatus: ce.HTTPStatus, RequestID: ce.RequestID,
				RetryAfter: ce.RetryAfter, Digest: ce.Digest, Err: ce.Err}
		}
		return ce
	}
	e := classify(r.op(), err, r.rec)
	if r.o.Kind == control.KindSecret && secretGone(err) {
		e.Kind = control.ErrNotFound
	}
	return e
}

func (r *ownedRun) refuse(format string, args ...any) error {
	return &control.Error{Kind: control.ErrPermanent, Op: r.op(), Err: fmt.Errorf(format, args...)}
}

func (r *ownedRun) unknown() error { return control.Unknown(r.c.cfg.Name, r.step+" for "+r.o.Kind) }

func (r *ownedRun) observe() (control.Observation, error) {
	switch r.o.Kind + "/" + r.step {
	case control.KindServiceUser + "/" + RetagOwner:
		return r.observeUserOwner()
	case control.KindServiceUser + "/" + RotateAccessKeys:
		return r.observeRotatedKey()
	case control.KindServiceUser + "/" + DeactivateOldAccessKeys:
		return r.observeOldKeys(false)
	case control.KindServiceUser + "/" + DeleteOldAccessKeys:
		return r.observeOldKeys(true)
	case control.KindSecret + "/" + RetagOwner, control.KindSecret + "/" + RotateSecret, control.KindSecret + "/" + ScheduleDeletion:
		return r.observeSecret()
	case control.KindBreakGlass + "/" + RotatePassword:
		return r.observePassword()
	}
	return control.Observation{}, r.unknown()
}

func (r *ownedRun) enforce() error {
	switch r.o.Kind + "/" + r.step {
	case control.KindServiceUser + "/" + RetagOwner:
		if err := r.needOwner(); err != nil {
			return err
		}
		_, err := r.c.iam.TagUser(r.ctx, &iam.TagUserInput{UserName: aws.String(r.o.ID),
			Tags: []types.Tag{{Key: aws.String(r.c.ownerTag()), Value: aws.String(r.p.NewOwner)}}})
		return err
	case control.KindServiceUser + "/" + RotateAccessKeys:
		return r.rotateKey()
	case control.KindServiceUser + "/" + DeactivateOldAccessKeys:
		return r.deactivateOldKeys()
	case control.KindServiceUser + "/" + DeleteOldAccessKeys:
		return r.deleteOldKeys()
	case control.KindSecret + "/" + RetagOwner:
		if err := r.needOwner(); err != nil {
			return err
		}
		_, err := r.c.sm.TagResource(r.ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(r.o.ID),
			Tags: []smtypes.Tag{{Key: aws.String(r.c.ownerTag()), Value: aws.String(r.p.NewOwner)}}})
		return err
	case control.KindSecret + "/" + RotateSecret:
		return r.rotateSecret()
	case control.KindSecret + "/" + ScheduleDeletion:
		return r.scheduleDeletion()
	case control.KindBreakGlass + "/" + RotatePassword:
		return r.rotatePassword()
	}
	return r.unknown()
}

func (r *ownedRun) needOwner() error {
	if strings.TrimSpace(r.p.NewOwner) == "" {
		return r.refuse("no new owner to hand %s over to (the manager from the HR event, or config.NonHuman.Team)", r.o.Name)
	}
	return nil
}

func (r *ownedRun) needStore() error {
	if why := r.p.RotationMissing(r.o); why != "" {
		return r.refuse("%s", why)
	}
	return nil
}

// --- service users

func (r *ownedRun) observeUserOwner() (control.Observation, error) {
	if err := r.needOwner(); err != nil {
		return control.Observation{}, err
	}
	tags, err := r.c.userTags(r.ctx, r.o.ID)
	if err != nil {
		return control.Observation{}, err
	}
	owner := tags[r.c.ownerTag()]
	return control.Observation{Holds: strings.EqualFold(owner, r.p.NewOwner), Readable: true,
		Detail: fmt.Sprintf("tag %s=%q on user %s", r.c.ownerTag(), owner, r.o.ID)}, nil
}

// keyValue is what a rotation stores for an access key.
type keyValue struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

// rotatedKey reads the key this rotation stored (version p.Token), if any.
func (r *ownedRun) rotatedKey() (string, bool, error) {
	raw, ok, err := r.p.Store.Pending(r.ctx, r.o.Secret, r.p.Token)
	if err != nil || !ok {
		return "", false, err
	}
	var v keyValue
	if err := json.Unmarshal(raw, &v); err != nil || v.AccessKeyID == "" {
		return "", false, r.refuse("version %s of secret %s does not hold an access key id", short(r.p.Token), r.o.Secret)
	}
	return v.AccessKeyID, true, nil
}

// observeRotatedKey holds when the store's current version is this
// rotation's and the key it names is active on the user.
func (r *ownedRun) observeRotatedKey() (control.Observation, error) {
	if err := r.needStore(); err != nil {
		return control.Observation{}, err
	}
	current, err := r.p.Store.Current(r.ctx, r.o.Secret)
	if err != nil && !errors.Is(err, control.ErrNotFound) {
		return control.Observation{}, err
	}
	id, stored, err := r.rotatedKey()
	if err != nil {
		return control.Observation{}, err
	}
	keys, err := r.c.listKeys(r.ctx, r.o.ID)
	if err != nil {
		return control.Observation{}, err
	}
	if !stored && len(r.o.Credentials) == 0 && len(keys) == 0 {
		return control.Observation{Holds: true, Readable: true, Detail: "user " + r.o.ID + " holds no access keys: nothing to rotate"}, nil
	}
	if !stored {
		return control.Observation{Readable: true, Detail: fmt.Sprintf("secret %s has no version %s yet", r.o.Secret, short(r.p.Token))}, nil
	}
	status := "missing"
	if i := slices.IndexFunc(keys, func(k key) bool { return k.id == id }); i >= 0 {
		status = strings.ToLower(keys[i].status)
	}
	holds := current == r.p.Token && status == "active"
	detail := fmt.Sprintf("secret %s version %s… is current; access key …%s %s", r.o.Secret, short(current), last4(id), status)
	if current != r.p.Token {
		detail = fmt.Sprintf("secret %s version %s… is pending (current %s…); access key …%s %s", r.o.Secret, short(r.p.Token), short(current), last4(id), status)
	}
	return control.Observation{Holds: holds, Readable: true, Detail: detail}, nil
}

// rotateKey creates a new access key, stores it pending, then promotes it.
// A retry reuses the stored version; a key this rotation created whose
// value never reached the store is deleted before a fresh one is made. If
// the store refuses the value, the new key is deleted again and the old
// ones were never touched.
func (r *ownedRun) rotateKey() error {
	if err := r.needStore(); err != nil {
		return err
	}
	if len(r.o.Credentials) == 0 {
		// Rotating nothing would hand out a first key: not ours to decide.
		return r.refuse("user %s held no access keys at discovery: a rotation would create its first one", r.o.ID)
	}
	keys, err := r.c.listKeys(r.ctx, r.o.ID)
	if err != nil {
		return err
	}
	stored, ok, err := r.rotatedKey()
	if err != nil {
		return err
	}
	if ok {
		i := slices.IndexFunc(keys, func(k key) bool { return k.id == stored })
		if i < 0 || keys[i].status != string(types.StatusTypeActive) {
			return r.refuse("secret %s version %s names access key …%s, which user %s no longer holds active: a person must look", r.o.Secret, short(r.p.Token), last4(stored), r.o.ID)
		}
		return r.p.Store.Promote(r.ctx, r.o.Secret, r.p.Token)
	}
	var kept []key
	for _, k := range keys {
		if slices.ContainsFunc(r.o.Credentials, func(c control.Credential) bool { return c.ID == k.id }) {
			kept = append(kept, k)
			continue
		}
		if !r.p.Since.IsZero() && k.created.Before(r.p.Since.Add(-clockSkew)) {
			return r.refuse("user %s holds access key …%s, which discovery did not see and which predates this rotation: a person must decide", r.o.ID, last4(k.id))
		}
		// Ours, from an attempt that never stored its value: nothing can use it.
		if _, err := r.c.iam.DeleteAccessKey(r.ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(r.o.ID), AccessKeyId: aws.String(k.id)}); ignoreGone(err) != nil {
			return err
		}
	}
	if len(kept) >= 2 {
		return r.refuse("user %s already holds two access keys (…%s, …%s), IAM's limit: there is no slot for the new key until one is deleted", r.o.ID, last4(kept[0].id), last4(kept[1].id))
	}
	created, err := r.c.iam.CreateAccessKey(r.ctx, &iam.CreateAccessKeyInput{UserName: aws.String(r.o.ID)})
	if err != nil {
		return err
	}
	id := aws.ToString(created.AccessKey.AccessKeyId)
	value, err := json.Marshal(keyValue{AccessKeyID: id, SecretAccessKey: aws.ToString(created.AccessKey.SecretAccessKey)})
	if err != nil {
		return err
	}
	if err := r.p.Store.PutPending(r.ctx, r.o.Secret, r.p.Token, value); err != nil {
		// Nobody will ever know this key's secret: take it back (a retry would otherwise).
		_, _ = r.c.iam.DeleteAccessKey(r.ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(r.o.ID), AccessKeyId: aws.String(id)})
		return err
	}
	return r.p.Store.Promote(r.ctx, r.o.Secret, r.p.Token)
}

// observeOldKeys holds when every key discovery saw is inactive (or, with
// deleted, gone).
func (r *ownedRun) observeOldKeys(deleted bool) (control.Observation, error) {
	keys, err := r.c.listKeys(r.ctx, r.o.ID)
	if err != nil {
		return control.Observation{}, err
	}
	holds := true
	var said []string
	for _, c := range r.o.Credentials {
		i := slices.IndexFunc(keys, func(k key) bool { return k.id == c.ID })
		switch {
		case i < 0:
			said = append(said, "…"+last4(c.ID)+" deleted")
		case deleted || keys[i].status == string(types.StatusTypeActive):
			holds = false
			said = append(said, "…"+last4(c.ID)+" "+strings.ToLower(keys[i].status))
		default:
			said = append(said, "…"+last4(c.ID)+" inactive")
		}
	}
	if len(said) == 0 {
		said = append(said, "none at discovery")
	}
	return control.Observation{Holds: holds, Readable: true, Detail: "old access keys of " + r.o.ID + ": " + strings.Join(said, ", ")}, nil
}

// deactivateOldKeys stops the old keys, but only once the new key is the
// store's current value and active: a service is never left without one.
func (r *ownedRun) deactivateOldKeys() error {
	obs, err := r.observeRotatedKey()
	if err != nil {
		return err
	}
	if !obs.Holds {
		return r.refuse("the new key is not in place (%s): the old keys stay active", obs.Detail)
	}
	keys, err := r.c.listKeys(r.ctx, r.o.ID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.status != string(types.StatusTypeActive) || !slices.ContainsFunc(r.o.Credentials, func(c control.Credential) bool { return c.ID == k.id }) {
			continue
		}
		_, err := r.c.iam.UpdateAccessKey(r.ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(r.o.ID), AccessKeyId: aws.String(k.id), Status: types.StatusTypeInactive})
		if ignoreGone(err) != nil {
			return err
		}
	}
	return nil
}

// deleteOldKeys deletes the old keys, only those already inactive.
func (r *ownedRun) deleteOldKeys() error {
	keys, err := r.c.listKeys(r.ctx, r.o.ID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !slices.ContainsFunc(r.o.Credentials, func(c control.Credential) bool { return c.ID == k.id }) {
			continue
		}
		if k.status == string(types.StatusTypeActive) {
			return r.refuse("old access key …%s of %s is still active: %s has not held", last4(k.id), r.o.ID, DeactivateOldAccessKeys)
		}
		_, err := r.c.iam.DeleteAccessKey(r.ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(r.o.ID), AccessKeyId: aws.String(k.id)})
		if ignoreGone(err) != nil {
			return err
		}
	}
	return nil
}

// --- secrets

func (r *ownedRun) describe() (*secretsmanager.DescribeSecretOutput, error) {
	if r.c.sm == nil {
		return nil, r.refuse("no Secrets Manager endpoint is configured beside the IAM endpoint")
	}
	return r.c.sm.DescribeSecret(r.ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(r.o.ID)})
}

func secretGone(err error) bool {
	var nf *smtypes.ResourceNotFoundException
	return errors.As(err, &nf)
}

func (r *ownedRun) observeSecret() (control.Observation, error) {
	switch {
	case r.step == RetagOwner:
		if err := r.needOwner(); err != nil {
			return control.Observation{}, err
		}
	case r.step == RotateSecret && r.p.Since.IsZero():
		return control.Observation{}, r.refuse("no rotation start time to compare LastRotatedDate with")
	}
	d, err := r.describe()
	if secretGone(err) {
		// Secrets Manager's own answer: the secret no longer exists at all.
		return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "DescribeSecret " + r.o.Name + ": ResourceNotFoundException"}, nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	switch r.step {
	case RetagOwner:
		owner := ""
		for _, t := range d.Tags {
			if aws.ToString(t.Key) == r.c.ownerTag() {
				owner = aws.ToString(t.Value)
			}
		}
		return control.Observation{Holds: strings.EqualFold(owner, r.p.NewOwner), Readable: true,
			Detail: fmt.Sprintf("tag %s=%q on secret %s", r.c.ownerTag(), owner, r.o.Name)}, nil
	case RotateSecret:
		current := ""
		for id, stages := range d.VersionIdsToStages {
			if slices.Contains(stages, "AWSCURRENT") {
				current = id
			}
		}
		if d.LastRotatedDate == nil {
			return control.Observation{Readable: true, Detail: "secret " + r.o.Name + " was never rotated"}, nil
		}
		at := aws.ToTime(d.LastRotatedDate)
		// Secrets Manager keeps whole seconds at best.
		holds := !at.Before(r.p.Since.Truncate(time.Second))
		return control.Observation{Holds: holds, Readable: true,
			Detail: fmt.Sprintf("secret %s last rotated %s; version %s… is current", r.o.Name, at.UTC().Format(time.RFC3339), short(current))}, nil
	default: // ScheduleDeletion
		if d.DeletedDate == nil {
			return control.Observation{Readable: true, Detail: "secret " + r.o.Name + " is not scheduled for deletion"}, nil
		}
		return control.Observation{Holds: true, Readable: true,
			Detail: fmt.Sprintf("secret %s deleted %s, restorable for %d days", r.o.Name, aws.ToTime(d.DeletedDate).UTC().Format(time.RFC3339), recoveryWindow)}, nil
	}
}

func (r *ownedRun) rotateSecret() error {
	d, err := r.describe()
	if err != nil {
		return err
	}
	if !aws.ToBool(d.RotationEnabled) && aws.ToString(d.RotationLambdaARN) == "" {
		return r.refuse("secret %s has no rotation configured: Secrets Manager cannot rotate it; configure a rotation function or choose another action", r.o.Name)
	}
	in := &secretsmanager.RotateSecretInput{SecretId: aws.String(r.o.ID)}
	if r.p.Token != "" {
		in.ClientRequestToken = aws.String(r.p.Token) // a retry is the same rotation
	}
	_, err = r.c.sm.RotateSecret(r.ctx, in)
	return err
}

func (r *ownedRun) scheduleDeletion() error {
	d, err := r.describe()
	if secretGone(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.DeletedDate != nil {
		return nil // already scheduled: a second DeleteSecret is refused
	}
	_, err = r.c.sm.DeleteSecret(r.ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(r.o.ID), RecoveryWindowInDays: aws.Int64(recoveryWindow)})
	return err
}

// --- break-glass accounts

// passwordValue is what a rotation stores for a console password.
type passwordValue struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// observePassword: IAM cannot read a password back, so the read-back is
// the store's: version p.Token is current only after the login profile
// took the password it holds.
func (r *ownedRun) observePassword() (control.Observation, error) {
	if err := r.needStore(); err != nil {
		return control.Observation{}, err
	}
	current, err := r.p.Store.Current(r.ctx, r.o.Secret)
	if err != nil {
		return control.Observation{}, err
	}
	if _, err := r.c.iam.GetLoginProfile(r.ctx, &iam.GetLoginProfileInput{UserName: aws.String(r.o.ID)}); err != nil {
		if isNoSuchEntity(err) {
			if _, uerr := r.c.iam.GetUser(r.ctx, &iam.GetUserInput{UserName: aws.String(r.o.ID)}); uerr != nil {
				return control.Observation{}, uerr // NoSuchEntity here: the account is gone
			}
			return control.Observation{}, r.refuse("user %s has no console password (login profile) to rotate", r.o.ID)
		}
		return control.Observation{}, err
	}
	detail := fmt.Sprintf("secret %s version %s… is current; the login profile of %s was set from it (IAM cannot read a password back)", r.o.Secret, short(current), r.o.ID)
	if current != r.p.Token {
		detail = fmt.Sprintf("secret %s version %s… is current, not this rotation's %s…", r.o.Secret, short(current), short(r.p.Token))
	}
	return control.Observation{Holds: current == r.p.Token, Readable: true, Detail: detail}, nil
}

func (r *ownedRun) rotatePassword() error {
	if err := r.needStore(); err != nil {
		return err
	}
	raw, ok, err := r.p.Store.Pending(r.ctx, r.o.Secret, r.p.Token)
	if err != nil {
		return err
	}
	var v passwordValue
	if ok {
		if err := json.Unmarshal(raw, &v); err != nil || v.Password == "" {
			return r.refuse("version %s of secret %s does not hold a password", short(r.p.Token), r.o.Secret)
		}
	} else {
		pw, err := newPassword()
		if err != nil {
			return err
		}
		v = passwordValue{Username: r.o.ID, Password: pw}
		value, err := json.Marshal(v)
		if err != nil {
			return err
		}
		// Stored first: the account never has a password no one holds.
		if err := r.p.Store.PutPending(r.ctx, r.o.Secret, r.p.Token, value); err != nil {
			return err
		}
	}
	_, err = r.c.iam.UpdateLoginProfile(r.ctx, &iam.UpdateLoginProfileInput{UserName: aws.String(r.o.ID), Password: aws.String(v.Password),
		PasswordResetRequired: aws.Bool(false)})
	if isNoSuchEntity(err) {
		return r.refuse("user %s has no console password (login profile) to rotate, or no longer exists", r.o.ID)
	}
	if err != nil {
		return err
	}
	return r.p.Store.Promote(r.ctx, r.o.Secret, r.p.Token)
}

// newPassword draws 32 characters from crypto/rand, with each of IAM's
// password-policy classes (upper, lower, digit, symbol) present.
func newPassword() (string, error) {
	classes := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!@#$%^&*()-_=+[]{}"}
	all := strings.Join(classes, "")
	pick := func(set string) (byte, error) {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return 0, fmt.Errorf("generate password: %w", err)
		}
		return set[n.Int64()], nil
	}
	b := make([]byte, 32)
	for i := range b {
		set := all
		if i < len(classes) {
			set = classes[i]
		}
		c, err := pick(set)
		if err != nil {
			return "", err
		}
		b[i] = c
	}
	// Shuffle so the class characters are not always first.
	for i := len(b) - 1; i > 0; i-- {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		j := n.Int64()
		b[i], b[j] = b[j], b[i]
	}
	return string(b), nil
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func last4(id string) string {
	if len(id) > 4 {
		return id[len(id)-4:]
	}
	return id
}
