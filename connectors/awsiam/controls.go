package awsiam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sync/errgroup"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/offboard/offboard/internal/control"
)

// run is one Observe or Enforce of one control on one user.
type run struct {
	c       *Client
	ctx     context.Context
	rec     *recorder
	user    string
	control string
	params  control.Params
}

func (r *run) fail(err error) error {
	var ce *control.Error
	if errors.As(err, &ce) {
		return ce
	}
	return classify(r.c.cfg.Name+": "+r.control+" "+r.user, err, r.rec)
}

// checkUser returns NoSuchEntity when the user is gone; used where IAM's
// NoSuchEntity could mean either the user or the thing asked about.
func (r *run) checkUser() error {
	_, err := r.c.iam.GetUser(r.ctx, &iam.GetUserInput{UserName: aws.String(r.user)})
	return err
}

// ignoreGone drops a NoSuchEntity: the thing was already removed.
func ignoreGone(err error) error {
	if isNoSuchEntity(err) {
		return nil
	}
	return err
}

type (
	observer func(*run) (control.Observation, error)
	enforcer func(*run) error
)

var observers = map[string]observer{
	DeactivateAccessKeys: observeInactive(accessKeys),
	DeleteLoginProfile:   observeLoginProfile,
	DeactivateCreds:      observeInactive(otherCreds...),
	DenyAllPolicy:        observeDenyAll,
	DeleteAccessKeys:     observeDeleted(accessKeys),
	DeleteCreds:          observeDeleted(otherCreds...),
	DeleteMFADevices:     observeMFA,
	RemoveGroups:         observeGroups,
	DetachPolicies:       observePolicies,
	DeleteUser:           observeUserDeleted,
	RestoreAccess:        observeRestored,
}

var enforcers = map[string]enforcer{
	DeactivateAccessKeys: enforceInactive(accessKeys),
	DeleteLoginProfile:   enforceLoginProfile,
	DeactivateCreds:      enforceInactive(otherCreds...),
	DenyAllPolicy:        enforceDenyAll,
	DeleteAccessKeys:     enforceDeleted(accessKeys),
	DeleteCreds:          enforceDeleted(otherCreds...),
	DeleteMFADevices:     enforceMFA,
	RemoveGroups:         enforceGroups,
	DetachPolicies:       enforcePolicies,
	DeleteUser:           enforceUserDeleted,
	RestoreAccess:        enforceRestored,
}

// --- credentials: access keys, SSH keys, service-specific credentials, signing certificates

type item struct{ id, status string }

// credKind is one kind of long-lived credential a user can hold.
type credKind struct {
	plural string
	tag    string // user tag recording the ids Offboard deactivated, for restore
	list   func(r *run) ([]item, error)
	update func(r *run, id string, status types.StatusType) error
	remove func(r *run, id string) error
}

var accessKeys = credKind{
	plural: "access keys",
	tag:    "offboard:deactivated-keys",
	list: func(r *run) ([]item, error) {
		var items []item
		p := iam.NewListAccessKeysPaginator(r.c.iam, &iam.ListAccessKeysInput{UserName: aws.String(r.user)})
		for p.HasMorePages() {
			pg, err := p.NextPage(r.ctx)
			if err != nil {
				return nil, err
			}
			for _, k := range pg.AccessKeyMetadata {
				items = append(items, item{aws.ToString(k.AccessKeyId), string(k.Status)})
			}
		}
		return items, nil
	},
	update: func(r *run, id string, status types.StatusType) error {
		_, err := r.c.iam.UpdateAccessKey(r.ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(r.user), AccessKeyId: aws.String(id), Status: status})
		return err
	},
	remove: func(r *run, id string) error {
		_, err := r.c.iam.DeleteAccessKey(r.ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(r.user), AccessKeyId: aws.String(id)})
		return err
	},
}

var sshKeys = credKind{
	plural: "SSH public keys",
	tag:    "offboard:deactivated-ssh",
	list: func(r *run) ([]item, error) {
		var items []item
		p := iam.NewListSSHPublicKeysPaginator(r.c.iam, &iam.ListSSHPublicKeysInput{UserName: aws.String(r.user)})
		for p.HasMorePages() {
			pg, err := p.NextPage(r.ctx)
			if err != nil {
				return nil, err
			}
			for _, k := range pg.SSHPublicKeys {
				items = append(items, item{aws.ToString(k.SSHPublicKeyId), string(k.Status)})
			}
		}
		return items, nil
	},
	update: func(r *run, id string, status types.StatusType) error {
		_, err := r.c.iam.UpdateSSHPublicKey(r.ctx, &iam.UpdateSSHPublicKeyInput{UserName: aws.String(r.user), SSHPublicKeyId: aws.String(id), Status: status})
		return err
	},
	remove: func(r *run, id string) error {
		_, err := r.c.iam.DeleteSSHPublicKey(r.ctx, &iam.DeleteSSHPublicKeyInput{UserName: aws.String(r.user), SSHPublicKeyId: aws.String(id)})
		return err
	},
}

var serviceCreds = credKind{
	plural: "service-specific credentials",
	tag:    "offboard:deactivated-svc",
	list: func(r *run) ([]item, error) {
		// The SDK has no paginator for this one.
		var items []item
		in := &iam.ListServiceSpecificCredentialsInput{UserName: aws.String(r.user)}
		for {
			pg, err := r.c.iam.ListServiceSpecificCredentials(r.ctx, in)
			if err != nil {
				return nil, err
			}
			for _, k := range pg.ServiceSpecificCredentials {
				items = append(items, item{aws.ToString(k.ServiceSpecificCredentialId), string(k.Status)})
			}
			if !pg.IsTruncated || aws.ToString(pg.Marker) == "" {
				return items, nil
			}
			in.Marker = pg.Marker
		}
	},
	update: func(r *run, id string, status types.StatusType) error {
		_, err := r.c.iam.UpdateServiceSpecificCredential(r.ctx, &iam.UpdateServiceSpecificCredentialInput{UserName: aws.String(r.user), ServiceSpecificCredentialId: aws.String(id), Status: status})
		return err
	},
	remove: func(r *run, id string) error {
		_, err := r.c.iam.DeleteServiceSpecificCredential(r.ctx, &iam.DeleteServiceSpecificCredentialInput{UserName: aws.String(r.user), ServiceSpecificCredentialId: aws.String(id)})
		return err
	},
}

var signingCerts = credKind{
	plural: "signing certificates",
	tag:    "offboard:deactivated-certs",
	list: func(r *run) ([]item, error) {
		var items []item
		p := iam.NewListSigningCertificatesPaginator(r.c.iam, &iam.ListSigningCertificatesInput{UserName: aws.String(r.user)})
		for p.HasMorePages() {
			pg, err := p.NextPage(r.ctx)
			if err != nil {
				return nil, err
			}
			for _, k := range pg.Certificates {
				items = append(items, item{aws.ToString(k.CertificateId), string(k.Status)})
			}
		}
		return items, nil
	},
	update: func(r *run, id string, status types.StatusType) error {
		_, err := r.c.iam.UpdateSigningCertificate(r.ctx, &iam.UpdateSigningCertificateInput{UserName: aws.String(r.user), CertificateId: aws.String(id), Status: status})
		return err
	},
	remove: func(r *run, id string) error {
		_, err := r.c.iam.DeleteSigningCertificate(r.ctx, &iam.DeleteSigningCertificateInput{UserName: aws.String(r.user), CertificateId: aws.String(id)})
		return err
	},
}

var otherCreds = []credKind{sshKeys, serviceCreds, signingCerts}

var allCreds = []credKind{accessKeys, sshKeys, serviceCreds, signingCerts}

func active(items []item) []string {
	var ids []string
	for _, it := range items {
		if it.status == string(types.StatusTypeActive) {
			ids = append(ids, it.id)
		}
	}
	return ids
}

func observeInactive(kinds ...credKind) observer {
	return func(r *run) (control.Observation, error) {
		lists, err := listAll(r, kinds)
		if err != nil {
			return control.Observation{}, err
		}
		var parts []string
		total := 0
		for i, k := range kinds {
			n := len(active(lists[i]))
			total += n
			parts = append(parts, fmt.Sprintf("%s: %d of %d active", k.plural, n, len(lists[i])))
		}
		return control.Observation{Holds: total == 0, Detail: strings.Join(parts, "; ")}, nil
	}
}

// listAll lists every kind at once: containment is on the clock, and the
// kinds are independent reads.
func listAll(r *run, kinds []credKind) ([][]item, error) {
	lists := make([][]item, len(kinds))
	errs := make([]error, len(kinds))
	g := new(errgroup.Group)
	for i, k := range kinds {
		g.Go(func() error {
			lists[i], errs[i] = k.list(r)
			return nil
		})
	}
	_ = g.Wait()
	// The first kind's error first, whichever came back first: errors name the call.
	return lists, cmp.Or(errs...)
}

// enforceInactive records which credentials it deactivates in a user tag (so
// restore_access reactivates exactly those) and deactivates them.
func enforceInactive(kinds ...credKind) enforcer {
	return func(r *run) error {
		// The lists and the user's tags are independent reads: read them at once.
		var lists [][]item
		var tags map[string]string
		var listErr, tagErr error
		g := new(errgroup.Group)
		g.Go(func() error { lists, listErr = listAll(r, kinds); return nil })
		g.Go(func() error { tags, tagErr = r.c.userTags(r.ctx, r.user); return nil })
		_ = g.Wait()
		// The lists' error first, whichever came back first: errors name the call.
		if err := cmp.Or(listErr, tagErr); err != nil {
			return err
		}
		anyActive := false
		for _, items := range lists {
			anyActive = anyActive || len(active(items)) > 0
		}
		if !anyActive {
			return nil
		}
		var record []types.Tag
		for i, k := range kinds {
			// Keep ids recorded earlier that still exist, add the active ones.
			var ids []string
			for _, id := range strings.Fields(tags[k.tag]) {
				if slices.ContainsFunc(lists[i], func(it item) bool { return it.id == id }) {
					ids = append(ids, id)
				}
			}
			ids = append(ids, active(lists[i])...)
			slices.Sort(ids)
			value := strings.Join(slices.Compact(ids), " ")
			if value != "" && value != tags[k.tag] {
				record = append(record, types.Tag{Key: aws.String(k.tag), Value: aws.String(value)})
			}
		}
		// The record and the deactivations go out together: containment is on
		// the clock. Should the record fail while a key was deactivated, the
		// control fails and its retry records it; a key missing from the record
		// only stays inactive on restore, the safe side.
		var recordErr error
		calls := new(errgroup.Group)
		if len(record) > 0 {
			calls.Go(func() error {
				_, recordErr = r.c.iam.TagUser(r.ctx, &iam.TagUserInput{UserName: aws.String(r.user), Tags: record})
				return nil
			})
		}
		errs := make([]error, 0)
		var mu sync.Mutex
		for i, k := range kinds {
			for _, id := range active(lists[i]) {
				calls.Go(func() error {
					if err := ignoreGone(k.update(r, id, types.StatusTypeInactive)); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					return nil
				})
			}
		}
		_ = calls.Wait()
		// The record's error first: errors name the call that failed.
		return cmp.Or(append([]error{recordErr}, errs...)...)
	}
}

func observeDeleted(kinds ...credKind) observer {
	return func(r *run) (control.Observation, error) {
		var parts []string
		total := 0
		for _, k := range kinds {
			items, err := k.list(r)
			if err != nil {
				return control.Observation{}, err
			}
			total += len(items)
			parts = append(parts, fmt.Sprintf("%s: %d left", k.plural, len(items)))
		}
		return control.Observation{Holds: total == 0, Detail: strings.Join(parts, "; ")}, nil
	}
}

func enforceDeleted(kinds ...credKind) enforcer {
	return func(r *run) error {
		for _, k := range kinds {
			items, err := k.list(r)
			if err != nil {
				return err
			}
			for _, it := range items {
				if err := ignoreGone(k.remove(r, it.id)); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// --- console password

func observeLoginProfile(r *run) (control.Observation, error) {
	_, err := r.c.iam.GetLoginProfile(r.ctx, &iam.GetLoginProfileInput{UserName: aws.String(r.user)})
	if isNoSuchEntity(err) {
		if err := r.checkUser(); err != nil {
			return control.Observation{}, err
		}
		return control.Observation{Holds: true, Detail: "no console password"}, nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	return control.Observation{Holds: false, Detail: "console password set"}, nil
}

func enforceLoginProfile(r *run) error {
	_, err := r.c.iam.DeleteLoginProfile(r.ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(r.user)})
	if isNoSuchEntity(err) {
		return r.checkUser()
	}
	return err
}

// --- MFA devices

func (r *run) mfaSerials() ([]string, error) {
	var serials []string
	p := iam.NewListMFADevicesPaginator(r.c.iam, &iam.ListMFADevicesInput{UserName: aws.String(r.user)})
	for p.HasMorePages() {
		pg, err := p.NextPage(r.ctx)
		if err != nil {
			return nil, err
		}
		for _, d := range pg.MFADevices {
			serials = append(serials, aws.ToString(d.SerialNumber))
		}
	}
	return serials, nil
}

func observeMFA(r *run) (control.Observation, error) {
	serials, err := r.mfaSerials()
	if err != nil {
		return control.Observation{}, err
	}
	return control.Observation{Holds: len(serials) == 0, Detail: fmt.Sprintf("MFA devices: %d left", len(serials))}, nil
}

// enforceMFA deactivates each device (unassigning it), then deletes the
// virtual ones; hardware devices are only deactivated, which is all IAM allows.
func enforceMFA(r *run) error {
	serials, err := r.mfaSerials()
	if err != nil {
		return err
	}
	for _, serial := range serials {
		_, err := r.c.iam.DeactivateMFADevice(r.ctx, &iam.DeactivateMFADeviceInput{UserName: aws.String(r.user), SerialNumber: aws.String(serial)})
		if err := ignoreGone(err); err != nil {
			return err
		}
		if strings.HasPrefix(serial, "arn:") && strings.Contains(serial, ":mfa/") {
			_, err := r.c.iam.DeleteVirtualMFADevice(r.ctx, &iam.DeleteVirtualMFADeviceInput{SerialNumber: aws.String(serial)})
			if err := ignoreGone(err); err != nil {
				return err
			}
		}
	}
	return nil
}

// --- groups

func (r *run) groups() ([]string, error) {
	var names []string
	p := iam.NewListGroupsForUserPaginator(r.c.iam, &iam.ListGroupsForUserInput{UserName: aws.String(r.user)})
	for p.HasMorePages() {
		pg, err := p.NextPage(r.ctx)
		if err != nil {
			return nil, err
		}
		for _, g := range pg.Groups {
			names = append(names, aws.ToString(g.GroupName))
		}
	}
	return names, nil
}

func (r *run) kept(group string) bool {
	return slices.ContainsFunc(r.params.KeepGroups, func(k string) bool { return strings.EqualFold(k, group) })
}

func observeGroups(r *run) (control.Observation, error) {
	names, err := r.groups()
	if err != nil {
		return control.Observation{}, err
	}
	var left, kept []string
	for _, g := range names {
		if r.kept(g) {
			kept = append(kept, g)
		} else {
			left = append(left, g)
		}
	}
	detail := fmt.Sprintf("groups to remove: %d [%s]; kept: [%s]", len(left), strings.Join(left, " "), strings.Join(kept, " "))
	return control.Observation{Holds: len(left) == 0, Detail: detail}, nil
}

func enforceGroups(r *run) error {
	names, err := r.groups()
	if err != nil {
		return err
	}
	for _, g := range names {
		if r.kept(g) {
			continue
		}
		_, err := r.c.iam.RemoveUserFromGroup(r.ctx, &iam.RemoveUserFromGroupInput{UserName: aws.String(r.user), GroupName: aws.String(g)})
		if err := ignoreGone(err); err != nil {
			return err
		}
	}
	return nil
}

// --- policies

func (r *run) policies() (attached, inline []string, err error) {
	ap := iam.NewListAttachedUserPoliciesPaginator(r.c.iam, &iam.ListAttachedUserPoliciesInput{UserName: aws.String(r.user)})
	for ap.HasMorePages() {
		pg, err := ap.NextPage(r.ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range pg.AttachedPolicies {
			attached = append(attached, aws.ToString(p.PolicyArn))
		}
	}
	ip := iam.NewListUserPoliciesPaginator(r.c.iam, &iam.ListUserPoliciesInput{UserName: aws.String(r.user)})
	for ip.HasMorePages() {
		pg, err := ip.NextPage(r.ctx)
		if err != nil {
			return nil, nil, err
		}
		inline = append(inline, pg.PolicyNames...)
	}
	return attached, inline, nil
}

// withoutDenyAll drops OffboardDenyAll: removal keeps it until the user is deleted.
func withoutDenyAll(names []string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == denyAllName })
}

func observePolicies(r *run) (control.Observation, error) {
	attached, inline, err := r.policies()
	if err != nil {
		return control.Observation{}, err
	}
	inline = withoutDenyAll(inline)
	detail := fmt.Sprintf("managed policies attached: %d; inline policies: %d (besides %s)", len(attached), len(inline), denyAllName)
	return control.Observation{Holds: len(attached) == 0 && len(inline) == 0, Detail: detail}, nil
}

func enforcePolicies(r *run) error {
	attached, inline, err := r.policies()
	if err != nil {
		return err
	}
	return r.removePolicies(attached, withoutDenyAll(inline))
}

func (r *run) removePolicies(attached, inline []string) error {
	for _, arn := range attached {
		_, err := r.c.iam.DetachUserPolicy(r.ctx, &iam.DetachUserPolicyInput{UserName: aws.String(r.user), PolicyArn: aws.String(arn)})
		if err := ignoreGone(err); err != nil {
			return err
		}
	}
	for _, name := range inline {
		_, err := r.c.iam.DeleteUserPolicy(r.ctx, &iam.DeleteUserPolicyInput{UserName: aws.String(r.user), PolicyName: aws.String(name)})
		if err := ignoreGone(err); err != nil {
			return err
		}
	}
	return nil
}

// --- the user itself

func observeUserDeleted(r *run) (control.Observation, error) {
	if err := r.checkUser(); err != nil {
		return control.Observation{}, err // NoSuchEntity becomes Gone
	}
	return control.Observation{Holds: false, Detail: "user exists"}, nil
}

// enforceUserDeleted removes whatever removal left (normally only
// OffboardDenyAll, which goes last) and deletes the user. The sweep makes a
// deletion months after removal still work if something was re-attached.
func enforceUserDeleted(r *run) error {
	for _, k := range allCreds {
		items, err := k.list(r) // the first list fails NoSuchEntity if the user is gone
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := ignoreGone(k.remove(r, it.id)); err != nil {
				return err
			}
		}
	}
	if _, err := r.c.iam.DeleteLoginProfile(r.ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(r.user)}); ignoreGone(err) != nil {
		return err
	}
	if err := enforceMFA(r); err != nil {
		return err
	}
	r.params.KeepGroups = nil
	if err := enforceGroups(r); err != nil {
		return err
	}
	attached, inline, err := r.policies()
	if err != nil {
		return err
	}
	inline = append(withoutDenyAll(inline), denyAllName)
	if err := r.removePolicies(attached, inline); err != nil {
		return err
	}
	_, err = r.c.iam.DeleteUser(r.ctx, &iam.DeleteUserInput{UserName: aws.String(r.user)})
	return err
}

// --- restore

func observeRestored(r *run) (control.Observation, error) {
	tags, err := r.c.userTags(r.ctx, r.user)
	if err != nil {
		return control.Observation{}, err
	}
	var pending []string
	for _, k := range allCreds {
		if ids := strings.Fields(tags[k.tag]); len(ids) > 0 {
			pending = append(pending, fmt.Sprintf("%d %s to reactivate", len(ids), k.plural))
		}
	}
	_, err = r.c.iam.GetUserPolicy(r.ctx, &iam.GetUserPolicyInput{UserName: aws.String(r.user), PolicyName: aws.String(denyAllName)})
	switch {
	case err == nil:
		pending = append(pending, denyAllName+" in force")
	case !isNoSuchEntity(err):
		return control.Observation{}, err
	}
	detail := "access restored"
	if len(pending) > 0 {
		detail = strings.Join(pending, "; ")
	}
	return control.Observation{Holds: len(pending) == 0, Detail: detail}, nil
}

// enforceRestored reactivates exactly the credentials Offboard recorded as
// deactivated, removes OffboardDenyAll, and then forgets the record. A
// deleted console password cannot be brought back: an admin must set a new one.
func enforceRestored(r *run) error {
	tags, err := r.c.userTags(r.ctx, r.user)
	if err != nil {
		return err
	}
	var recorded []string
	for _, k := range allCreds {
		ids := strings.Fields(tags[k.tag])
		if _, ok := tags[k.tag]; ok {
			recorded = append(recorded, k.tag)
		}
		if len(ids) == 0 {
			continue
		}
		items, err := k.list(r)
		if err != nil {
			return err
		}
		for _, it := range items {
			if slices.Contains(ids, it.id) && it.status != string(types.StatusTypeActive) {
				if err := ignoreGone(k.update(r, it.id, types.StatusTypeActive)); err != nil {
					return err
				}
			}
		}
	}
	_, err = r.c.iam.DeleteUserPolicy(r.ctx, &iam.DeleteUserPolicyInput{UserName: aws.String(r.user), PolicyName: aws.String(denyAllName)})
	if ignoreGone(err) != nil {
		return err
	}
	if len(recorded) > 0 {
		if _, err := r.c.iam.UntagUser(r.ctx, &iam.UntagUserInput{UserName: aws.String(r.user), TagKeys: recorded}); err != nil {
			return err
		}
	}
	return nil
}

// userTags reads every tag of a user.
func (c *Client) userTags(ctx context.Context, user string) (map[string]string, error) {
	// GetUser carries every tag (IAM allows 50) in one call; ListUserTags pages.
	out, err := c.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(user)})
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for _, t := range out.User.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}
