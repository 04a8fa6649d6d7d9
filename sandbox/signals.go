package main

import (
	"net/http"
	"time"

	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/oktahook"
	sandboxssf "github.com/offboard/offboard/sandbox/ssf"
)

// Ports and secrets of the event senders and the relying party; the
// embedded default configuration names the same ones.
const (
	SignalsPort        = 8110 // the identity provider's events: SSF transmitter and Okta event hook
	RelyingPartyPort   = 8111 // a relying party taking Offboard's SETs
	OktaHookSecret     = "sandbox-okta-hook-secret"
	SSFReceiverToken   = "sandbox-ssf-receiver-token"
	ssfTransmitterSeed = "sandbox-ssf-idp"
)

// signals is the identity provider's side of events on :8110: its SSF
// transmitter (GET /ssf/jwks.json; POST /_sandbox/ssf/send
// {"event":"account-disabled","email":...} pushes a signed SET to the
// relay) and its Okta event hook (POST /_sandbox/okta-hook/send
// {"email":...} verifies the hook once, then delivers a
// user.lifecycle.deactivate). relay is starter serve's base URL.
func signals(relay string, okta *oktasim.Sim, host string) (http.Handler, error) {
	self := "http://" + host + ":8110"
	tx, err := sandboxssf.NewTransmitter(self, relay+"/ssf/events", relay+"/ssf/events", ssfTransmitterSeed)
	if err != nil {
		return nil, err
	}
	hook := &oktahook.Sender{URL: relay + "/hooks/okta", Secret: OktaHookSecret, HTTP: &http.Client{Timeout: 30 * time.Second},
		Lookup: func(login string) (string, string, bool) {
			u, ok := okta.User(login)
			return u.ID, u.Login, ok
		}}
	mux := http.NewServeMux()
	mux.Handle("/_sandbox/okta-hook/", hook.Handler())
	mux.Handle("/", tx.Handler())
	return mux, nil
}

// relyingParty is an app trusting Offboard's Shared Signals on :8111: it
// verifies every SET against starter serve's /ssf/jwks.json and lists what
// it took at GET /received.
func relyingParty(relay, host string) http.Handler {
	self := "http://" + host + ":8111/ssf/events"
	return sandboxssf.NewReceiver(relay, self, relay+"/ssf/jwks.json", SSFReceiverToken).Handler()
}
