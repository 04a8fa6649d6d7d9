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
