package scim_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/scimapp"
)

func TestListActive(t *testing.T) {
	people := demo.People(12)
	s := startApp(t, scimapp.Options{Name: "crm", People: people, PatchSupported: true})
	for _, p := range people[:2] {
		acct, err := s.client.Resolve(t.Context(), person(p))
		require.NoError(t, err)
		_, err = s.client.Enforce(t.Context(), scim.Deactivate, acct, control.Params{})
		require.NoError(t, err)
	}
	var all []control.ActiveAccount
	cursor, pages := "", 0
	for {
		p, err := s.client.ListActive(t.Context(), cursor, 4)
		require.NoError(t, err)
		all, pages = append(all, p.Accounts...), pages+1
		if p.Next == "" {
			break
		}
		cursor = p.Next
		require.Less(t, pages, 20)
	}
	assert.Equal(t, 3, pages) // 10 active, 4 a page
	require.Len(t, all, 10)
	seen := map[string]bool{}
	for _, a := range all {
		assert.False(t, seen[a.ID])
		seen[a.ID] = true
		assert.NotEqual(t, people[0].Email, a.Login)
		assert.NotEqual(t, people[1].Email, a.Login)
	}
	assert.True(t, s.count("GET /scim/v2/Users") >= 3)
}

// An app that ignores startIndex answers the first page again: refused.
func TestListActiveIgnoredStartIndex(t *testing.T) {
	s := startApp(t, scimapp.Options{Name: "crm", People: demo.People(12), PatchSupported: true})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("startIndex") {
			q.Set("startIndex", "1")
		}
		r.URL.RawQuery = q.Encode()
		s.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, "scim-crm", srv.URL+"/scim/v2", token)
	_, err := c.ListActive(t.Context(), "5", 4)
	require.ErrorIs(t, err, control.ErrUnexpected)
	assert.Contains(t, err.Error(), "startIndex")
}
