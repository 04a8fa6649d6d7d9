package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/internal/runs"
)

// apiKey is the sandbox's operator API key; configYAML trusts its public half.
var apiKey = func() ed25519.PrivateKey {
	s := sha256.Sum256([]byte("sandbox-decision-key"))
	return ed25519.NewKeyFromSeed(s[:])
}()

// roles are what the operator API's tokens would prove.
var roles = map[string][]string{
	"alice@example.test": {decision.RoleSecurity, decision.RoleApprover},
	"hr@example.test":    {decision.RoleHR},
	"legal@example.test": {decision.RoleHR},
}

// decide makes a person's decision as the operator API does: signed, as
// the Update of its kind, with the run's verdict back.
func (s *stack) decide(ctx context.Context, employee, kind, person, digest string, payload any) runs.Verdict {
	s.t.Helper()
	v, err := runs.Decide(ctx, s.temporal.Client, apiKey, runs.Request{EmployeeID: employee, Kind: kind, Person: person,
		Roles: roles[person], PlanDigest: digest, Payload: payload}, time.Now(), 30*time.Second)
	require.NoError(s.t, err)
	return v
}
