package codec_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/offboard/offboard/internal/codec"
)

const (
	uiOrigin = "http://localhost:8233"
	token    = "codec-test-token-alice"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func codecServer(t *testing.T, opts codec.HandlerOptions) (*httptest.Server, *codec.Keyring) {
	t.Helper()
	k := keyring(t, map[string][]byte{"k1": newKey(t)}, "k1")
	srv := httptest.NewServer(codec.Handler(k, opts))
	t.Cleanup(srv.Close)
	return srv, k
}

func defaultOpts() codec.HandlerOptions {
	return codec.HandlerOptions{
		AllowedOrigins: []string{uiOrigin, "http://127.0.0.1:8233"},
		TokenSHA256:    []string{digest("some-other-token"), digest(token)},
	}
}

func post(t *testing.T, url string, body []byte, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func payloadsJSON(t *testing.T, ps []*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	require.NoError(t, err)
	return b
}

func readPayloads(t *testing.T, resp *http.Response) []*commonpb.Payload {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(b, &out), string(b))
	return out.Payloads
}

func TestHandlerPreflight(t *testing.T) {
	srv, _ := codecServer(t, defaultOpts())
	tests := []struct {
		name       string
		origin     string
		wantStatus int
		wantAllow  string
	}{
		{"UI origin", uiOrigin, http.StatusNoContent, uiOrigin},
		{"UI on 127.0.0.1", "http://127.0.0.1:8233", http.StatusNoContent, "http://127.0.0.1:8233"},
		{"other origin", "https://evil.example", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What a browser sends before the UI's POST /decode; no Authorization.
			req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, srv.URL+"/decode", nil)
			require.NoError(t, err)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()

			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			assert.Equal(t, tt.wantAllow, resp.Header.Get("Access-Control-Allow-Origin"))
			assert.Contains(t, resp.Header.Values("Vary"), "Origin")
			if tt.wantAllow != "" {
				for _, h := range []string{"content-type", "x-namespace", "authorization"} {
					assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), h)
				}
				assert.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
				assert.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"), "not configured")
			}
		})
	}
}

func TestHandlerPreflightWithCredentials(t *testing.T) {
	opts := defaultOpts()
	opts.AllowCredentials = true
	srv, _ := codecServer(t, opts)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, srv.URL+"/decode", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", uiOrigin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Private-Network", "true")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Private-Network"))
	assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"), "never * with credentials")
}

func TestHandlerAuth(t *testing.T) {
	srv, k := codecServer(t, defaultOpts())
	sealed, err := codec.NewCodec(k).Encode(plainPayloads(t))
	require.NoError(t, err)
	body := payloadsJSON(t, sealed)

	tests := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong token", map[string]string{"Authorization": "Bearer not-the-token"}, http.StatusUnauthorized},
		{"digest as token", map[string]string{"Authorization": "Bearer " + digest(token)}, http.StatusUnauthorized},
		{"token without scheme", map[string]string{"Authorization": token}, http.StatusUnauthorized},
		{"basic scheme", map[string]string{"Authorization": "Basic " + token}, http.StatusUnauthorized},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, http.StatusUnauthorized},
		{"UI without login", map[string]string{"Authorization": "Bearer undefined", "Origin": uiOrigin}, http.StatusUnauthorized},
		{"right token", map[string]string{"Authorization": "Bearer " + token}, http.StatusOK},
		{"lower-case scheme", map[string]string{"Authorization": "bearer " + token}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, srv.URL+"/decode", body, tt.header)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tt.want, resp.StatusCode, string(b))
			if tt.want == http.StatusUnauthorized {
				assert.Equal(t, `Bearer realm="offboard-codec"`, resp.Header.Get("WWW-Authenticate"))
				assert.NotContains(t, string(b), email, "nothing decrypted for a stranger")
				if tt.header["Origin"] != "" {
					assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"), "the UI can read the 401")
				}
			} else {
				assert.Contains(t, string(b), base64.StdEncoding.EncodeToString([]byte("json/plain")), "decoded")
			}
		})
	}
}

func TestHandlerDecodesOverHTTP(t *testing.T) {
	srv, k := codecServer(t, defaultOpts())
	plain := plainPayloads(t)
	auth := map[string]string{"Authorization": "Bearer " + token, "Origin": uiOrigin}

	// Encoded by the worker's codec, decoded by the UI's request.
	sealed, err := codec.NewCodec(k).Encode(plain)
	require.NoError(t, err)
	resp := post(t, srv.URL+"/decode", payloadsJSON(t, sealed), auth)
	assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	got := readPayloads(t, resp)
	require.Len(t, got, len(plain))
	for i := range plain {
		assert.True(t, proto.Equal(plain[i], got[i]), "payload %d", i)
	}
	var m map[string]string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(got[0], &m))
	assert.Equal(t, email, m["email"])

	// Encoded over HTTP (the UI sending a signal), decoded by the worker's codec.
	enc := readPayloads(t, post(t, srv.URL+"/encode", payloadsJSON(t, plain), auth))
	require.Len(t, enc, len(plain))
	assert.Equal(t, codec.Encoding, string(enc[0].Metadata[converter.MetadataEncoding]))
	assert.NotContains(t, string(enc[0].Data), email)
	dec, err := codec.NewCodec(k).Decode(enc)
	require.NoError(t, err)
	assert.True(t, proto.Equal(plain[0], dec[0]))

	// Mounted under a prefix, only the last path element counts (codec protocol).
	got = readPayloads(t, post(t, srv.URL+"/codec/default/decode", payloadsJSON(t, sealed), auth))
	assert.True(t, proto.Equal(plain[0], got[0]))
}

func TestHandlerErrors(t *testing.T) {
	opts := defaultOpts()
	opts.MaxBodyBytes = 1 << 10
	srv, k := codecServer(t, opts)
	auth := map[string]string{"Authorization": "Bearer " + token}

	sealed, err := codec.NewCodec(k).Encode(plainPayloads(t)[:1])
	require.NoError(t, err)
	sealed[0].Data[20] ^= 1
	resp := post(t, srv.URL+"/decode", payloadsJSON(t, sealed), auth)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(b), "failed authentication")

	resp = post(t, srv.URL+"/decode", []byte(`{"payloads":[{"data":"`+strings.Repeat("A", 2<<10)+`"}]}`), auth)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "body over the limit")

	resp = post(t, srv.URL+"/other", payloadsJSON(t, sealed), auth)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/decode", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	getResp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer getResp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, getResp.StatusCode)

	resp = post(t, srv.URL+"/decode", payloadsJSON(t, sealed), map[string]string{"Authorization": "Bearer " + token, "Origin": "https://evil.example"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a page on another origin is refused even with a token")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestHandlerAnonymous(t *testing.T) {
	srv, k := codecServer(t, codec.HandlerOptions{AllowedOrigins: []string{uiOrigin}, Anonymous: true})
	sealed, err := codec.NewCodec(k).Encode(plainPayloads(t))
	require.NoError(t, err)
	got := readPayloads(t, post(t, srv.URL+"/decode", payloadsJSON(t, sealed), map[string]string{"Origin": uiOrigin}))
	assert.True(t, proto.Equal(plainPayloads(t)[0], got[0]))
}

func TestHandlerInvalidDigestFailsClosed(t *testing.T) {
	// A digest mistyped as the token itself must not let the token in.
	srv, _ := codecServer(t, codec.HandlerOptions{TokenSHA256: []string{token}})
	resp := post(t, srv.URL+"/decode", payloadsJSON(t, plainPayloads(t)), map[string]string{"Authorization": "Bearer " + token})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestHandlerOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts codec.HandlerOptions
		msg  string
	}{
		{"ok", defaultOpts(), ""},
		{"anonymous", codec.HandlerOptions{Anonymous: true}, ""},
		{"no tokens", codec.HandlerOptions{AllowedOrigins: []string{uiOrigin}}, "list token digests"},
		{"token instead of digest", codec.HandlerOptions{TokenSHA256: []string{token}}, "token digest 0"},
		{"wildcard origin", codec.HandlerOptions{Anonymous: true, AllowedOrigins: []string{"*"}}, `allowed origin "*"`},
		{"origin with slash", codec.HandlerOptions{Anonymous: true, AllowedOrigins: []string{uiOrigin + "/"}}, "exact origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.msg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.msg)
			assert.NotContains(t, err.Error(), token)
		})
	}
}
