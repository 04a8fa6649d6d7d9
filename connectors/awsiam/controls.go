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
	"github.com/aws/smithy-go"

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

// fail classifies err. IAM's NoSuchEntity is the claim "gone" only when it
// answers for the user itself: from any other call (a key, a group, a list
// under the user) it is checked with GetUser, and a user that is still there
// makes it an unexpected answer naming the call.
func (r *run) fail(err error) error {
	var ce *control.Error
	if errors.As(err, &ce) && !isNoSuchEntity(err) {
		return ce
	}
	op := r.c.cfg.Name + ": " + r.control + " " + r.user
	if isNoSuchEntity(err) {
		gone, uerr := r.userGone(err)
		if gone {
			return classify(op, uerr, r.rec)
		}
		return uerr
	}
	return classify(op, err, r.rec)
}

// userGone proves "the user is gone" after a call answered NoSuchEntity:
// true with GetUser's own NoSuchEntity, or false with the error to report
// (unexpected when the user is still there).
func (r *run) userGone(err error) (bool, error) {
	op := r.c.cfg.Name + ": " + r.control + " " + r.user
	if action(err) == "iam:GetUser" {
		return true, err
	}
	uerr := r.checkUser()
	switch {
	case isNoSuchEntity(uerr):
		return true, uerr
	case uerr != nil:
		return false, classify(op, uerr, r.rec)
	}
	e := classify(op, err, r.rec)
	e.Kind = control.ErrUnexpected
	e.Err = fmt.Errorf("%s answered NoSuchEntity, but GetUser finds the user %s: %w", action(err), r.user, err)
	return false, e
}

// checkUser returns NoSuchEntity when the user is gone; used where IAM's
// NoSuchEntity could mean either the user or the thing asked about.
func (r *run) checkUser() error {
	_, err := r.c.iam.GetUser(r.ctx, &iam.GetUserInput{UserName: aws.String(r.user)})
	return err
}

// withUserCheck runs call and GetUser side by side. A NoSuchEntity from
// call may be about the thing asked for or about the user, and GetUser says
// which: asked beside it, that answer costs no round of its own (issue 17).
// The receipt then records GetUser's answer, as when they ran in a row.
func (r *run) withUserCheck(call func(ctx context.Context) error) (err, userErr error) {
	uctx, urec := withRecorder(r.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, userErr = r.c.iam.GetUser(uctx, &iam.GetUserInput{UserName: aws.String(r.user)})
	})
	err = call(r.ctx)
	wg.Wait()
	if isNoSuchEntity(err) && r.rec != nil {
		r.rec.set(urec.response())
	}
	return err, userErr
}

// ignoreGone drops a NoSuchEntity from a call that removes or changes one
// thing (a key, a membership, a policy): already removed is what we wanted.
// It is never the proof: every control's read-back lists again.
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
	DeactivateAccessKeys:   observeInactive(accessKeys),
	DeleteLoginProfile:     observeLoginProfile,
	DeactivateSSHKeys:      observeInactive(sshKeys),
	DeactivateServiceCreds: observeInactive(serviceCreds),
	DeactivateSigningCerts: observeInactive(signingCerts),
	DeactivateCreds:        observeInactive(otherCreds...),
	DenyAllPolicy:          observeDenyAll,
	DeleteAccessKeys:       observeDeleted(accessKeys),
	DeleteSSHKeys:          observeDeleted(sshKeys),
	DeleteServiceCreds:     observeDeleted(serviceCreds),
	DeleteSigningCerts:     observeDeleted(signingCerts),
	DeleteCreds:            observeDeleted(otherCreds...),
	DeleteMFADevices:       observeMFA,
	RemoveGroups:           observeGroups,
	DetachPolicies:         observePolicies,
	DeleteUser:             observeUserDeleted,
	RestoreAccess:          observeRestored,
}

var enforcers = map[string]enforcer{
	DeactivateAccessKeys:   enforceInactive(accessKeys),
	DeleteLoginProfile:     enforceLoginProfile,
	DeactivateSSHKeys:      enforceInactive(sshKeys),
	DeactivateServiceCreds: enforceInactive(serviceCreds),
	DeactivateSigningCerts: enforceInactive(signingCerts),
	DeactivateCreds:        enforceInactive(otherCreds...),
	DenyAllPolicy:          enforceDenyAll,
	DeleteAccessKeys:       enforceDeleted(accessKeys),
	DeleteSSHKeys:          enforceDeleted(sshKeys),
	DeleteServiceCreds:     enforceDeleted(serviceCreds),
	DeleteSigningCerts:     enforceDeleted(signingCerts),
	DeleteCreds:            enforceDeleted(otherCreds...),
	DeleteMFADevices:       enforceMFA,
	RemoveGroups:           enforceGroups,
	DetachPolicies:         enforcePolicies,
	DeleteUser:             enforceUserDeleted,
	RestoreAccess:          enforceRestored,
}

// --- credentials: access keys, SSH keys, service-specific credentials, signing certificates

type item struct{ id, status string }

// credKind is one kind of long-lived credential a user can hold. Each kind
// stands alone: one that cannot be listed (an SCP refusing
// ListServiceSpecificCredentials, a 500 on one API) never stops the others
// being contained, and the failure names exactly that kind.
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
		in := &iam.ListAccessKeysInput{UserName: aws.String(r.user)}
		err := walk("ListAccessKeys", func(marker *string) ([]string, bool, *string, error) {
			in.Marker = marker
			pg, err := r.c.iam.ListAccessKeys(r.ctx, in)
			if err != nil {
				return nil, false, nil, err
			}
			var ids []string
			for _, k := range pg.AccessKeyMetadata {
				ids = append(ids, aws.ToString(k.AccessKeyId))
				items = append(items, item{aws.ToString(k.AccessKeyId), string(k.Status)})
			}
			return ids, pg.IsTruncated, pg.Marker, nil
		})
		return items, err
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
		in := &iam.ListSSHPublicKeysInput{UserName: aws.String(r.user)}
		err := walk("ListSSHPublicKeys", func(marker *string) ([]string, bool, *string, error) {
			in.Marker = marker
			pg, err := r.c.iam.ListSSHPublicKeys(r.ctx, in)
			if err != nil {
				return nil, false, nil, err
			}
			var ids []string
			for _, k := range pg.SSHPublicKeys {
				ids = append(ids, aws.ToString(k.SSHPublicKeyId))
				items = append(items, item{aws.ToString(k.SSHPublicKeyId), string(k.Status)})
			}
			return ids, pg.IsTruncated, pg.Marker, nil
		})
		return items, err
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
		var items []item
		in := &iam.ListServiceSpecificCredentialsInput{UserName: aws.String(r.user)}
		err := walk("ListServiceSpecificCredentials", func(marker *string) ([]string, bool, *string, error) {
			in.Marker = marker
			pg, err := r.c.iam.ListServiceSpecificCredentials(r.ctx, in)
			if err != nil {
				return nil, false, nil, err
			}
			var ids []string
			for _, k := range pg.ServiceSpecificCredentials {
				ids = append(ids, aws.ToString(k.ServiceSpecificCredentialId))
				items = append(items, item{aws.ToString(k.ServiceSpecificCredentialId), string(k.Status)})
			}
			return ids, pg.IsTruncated, pg.Marker, nil
		})
		return items, err
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
		in := &iam.ListSigningCertificatesInput{UserName: aws.String(r.user)}
		err := walk("ListSigningCertificates", func(marker *string) ([]string, bool, *string, error) {
			in.Marker = marker
			pg, err := r.c.iam.ListSigningCertificates(r.ctx, in)
			if err != nil {
				return nil, false, nil, err
			}
			var ids []string
			for _, k := range pg.Certificates {
				ids = append(ids, aws.ToString(k.CertificateId))
				items = append(items, item{aws.ToString(k.CertificateId), string(k.Status)})
			}
			return ids, pg.IsTruncated, pg.Marker, nil
		})
		return items, err
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

func ids(items []item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.id
	}
	return out
}

// kindsError says which credential kinds a control could not list or
// change, after it did what it could with the others. It wraps the first
// kind's error, which decides the failure's kind.
type kindsError struct {
	done  string   // what was done meanwhile, for people
	kinds []string // "service-specific credentials: <error>"
	first error
}

func (e *kindsError) Error() string {
	msg := strings.Join(e.kinds, "; ")
	if e.done != "" {
		msg += " (meanwhile: " + e.done + ")"
	}
	return msg
}

func (e *kindsError) Unwrap() error { return e.first }

// listKinds lists every kind at once (containment is on the clock and the
// kinds are independent reads); errs[i] is kind i's own failure.
func listKinds(r *run, kinds []credKind) (lists [][]item, errs []error) {
	lists = make([][]item, len(kinds))
	errs = make([]error, len(kinds))
	g := new(errgroup.Group)
	for i, k := range kinds {
		g.Go(func() error {
			lists[i], errs[i] = k.list(r)
			return nil
		})
	}
	_ = g.Wait()
	return lists, errs
}

// userGoneIn returns the NoSuchEntity among errs, if any: a list that says
// "no such user" is for Observe to prove with GetUser, not a kind's failure.
func userGoneIn(errs []error) error {
	for _, err := range errs {
		if isNoSuchEntity(err) {
			return err
		}
	}
	return nil
}

// inactiveRead is what a deactivate_* observe leaves in the control.Memo
// for its enforce: every kind's list and the user's tags, all read cleanly.
type inactiveRead struct {
	lists [][]item
	tags  map[string]string
}

// memoKey names what this run's observe leaves for its enforce.
func (r *run) memoKey() string {
	return "awsiam " + r.c.cfg.Name + " " + r.control + " " + r.user
}

func observeInactive(kinds ...credKind) observer {
	return func(r *run) (control.Observation, error) {
		memo := control.MemoFrom(r.ctx)
		var lists [][]item
		var errs []error
		if memo == nil {
			lists, errs = listKinds(r, kinds)
		} else {
			// The enforce that may follow needs the user's tags too: read them
			// beside the lists, under their own recorder so the observation's
			// call stays the list's.
			var tags map[string]string
			var tagErr error
			g := new(errgroup.Group)
			g.Go(func() error { lists, errs = listKinds(r, kinds); return nil })
			g.Go(func() error {
				ctx, _ := withRecorder(r.ctx)
				tags, tagErr = r.c.userTags(ctx, r.user)
				return nil
			})
			_ = g.Wait()
			// Only a clean read is left: after any failure the enforce reads again.
			if tagErr == nil && !slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
				memo.Put(r.memoKey(), inactiveRead{lists: lists, tags: tags})
			}
		}
		if err := userGoneIn(errs); err != nil {
			return control.Observation{}, err
		}
		var parts []string
		total, failed := 0, 0
		for i, k := range kinds {
			if errs[i] != nil {
				failed++
				parts = append(parts, fmt.Sprintf("%s: cannot be listed (%v)", k.plural, errs[i]))
				continue
			}
			n := len(active(lists[i]))
			total += n
			parts = append(parts, fmt.Sprintf("%s: %d of %d active %v", k.plural, n, len(lists[i]), active(lists[i])))
		}
		if failed == len(kinds) {
			return control.Observation{}, fmt.Errorf("%s could not be listed: %w", kinds[0].plural, errs[0])
		}
		// A kind that cannot be listed is not known to be inactive: the
		// control does not hold, and enforcing contains the others and fails naming it.
		return control.Observation{Holds: total == 0 && failed == 0, Detail: strings.Join(parts, "; ")}, nil
	}
}

// enforceInactive records which credentials it deactivates in a user tag (so
// restore_access reactivates exactly those) and deactivates them, kind by
// kind: every kind it could list is contained before it reports the ones it
// could not.
func enforceInactive(kinds ...credKind) enforcer {
	return func(r *run) error {
		var lists [][]item
		var listErrs []error
		var tags map[string]string
		var tagErr error
		if v, ok := control.MemoFrom(r.ctx).Take(r.memoKey()); ok {
			// What the observe just read. Stale is safe: a credential created
			// since stays active, and the read-back, which lists afresh, says so.
			read := v.(inactiveRead)
			lists, listErrs, tags = read.lists, make([]error, len(kinds)), read.tags
		} else {
			// The lists and the user's tags are independent reads: read them at once.
			g := new(errgroup.Group)
			g.Go(func() error { lists, listErrs = listKinds(r, kinds); return nil })
			g.Go(func() error { tags, tagErr = r.c.userTags(r.ctx, r.user); return nil })
			_ = g.Wait()
		}
		if err := userGoneIn(append(slices.Clone(listErrs), tagErr)); err != nil {
			return err
		}
		var record []types.Tag
		if tagErr == nil {
			for i, k := range kinds {
				if listErrs[i] != nil {
					continue
				}
				// Keep ids recorded earlier that still exist, add the active ones.
				var keep []string
				for _, id := range strings.Fields(tags[k.tag]) {
					if slices.ContainsFunc(lists[i], func(it item) bool { return it.id == id }) {
						keep = append(keep, id)
					}
				}
				keep = append(keep, active(lists[i])...)
				slices.Sort(keep)
				value := strings.Join(slices.Compact(keep), " ")
				if value != "" && value != tags[k.tag] {
					record = append(record, types.Tag{Key: aws.String(k.tag), Value: aws.String(value)})
				}
			}
		}
		// The record and the deactivations go out together: containment is on
		// the clock. Should the record fail (or its read) while a key was
		// deactivated, the control fails and its retry records it; a key
		// missing from the record only stays inactive on restore, the safe side.
		var recordErr error
		calls := new(errgroup.Group)
		if len(record) > 0 {
			calls.Go(func() error {
				_, recordErr = r.c.iam.TagUser(r.ctx, &iam.TagUserInput{UserName: aws.String(r.user), Tags: record})
				return nil
			})
		}
		var mu sync.Mutex
		var updateErrs []error
		deactivated := 0
		for i, k := range kinds {
			for _, id := range active(lists[i]) {
				calls.Go(func() error {
					// A key deleted meanwhile is not active: the read-back proves it.
					err := ignoreGone(k.update(r, id, types.StatusTypeInactive))
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						updateErrs = append(updateErrs, fmt.Errorf("%s %s: %w", k.plural, id, err))
					} else {
						deactivated++
					}
					return nil
				})
			}
		}
		_ = calls.Wait()
		var failed []string
		var first error
		for i, k := range kinds {
			if listErrs[i] != nil {
				failed = append(failed, fmt.Sprintf("%s could not be listed, so none of them were deactivated: %v", k.plural, listErrs[i]))
				first = cmp.Or(first, listErrs[i])
			}
		}
		if len(failed) > 0 {
			return &kindsError{done: fmt.Sprintf("%d credentials of the other kinds deactivated", deactivated), kinds: failed, first: first}
		}
		// The record's error first: errors name the call that failed.
		return cmp.Or(append([]error{recordErr, tagErr}, updateErrs...)...)
	}
}

func observeDeleted(kinds ...credKind) observer {
	return func(r *run) (control.Observation, error) {
		lists, errs := listKinds(r, kinds)
		if err := userGoneIn(errs); err != nil {
			return control.Observation{}, err
		}
		var parts []string
		total, failed := 0, 0
		for i, k := range kinds {
			if errs[i] != nil {
				failed++
				parts = append(parts, fmt.Sprintf("%s: cannot be listed (%v)", k.plural, errs[i]))
				continue
			}
			total += len(lists[i])
			parts = append(parts, fmt.Sprintf("%s: %d left %v", k.plural, len(lists[i]), ids(lists[i])))
		}
		if failed == len(kinds) {
			return control.Observation{}, fmt.Errorf("%s could not be listed: %w", kinds[0].plural, errs[0])
		}
		return control.Observation{Holds: total == 0 && failed == 0, Detail: strings.Join(parts, "; ")}, nil
	}
}

// enforceDeleted deletes every credential of each kind it can list, and
// then names exactly the kinds it could not list or empty.
func enforceDeleted(kinds ...credKind) enforcer {
	return func(r *run) error {
		failed, deleted, first := deleteKinds(r, kinds)
		if len(failed) > 0 {
			return &kindsError{done: fmt.Sprintf("%d credentials of the other kinds deleted", deleted), kinds: failed, first: first}
		}
		return nil
	}
}

// deleteKinds deletes what it can of each kind and says what it could not.
func deleteKinds(r *run, kinds []credKind) (failed []string, deleted int, first error) {
	for _, k := range kinds {
		items, err := k.list(r)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s could not be listed: %v", k.plural, err))
			first = cmp.Or(first, err)
			continue
		}
		for _, it := range items {
			// Already deleted is what we wanted; the read-back proves the rest.
			if err := ignoreGone(k.remove(r, it.id)); err != nil {
				failed = append(failed, fmt.Sprintf("%s %s could not be deleted: %v", k.plural, it.id, err))
				first = cmp.Or(first, err)
				continue
			}
			deleted++
		}
	}
	return failed, deleted, first
}

// --- console password

func observeLoginProfile(r *run) (control.Observation, error) {
	err, userErr := r.withUserCheck(func(ctx context.Context) error {
		_, err := r.c.iam.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(r.user)})
		return err
	})
	if isNoSuchEntity(err) && !aboutLoginProfile(err) {
		return control.Observation{}, err // about the user, not its password: Observe proves which
	}
	if isNoSuchEntity(err) {
		if userErr != nil {
			return control.Observation{}, userErr
		}
		return control.Observation{Holds: true, Detail: "no console password"}, nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	return control.Observation{Holds: false, Detail: "console password set"}, nil
}

// aboutLoginProfile reports whether a NoSuchEntity is IAM's answer that the
// user has no console password ("Login Profile for User x cannot be found."),
// rather than one about the user.
func aboutLoginProfile(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && strings.Contains(strings.ToLower(apiErr.ErrorMessage()), "login profile")
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
	in := &iam.ListMFADevicesInput{UserName: aws.String(r.user)}
	err := walk("ListMFADevices", func(marker *string) ([]string, bool, *string, error) {
		in.Marker = marker
		pg, err := r.c.iam.ListMFADevices(r.ctx, in)
		if err != nil {
			return nil, false, nil, err
		}
		var page []string
		for _, d := range pg.MFADevices {
			page = append(page, aws.ToString(d.SerialNumber))
		}
		serials = append(serials, page...)
		return page, pg.IsTruncated, pg.Marker, nil
	})
	return serials, err
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
	in := &iam.ListGroupsForUserInput{UserName: aws.String(r.user)}
	err := walk("ListGroupsForUser", func(marker *string) ([]string, bool, *string, error) {
		in.Marker = marker
		pg, err := r.c.iam.ListGroupsForUser(r.ctx, in)
		if err != nil {
			return nil, false, nil, err
		}
		var page []string
		for _, g := range pg.Groups {
			page = append(page, aws.ToString(g.GroupName))
		}
		names = append(names, page...)
		return page, pg.IsTruncated, pg.Marker, nil
	})
	return names, err
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
	ain := &iam.ListAttachedUserPoliciesInput{UserName: aws.String(r.user)}
	err = walk("ListAttachedUserPolicies", func(marker *string) ([]string, bool, *string, error) {
		ain.Marker = marker
		pg, err := r.c.iam.ListAttachedUserPolicies(r.ctx, ain)
		if err != nil {
			return nil, false, nil, err
		}
		var page []string
		for _, p := range pg.AttachedPolicies {
			page = append(page, aws.ToString(p.PolicyArn))
		}
		attached = append(attached, page...)
		return page, pg.IsTruncated, pg.Marker, nil
	})
	if err != nil {
		return nil, nil, err
	}
	iin := &iam.ListUserPoliciesInput{UserName: aws.String(r.user)}
	err = walk("ListUserPolicies", func(marker *string) ([]string, bool, *string, error) {
		iin.Marker = marker
		pg, err := r.c.iam.ListUserPolicies(r.ctx, iin)
		if err != nil {
			return nil, false, nil, err
		}
		inline = append(inline, pg.PolicyNames...)
		return pg.PolicyNames, pg.IsTruncated, pg.Marker, nil
	})
	if err != nil {
		return nil, nil, err
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
// Each kind is swept on its own: one that cannot be listed does not stop the
// rest, and if IAM then refuses DeleteUser the error says exactly what is left.
func enforceUserDeleted(r *run) error {
	if err := r.checkUser(); err != nil {
		return err
	}
	left, _, first := deleteKinds(r, allCreds)
	note := func(what string, err error) {
		if err != nil {
			left = append(left, what+": "+err.Error())
			first = cmp.Or(first, err)
		}
	}
	_, err := r.c.iam.DeleteLoginProfile(r.ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(r.user)})
	note("console password", ignoreGone(err))
	note("MFA devices", enforceMFA(r))
	r.params.KeepGroups = nil
	note("groups", enforceGroups(r))
	attached, inline, err := r.policies()
	note("policies could not be listed", err)
	if err == nil {
		inline = append(withoutDenyAll(inline), denyAllName)
		note("policies", r.removePolicies(attached, inline))
	}
	_, err = r.c.iam.DeleteUser(r.ctx, &iam.DeleteUserInput{UserName: aws.String(r.user)})
	if err == nil || len(left) == 0 {
		return err
	}
	// IAM's DeleteConflict is only the consequence of what the sweep left:
	// the sweep's own failure says whether asking again may cure it (a
	// throttled listing) or a person must look (a refused one).
	return &kindsError{kinds: append([]string{"DeleteUser: " + err.Error()}, left...), first: cmp.Or(first, err)}
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
