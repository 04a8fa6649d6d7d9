package ssf

import (
	"errors"
	"testing"
)

// Whatever a transmitter (or anyone) pushes, Verify answers with an RFC 8935
// refusal and never panics; nothing but a SET signed by the key passes.
func FuzzVerify(f *testing.F) {
	k := ecKey(f)
	keys := staticKeys(f, k)
	good, _ := k.Sign(testSET())
	for _, seed := range []string{good, good[:len(good)-3], "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "...."} {
		f.Add(seed)
	}
	v := verifier(keys)
	f.Fuzz(func(t *testing.T, token string) {
		set, err := v.Verify(t.Context(), token)
		var refused *Error
		if err != nil && !errors.As(err, &refused) {
			t.Fatalf("not an RFC 8935 refusal: %v", err)
		}
		if err == nil && token != good && set.JTI != "jti-1" {
			t.Fatalf("accepted a token the key did not sign: %q", token)
		}
	})
}
