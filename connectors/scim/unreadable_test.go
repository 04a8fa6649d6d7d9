package scim_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
)

// A write's unreadable answer is not asked again: it may have done something.
func TestWriteGarbageIsPermanent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/scim+json")
			_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],"patch":{"supported":true}}`))
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<html>login page</html>`))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, "scim-stub", srv.URL+"/scim/v2", token)
	_, err := c.Enforce(t.Context(), "deactivate", control.Account{ID: "u1"}, control.Params{})
	require.ErrorIs(t, err, control.ErrPermanent)
	assert.Contains(t, err.Error(), "sha256:")
}
