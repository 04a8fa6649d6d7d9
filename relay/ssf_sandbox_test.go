package relay

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/oktahook"
	sandboxssf "github.com/offboard/offboard/sandbox/ssf"
)

// The sandbox's senders against the relay over HTTP, as make run wires
// them: the Okta hook verifies once and then delivers; the SSF transmitter
// signs with the key the relay reads from its JWKS. Each starts one run.
func TestSandboxSendersStartRuns(t *testing.T) {
	cfg := testConfig(t)
	cfg.Now = nil // the senders sign with the real clock
	oktaSrc, sim := oktaSource(t, nil)
	cfg.Relay.Sources.Okta = oktaSrc
	// The transmitter serves its JWKS from where the relay will read it.
	mux := http.NewServeMux()
	signals := httptest.NewServer(mux)
	defer signals.Close()
	relayed := httptest.NewUnstartedServer(nil)
	tx, err := sandboxssf.NewTransmitter(signals.URL, "http://offboard.test/ssf/events", "http://"+relayed.Listener.Addr().String()+SSFEventsPath, "sandbox-ssf-idp")
	require.NoError(t, err)
	mux.Handle("/", tx.Handler())
	cfg.Relay.Sources.SSF = &config.SSFSource{Issuer: signals.URL, Audience: "http://offboard.test/ssf/events", JWKSURI: signals.URL + "/ssf/jwks.json",
		OrgURL: oktaSrc.OrgURL, APIToken: oktaSrc.APIToken}
	rl, ft := newTestRelay(t, cfg)
	relayed.Config.Handler = rl.Handler()
	relayed.Start()
	defer relayed.Close()

	people := demo.People(3)
	hook := &oktahook.Sender{URL: relayed.URL + "/hooks/okta", Secret: oktaHookSecret, HTTP: relayed.Client(), Lookup: func(login string) (string, string, bool) {
		u, ok := sim.User(login)
		return u.ID, "Some One", ok
	}}
	hooks := httptest.NewServer(hook.Handler())
	defer hooks.Close()
	reply := func(url, body string) map[string]any {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return out
	}

	got := reply(hooks.URL+"/_sandbox/okta-hook/send", `{"email":"`+people[0].Email+`"}`)
	assert.EqualValues(t, http.StatusAccepted, got["relayStatus"], got)
	got = reply(signals.URL+"/_sandbox/ssf/send", `{"event":"account-disabled","email":"`+people[1].Email+`"}`)
	assert.EqualValues(t, http.StatusAccepted, got["relayStatus"], got)
	started := ft.started()
	require.Len(t, started, 2)
	assert.Equal(t, people[0].EmployeeID, started[0].EmployeeID)
	assert.Equal(t, SourceOkta, started[0].Source)
	assert.Equal(t, people[1].EmployeeID, started[1].EmployeeID)
	assert.Equal(t, SourceSSF, started[1].Source)

	// A hook whose secret the relay does not know fails its verification and sends nothing.
	bad := &oktahook.Sender{URL: relayed.URL + "/hooks/okta", Secret: "wrong", HTTP: relayed.Client()}
	_, _, err = bad.Deactivate(t.Context(), "00u1", people[2].Email, "x")
	assert.ErrorContains(t, err, "verify")
	assert.Len(t, ft.started(), 2)
}
