package iam_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	iamsim "github.com/offboard/offboard/sandbox/iam"
)

const (
	key    = "AKIDSIMTEST000000001"
	secret = "sim-test-secret"
)

var people = demo.People(45)

// nonHuman counts the users every seed adds besides people: the service
// user deploy-bot and the break-glass user (sandbox/demo/nonhuman.go).
const nonHuman = 2

func start(t *testing.T, mut ...func(*iamsim.Options)) (*iamsim.Sim, *httptest.Server, *iam.Client) {
	t.Helper()
	o := iamsim.Options{AccessKeyID: key, SecretAccessKey: secret, RequestsPerSecond: 100000, People: people}
	for _, m := range mut {
		m(&o)
	}
	sim := iamsim.New(o)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv, client(srv.URL, credentials.NewStaticCredentialsProvider(key, secret, ""))
}

func client(url string, creds aws.CredentialsProvider) *iam.Client {
	return iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), RetryMaxAttempts: 1, Credentials: creds, HTTPClient: buffered{}})
}

// buffered gives the transport its own copy of each request body, avoiding
// the SDK race that closes connections under a response (aws-sdk-go-v2#2737);
// the awsiam connector does the same.
type buffered struct{}

func (buffered) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		buf, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(buf))
	}
	return http.DefaultClient.Do(req)
}

func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func TestSeededUser(t *testing.T) {
	sim, _, _ := start(t)
	p := people[9]
	u, ok := sim.User(p.Login)
	require.True(t, ok)
	assert.Equal(t, p.Email, u.Tags["email"])
	assert.Len(t, u.AccessKeys, 2)
	assert.True(t, strings.HasPrefix(u.AccessKeys[0].ID, "AKIA"))
	assert.True(t, u.LoginProfile)
	assert.Len(t, u.SSHPublicKeys, 1)
	assert.Len(t, u.ServiceSpecificCredentials, 1)
	assert.Len(t, u.SigningCertificates, 1)
	assert.Equal(t, []string{"arn:aws:iam::123456789012:mfa/" + p.Login}, u.MFADevices)
	assert.Equal(t, demo.GroupsOf(p), u.Groups)
	assert.Equal(t, []string{"arn:aws:iam::aws:policy/AdministratorAccess"}, u.AttachedPolicies)
	assert.Len(t, u.InlinePolicies, 1)
	assert.Len(t, mustUser(t, sim, people[1].Login).AccessKeys, 1)
}

func mustUser(t *testing.T, sim *iamsim.Sim, name string) iamsim.User {
	t.Helper()
	u, ok := sim.User(name)
	require.True(t, ok)
	return u
}

func TestPagination(t *testing.T) {
	_, _, c := start(t)
	var names []string
	pages := 0
	p := iam.NewListUsersPaginator(c, &iam.ListUsersInput{})
	for p.HasMorePages() {
		pg, err := p.NextPage(t.Context())
		require.NoError(t, err)
		pages++
		for _, u := range pg.Users {
			names = append(names, aws.ToString(u.UserName))
			assert.Empty(t, u.Tags, "ListUsers does not return tags")
		}
	}
	assert.Equal(t, 3, pages)
	assert.Len(t, names, len(people)+nonHuman)

	out, err := c.ListUsers(t.Context(), &iam.ListUsersInput{MaxItems: aws.Int32(5)})
	require.NoError(t, err)
	assert.Len(t, out.Users, 5)
	assert.True(t, out.IsTruncated)
	require.NotNil(t, out.Marker)

	groups, err := c.ListGroupsForUser(t.Context(), &iam.ListGroupsForUserInput{UserName: aws.String(people[9].Login)})
	require.NoError(t, err)
	assert.Len(t, groups.Groups, 2, "per-user lists come in pages of two")
	assert.True(t, groups.IsTruncated)
	rest, err := c.ListGroupsForUser(t.Context(), &iam.ListGroupsForUserInput{UserName: aws.String(people[9].Login), Marker: groups.Marker})
	require.NoError(t, err)
	assert.Equal(t, "admins", aws.ToString(rest.Groups[0].GroupName))
	assert.False(t, rest.IsTruncated)

	_, err = c.ListUsers(t.Context(), &iam.ListUsersInput{Marker: aws.String("bogus!")})
	assert.Equal(t, "ValidationError", apiCode(err))
}

func TestDeleteUserNeedsEverythingGone(t *testing.T) {
	sim, _, c := start(t)
	ctx, name := t.Context(), aws.String(people[1].Login)
	_, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: name})
	var conflict *types.DeleteConflictException
	require.ErrorAs(t, err, &conflict)
	assert.Contains(t, err.Error(), "StatusCode: 409")

	serial := "arn:aws:iam::123456789012:mfa/" + people[1].Login
	_, err = c.DeleteVirtualMFADevice(ctx, &iam.DeleteVirtualMFADeviceInput{SerialNumber: aws.String(serial)})
	assert.Equal(t, "DeleteConflict", apiCode(err), "an MFA device in use cannot be deleted")

	u := mustUser(t, sim, people[1].Login)
	steps := []func() error{
		func() error {
			_, err := c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: name})
			return err
		},
		func() error {
			_, err := c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: name, AccessKeyId: aws.String(u.AccessKeys[0].ID)})
			return err
		},
		func() error {
			_, err := c.DeleteSSHPublicKey(ctx, &iam.DeleteSSHPublicKeyInput{UserName: name, SSHPublicKeyId: aws.String(u.SSHPublicKeys[0].ID)})
			return err
		},
		func() error {
			_, err := c.DeleteServiceSpecificCredential(ctx, &iam.DeleteServiceSpecificCredentialInput{UserName: name, ServiceSpecificCredentialId: aws.String(u.ServiceSpecificCredentials[0].ID)})
			return err
		},
		func() error {
			_, err := c.DeleteSigningCertificate(ctx, &iam.DeleteSigningCertificateInput{UserName: name, CertificateId: aws.String(u.SigningCertificates[0].ID)})
			return err
		},
		func() error {
			_, err := c.DeactivateMFADevice(ctx, &iam.DeactivateMFADeviceInput{UserName: name, SerialNumber: aws.String(serial)})
			return err
		},
		func() error {
			for _, g := range u.Groups {
				if _, err := c.RemoveUserFromGroup(ctx, &iam.RemoveUserFromGroupInput{UserName: name, GroupName: aws.String(g)}); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			_, err := c.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: name, PolicyArn: aws.String(u.AttachedPolicies[0])})
			return err
		},
		func() error {
			_, err := c.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: name, PolicyName: aws.String("personal-scratch")})
			return err
		},
	}
	for i, step := range steps {
		require.NoError(t, step(), "step %d", i)
		_, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: name})
		if i < len(steps)-1 {
			require.Equal(t, "DeleteConflict", apiCode(err), "after step %d", i)
		} else {
			require.NoError(t, err)
		}
	}
	_, ok := sim.User(people[1].Login)
	assert.False(t, ok)
	_, err = c.GetUser(ctx, &iam.GetUserInput{UserName: name})
	var missing *types.NoSuchEntityException
	assert.ErrorAs(t, err, &missing)
	_, err = c.DeleteVirtualMFADevice(ctx, &iam.DeleteVirtualMFADeviceInput{SerialNumber: aws.String(serial)})
	assert.NoError(t, err, "an unassigned virtual MFA device can be deleted")

	trs := sim.Transitions(people[1].Login)
	require.NotEmpty(t, trs)
	assert.Equal(t, "DeleteLoginProfile", trs[0].Action)
	assert.Equal(t, "DeleteUser", trs[len(trs)-2].Action)
	assert.Equal(t, "DeleteVirtualMFADevice", trs[len(trs)-1].Action)
}

func TestStateChanges(t *testing.T) {
	sim, _, c := start(t)
	ctx, p := t.Context(), people[3]
	name := aws.String(p.Login)
	u := mustUser(t, sim, p.Login)

	_, err := c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: name, AccessKeyId: aws.String(u.AccessKeys[0].ID), Status: types.StatusTypeInactive})
	require.NoError(t, err)
	_, err = c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: name, AccessKeyId: aws.String("AKIANOTTHEKEY0000000"), Status: types.StatusTypeInactive})
	assert.Equal(t, "NoSuchEntity", apiCode(err))
	keys, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: name})
	require.NoError(t, err)
	assert.Equal(t, types.StatusTypeInactive, keys.AccessKeyMetadata[0].Status)

	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}`
	_, err = c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: name, PolicyName: aws.String("OffboardDenyAll"), PolicyDocument: aws.String(doc)})
	require.NoError(t, err)
	got, err := c.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: name, PolicyName: aws.String("OffboardDenyAll")})
	require.NoError(t, err)
	assert.NotEqual(t, doc, aws.ToString(got.PolicyDocument), "IAM returns the document URL-encoded")
	decoded, err := url.QueryUnescape(aws.ToString(got.PolicyDocument))
	require.NoError(t, err)
	assert.Equal(t, doc, decoded)
	_, err = c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: name, PolicyName: aws.String("bad"), PolicyDocument: aws.String("not json")})
	assert.Equal(t, "MalformedPolicyDocument", apiCode(err))

	_, err = c.TagUser(ctx, &iam.TagUserInput{UserName: name, Tags: []types.Tag{{Key: aws.String("offboard:deactivated-keys"), Value: aws.String("AKIA1 AKIA2")}}})
	require.NoError(t, err)
	_, err = c.TagUser(ctx, &iam.TagUserInput{UserName: name, Tags: []types.Tag{{Key: aws.String("bad"), Value: aws.String("no,commas")}}})
	assert.Equal(t, "ValidationError", apiCode(err))
	user, err := c.GetUser(ctx, &iam.GetUserInput{UserName: name})
	require.NoError(t, err)
	assert.Len(t, user.User.Tags, 4, "GetUser returns tags")

	_, err = c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: name})
	require.NoError(t, err)
	_, err = c.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: name})
	assert.Equal(t, "NoSuchEntity", apiCode(err))

	var actions []string
	for _, tr := range sim.Transitions(p.Login) {
		actions = append(actions, tr.Action)
		assert.False(t, tr.At.IsZero())
	}
	assert.Equal(t, []string{"UpdateAccessKey", "PutUserPolicy", "TagUser", "DeleteLoginProfile"}, actions)
}

func TestWireFormat(t *testing.T) {
	_, srv, _ := start(t, func(o *iamsim.Options) { o.AccessKeyID, o.SecretAccessKey = "", "" }) // any key id, no signature check
	post := func(form url.Values, auth bool) (*http.Response, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth {
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDANY/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}

	resp, body := post(url.Values{"Action": {"ListAccessKeys"}, "Version": {"2010-05-08"}, "UserName": {people[0].Login}}, true)
	assert.Equal(t, 200, resp.StatusCode)
	assert.True(t, strings.HasPrefix(body, `<ListAccessKeysResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListAccessKeysResult><AccessKeyMetadata><member><UserName>`), body)
	var ok struct {
		Keys      []string `xml:"ListAccessKeysResult>AccessKeyMetadata>member>AccessKeyId"`
		Truncated bool     `xml:"ListAccessKeysResult>IsTruncated"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}
	require.NoError(t, xml.Unmarshal([]byte(body), &ok))
	assert.Len(t, ok.Keys, 2)
	assert.Equal(t, resp.Header.Get("x-amzn-RequestId"), ok.RequestID)

	resp, body = post(url.Values{"Action": {"GetUser"}, "Version": {"2010-05-08"}, "UserName": {"nobody"}}, true)
	assert.Equal(t, 404, resp.StatusCode)
	var fail struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Type      string   `xml:"Error>Type"`
		Code      string   `xml:"Error>Code"`
		Message   string   `xml:"Error>Message"`
		RequestID string   `xml:"RequestId"`
	}
	require.NoError(t, xml.Unmarshal([]byte(body), &fail))
	assert.Equal(t, "Sender", fail.Type)
	assert.Equal(t, "NoSuchEntity", fail.Code)
	assert.Equal(t, "The user with name nobody cannot be found.", fail.Message)
	assert.Equal(t, resp.Header.Get("x-amzn-RequestId"), fail.RequestID)

	resp, body = post(url.Values{"Action": {"ListUsers"}, "Version": {"2010-05-08"}}, false)
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, body, "<Code>MissingAuthenticationToken</Code>")

	resp, body = post(url.Values{"Action": {"CreateUser"}, "Version": {"2010-05-08"}}, true)
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, body, "<Code>InvalidAction</Code>")
}

func TestAuthentication(t *testing.T) {
	_, srv, _ := start(t)
	cases := []struct {
		name, key, secret, code string
	}{
		{"right credentials", key, secret, ""},
		{"unknown key id", "AKIDWHOEVER000000000", secret, "InvalidClientTokenId"},
		{"wrong secret", key, "guess", "SignatureDoesNotMatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := client(srv.URL, credentials.NewStaticCredentialsProvider(tc.key, tc.secret, ""))
			_, err := c.GetUser(t.Context(), &iam.GetUserInput{UserName: aws.String(people[0].Login)})
			assert.Equal(t, tc.code, apiCode(err))
		})
	}
}

func TestAssumeRole(t *testing.T) {
	_, srv, _ := start(t)
	s := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1, HTTPClient: buffered{}, Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
	out, err := s.AssumeRole(t.Context(), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/offboard"), RoleSessionName: aws.String("test")})
	require.NoError(t, err)
	creds := out.Credentials
	assert.True(t, strings.HasPrefix(aws.ToString(creds.AccessKeyId), "ASIA"))
	assert.WithinDuration(t, time.Now().Add(time.Hour), aws.ToTime(creds.Expiration), time.Minute)
	assert.Equal(t, "arn:aws:sts::123456789012:assumed-role/offboard/test", aws.ToString(out.AssumedRoleUser.Arn))

	temp := client(srv.URL, credentials.NewStaticCredentialsProvider(aws.ToString(creds.AccessKeyId), aws.ToString(creds.SecretAccessKey), aws.ToString(creds.SessionToken)))
	_, err = temp.GetUser(t.Context(), &iam.GetUserInput{UserName: aws.String(people[0].Login)})
	assert.NoError(t, err, "the temporary credentials work")
	forged := client(srv.URL, credentials.NewStaticCredentialsProvider(aws.ToString(creds.AccessKeyId), aws.ToString(creds.SecretAccessKey), "forged"))
	_, err = forged.GetUser(t.Context(), &iam.GetUserInput{UserName: aws.String(people[0].Login)})
	assert.Equal(t, "InvalidClientTokenId", apiCode(err))

	_, err = s.AssumeRole(t.Context(), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::999999999999:role/offboard"), RoleSessionName: aws.String("test")})
	assert.Equal(t, "AccessDenied", apiCode(err))
}

func TestThrottling(t *testing.T) {
	_, _, c := start(t, func(o *iamsim.Options) { o.RequestsPerSecond = 3 })
	codes := map[string]int{}
	for range 6 {
		_, err := c.GetUser(t.Context(), &iam.GetUserInput{UserName: aws.String(people[0].Login)})
		codes[apiCode(err)]++
	}
	assert.GreaterOrEqual(t, codes["Throttling"], 2)
	assert.LessOrEqual(t, codes[""], 4)
}

func TestFaultsSpeakIAM(t *testing.T) {
	sim, srv, c := start(t)
	sim.Faults().Add(fault.Rule{Status: 429, RetryAfter: 3 * time.Second, Count: 1})
	sim.Faults().Add(fault.Rule{Status: 503, Count: 1})
	sim.Faults().Add(fault.Rule{Status: 403, Count: 1})

	_, err := c.GetUser(t.Context(), &iam.GetUserInput{UserName: aws.String(people[0].Login)})
	assert.Equal(t, "Throttling", apiCode(err))
	assert.Contains(t, err.Error(), "StatusCode: 429")
	_, err = c.GetUser(t.Context(), &iam.GetUserInput{UserName: aws.String(people[0].Login)})
	assert.Equal(t, "ServiceUnavailable", apiCode(err))
	_, err = c.DeleteUser(t.Context(), &iam.DeleteUserInput{UserName: aws.String(people[0].Login)})
	assert.Equal(t, "AccessDenied", apiCode(err))
	assert.Contains(t, err.Error(), "iam:DeleteUser")
	_, err = c.GetUser(t.Context(), &iam.GetUserInput{UserName: aws.String(people[0].Login)})
	assert.NoError(t, err)

	// Retry-After is on the wire.
	sim.Faults().Add(fault.Rule{Status: 429, RetryAfter: 3 * time.Second, Count: 1})
	resp, err := http.Post(srv.URL+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=GetUser&Version=2010-05-08"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "3", resp.Header.Get("Retry-After"))
}

func TestAdmin(t *testing.T) {
	sim, srv, c := start(t)
	p := people[2]
	_, err := c.DeleteLoginProfile(t.Context(), &iam.DeleteLoginProfileInput{UserName: aws.String(p.Login)})
	require.NoError(t, err)

	get := func(path string, v any) int {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		if v != nil && resp.StatusCode == 200 {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
		}
		return resp.StatusCode
	}
	var u iamsim.User
	assert.Equal(t, 200, get("/_sandbox/users/"+p.Login, &u))
	assert.False(t, u.LoginProfile)
	assert.Equal(t, p.Email, u.Tags["email"])
	var trs []iamsim.Transition
	assert.Equal(t, 200, get("/_sandbox/users/"+p.Login+"/transitions", &trs))
	require.Len(t, trs, 1)
	assert.Equal(t, "DeleteLoginProfile", trs[0].Action)
	assert.Equal(t, 404, get("/_sandbox/users/nobody", nil))

	resp, err := http.Post(srv.URL+"/_sandbox/reset", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.True(t, mustUser(t, sim, p.Login).LoginProfile)
	assert.Empty(t, sim.Transitions(p.Login))
}

// Many callers at once: every change lands exactly once (run with -race).
func TestConcurrentCallers(t *testing.T) {
	many := demo.People(200)
	sim, _, c := start(t, func(o *iamsim.Options) { o.People = many })
	var wg sync.WaitGroup
	errs := make(chan error, len(many))
	for _, p := range many {
		wg.Go(func() {
			keys, err := c.ListAccessKeys(t.Context(), &iam.ListAccessKeysInput{UserName: aws.String(p.Login)})
			if err != nil {
				errs <- err
				return
			}
			for _, k := range keys.AccessKeyMetadata {
				if _, err := c.UpdateAccessKey(t.Context(), &iam.UpdateAccessKeyInput{UserName: aws.String(p.Login), AccessKeyId: k.AccessKeyId, Status: types.StatusTypeInactive}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, p := range many {
		u := mustUser(t, sim, p.Login)
		for _, k := range u.AccessKeys {
			assert.Equal(t, "Inactive", k.Status)
		}
		assert.Len(t, sim.Transitions(p.Login), len(u.AccessKeys))
	}
}
