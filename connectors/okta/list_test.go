package okta_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/internal/control"
	oktasim "github.com/offboard/offboard/sandbox/okta"
)

// listAll pages through ListActive to the end.
func listAll(t *testing.T, l control.Lister, limit int) ([]control.ActiveAccount, int) {
	t.Helper()
	var all []control.ActiveAccount
	cursor, pages := "", 0
	for {
		p, err := l.ListActive(t.Context(), cursor, limit)
		require.NoError(t, err)
		all, pages = append(all, p.Accounts...), pages+1
		if p.Next == "" {
			return all, pages
		}
		cursor = p.Next
		require.Less(t, pages, 100, "paging does not end")
	}
}

func TestListActive(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	// Two leavers deactivated (DEPROVISIONED): not active; one suspended: still listed.
	for _, p := range people[:2] {
		acct := e.account(t, p)
		_, err := e.client.Enforce(t.Context(), okta.Suspend, acct, control.Params{})
		require.NoError(t, err)
		_, err = e.client.Enforce(t.Context(), okta.Deactivate, acct, control.Params{})
		require.NoError(t, err)
	}
	_, err := e.client.Enforce(t.Context(), okta.Suspend, e.account(t, people[2]), control.Params{})
	require.NoError(t, err)

	all, pages := listAll(t, e.client, 7)
	assert.Len(t, all, len(people)-2)
	assert.Equal(t, 3, pages) // 18 users, 7 a page
	ids := map[string]bool{}
	for _, a := range all {
		assert.False(t, ids[a.ID], "listed twice: %s", a.ID)
		ids[a.ID] = true
		assert.NotEqual(t, people[0].Email, a.Email)
		assert.NotEqual(t, people[1].Email, a.Email)
	}
	byEmail := map[string]control.ActiveAccount{}
	for _, a := range all {
		byEmail[a.Email] = a
	}
	got := byEmail[people[5].Email]
	assert.Equal(t, people[5].EmployeeID, got.EmployeeID)
	assert.Equal(t, people[5].Email, got.Login)
}

// A server that ignores `after` serves the first page again with the same
// next link: the list must fail, not loop or read as whole.
func TestListActiveIgnoredCursor(t *testing.T) {
	e := newEnv(t, oktasim.Options{})
	target, _ := url.Parse(e.srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Del("after")
		r.URL.RawQuery = q.Encode()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, token)
	p, err := c.ListActive(t.Context(), "", 5)
	require.NoError(t, err)
	require.NotEmpty(t, p.Next)
	_, err = c.ListActive(t.Context(), p.Next, 5)
	require.ErrorIs(t, err, control.ErrUnexpected)
	assert.Contains(t, err.Error(), "does not honour the paging cursor")
}
