package runs

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/decision"
)

func TestUpdateID(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	sign := func(nonce string) decision.Signed {
		s, err := decision.Sign(key, decision.Decision{WorkflowID: "w", RunID: "r", Kind: "approve", Person: "alice@example.test",
			Payload: []byte(`{}`), At: time.Unix(1, 0), Nonce: nonce})
		require.NoError(t, err)
		return s
	}
	req := Request{Kind: "approve", Person: "alice@example.test", IdempotencyKey: "click-1"}
	first := updateID("w", "r", req, sign("n1"))
	require.Equal(t, first, updateID("w", "r", req, sign("n2")), "a retry with the same key is the same update, whatever was signed")
	other := req
	other.Person = "bob@example.test"
	require.NotEqual(t, first, updateID("w", "r", other, sign("n1")), "another person's key never collides")
	require.NotEqual(t, first, updateID("w", "r2", req, sign("n1")), "another run")
	req.IdempotencyKey = ""
	require.NotEqual(t, updateID("w", "r", req, sign("n1")), updateID("w", "r", req, sign("n2")), "without a key each decision is its own")
}
