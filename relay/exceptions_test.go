package relay

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

// GET /exceptions is for auditors and security; Temporal down is a 503 to
// retry, never an empty list. (Its content is tested on a dev server in
// internal/runs.)
func TestExceptionsRoute(t *testing.T) {
	rl, ft := newTestRelay(t, testConfig(t))
	ft.setDown(true)
	for _, tt := range []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"hr-token", http.StatusForbidden},
		{"auditor-token", http.StatusServiceUnavailable},
		{"security-token", http.StatusServiceUnavailable},
	} {
		rec := httptest.NewRecorder()
		rl.Handler().ServeHTTP(rec, operatorRequest(http.MethodGet, "/exceptions", tt.token, ""))
		assert.Equal(t, tt.want, rec.Code, "token %q: %s", tt.token, rec.Body)
		if tt.want == http.StatusServiceUnavailable {
			assert.Equal(t, "5", rec.Header().Get("Retry-After"))
		}
	}
}
