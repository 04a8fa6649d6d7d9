package decision

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func key(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func sample() Decision {
	return Decision{
		WorkflowID: "deprovision-E1001", RunID: "run-1", Kind: KindApprove,
		Person: "alice@example.test", Roles: []string{RoleApprover},
		PlanDigest: "sha256:ab", Payload: json.RawMessage(`{"decision":"approve"}`),
		At: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), Nonce: "n1",
	}
}

func TestSignVerify(t *testing.T) {
	api, glass, other := key(1), key(2), key(3)
	keys := []Key{{Public: api.Public().(ed25519.PublicKey)}, {Public: glass.Public().(ed25519.PublicKey), BreakGlass: true}}

	s, err := Sign(api, sample())
	require.NoError(t, err)
	v, err := Verify(s, keys)
	require.NoError(t, err)
	require.Equal(t, sample(), v.Decision)
	require.False(t, v.BreakGlass)

	s, err = Sign(glass, sample())
	require.NoError(t, err)
	v, err = Verify(s, keys)
	require.NoError(t, err)
	require.True(t, v.BreakGlass, "the break-glass key is marked as such")

	s, err = Sign(other, sample())
	require.NoError(t, err)
	_, err = Verify(s, keys)
	require.ErrorIs(t, err, ErrUnknownKey)

	// Another key claiming the API key's id.
	s.KeyID = KeyID(api.Public().(ed25519.PublicKey))
	_, err = Verify(s, keys)
	require.ErrorIs(t, err, ErrBadSig)

	_, err = Verify(Signed{}, keys)
	require.ErrorIs(t, err, ErrUnsigned)
}

func TestVerifyRefusesEveryChangedByte(t *testing.T) {
	api := key(1)
	keys := []Key{{Public: api.Public().(ed25519.PublicKey)}}
	s, err := Sign(api, sample())
	require.NoError(t, err)
	for i := range s.Body {
		changed := s
		changed.Body = append([]byte(nil), s.Body...)
		changed.Body[i] ^= 0x01
		_, err := Verify(changed, keys)
		require.Error(t, err, "byte %d", i)
	}
	for i := range s.Sig {
		changed := s
		changed.Sig = append([]byte(nil), s.Sig...)
		changed.Sig[i] ^= 0x80
		_, err := Verify(changed, keys)
		require.ErrorIs(t, err, ErrBadSig, "signature byte %d", i)
	}
}

func TestParseRefusesOtherSpellings(t *testing.T) {
	body, err := Encode(sample())
	require.NoError(t, err)
	_, err = Parse(body)
	require.NoError(t, err)
	for name, b := range map[string]string{
		"spaces":        strings.Replace(string(body), `","`, `", "`, 1),
		"unknown field": strings.Replace(string(body), `{"workflowId"`, `{"by":"mallory","workflowId"`, 1),
		"trailing":      string(body) + " {}",
		"offset time":   strings.Replace(string(body), `12:00:00Z`, `15:00:00+03:00`, 1),
		"null roles":    strings.Replace(string(body), `"roles":["approver"]`, `"roles":null`, 1),
		"no run":        strings.Replace(string(body), `"runId":"run-1"`, `"runId":""`, 1),
		"no person":     strings.Replace(string(body), `"person":"alice@example.test"`, `"person":" "`, 1),
		"no nonce":      strings.Replace(string(body), `"nonce":"n1"`, `"nonce":""`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, string(body), b, "the case changes the body")
			_, err := Parse([]byte(b))
			require.Error(t, err)
		})
	}
}

func TestNormalizeDigest(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	require.Equal(t, "sha256:"+hex, NormalizeDigest(hex))
	require.Equal(t, "sha256:"+hex, NormalizeDigest(" SHA256:"+strings.ToUpper(hex)+" "))
	require.Equal(t, "quarantine", NormalizeDigest("quarantine"))
	require.Equal(t, "", NormalizeDigest(" "))
}

func TestParseKeys(t *testing.T) {
	k := key(7)
	seed := base64.StdEncoding.EncodeToString(k.Seed())
	full := base64.StdEncoding.EncodeToString(k)
	for _, s := range []string{seed, full, seed + "\n"} {
		got, err := ParsePrivateKey(s)
		require.NoError(t, err)
		require.Equal(t, k, got)
	}
	bad := append([]byte(nil), k...)
	bad[40] ^= 1
	_, err := ParsePrivateKey(base64.StdEncoding.EncodeToString(bad))
	require.Error(t, err, "a private key whose public half was changed")
	_, err = ParsePrivateKey("not base64!")
	require.Error(t, err)
	pub, err := ParsePublicKey(base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey)))
	require.NoError(t, err)
	require.Equal(t, k.Public(), pub)
	_, err = ParsePublicKey(seed[:10])
	require.Error(t, err)
}

// FuzzParse: the parser of a body that arrives from outside the workflow
// never panics, and what it accepts is canonical (encodes to itself).
func FuzzParse(f *testing.F) {
	body, _ := Encode(sample())
	f.Add(body)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"workflowId":"w","runId":"r","kind":"x","person":"p","roles":[],"planDigest":"","payload":{},"at":"2026-01-01T00:00:00Z","nonce":"n"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Encode(d)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", b, err)
		}
		if string(again) != string(b) {
			t.Fatalf("accepted a non-canonical body %q (canonical %q)", b, again)
		}
	})
}

// FuzzVerify: an envelope from outside never panics the verifier, and only
// one signed by the key verifies.
func FuzzVerify(f *testing.F) {
	api := key(1)
	keys := []Key{{Public: api.Public().(ed25519.PublicKey)}}
	s, _ := Sign(api, sample())
	f.Add(s.KeyID, s.Body, s.Sig)
	f.Fuzz(func(t *testing.T, id string, body, sig []byte) {
		v, err := Verify(Signed{KeyID: id, Body: body, Sig: sig}, keys)
		if err != nil {
			if !errors.Is(err, ErrUnsigned) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrBadSig) && !strings.HasPrefix(err.Error(), "decision:") {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !ed25519.Verify(keys[0].Public, message(body), sig) || v.WorkflowID == "" {
			t.Fatal("verified without a valid signature")
		}
	})
}
