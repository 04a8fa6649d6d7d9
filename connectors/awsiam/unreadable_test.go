package awsiam_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
)

// A read's unparseable 200 is asked again. (A write's stays permanent, but
// the writes controls make return no body the SDK parses: UpdateAccessKey's
// garbage passes, and the read-back judges.)
func TestUnparseableReadIsTransient(t *testing.T) {
	for _, tc := range []struct {
		action, control string
	}{
		{"ListAccessKeys", "deactivate_access_keys"},
		{"ListSSHPublicKeys", "deactivate_ssh_keys"},
	} {
		t.Run(tc.action, func(t *testing.T) {
			h := newHostileEnv(t, awsCase{rules: one(action(tc.action), hostile.Body(200, "text/xml", "<html><body>502 upstream"))})
			_, err := h.client.Enforce(h.ctx, tc.control, acct(hostileAdmin), control.Params{})
			require.Positive(t, h.srv.Hits(), "the garbage was never served: the case tests nothing")
			require.ErrorIs(t, err, control.ErrTransient)
			var ce *control.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, 200, ce.HTTPStatus)
			assert.Contains(t, err.Error(), tc.action)
		})
	}
}

// IAM's empty list is the element with no members (<AccessKeyMetadata/>):
// it still means none. The same answer without the element is no answer.
func TestEmptyListOnlyWhenIAMSaysSo(t *testing.T) {
	const head = `<ListAccessKeysResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListAccessKeysResult>`
	const tail = `<IsTruncated>false</IsTruncated></ListAccessKeysResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></ListAccessKeysResponse>`
	for _, tc := range []struct {
		name, body string
		none       bool
	}{
		{"<AccessKeyMetadata/>", head + `<AccessKeyMetadata/>` + tail, true},
		{"<AccessKeyMetadata></AccessKeyMetadata>", head + `<AccessKeyMetadata></AccessKeyMetadata>` + tail, true},
		{"no element", head + tail, false},
		{"empty body", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostileEnv(t, awsCase{rules: one(action("ListAccessKeys"), hostile.Body(200, "text/xml", tc.body))})
			obs, err := h.client.Observe(h.ctx, "deactivate_access_keys", acct(hostileAdmin), control.Params{})
			require.Positive(t, h.srv.Hits())
			if tc.none {
				require.NoError(t, err)
				assert.True(t, obs.Holds && obs.Readable, obs.Detail)
				return
			}
			require.ErrorIs(t, err, control.ErrTransient)
			assert.Contains(t, err.Error(), "without its AccessKeyMetadata list")
		})
	}
}
