package awsiam_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	iamsim "github.com/offboard/offboard/sandbox/iam"
)

const (
	testKey    = "AKIDOFFBOARDTEST0001"
	testSecret = "offboard-test-secret-do-not-leak"
	target     = "aws-prod"
)

var people = demo.People(45) // 45 users: ListUsers needs three pages of 20

type env struct {
	sim    *iamsim.Sim
	srv    *httptest.Server
	client *awsiam.Client
}

func newEnv(t *testing.T, opts ...func(*iamsim.Options, *awsiam.Config)) *env {
	t.Helper()
	so := iamsim.Options{AccessKeyID: testKey, SecretAccessKey: testSecret, RequestsPerSecond: 100000, People: people}
	cfg := awsiam.Config{Name: target, AccountID: "123456789012", Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")}
	for _, o := range opts {
		o(&so, &cfg)
	}
	sim := iamsim.New(so)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	if cfg.Endpoint == "" {
		cfg.Endpoint = srv.URL
	}
	c, err := awsiam.New(t.Context(), cfg)
	require.NoError(t, err)
	return &env{sim: sim, srv: srv, client: c}
}

// sdk is a plain IAM client on the simulator, for arranging state in tests.
func (e *env) sdk() *iam.Client {
	return iam.New(iam.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(e.srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, ""), HTTPClient: buffered{},
	})
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

func acct(p demo.Person) control.Account {
	return control.Account{Target: target, ID: p.Login, Login: p.Login}
}

func countStatus(cs []iamsim.Credential, status string) int {
	n := 0
	for _, c := range cs {
		if c.Status == status {
			n++
		}
	}
	return n
}

func TestKindAndControls(t *testing.T) {
	e := newEnv(t)
	assert.Equal(t, "awsiam", e.client.Kind())
	assert.Equal(t, target, e.client.Name())
	assert.Equal(t, []string{"deactivate_access_keys", "delete_login_profile", "deactivate_ssh_keys", "deactivate_service_credentials",
		"deactivate_signing_certificates", "deny_all_policy"}, e.client.Controls(control.Containment))
	assert.Equal(t, []string{"delete_access_keys", "delete_ssh_keys", "delete_service_credentials", "delete_signing_certificates",
		"delete_mfa_devices", "remove_groups", "detach_policies"}, e.client.Controls(control.Removal))
	assert.Equal(t, []string{"delete_user"}, e.client.Controls(control.Deletion))
	assert.Equal(t, []string{"remove_groups"}, e.client.Controls(control.RoleChange))
	assert.Equal(t, []string{"restore_access"}, e.client.Controls(control.Restore))

	_, err := e.client.Enforce(t.Context(), "launch_missiles", acct(people[0]), control.Params{})
	assert.ErrorIs(t, err, control.ErrUnknownControl)
}

// Each control: observe (not yet) → enforce → observe (holds) → enforce again
// (harmless, changes nothing) → observe (still holds), and the simulator's
// state shows the real effect.
func TestControls(t *testing.T) {
	admin := people[9] // privileged: 2 keys, 3 groups (two pages), AdministratorAccess
	require.True(t, admin.Privileged)
	cases := []struct {
		control string
		person  demo.Person
		params  control.Params
		effect  func(t *testing.T, u iamsim.User)
	}{
		{"deactivate_access_keys", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			require.Len(t, u.AccessKeys, 2)
			assert.Equal(t, 0, countStatus(u.AccessKeys, "Active"))
			assert.Len(t, strings.Fields(u.Tags["offboard:deactivated-keys"]), 2, "deactivated keys are recorded for restore")
		}},
		{"delete_login_profile", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.False(t, u.LoginProfile)
		}},
		{"deactivate_credentials", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Equal(t, 0, countStatus(u.SSHPublicKeys, "Active"))
			assert.Equal(t, 0, countStatus(u.ServiceSpecificCredentials, "Active"))
			assert.Equal(t, 0, countStatus(u.SigningCertificates, "Active"))
			assert.Len(t, u.SSHPublicKeys, 1)
			assert.NotEmpty(t, u.Tags["offboard:deactivated-ssh"])
			assert.NotEmpty(t, u.Tags["offboard:deactivated-svc"])
			assert.NotEmpty(t, u.Tags["offboard:deactivated-certs"])
		}},
		{"deactivate_ssh_keys", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Equal(t, 0, countStatus(u.SSHPublicKeys, "Active"))
			assert.Equal(t, 1, countStatus(u.ServiceSpecificCredentials, "Active"), "each kind is its own control")
			assert.NotEmpty(t, u.Tags["offboard:deactivated-ssh"])
		}},
		{"deactivate_service_credentials", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Equal(t, 0, countStatus(u.ServiceSpecificCredentials, "Active"))
			assert.Equal(t, 1, countStatus(u.SigningCertificates, "Active"))
			assert.NotEmpty(t, u.Tags["offboard:deactivated-svc"])
		}},
		{"deactivate_signing_certificates", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Equal(t, 0, countStatus(u.SigningCertificates, "Active"))
			assert.Equal(t, 1, countStatus(u.SSHPublicKeys, "Active"))
			assert.NotEmpty(t, u.Tags["offboard:deactivated-certs"])
		}},
		{"deny_all_policy", admin, control.Params{Since: time.Now().Add(-time.Minute)}, func(t *testing.T, u iamsim.User) {
			doc := u.InlinePolicies["OffboardDenyAll"]
			assert.Contains(t, doc, `"Effect":"Deny","Action":"*","Resource":"*"}`)
			assert.Contains(t, doc, `"DateLessThan":{"aws:TokenIssueTime":"`)
		}},
		{"delete_access_keys", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Empty(t, u.AccessKeys)
		}},
		{"delete_credentials", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Empty(t, u.SSHPublicKeys)
			assert.Empty(t, u.ServiceSpecificCredentials)
			assert.Empty(t, u.SigningCertificates)
		}},
		{"delete_ssh_keys", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Empty(t, u.SSHPublicKeys)
			assert.Len(t, u.SigningCertificates, 1)
		}},
		{"delete_service_credentials", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Empty(t, u.ServiceSpecificCredentials)
			assert.Len(t, u.SSHPublicKeys, 1)
		}},
		{"delete_signing_certificates", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Empty(t, u.SigningCertificates)
			assert.Len(t, u.ServiceSpecificCredentials, 1)
		}},
		{"delete_mfa_devices", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Empty(t, u.MFADevices)
		}},
		{"remove_groups", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Empty(t, u.Groups)
		}},
		{"detach_policies", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			assert.Empty(t, u.AttachedPolicies)
			assert.Empty(t, u.InlinePolicies)
		}},
		{"delete_user", admin, control.Params{}, func(t *testing.T, u iamsim.User) {
			t.Fatal("the user should be gone")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.control, func(t *testing.T) {
			e := newEnv(t)
			ctx, a := t.Context(), acct(tc.person)

			before, err := e.client.Observe(ctx, tc.control, a, tc.params)
			require.NoError(t, err)
			assert.False(t, before.Holds, before.Detail)
			assert.True(t, before.Readable)
			assert.Equal(t, 200, before.Call.HTTPStatus)
			assert.NotEmpty(t, before.Call.RequestID)
			assert.True(t, strings.HasPrefix(before.Call.Digest, "sha256:"))

			resp, err := e.client.Enforce(ctx, tc.control, a, tc.params)
			require.NoError(t, err)
			assert.Equal(t, 200, resp.HTTPStatus)
			assert.NotEmpty(t, resp.RequestID)

			after, err := e.client.Observe(ctx, tc.control, a, tc.params)
			require.NoError(t, err)
			assert.True(t, after.Holds, after.Detail)

			if tc.control == "delete_user" {
				assert.True(t, after.Gone)
				_, ok := e.sim.User(tc.person.Login)
				assert.False(t, ok)
				_, err := e.client.Enforce(ctx, tc.control, a, tc.params)
				assert.ErrorIs(t, err, control.ErrNotFound, "enforce on a missing account")
				return
			}
			u, ok := e.sim.User(tc.person.Login)
			require.True(t, ok)
			tc.effect(t, u)

			changes := len(e.sim.Transitions(tc.person.Login))
			_, err = e.client.Enforce(ctx, tc.control, a, tc.params)
			require.NoError(t, err, "enforcing again is harmless")
			again, err := e.client.Observe(ctx, tc.control, a, tc.params)
			require.NoError(t, err)
			assert.True(t, again.Holds, again.Detail)
			if tc.control != "deny_all_policy" { // rewriting the policy is the one repeat that writes
				assert.Len(t, e.sim.Transitions(tc.person.Login), changes, "a repeat changes nothing")
			}
		})
	}
}

// Containment then removal in the connector's order leaves only
// OffboardDenyAll, so delete_user needs exactly two calls that change state
// and never meets DeleteConflict.
func TestPhasesInOrderThenDeleteUser(t *testing.T) {
	e := newEnv(t)
	ctx, p := t.Context(), people[19] // privileged
	params := control.Params{Since: time.Now()}
	for _, phase := range []control.Phase{control.Containment, control.Removal} {
		for _, name := range e.client.Controls(phase) {
			_, err := e.client.Enforce(ctx, name, acct(p), params)
			require.NoError(t, err, name)
			obs, err := e.client.Observe(ctx, name, acct(p), params)
			require.NoError(t, err, name)
			require.True(t, obs.Holds, "%s: %s", name, obs.Detail)
		}
	}
	u, ok := e.sim.User(p.Login)
	require.True(t, ok)
	assert.Empty(t, u.Groups)
	assert.Empty(t, u.AccessKeys)
	assert.Equal(t, []string{"OffboardDenyAll"}, keys(u.InlinePolicies), "the deny stays until the user is deleted")

	before := len(e.sim.Transitions(p.Login))
	_, err := e.client.Enforce(ctx, "delete_user", acct(p), params)
	require.NoError(t, err)
	var actions []string
	for _, tr := range e.sim.Transitions(p.Login)[before:] {
		actions = append(actions, tr.Action+" "+tr.Detail)
	}
	assert.Equal(t, []string{"DeleteUserPolicy OffboardDenyAll", "DeleteUser arn:aws:iam::123456789012:user/" + p.Login}, actions)

	for _, name := range append(e.client.Controls(control.Containment), "delete_user") {
		obs, err := e.client.Observe(ctx, name, acct(p), params)
		require.NoError(t, err, name)
		assert.True(t, obs.Holds && obs.Gone, name)
	}
}

// delete_user on a user nothing was removed from still works: it sweeps first.
func TestDeleteUserSweepsLeftovers(t *testing.T) {
	e := newEnv(t)
	_, err := e.client.Enforce(t.Context(), "delete_user", acct(people[9]), control.Params{})
	require.NoError(t, err)
	_, ok := e.sim.User(people[9].Login)
	assert.False(t, ok)
}

func TestRoleChangeKeepsGroups(t *testing.T) {
	e := newEnv(t)
	ctx, p := t.Context(), people[29] // privileged engineering: all-staff, engineering, admins
	require.Equal(t, []string{"all-staff", "engineering", "admins"}, demo.GroupsOf(p))
	params := control.Params{KeepGroups: []string{"all-staff", "Engineering"}}

	obs, err := e.client.Observe(ctx, "remove_groups", acct(p), params)
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.Contains(t, obs.Detail, "groups to remove: 1 [admins]")

	_, err = e.client.Enforce(ctx, "remove_groups", acct(p), params)
	require.NoError(t, err)
	u, _ := e.sim.User(p.Login)
	assert.Equal(t, []string{"all-staff", "engineering"}, u.Groups)

	obs, err = e.client.Observe(ctx, "remove_groups", acct(p), params)
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	assert.Equal(t, len(u.AccessKeys), countStatus(u.AccessKeys, "Active"), "nothing else is touched")
}

func TestRestore(t *testing.T) {
	e := newEnv(t)
	ctx, p := t.Context(), people[0] // two access keys
	u, _ := e.sim.User(p.Login)
	require.Len(t, u.AccessKeys, 2)
	// Someone disabled the second key before the termination: restore must leave it off.
	_, err := e.sdk().UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(p.Login), AccessKeyId: aws.String(u.AccessKeys[1].ID), Status: types.StatusTypeInactive})
	require.NoError(t, err)

	obs, err := e.client.Observe(ctx, "restore_access", acct(p), control.Params{})
	require.NoError(t, err)
	assert.True(t, obs.Holds, "nothing to restore before containment: %s", obs.Detail)

	for _, name := range []string{"deactivate_access_keys", "deactivate_credentials", "deny_all_policy"} {
		_, err := e.client.Enforce(ctx, name, acct(p), control.Params{})
		require.NoError(t, err, name)
	}
	obs, err = e.client.Observe(ctx, "restore_access", acct(p), control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.Contains(t, obs.Detail, "1 access keys to reactivate")
	assert.Contains(t, obs.Detail, "OffboardDenyAll in force")

	_, err = e.client.Enforce(ctx, "restore_access", acct(p), control.Params{})
	require.NoError(t, err)
	obs, err = e.client.Observe(ctx, "restore_access", acct(p), control.Params{})
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)

	u, _ = e.sim.User(p.Login)
	assert.Equal(t, []iamsim.Credential{{ID: u.AccessKeys[0].ID, Status: "Active"}, {ID: u.AccessKeys[1].ID, Status: "Inactive"}}, u.AccessKeys)
	assert.Equal(t, "Active", u.SSHPublicKeys[0].Status)
	assert.Equal(t, "Active", u.ServiceSpecificCredentials[0].Status)
	assert.Equal(t, "Active", u.SigningCertificates[0].Status)
	assert.NotContains(t, u.InlinePolicies, "OffboardDenyAll")
	for k := range u.Tags {
		assert.False(t, strings.HasPrefix(k, "offboard:"), "record %s forgotten", k)
	}
	_, err = e.client.Enforce(ctx, "restore_access", acct(p), control.Params{})
	require.NoError(t, err, "restoring twice is harmless")
}

func TestDenyAllHonoursSince(t *testing.T) {
	e := newEnv(t)
	ctx, p := t.Context(), people[3]
	_, err := e.client.Enforce(ctx, "deny_all_policy", acct(p), control.Params{})
	require.NoError(t, err)

	later := time.Now().Add(time.Hour).Truncate(time.Millisecond).Add(500 * time.Millisecond)
	obs, err := e.client.Observe(ctx, "deny_all_policy", acct(p), control.Params{Since: later})
	require.NoError(t, err)
	assert.False(t, obs.Holds, "sessions issued between the old enforce time and Since would survive: %s", obs.Detail)

	_, err = e.client.Enforce(ctx, "deny_all_policy", acct(p), control.Params{Since: later})
	require.NoError(t, err)
	obs, err = e.client.Observe(ctx, "deny_all_policy", acct(p), control.Params{Since: later})
	require.NoError(t, err)
	assert.True(t, obs.Holds, obs.Detail)
	assert.Contains(t, obs.Detail, later.Add(time.Second).Truncate(time.Second).UTC().Format(time.RFC3339))

	// A policy that only revokes sessions does not deny long-lived keys: not enough.
	_, err = e.sdk().PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(p.Login), PolicyName: aws.String("OffboardDenyAll"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2999-01-01T00:00:00Z"}}}]}`)})
	require.NoError(t, err)
	obs, err = e.client.Observe(ctx, "deny_all_policy", acct(p), control.Params{})
	require.NoError(t, err)
	assert.False(t, obs.Holds)
	assert.Contains(t, obs.Detail, "does not deny everything")
}

func TestResolve(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	sdk := e.sdk()
	// people[41]'s user now carries another email: only the tag (found by the
	// ListUsers scan) links that email to it.
	_, err := sdk.TagUser(ctx, &iam.TagUserInput{UserName: aws.String(people[41].Login), Tags: []types.Tag{{Key: aws.String("email"), Value: aws.String("renamed@example.test")}}})
	require.NoError(t, err)
	// people[42]'s user lost its email tag: found by name.
	_, err = sdk.UntagUser(ctx, &iam.UntagUserInput{UserName: aws.String(people[42].Login), TagKeys: []string{"email"}})
	require.NoError(t, err)

	cases := []struct {
		name   string
		person control.Person
		want   string
		err    error
	}{
		{"hint", control.Person{Email: "whoever@example.test", Hints: map[string]string{target: people[5].Login}}, people[5].Login, nil},
		{"stale hint: the email still finds the user", control.Person{Email: people[5].Email, Hints: map[string]string{target: "nobody"}}, people[5].Login, nil},
		{"hint for a missing user, no email", control.Person{Hints: map[string]string{target: "nobody"}}, "", control.ErrNotFound},
		{"email tag, same name", control.Person{Email: people[6].Email}, people[6].Login, nil},
		{"email tag, case-insensitive", control.Person{Email: strings.ToUpper(people[7].Email)}, people[7].Login, nil},
		{"email tag on another user name (scan over pages)", control.Person{Email: "renamed@example.test"}, people[41].Login, nil},
		{"name fallback when untagged", control.Person{Email: people[42].Email}, people[42].Login, nil},
		{"name matches but tagged for someone else", control.Person{Email: people[41].Email}, "", control.ErrNotFound},
		{"nobody", control.Person{Email: "stranger@example.test"}, "", control.ErrNotFound},
		{"no email, no hint: nothing to search by is not 'no account'", control.Person{EmployeeID: "E9"}, "", control.ErrPermanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := e.client.Resolve(ctx, tc.person)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				var ce *control.Error
				require.ErrorAs(t, err, &ce)
				if tc.err == control.ErrNotFound {
					require.NotEmpty(t, ce.Searched, "no account only with a record of what was searched")
					t.Log(ce.Searched)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, a.ID)
			assert.Equal(t, tc.want, a.Login)
			assert.Equal(t, target, a.Target)
		})
	}
}

// garbage serves a body the SDK cannot parse.
func garbage(status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-amzn-RequestId", "req-garbage")
		w.WriteHeader(status)
		_, _ = w.Write([]byte("<html><body>upstream proxy error"))
	})
}

func TestErrorClassification(t *testing.T) {
	p := people[2]
	cases := []struct {
		name       string
		rule       *fault.Rule
		rps        int
		handler    http.Handler
		key        string
		secret     string
		deadline   time.Duration
		timeout    time.Duration // http.Client timeout
		kind       error
		status     int
		retryAfter time.Duration
		contains   string
	}{
		{name: "NoSuchEntity", rule: &fault.Rule{Status: 404}, kind: control.ErrNotFound, status: 404},
		{name: "injected 429 with Retry-After", rule: &fault.Rule{Status: 429, RetryAfter: 7 * time.Second}, kind: control.ErrRateLimited, status: 429, retryAfter: 7 * time.Second},
		{name: "IAM Throttling (400, no header)", rps: 1, kind: control.ErrRateLimited, status: 400, retryAfter: time.Second, contains: "Throttling"},
		{name: "AccessDenied names the action", rule: &fault.Rule{Status: 403}, kind: control.ErrUnauthorized, status: 403, contains: "missing permission iam:ListAccessKeys"},
		{name: "unknown key id", key: "AKIDSOMEONEELSE00000", secret: testSecret, kind: control.ErrUnauthorized, status: 403, contains: "InvalidClientTokenId"},
		{name: "wrong secret", key: testKey, secret: "not-the-secret", kind: control.ErrUnauthorized, status: 403, contains: "SignatureDoesNotMatch"},
		{name: "503", rule: &fault.Rule{Status: 503}, kind: control.ErrTransient, status: 503, contains: "ServiceUnavailable"},
		{name: "500", rule: &fault.Rule{Status: 500}, kind: control.ErrTransient, status: 500},
		{name: "409 ConcurrentModification", rule: &fault.Rule{Status: 409}, kind: control.ErrTransient, status: 409},
		{name: "other 4xx", rule: &fault.Rule{Status: 400}, kind: control.ErrPermanent, status: 400},
		{name: "garbage 200 on a read", handler: garbage(200), kind: control.ErrTransient, status: 200, contains: "unparseable response body (sha256:"},
		{name: "garbage 502", handler: garbage(502), kind: control.ErrTransient, status: 502, contains: "unparseable response body (sha256:"},
		{name: "garbage 404 is not IAM saying gone", handler: garbage(404), kind: control.ErrUnexpected, status: 404, contains: "unparseable"},
		{name: "hang until the deadline", rule: &fault.Rule{Hang: true}, deadline: 300 * time.Millisecond, kind: control.ErrTransient},
		{name: "hang until the HTTP client times out", rule: &fault.Rule{Hang: true}, timeout: 300 * time.Millisecond, kind: control.ErrTransient, contains: "Client.Timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *iamsim.Options, c *awsiam.Config) {
				if tc.rps > 0 {
					o.RequestsPerSecond = tc.rps
				}
				if tc.timeout > 0 {
					c.HTTPClient = &http.Client{Timeout: tc.timeout}
				}
				if tc.key != "" {
					c.Credentials = credentials.NewStaticCredentialsProvider(tc.key, tc.secret, "")
				}
			})
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				t.Cleanup(srv.Close)
				c, err := awsiam.New(t.Context(), awsiam.Config{Name: target, Endpoint: srv.URL, Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
				require.NoError(t, err)
				e.client = c
			}
			if tc.rps > 0 {
				// Spend the bucket's only token.
				_, err := e.client.Observe(t.Context(), "delete_access_keys", acct(p), control.Params{})
				require.NoError(t, err)
			}
			if tc.rule != nil {
				e.sim.Faults().Add(*tc.rule)
			}
			ctx := t.Context()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			start := time.Now()
			_, err := e.client.Enforce(ctx, "deactivate_access_keys", acct(p), control.Params{})
			require.Error(t, err)
			assert.Less(t, time.Since(start), 5*time.Second)

			var ce *control.Error
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, tc.kind)
			assert.Equal(t, tc.status, ce.HTTPStatus)
			assert.Equal(t, tc.retryAfter, ce.RetryAfter)
			assert.Contains(t, ce.Op, target+": deactivate_access_keys "+p.Login)
			if tc.status != 0 {
				assert.NotEmpty(t, ce.RequestID)
				assert.True(t, strings.HasPrefix(ce.Digest, "sha256:"), "digest of the failing body")
			}
			if tc.contains != "" {
				assert.Contains(t, err.Error(), tc.contains)
			}
			assert.NotContains(t, err.Error(), testSecret)
			assert.NotContains(t, err.Error(), "not-the-secret")

			u, ok := e.sim.User(p.Login)
			require.True(t, ok)
			assert.Equal(t, len(u.AccessKeys), countStatus(u.AccessKeys, "Active"), "a failed enforce changed nothing")
		})
	}
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := awsiam.New(t.Context(), awsiam.Config{Name: target, Endpoint: url, Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
	require.NoError(t, err)
	_, err = c.Observe(t.Context(), "delete_login_profile", acct(people[0]), control.Params{})
	assert.ErrorIs(t, err, control.ErrTransient)
}

func TestAssumeRole(t *testing.T) {
	var mu sync.Mutex
	var keyIDs []string
	e := newEnv(t)
	// Note which key id signed each request.
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, rest, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
			id, _, _ := strings.Cut(rest, "/")
			mu.Lock()
			keyIDs = append(keyIDs, id)
			mu.Unlock()
		}
		e.sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(spy.Close)
	base := credentials.NewStaticCredentialsProvider(testKey, testSecret, "")

	c, err := awsiam.New(t.Context(), awsiam.Config{Name: target, Endpoint: spy.URL, Credentials: base, RoleARN: "arn:aws:iam::123456789012:role/offboard"})
	require.NoError(t, err)
	p := people[4]
	_, err = c.Enforce(t.Context(), "deactivate_access_keys", acct(p), control.Params{})
	require.NoError(t, err)
	_, err = c.Enforce(t.Context(), "delete_login_profile", acct(p), control.Params{})
	require.NoError(t, err)
	u, _ := e.sim.User(p.Login)
	assert.Equal(t, 0, countStatus(u.AccessKeys, "Active"))

	mu.Lock()
	assert.Equal(t, testKey, keyIDs[0], "AssumeRole is signed with the base credentials")
	assert.Len(t, slices.DeleteFunc(slices.Clone(keyIDs), func(id string) bool { return id != testKey }), 1, "one AssumeRole: the role's credentials are cached")
	assert.Greater(t, len(keyIDs), 3)
	for _, id := range keyIDs[1:] {
		assert.True(t, strings.HasPrefix(id, "ASIA"), "IAM calls use the role's temporary credentials, got %s", id)
	}
	mu.Unlock()

	other, err := awsiam.New(t.Context(), awsiam.Config{Name: target, Endpoint: spy.URL, Credentials: base, RoleARN: "arn:aws:iam::999999999999:role/offboard"})
	require.NoError(t, err)
	_, err = other.Enforce(t.Context(), "deactivate_access_keys", acct(p), control.Params{})
	require.ErrorIs(t, err, control.ErrUnauthorized)
	assert.Contains(t, err.Error(), "missing permission sts:AssumeRole")
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestResolveReadsPrivileges(t *testing.T) {
	e := newEnv(t)
	admin, err := e.client.Resolve(t.Context(), control.Person{Email: people[9].Email})
	require.NoError(t, err)
	assert.Contains(t, admin.Privileges, "aws: AdministratorAccess attached to user "+people[9].Login)
	assert.Contains(t, admin.Privileges, "aws: AdministratorAccess attached to group admins")

	plain, err := e.client.Resolve(t.Context(), control.Person{Email: people[0].Email})
	require.NoError(t, err)
	assert.Empty(t, plain.Privileges, "ReadOnlyAccess and an s3 scratch policy are not admin rights")

	// An inline policy granting *:* is an admin right too.
	_, err = e.sdk().PutUserPolicy(t.Context(), &iam.PutUserPolicyInput{UserName: aws.String(people[0].Login), PolicyName: aws.String("break-glass"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["*"],"Resource":"*"}}`)})
	require.NoError(t, err)
	plain, err = e.client.Resolve(t.Context(), control.Person{Email: people[0].Email})
	require.NoError(t, err)
	assert.Equal(t, []string{"aws: inline policy break-glass of user " + people[0].Login + " allows *:*"}, plain.Privileges)
}

func TestProbe(t *testing.T) {
	e := newEnv(t)
	p, err := e.client.Probe(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"sts:GetCallerIdentity: arn:aws:iam::123456789012:user/offboard in account 123456789012", "iam:ListUsers: answered as IAM"}, p.Checks)
	assert.Empty(t, p.Missing)

	cases := []struct {
		name     string
		cfg      func(c *awsiam.Config)
		rule     *fault.Rule
		kind     error
		contains string
	}{
		{"wrong secret", func(c *awsiam.Config) {
			c.Credentials = credentials.NewStaticCredentialsProvider(testKey, "not-the-secret", "")
		}, nil, control.ErrUnauthorized, "the credentials were refused"},
		{"another account", func(c *awsiam.Config) { c.AccountID = "999999999999" }, nil, control.ErrPermanent, "configured for account 999999999999"},
		{"endpoint is a proxy's HTML 404", func(c *awsiam.Config) { c.Endpoint = httptestHTML404(t) }, nil, control.ErrUnexpected, "did not answer as AWS IAM/STS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := awsiam.Config{Name: target, AccountID: "123456789012", Endpoint: e.srv.URL, Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")}
			tc.cfg(&cfg)
			c, err := awsiam.New(t.Context(), cfg)
			require.NoError(t, err)
			_, err = c.Probe(t.Context())
			require.ErrorIs(t, err, tc.kind)
			assert.Contains(t, err.Error(), tc.contains)
			assert.Contains(t, err.Error(), target)
			assert.NotContains(t, err.Error(), "not-the-secret")
		})
	}
	t.Run("ListUsers refused: reported missing", func(t *testing.T) {
		srv := hostile.New(t, e.sim.Handler(), hostile.Rule{Match: action("ListUsers"), Handler: hostile.Body(403, "text/xml", accessDeniedXML)})
		c, err := awsiam.New(t.Context(), awsiam.Config{Name: target, AccountID: "123456789012", Endpoint: srv.URL,
			Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
		require.NoError(t, err)
		p, err := c.Probe(t.Context())
		require.NoError(t, err, "the credentials work; a permission is missing")
		assert.Equal(t, []string{"iam:ListUsers"}, p.Missing)
	})
}

func httptestHTML404(t *testing.T) string {
	srv := httptest.NewServer(garbage(404))
	t.Cleanup(srv.Close)
	return srv.URL
}

// delete_user whose sweep was throttled fails as rate limited, so Temporal
// asks again, not as IAM's DeleteConflict, a permanent failure that made it
// an exception (make chaos: 144 of 500 runs).
func TestDeleteUserAfterAThrottledSweepIsRetried(t *testing.T) {
	throttling := `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>Throttling</Code>` +
		`<Message>Rate exceeded</Message></Error><RequestId>4f1c0f52-0000-4000-8000-000000000009</RequestId></ErrorResponse>`
	h := newHostileEnv(t, awsCase{rules: one(action("ListSSHPublicKeys"), hostile.Body(400, "text/xml", throttling))})
	_, err := h.client.Enforce(h.ctx, "delete_user", acct(hostileAdmin), control.Params{})
	require.Error(t, err)
	assert.ErrorIs(t, err, control.ErrRateLimited)
	assert.Contains(t, err.Error(), "DeleteUser", "it still says what IAM refused and what is left")
}
