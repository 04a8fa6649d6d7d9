package sigv4

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"
)

// signed is a request signed by the AWS SDK's own signer, as the connectors send them.
func signed(t *testing.T, body, secret string) *http.Request {
	t.Helper()
	r, err := http.NewRequest("POST", "http://127.0.0.1:8109/?a=b", strings.NewReader(body))
	require.NoError(t, err)
	r.Header.Set("X-Amz-Target", "secretsmanager.DescribeSecret")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: secret}
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "secretsmanager", "us-east-1", time.Now()))
	return r
}

func TestVerifyAcceptsTheSDKsSignatureOnly(t *testing.T) {
	r := signed(t, `{"SecretId":"x"}`, "s3cret")
	h, err := Parse(r)
	require.NoError(t, err)
	require.Equal(t, "AKIDEXAMPLE", h.KeyID)
	require.Equal(t, "secretsmanager", h.Service())
	require.True(t, h.Verify(r, []byte(`{"SecretId":"x"}`), "s3cret"))
	require.False(t, h.Verify(r, []byte(`{"SecretId":"y"}`), "s3cret"), "another body")
	require.False(t, h.Verify(r, []byte(`{"SecretId":"x"}`), "other"), "another secret")
	r.Header.Set("X-Amz-Target", "secretsmanager.DeleteSecret")
	require.False(t, h.Verify(r, []byte(`{"SecretId":"x"}`), "s3cret"), "a signed header changed")
}

func TestParseRefusesWhatIsNotSigV4(t *testing.T) {
	for auth, want := range map[string]error{
		"":                   ErrMissing,
		"Basic dXNlcjpwYXNz": ErrAlgorithm,
		"AWS4-HMAC-SHA256 Credential=AKID/20260101":                                                ErrIncomplete,
		"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/iam/aws4_request, SignedHeaders=host": ErrIncomplete,
	} {
		r, _ := http.NewRequest("POST", "http://x/", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		_, err := Parse(r)
		require.ErrorIs(t, err, want, auth)
	}
}
