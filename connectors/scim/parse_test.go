package scim

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuote(t *testing.T) {
	tests := map[string]string{
		"ada@example.test":   `"ada@example.test"`,
		`o"brien@example.te`: `"o\"brien@example.te"`,
		`back\slash`:         `"back\\slash"`,
		"<a&b>":              `"<a&b>"`,
		"tab\there":          `"tab\there"`,
	}
	for in, want := range tests {
		assert.Equal(t, want, quote(in), in)
	}
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		body       string
		wantErr    bool
		wantActive *bool
		wantEmails []string
	}{
		{body: `{"id":"1","userName":"a","active":true,"emails":[{"value":"a@x"}]}`, wantActive: ptr(true), wantEmails: []string{"a@x"}},
		{body: `{"id":"1","UserName":"a","Active":false}`, wantActive: ptr(false)},
		{body: `{"id":"1","userName":"a","active":"False"}`, wantActive: ptr(false)},
		{body: `{"id":"1","userName":"a","active":null}`},
		{body: `{"id":"1","userName":"a"}`},
		{body: `{"id":"1","userName":"a","emails":"a@x"}`},
		{body: `{"id":"1","userName":"a","active":0}`, wantErr: true},
		{body: `{"id":1,"userName":"a"}`, wantErr: true},
		{body: `{"id":"1","userName":7}`, wantErr: true},
		{body: `{"id":"1"} {"id":"2"}`, wantErr: true},
		{body: `null`, wantErr: true},
		{body: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			u, err := parseUser([]byte(tt.body))
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "1", u.ID)
			assert.Equal(t, tt.wantActive, u.Active)
			assert.Equal(t, tt.wantEmails, u.Emails)
		})
	}
}

func TestParseProviderConfig(t *testing.T) {
	cfg, err := parseProviderConfig([]byte(`{"patch":{"supported":false},"filter":{"supported":true,"maxResults":100},"etag":{"supported":true}}`))
	require.NoError(t, err)
	assert.Equal(t, providerConfig{patchSupported: false, filterSupported: true, etagSupported: true}, cfg)
	_, err = parseProviderConfig([]byte(`{"schemas":[]}`))
	assert.Error(t, err)
}

func ptr[T any](v T) *T { return &v }

// FuzzParseUser feeds the body parser what an app might send back. `go test`
// runs the seeds; `go test -fuzz FuzzParseUser` explores further.
func FuzzParseUser(f *testing.F) {
	for _, seed := range []string{
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"2819c223","userName":"bjensen@example.com","active":true,"emails":[{"value":"bjensen@example.com","type":"work","primary":true}],"meta":{"resourceType":"User","location":"Users/2819c223"}}`,
		`{"id":"1","userName":"a","active":"False"}`,
		`{"id":"1","active":null,"emails":[null,1,{"value":2}]}`,
		`{"id":"","userName":"a"}`,
		`{"totalResults":1,"Resources":[{"id":"1","userName":"a"}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue"}`,
		`[1,2,3]`, `"id"`, `{"id":"1"`, "\x00", `{"id":"1","userName":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		u, err := parseUser(body)
		if err == nil {
			if u.ID == "" {
				t.Fatalf("accepted a user without id: %q", body)
			}
			// What we parsed must survive the GET + PUT round trip.
			again, err := json.Marshal(u.Raw)
			if err != nil {
				t.Fatalf("cannot re-encode %q: %v", body, err)
			}
			u2, err := parseUser(again)
			if err != nil || u2.ID != u.ID || (u.Active == nil) != (u2.Active == nil) || (u.Active != nil && *u.Active != *u2.Active) {
				t.Fatalf("round trip changed %q: %+v vs %+v (%v)", body, u, u2, err)
			}
		}
		// The other parsers of outside input must not panic either.
		_, _ = parseList(body)
		_, _ = parseProviderConfig(body)
		if e, ok := parseError(body); ok && len(e.Detail) > 300+len("…") {
			t.Fatalf("detail not truncated: %d bytes", len(e.Detail))
		}
	})
}
