package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/internal/ssf"
	"github.com/offboard/offboard/sandbox/demo"
	oktasim "github.com/offboard/offboard/sandbox/okta"
)

// make run's event senders and the embedded default agree: the relay
// accepts what the sandbox's identity provider signs, and the sandbox's
// relying party accepts what the worker signs with siem.ssf's key.
func TestDefaultConfigAndSandboxSignalsAgree(t *testing.T) {
	def, err := config.Default()
	require.NoError(t, err)
	in, out := def.Relay.Sources.SSF, def.SIEM.SSF
	require.NotNil(t, in)
	require.NotNil(t, out)
	const relay = "http://127.0.0.1:8080" // -relay's default
	assert.Equal(t, relay, out.Issuer)
	assert.Equal(t, relay+"/ssf/events", in.Audience)
	assert.Equal(t, "http://127.0.0.1:8110", in.Issuer)
	assert.Equal(t, "http://127.0.0.1:8110/ssf/jwks.json", in.JWKSURI)
	require.Len(t, out.Receivers, 1)
	assert.Equal(t, "http://127.0.0.1:8111/ssf/events", out.Receivers[0].URL)
	tok, err := out.Receivers[0].Token.Value()
	require.NoError(t, err)
	assert.Equal(t, SSFReceiverToken, tok)
	hookSecret, err := def.Relay.Sources.Okta.Secrets[0].Value()
	require.NoError(t, err)
	assert.Equal(t, OktaHookSecret, hookSecret)

	// In: a SET the identity provider signs passes the relay's checks.
	okta := oktasim.New(oktasim.Options{Token: OktaToken, People: demo.People(3)})
	var pushed string
	rl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(strings.Builder)
		_, _ = io.Copy(b, r.Body)
		pushed = b.String()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer rl.Close()
	h, err := signals(rl.URL, okta, "127.0.0.1") // the relay here is a recorder
	require.NoError(t, err)
	idp := httptest.NewServer(h)
	defer idp.Close()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/_sandbox/ssf/send", strings.NewReader(`{"email":"`+demo.People(3)[0].Email+`"}`)))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	keys := ssf.RemoteKeys(idp.URL+"/ssf/jwks.json", idp.Client())
	v := &ssf.Verifier{Issuer: in.Issuer, Audience: rl.URL + "/ssf/events", Keys: keys}
	set, err := v.Verify(t.Context(), pushed)
	require.NoError(t, err)
	assert.Contains(t, set.Events, ssf.EventAccountDisabled)

	// Out: the relying party takes a SET signed with siem.ssf's key.
	key, err := siemKey(out)
	require.NoError(t, err)
	jwks := http.NewServeMux()
	jwks.HandleFunc("GET /ssf/jwks.json", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(key.JWKS()) })
	starter := httptest.NewServer(jwks)
	defer starter.Close()
	rp := httptest.NewServer(relyingParty(starter.URL, "127.0.0.1"))
	defer rp.Close()
	sink := &siem.SSF{Receiver: out.Receivers[0].Name, URL: rp.URL + "/ssf/events", Token: tok, Audience: out.Receivers[0].Audience, Issuer: starter.URL,
		Key: key, HTTP: rp.Client(), SessionRevoked: config.DefaultSSFSessionRevoked, AccountDisabled: config.DefaultSSFAccountDisabled}
	ev := siem.ControlEvent(siem.Run{WorkflowID: "deprovision-E1001", RunID: "r", ActivityID: "7"}, "apply", control.Receipt{ControlID: "okta/suspend",
		System: "okta", Action: "suspend", Phase: control.Containment, Target: "00u1", Login: "ada@example.test", Outcome: control.Observed}, nil, time.Now())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, sink.Send(ctx, []siem.Event{ev}))
	resp, err := http.Get(rp.URL + "/received")
	require.NoError(t, err)
	defer resp.Body.Close()
	var got struct {
		Sets []struct {
			Type string `json:"type"`
		} `json:"sets"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.Len(t, got.Sets, 1)
	assert.Equal(t, ssf.EventAccountDisabled, got.Sets[0].Type)
}

func siemKey(c *config.SIEMSSF) (*ssf.Key, error) {
	v, err := c.SigningKey.Value()
	if err != nil {
		return nil, err
	}
	return ssf.ParseKey(v)
}
