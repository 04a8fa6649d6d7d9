// Package simstatetest helps the simulators' state tests build bad documents.
package simstatetest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// Edit decodes a saved state document, lets fn change it and encodes it again.
func Edit(t testing.TB, saved []byte, fn func(doc map[string]any)) string {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(saved, &doc))
	fn(doc)
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	return string(out)
}
