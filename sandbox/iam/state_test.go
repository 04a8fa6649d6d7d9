package iam_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	iamsim "github.com/offboard/offboard/sandbox/iam"
	"github.com/offboard/offboard/sandbox/simstate/simstatetest"
)

func mfaSerial(login string) string { return "arn:aws:iam::123456789012:mfa/" + login }

// listUserNames pages through ListUsers.
func listUserNames(t *testing.T, c *iam.Client) []string {
	t.Helper()
	var names []string
	p := iam.NewListUsersPaginator(c, &iam.ListUsersInput{})
	for p.HasMorePages() {
		pg, err := p.NextPage(t.Context())
		require.NoError(t, err)
		for _, u := range pg.Users {
			names = append(names, aws.ToString(u.UserName))
		}
	}
	return names
}

// transitions reads a user's transitions from the admin endpoint.
func transitions(t *testing.T, srvURL, login string) []iamsim.Transition {
	t.Helper()
	resp, err := http.Get(srvURL + "/_sandbox/users/" + login + "/transitions")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var trs []iamsim.Transition
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&trs))
	return trs
}

// removeEverything deletes a user the way the awsiam connector does: all
// that is attached first, then the user.
func removeEverything(t *testing.T, sim *iamsim.Sim, c *iam.Client, login string) {
	t.Helper()
	ctx, name := t.Context(), aws.String(login)
	u := mustUser(t, sim, login)
	_, err := c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: name})
	require.NoError(t, err)
	for _, k := range u.AccessKeys {
		_, err = c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: name, AccessKeyId: aws.String(k.ID)})
		require.NoError(t, err)
	}
	for _, k := range u.SSHPublicKeys {
		_, err = c.DeleteSSHPublicKey(ctx, &iam.DeleteSSHPublicKeyInput{UserName: name, SSHPublicKeyId: aws.String(k.ID)})
		require.NoError(t, err)
	}
	for _, k := range u.ServiceSpecificCredentials {
		_, err = c.DeleteServiceSpecificCredential(ctx, &iam.DeleteServiceSpecificCredentialInput{UserName: name, ServiceSpecificCredentialId: aws.String(k.ID)})
		require.NoError(t, err)
	}
	for _, k := range u.SigningCertificates {
		_, err = c.DeleteSigningCertificate(ctx, &iam.DeleteSigningCertificateInput{UserName: name, CertificateId: aws.String(k.ID)})
		require.NoError(t, err)
	}
	for _, serial := range u.MFADevices {
		_, err = c.DeactivateMFADevice(ctx, &iam.DeactivateMFADeviceInput{UserName: name, SerialNumber: aws.String(serial)})
		require.NoError(t, err)
	}
	for _, g := range u.Groups {
		_, err = c.RemoveUserFromGroup(ctx, &iam.RemoveUserFromGroupInput{UserName: name, GroupName: aws.String(g)})
		require.NoError(t, err)
	}
	for _, arn := range u.AttachedPolicies {
		_, err = c.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: name, PolicyArn: aws.String(arn)})
		require.NoError(t, err)
	}
	for n := range u.InlinePolicies {
		_, err = c.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: name, PolicyName: aws.String(n)})
		require.NoError(t, err)
	}
	_, err = c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: name})
	require.NoError(t, err)
}

const denyAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}`

// offboard changes people[3] the way a removal run does, deletes people[1]
// outright and takes people[9]'s MFA device off them (the device stays).
func offboard(t *testing.T, sim *iamsim.Sim, c *iam.Client) {
	t.Helper()
	ctx, login := t.Context(), people[3].Login
	name := aws.String(login)
	u := mustUser(t, sim, login)
	_, err := c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: name, AccessKeyId: aws.String(u.AccessKeys[0].ID), Status: types.StatusTypeInactive})
	require.NoError(t, err)
	_, err = c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: name})
	require.NoError(t, err)
	_, err = c.RemoveUserFromGroup(ctx, &iam.RemoveUserFromGroupInput{UserName: name, GroupName: aws.String("all-staff")})
	require.NoError(t, err)
	_, err = c.UpdateSSHPublicKey(ctx, &iam.UpdateSSHPublicKeyInput{UserName: name, SSHPublicKeyId: aws.String(u.SSHPublicKeys[0].ID), Status: types.StatusTypeInactive})
	require.NoError(t, err)
	_, err = c.UpdateServiceSpecificCredential(ctx, &iam.UpdateServiceSpecificCredentialInput{UserName: name, ServiceSpecificCredentialId: aws.String(u.ServiceSpecificCredentials[0].ID), Status: types.StatusTypeInactive})
	require.NoError(t, err)
	_, err = c.DeleteSigningCertificate(ctx, &iam.DeleteSigningCertificateInput{UserName: name, CertificateId: aws.String(u.SigningCertificates[0].ID)})
	require.NoError(t, err)
	_, err = c.DeactivateMFADevice(ctx, &iam.DeactivateMFADeviceInput{UserName: name, SerialNumber: aws.String(mfaSerial(login))})
	require.NoError(t, err)
	_, err = c.DeleteVirtualMFADevice(ctx, &iam.DeleteVirtualMFADeviceInput{SerialNumber: aws.String(mfaSerial(login))})
	require.NoError(t, err)
	_, err = c.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: name, PolicyArn: aws.String(u.AttachedPolicies[0])})
	require.NoError(t, err)
	_, err = c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: name, PolicyName: aws.String("OffboardDenyAll"), PolicyDocument: aws.String(denyAll)})
	require.NoError(t, err)
	_, err = c.TagUser(ctx, &iam.TagUserInput{UserName: name, Tags: []types.Tag{{Key: aws.String("offboard:deactivated-keys"), Value: aws.String(u.AccessKeys[0].ID)}}})
	require.NoError(t, err)
	_, err = c.UntagUser(ctx, &iam.UntagUserInput{UserName: name, TagKeys: []string{"department"}})
	require.NoError(t, err)

	removeEverything(t, sim, c, people[1].Login)

	_, err = c.DeactivateMFADevice(ctx, &iam.DeactivateMFADeviceInput{UserName: aws.String(people[9].Login), SerialNumber: aws.String(mfaSerial(people[9].Login))})
	require.NoError(t, err)
}

// State saved from one simulator and loaded into a new one with another seed
// answers through the API as the old one did, and the new one goes on from there.
func TestStateSurvivesARestart(t *testing.T) {
	old, oldSrv, oc := start(t)
	ctx := t.Context()
	offboard(t, old, oc)
	leaver := people[3]
	keysBefore, err := oc.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(leaver.Login)})
	require.NoError(t, err)
	profileBefore, err := oc.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(people[0].Login)})
	require.NoError(t, err)
	namesBefore := listUserNames(t, oc)
	var saved bytes.Buffer
	require.NoError(t, old.SaveState(&saved))
	assert.Contains(t, saved.String(), `"version": 1`)
	assert.NotContains(t, saved.String(), secret, "the API's own credentials are not state")

	// Another seed: more people, everyone fully provisioned. A session taken
	// before the load is the API's credentials, not state, and survives it.
	fresh, srv, c := start(t, func(o *iamsim.Options) { o.People = demo.People(60) })
	stsc := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1, HTTPClient: buffered{}, Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
	sess, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/offboard"), RoleSessionName: aws.String("test")})
	require.NoError(t, err)
	require.Len(t, listUserNames(t, c), 60+nonHuman)

	require.NoError(t, fresh.LoadState(bytes.NewReader(saved.Bytes())))

	name := aws.String(leaver.Login)
	// The transitions the admin endpoint shows, including a deleted user's.
	for _, login := range []string{leaver.Login, people[1].Login, people[9].Login} {
		want, got := transitions(t, oldSrv.URL, login), transitions(t, srv.URL, login)
		require.Len(t, got, len(want), login)
		for i := range want {
			assert.Equal(t, want[i].Action, got[i].Action)
			assert.Equal(t, want[i].Detail, got[i].Detail)
			assert.True(t, want[i].At.Equal(got[i].At))
		}
	}

	assert.Equal(t, namesBefore, listUserNames(t, c), "ListUsers answers the saved users, in order")
	assert.Len(t, namesBefore, len(people)-1+nonHuman)
	_, err = c.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(people[1].Login)})
	assert.Equal(t, "NoSuchEntity", apiCode(err), "the deleted user stays deleted")
	_, err = c.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(demo.People(60)[50].Login)})
	assert.Equal(t, "NoSuchEntity", apiCode(err), "the new seed's extra people are gone")

	keys, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: name})
	require.NoError(t, err)
	assert.Equal(t, keysBefore.AccessKeyMetadata, keys.AccessKeyMetadata)
	require.Len(t, keys.AccessKeyMetadata, 2)
	assert.Equal(t, types.StatusTypeInactive, keys.AccessKeyMetadata[0].Status, "the deactivated key is still inactive")
	assert.Equal(t, types.StatusTypeActive, keys.AccessKeyMetadata[1].Status)

	_, err = c.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: name})
	assert.Equal(t, "NoSuchEntity", apiCode(err), "the login profile stays deleted")
	profile, err := c.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(people[0].Login)})
	require.NoError(t, err)
	assert.Equal(t, profileBefore.LoginProfile.CreateDate, profile.LoginProfile.CreateDate)

	groups, err := c.ListGroupsForUser(ctx, &iam.ListGroupsForUserInput{UserName: name})
	require.NoError(t, err)
	require.Len(t, groups.Groups, 1, "the removed membership stays removed")
	assert.Equal(t, leaver.Department, aws.ToString(groups.Groups[0].GroupName))
	assert.True(t, strings.HasPrefix(aws.ToString(groups.Groups[0].GroupId), "AGPA"))

	ssh, err := c.ListSSHPublicKeys(ctx, &iam.ListSSHPublicKeysInput{UserName: name})
	require.NoError(t, err)
	require.Len(t, ssh.SSHPublicKeys, 1)
	assert.Equal(t, types.StatusTypeInactive, ssh.SSHPublicKeys[0].Status)
	svc, err := c.ListServiceSpecificCredentials(ctx, &iam.ListServiceSpecificCredentialsInput{UserName: name, ServiceName: aws.String("codecommit.amazonaws.com")})
	require.NoError(t, err)
	require.Len(t, svc.ServiceSpecificCredentials, 1, "the service name is kept")
	assert.Equal(t, types.StatusTypeInactive, svc.ServiceSpecificCredentials[0].Status)
	certs, err := c.ListSigningCertificates(ctx, &iam.ListSigningCertificatesInput{UserName: name})
	require.NoError(t, err)
	assert.Empty(t, certs.Certificates)

	mfa, err := c.ListMFADevices(ctx, &iam.ListMFADevicesInput{UserName: name})
	require.NoError(t, err)
	assert.Empty(t, mfa.MFADevices)
	_, err = c.DeleteVirtualMFADevice(ctx, &iam.DeleteVirtualMFADeviceInput{SerialNumber: aws.String(mfaSerial(leaver.Login))})
	assert.Equal(t, "NoSuchEntity", apiCode(err), "the deleted virtual MFA device stays deleted")
	_, err = c.DeleteVirtualMFADevice(ctx, &iam.DeleteVirtualMFADeviceInput{SerialNumber: aws.String(mfaSerial(people[0].Login))})
	assert.Equal(t, "DeleteConflict", apiCode(err), "an assigned device is still assigned")
	_, err = c.DeleteVirtualMFADevice(ctx, &iam.DeleteVirtualMFADeviceInput{SerialNumber: aws.String(mfaSerial(people[9].Login))})
	assert.NoError(t, err, "the device taken off people[9] is unassigned, not gone")

	attached, err := c.ListAttachedUserPolicies(ctx, &iam.ListAttachedUserPoliciesInput{UserName: name})
	require.NoError(t, err)
	assert.Empty(t, attached.AttachedPolicies)
	inline, err := c.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: name})
	require.NoError(t, err)
	assert.Equal(t, []string{"personal-scratch", "OffboardDenyAll"}, inline.PolicyNames)
	doc, err := c.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: name, PolicyName: aws.String("OffboardDenyAll")})
	require.NoError(t, err)
	decoded, err := url.QueryUnescape(aws.ToString(doc.PolicyDocument))
	require.NoError(t, err)
	assert.Equal(t, denyAll, decoded)

	user, err := c.GetUser(ctx, &iam.GetUserInput{UserName: name})
	require.NoError(t, err)
	var tagKeys []string
	for _, tg := range user.User.Tags {
		tagKeys = append(tagKeys, aws.ToString(tg.Key))
	}
	assert.Equal(t, []string{"email", "employee-id", "offboard:deactivated-keys"}, tagKeys, "tags in their order, the removed one gone")

	// The loaded state is live: changes land on it and new items go after the saved ones.
	_, err = c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: name, PolicyName: aws.String("AfterRestart"), PolicyDocument: aws.String(denyAll)})
	require.NoError(t, err)
	inline, err = c.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: name, MaxItems: aws.Int32(3)})
	require.NoError(t, err)
	assert.Equal(t, []string{"personal-scratch", "OffboardDenyAll"}, inline.PolicyNames, "pages of two")
	rest, err := c.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: name, Marker: inline.Marker})
	require.NoError(t, err)
	assert.Equal(t, []string{"AfterRestart"}, rest.PolicyNames)
	_, err = c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: name, AccessKeyId: keys.AccessKeyMetadata[1].AccessKeyId, Status: types.StatusTypeInactive})
	require.NoError(t, err)
	trs := transitions(t, srv.URL, leaver.Login)
	assert.Equal(t, "UpdateAccessKey", trs[len(trs)-1].Action)
	assert.Len(t, trs, len(transitions(t, oldSrv.URL, leaver.Login))+2)
	assert.Len(t, old.Transitions(leaver.Login), len(trs)-2, "the old simulator is not touched")

	temp := client(srv.URL, credentials.NewStaticCredentialsProvider(aws.ToString(sess.Credentials.AccessKeyId), aws.ToString(sess.Credentials.SecretAccessKey), aws.ToString(sess.Credentials.SessionToken)))
	_, err = temp.GetUser(ctx, &iam.GetUserInput{UserName: name})
	assert.NoError(t, err, "the session taken before the load still works")
}

// The same state saves to the same bytes, and a save of a loaded state is
// the document it was loaded from.
func TestSaveStateIsStable(t *testing.T) {
	old, _, oc := start(t)
	offboard(t, old, oc)
	var first, second, again bytes.Buffer
	require.NoError(t, old.SaveState(&first))
	require.NoError(t, old.SaveState(&second))
	assert.Equal(t, first.String(), second.String())
	fresh, _, _ := start(t, func(o *iamsim.Options) { o.People = demo.People(2) })
	require.NoError(t, fresh.LoadState(bytes.NewReader(first.Bytes())))
	require.NoError(t, fresh.SaveState(&again))
	assert.Equal(t, first.String(), again.String())
}

// userIn finds a user object in a decoded document.
func userIn(t *testing.T, doc map[string]any, login string) map[string]any {
	t.Helper()
	for _, u := range doc["users"].([]any) {
		if m := u.(map[string]any); m["name"] == login {
			return m
		}
	}
	t.Fatalf("no user %s in the document", login)
	return nil
}

// mfaDeviceIn finds a virtual MFA device in a decoded document.
func mfaDeviceIn(t *testing.T, doc map[string]any, serial string) map[string]any {
	t.Helper()
	for _, d := range doc["virtualMFADevices"].([]any) {
		if m := d.(map[string]any); m["serialNumber"] == serial {
			return m
		}
	}
	t.Fatalf("no virtual MFA device %s in the document", serial)
	return nil
}

// A document that is not version 1, not JSON or not consistent is refused
// with an error, and the simulator answers as before.
func TestLoadStateRefusesBadDocuments(t *testing.T) {
	sim, _, c := start(t)
	offboard(t, sim, c)
	var saved bytes.Buffer
	require.NoError(t, sim.SaveState(&saved))
	good := saved.Bytes()
	leaver := people[3].Login

	docs := map[string]string{
		"unknown version": strings.Replace(string(good), `"version": 1`, `"version": 2`, 1),
		"no version":      `{"users": []}`,
		"not JSON":        "{",
		"truncated":       string(good[:len(good)/2]),
		"trailing data":   string(good) + "{}",
		"unknown field": simstatetest.Edit(t, good, func(doc map[string]any) {
			userIn(t, doc, leaver)["passwordHash"] = "x"
		}),
		"membership of a missing group": simstatetest.Edit(t, good, func(doc map[string]any) {
			userIn(t, doc, leaver)["groups"] = []any{"no-such-group"}
		}),
		"MFA device assigned to a missing user": simstatetest.Edit(t, good, func(doc map[string]any) {
			mfaDeviceIn(t, doc, mfaSerial(people[9].Login))["user"] = "nobody"
		}),
		"MFA device assigned to a user who does not list it": simstatetest.Edit(t, good, func(doc map[string]any) {
			mfaDeviceIn(t, doc, mfaSerial(people[9].Login))["user"] = people[9].Login
		}),
		"MFA device assigned to two users": simstatetest.Edit(t, good, func(doc map[string]any) {
			u := userIn(t, doc, people[0].Login)
			u["mfaDevices"] = append(u["mfaDevices"].([]any), mfaSerial(people[2].Login))
		}),
		"user twice": simstatetest.Edit(t, good, func(doc map[string]any) {
			raw, err := json.Marshal(userIn(t, doc, leaver))
			require.NoError(t, err)
			var twin map[string]any
			require.NoError(t, json.Unmarshal(raw, &twin))
			twin["userId"] = "AIDATWIN"
			for _, k := range []string{"accessKeys", "sshPublicKeys", "serviceSpecificCredentials", "signingCertificates"} {
				twin[k] = []any{}
			}
			doc["users"] = append(doc["users"].([]any), twin)
		}),
		"access key of two users": simstatetest.Edit(t, good, func(doc map[string]any) {
			userIn(t, doc, people[0].Login)["accessKeys"] = userIn(t, doc, leaver)["accessKeys"]
		}),
		"bad key status": simstatetest.Edit(t, good, func(doc map[string]any) {
			userIn(t, doc, leaver)["accessKeys"].([]any)[0].(map[string]any)["status"] = "Disabled"
		}),
	}
	// Each document must be refused for what it is named after, not by accident.
	fresh, _, _ := start(t, func(o *iamsim.Options) { o.People = demo.People(2) })
	require.NoError(t, fresh.LoadState(bytes.NewReader(good)), "the unedited document loads")

	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			err := sim.LoadState(strings.NewReader(doc))
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "iam: load state: "), err.Error())
			var after bytes.Buffer
			require.NoError(t, sim.SaveState(&after))
			assert.Equal(t, saved.String(), after.String(), "the state is as it was")
			keys, err := c.ListAccessKeys(t.Context(), &iam.ListAccessKeysInput{UserName: aws.String(leaver)})
			require.NoError(t, err)
			assert.Equal(t, types.StatusTypeInactive, keys.AccessKeyMetadata[0].Status)
			assert.Len(t, listUserNames(t, c), len(people)-1+nonHuman)
		})
	}
	err := sim.LoadState(strings.NewReader(docs["unknown version"]))
	assert.EqualError(t, err, "iam: load state: version 2, want 1")
	err = sim.LoadState(strings.NewReader(docs["membership of a missing group"]))
	assert.ErrorContains(t, err, "no-such-group")
}

// Saves and loads while callers use the API (run with -race).
func TestStateConcurrentWithCallers(t *testing.T) {
	sim, _, c := start(t)
	var saved bytes.Buffer
	require.NoError(t, sim.SaveState(&saved))
	var wg sync.WaitGroup
	for _, p := range people[:10] {
		wg.Go(func() {
			for range 5 {
				keys, err := c.ListAccessKeys(t.Context(), &iam.ListAccessKeysInput{UserName: aws.String(p.Login)})
				if !assert.NoError(t, err) {
					return
				}
				_, err = c.UpdateAccessKey(t.Context(), &iam.UpdateAccessKeyInput{UserName: aws.String(p.Login), AccessKeyId: keys.AccessKeyMetadata[0].AccessKeyId, Status: types.StatusTypeInactive})
				assert.NoError(t, err)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			var buf bytes.Buffer
			assert.NoError(t, sim.SaveState(&buf))
			assert.NoError(t, sim.LoadState(bytes.NewReader(saved.Bytes())))
		}
	})
	wg.Wait()
}
