package main

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/roster"
	"github.com/offboard/offboard/sandbox/demo"
)

// The embedded default's roster (reconcile.roster) reads the sandbox's
// Get_Workers with the sandbox's credentials: the default and the sandbox
// agree on the port, the path and the user, so make run reconciles against
// the same demo company the simulators hold.
func TestDefaultConfigReadsTheSandboxRoster(t *testing.T) {
	cfg, err := config.Default()
	require.NoError(t, err)
	u, err := url.Parse(cfg.Reconcile.Roster.URL)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8108", u.Host, "HRPort")

	srv := httptest.NewServer(hrRoster(demo.People(200)))
	t.Cleanup(srv.Close)
	cfg.Reconcile.Roster.URL = srv.URL + u.Path
	r, err := roster.Open(cfg)
	require.NoError(t, err)
	people, err := r.People(t.Context())
	require.NoError(t, err)
	require.Len(t, people, 200)
	for _, p := range people {
		require.Equal(t, roster.Active, p.Status, p.EmployeeID)
	}
}
