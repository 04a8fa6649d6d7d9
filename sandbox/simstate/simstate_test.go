package simstate_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/simstate"
)

type doc struct {
	Version int      `json:"version"`
	Users   []string `json:"users"`
}

func TestRoundTripAndRefusals(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, simstate.Encode(&buf, doc{Version: 1, Users: []string{"ada"}}))
	var got doc
	require.NoError(t, simstate.Decode(bytes.NewReader(buf.Bytes()), 1, &got))
	assert.Equal(t, doc{Version: 1, Users: []string{"ada"}}, got)

	for name, tc := range map[string]struct{ in, want string }{
		"no version":      {`{"users":[]}`, "no version"},
		"other version":   {`{"version":2,"users":[]}`, "version 2, want 1"},
		"malformed":       {`{"version":1,`, "not a state document"},
		"trailing data":   {`{"version":1} {}`, "not a state document"},
		"unknown field":   {`{"version":1,"groups":[]}`, `unknown field "groups"`},
		"wrong type":      {`{"version":1,"users":"ada"}`, "cannot unmarshal"},
		"version as text": {`{"version":"1"}`, "not a state document"},
	} {
		err := simstate.Decode(strings.NewReader(tc.in), 1, &got)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}
