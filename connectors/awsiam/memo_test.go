package awsiam_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
	iamsim "github.com/offboard/offboard/sandbox/iam"
)

// actionCounter counts the IAM calls the connector makes, by Action.
type actionCounter struct {
	mu   sync.Mutex
	n    map[string]int
	fail string // an Action answered once with IAM's ServiceFailure
}

func (c *actionCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	f, _ := url.ParseQuery(string(body))
	c.mu.Lock()
	c.n[f.Get("Action")]++
	fail := c.fail != "" && c.fail == f.Get("Action")
	if fail {
		c.fail = ""
	}
	c.mu.Unlock()
	if fail {
		body := `<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceFailure</Code><Message>try again</Message></Error><RequestId>r1</RequestId></ErrorResponse>`
		return &http.Response{StatusCode: 500, Header: http.Header{"Content-Type": {"text/xml"}}, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (c *actionCounter) failOnce(action string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = action
}

// take returns the counts so far and starts again from zero.
func (c *actionCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func countingEnv(t *testing.T) (*env, *actionCounter) {
	counter := &actionCounter{n: map[string]int{}}
	e := newEnv(t, func(_ *iamsim.Options, cfg *awsiam.Config) {
		cfg.HTTPClient = &http.Client{Transport: counter}
	})
	return e, counter
}

// oneKey is a person the simulator gives exactly one access key, so a test
// may create a second (IAM allows two).
func oneKey(t *testing.T, e *env) demo.Person {
	for _, p := range people {
		if u, ok := e.sim.User(p.Login); ok && len(u.AccessKeys) == 1 {
			return p
		}
	}
	t.Fatal("no person with one access key")
	return demo.Person{}
}

// ApplyControl's sequence with a memo: the observe reads the tags beside the
// lists, the enforce goes straight to TagUser and the updates, and the
// read-back (no memo) lists afresh: two lists and one tags read, not three
// and one.
func TestDeactivateWithMemoReadsOnce(t *testing.T) {
	admin := people[9]
	for _, name := range []string{awsiam.DeactivateAccessKeys, awsiam.DeactivateCreds} {
		t.Run(name, func(t *testing.T) {
			e, calls := countingEnv(t)
			a := acct(admin)
			mctx, _ := control.WithMemo(t.Context())

			before, err := e.client.Observe(mctx, name, a, control.Params{})
			require.NoError(t, err)
			require.False(t, before.Holds, before.Detail)
			_, err = e.client.Enforce(mctx, name, a, control.Params{})
			require.NoError(t, err)
			after, err := e.client.Observe(t.Context(), name, a, control.Params{})
			require.NoError(t, err)
			require.True(t, after.Holds, after.Detail)

			n := calls.take()
			lists := map[string][]string{awsiam.DeactivateAccessKeys: {"ListAccessKeys"},
				awsiam.DeactivateCreds: {"ListSSHPublicKeys", "ListServiceSpecificCredentials", "ListSigningCertificates"}}[name]
			for _, l := range lists {
				assert.Equal(t, 2, n[l], "%s: observe and read-back list; the enforce uses the observe's: %v", l, n)
			}
			assert.Equal(t, 1, n["GetUser"], "the tags are read once, beside the observe's lists: %v", n)
			assert.Equal(t, 1, n["TagUser"], n)
			u, _ := e.sim.User(admin.Login)
			if name == awsiam.DeactivateAccessKeys {
				assert.Equal(t, 2, n["UpdateAccessKey"], n)
				assert.Equal(t, 0, countStatus(u.AccessKeys, "Active"))
				assert.Len(t, strings.Fields(u.Tags["offboard:deactivated-keys"]), 2, "the record is made from the memo's lists")
			} else {
				assert.Equal(t, 0, countStatus(u.SSHPublicKeys, "Active")+countStatus(u.ServiceSpecificCredentials, "Active")+countStatus(u.SigningCertificates, "Active"))
				assert.NotEmpty(t, u.Tags["offboard:deactivated-ssh"])
			}
		})
	}
}

// Without a memo (verification, a read-back, older callers) nothing changes:
// the observe reads no tags, and the enforce reads lists and tags itself.
func TestDeactivateWithoutMemoAsBefore(t *testing.T) {
	admin := people[9]
	e, calls := countingEnv(t)
	a := acct(admin)

	_, err := e.client.Observe(t.Context(), awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"ListAccessKeys": 1}, calls.take(), "an observe without a memo reads only the keys")

	_, err = e.client.Enforce(t.Context(), awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"ListAccessKeys": 1, "GetUser": 1, "TagUser": 1, "UpdateAccessKey": 2}, calls.take())

	after, err := e.client.Observe(t.Context(), awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	assert.True(t, after.Holds, after.Detail)
	assert.Equal(t, map[string]int{"ListAccessKeys": 1}, calls.take())
}

// The memo is taken once: a second enforce in the same memo reads again.
func TestDeactivateMemoIsTakenOnce(t *testing.T) {
	admin := people[9]
	e, calls := countingEnv(t)
	a := acct(admin)
	mctx, _ := control.WithMemo(t.Context())

	_, err := e.client.Observe(mctx, awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	for range 2 {
		_, err = e.client.Enforce(mctx, awsiam.DeactivateAccessKeys, a, control.Params{})
		require.NoError(t, err)
	}
	n := calls.take()
	assert.Equal(t, 2, n["ListAccessKeys"], "the second enforce lists for itself: %v", n)
	assert.Equal(t, 2, n["GetUser"], n)
}

// A key created between the observe and the enforce is not in the memo, so
// it stays active, and the fresh read-back says the control does not hold.
func TestDeactivateStaleMemoReadBackTells(t *testing.T) {
	e, _ := countingEnv(t)
	p := oneKey(t, e)
	a := acct(p)
	mctx, _ := control.WithMemo(t.Context())

	before, err := e.client.Observe(mctx, awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	require.False(t, before.Holds)
	created, err := e.sdk().CreateAccessKey(t.Context(), &iam.CreateAccessKeyInput{UserName: aws.String(p.Login)})
	require.NoError(t, err)
	newKey := aws.ToString(created.AccessKey.AccessKeyId)

	_, err = e.client.Enforce(mctx, awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	after, err := e.client.Observe(t.Context(), awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	assert.False(t, after.Holds, "the key created meanwhile is still active: %s", after.Detail)
	assert.Contains(t, after.Detail, newKey)

	// The retry ApplyControl gets contains it.
	_, err = e.client.Enforce(t.Context(), awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	after, err = e.client.Observe(t.Context(), awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	assert.True(t, after.Holds, after.Detail)
}

// A tags read that fails beside the observe changes nothing the observe
// says, and leaves no memo: the enforce reads lists and tags itself.
func TestDeactivateMemoNotLeftAfterAFailedRead(t *testing.T) {
	admin := people[9]
	e, calls := countingEnv(t)
	a := acct(admin)
	mctx, _ := control.WithMemo(t.Context())

	calls.failOnce("GetUser")
	before, err := e.client.Observe(mctx, awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err, "the observe's answer does not depend on the tags")
	assert.False(t, before.Holds)
	assert.Equal(t, 200, before.Call.HTTPStatus, "the observation's call is the list's, not the failed tags read")
	assert.Equal(t, map[string]int{"ListAccessKeys": 1, "GetUser": 1}, calls.take())

	_, err = e.client.Enforce(mctx, awsiam.DeactivateAccessKeys, a, control.Params{})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"ListAccessKeys": 1, "GetUser": 1, "TagUser": 1, "UpdateAccessKey": 2}, calls.take())
	u, _ := e.sim.User(admin.Login)
	assert.Len(t, strings.Fields(u.Tags["offboard:deactivated-keys"]), 2)
}

// Controls whose enforce reads nothing first leave nothing and read no more.
func TestOtherContainmentIgnoresMemo(t *testing.T) {
	admin := people[9]
	e, calls := countingEnv(t)
	a := acct(admin)
	for _, name := range []string{awsiam.DeleteLoginProfile, awsiam.DenyAllPolicy} {
		mctx, memo := control.WithMemo(t.Context())
		_, err := e.client.Observe(mctx, name, a, control.Params{})
		require.NoError(t, err)
		_, err = e.client.Enforce(mctx, name, a, control.Params{})
		require.NoError(t, err)
		_, left := memo.Take("awsiam " + target + " " + name + " " + admin.Login)
		assert.False(t, left, name)
	}
	assert.Equal(t, map[string]int{"GetLoginProfile": 1, "DeleteLoginProfile": 1, "GetUserPolicy": 1, "GetUser": 2, "PutUserPolicy": 1}, calls.take(),
		"one read and one write each, each read with GetUser beside it (which says whose NoSuchEntity it is)")
}
