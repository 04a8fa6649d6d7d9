package scim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/scimapp"
)

// applySequence is ApplyControl's sequence: observe and enforce under one
// memo (or none), then a read-back without it.
func applySequence(t *testing.T, c *scim.Client, acct control.Account, withMemo bool) control.Observation {
	t.Helper()
	ctx := t.Context()
	if withMemo {
		ctx, _ = control.WithMemo(ctx)
	}
	before, err := c.Observe(ctx, scim.Deactivate, acct, control.Params{})
	require.NoError(t, err)
	require.False(t, before.Holds, before.Detail)
	_, err = c.Enforce(ctx, scim.Deactivate, acct, control.Params{})
	require.NoError(t, err)
	after, err := c.Observe(t.Context(), scim.Deactivate, acct, control.Params{})
	require.NoError(t, err)
	return after
}

// On an app without PATCH, the enforce builds its PUT from the user the
// observe read: two GETs of the user for observe, enforce and read-back,
// not three; without a memo, three as before. Either way nothing else in
// the resource is lost.
func TestPutPathUsesTheObservesRead(t *testing.T) {
	for _, tc := range []struct {
		memo     bool
		wantGets int
	}{{true, 2}, {false, 3}} {
		t.Run(map[bool]string{true: "memo", false: "no memo"}[tc.memo], func(t *testing.T) {
			s := startApp(t, scimapp.Options{Name: "wiki"})
			ada := demo.People(1)[0]
			acct, err := s.client.Resolve(t.Context(), person(ada))
			require.NoError(t, err)
			before := mustUser(t, s, ada.Email)
			gets := s.count("GET /scim/v2/Users/")

			after := applySequence(t, s.client, acct, tc.memo)
			assert.True(t, after.Holds, after.Detail)
			assert.Equal(t, tc.wantGets, s.count("GET /scim/v2/Users/")-gets, s.requests())
			assert.Equal(t, 1, s.count("PUT /scim/v2/Users/"), s.requests())
			u := mustUser(t, s, ada.Email)
			assert.False(t, u.Active)
			assert.Equal(t, before.ExternalID, u.ExternalID, "nothing else was lost")
			assert.Equal(t, before.Emails, u.Emails)
			assert.Equal(t, before.DisplayName, u.DisplayName)
		})
	}
}

// An app with PATCH needs no read before its write: the memo changes nothing.
func TestPatchPathUnchangedByMemo(t *testing.T) {
	s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true})
	ada := demo.People(1)[0]
	acct, err := s.client.Resolve(t.Context(), person(ada))
	require.NoError(t, err)
	gets := s.count("GET /scim/v2/Users/")
	after := applySequence(t, s.client, acct, true)
	assert.True(t, after.Holds)
	assert.Equal(t, 2, s.count("GET /scim/v2/Users/")-gets, s.requests())
	assert.Equal(t, 1, s.count("PATCH /scim/v2/Users/"), s.requests())
	assert.Zero(t, s.count("PUT "), s.requests())
}

// etagApp is the simulated app behind a front that advertises ETags and
// enforces If-Match on PUT, as real apps with etag.supported do: a PUT whose
// If-Match is not the user's current ETag is refused 412.
type etagApp struct {
	app    *scimapp.App
	srv    *httptest.Server
	client *scim.Client
	mu     sync.Mutex
	seen   []string // "METHOD /path [If-Match]"
	refuse bool     // refuse every PUT with If-Match, as if someone kept changing the user
}

func startETagApp(t *testing.T) *etagApp {
	t.Helper()
	app, err := scimapp.New(scimapp.Options{Name: "wiki", Bearer: token, People: demo.People(5)})
	require.NoError(t, err)
	e := &etagApp{app: app}
	inner := func(r *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, r)
		return rec
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ifMatch := r.Header.Get("If-Match")
		e.mu.Lock()
		e.seen = append(e.seen, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+ifMatch))
		refuse := e.refuse
		e.mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/scim/v2/ServiceProviderConfig":
			rec := inner(r)
			var cfg map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &cfg))
			cfg["etag"] = map[string]any{"supported": true}
			w.Header().Set("Content-Type", "application/scim+json")
			_ = json.NewEncoder(w).Encode(cfg)
			return
		case r.Method == http.MethodPut && ifMatch != "":
			get := r.Clone(r.Context())
			get.Method, get.Body = http.MethodGet, http.NoBody
			current := inner(get).Header().Get("Etag")
			if refuse || current != ifMatch {
				w.Header().Set("Content-Type", "application/scim+json")
				w.WriteHeader(http.StatusPreconditionFailed)
				_, _ = io.WriteString(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"412","detail":"the resource changed"}`)
				return
			}
		}
		app.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.client = newClient(t, "scim-wiki", e.srv.URL+"/scim/v2", token)
	return e
}

func (e *etagApp) requests(prefix string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, r := range e.seen {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// rename is another writer changing the user: GET, a new displayName, PUT.
func (e *etagApp) rename(t *testing.T, id, name string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/scim/v2/Users/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var u map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&u))
	resp.Body.Close()
	delete(u, "meta")
	u["displayName"] = name
	body, _ := json.Marshal(u)
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPut, e.srv.URL+"/scim/v2/Users/"+id, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestPutFromMemoSendsTheObservesETag(t *testing.T) {
	e := startETagApp(t)
	ada := demo.People(1)[0]
	acct, err := e.client.Resolve(t.Context(), person(ada))
	require.NoError(t, err)

	after := applySequence(t, e.client, acct, true)
	assert.True(t, after.Holds)
	puts := e.requests("PUT ")
	require.Len(t, puts, 1)
	assert.Equal(t, "PUT /scim/v2/Users/"+acct.ID+` W/"1"`, puts[0], "If-Match is the ETag the observe's GET carried")
	assert.Len(t, e.requests("GET /scim/v2/Users/"), 2, "observe and read-back")
}

// Another writer changes the user between the observe and the enforce: the
// PUT from the memo is refused 412, the enforce reads the user again and
// replaces once more, keeping the other writer's change.
func TestPutFromStaleMemoReadsAgainOn412(t *testing.T) {
	e := startETagApp(t)
	ada := demo.People(1)[0]
	acct, err := e.client.Resolve(t.Context(), person(ada))
	require.NoError(t, err)
	ctx, _ := control.WithMemo(t.Context())

	before, err := e.client.Observe(ctx, scim.Deactivate, acct, control.Params{})
	require.NoError(t, err)
	require.False(t, before.Holds)
	e.rename(t, acct.ID, "Ada (renamed meanwhile)")
	_, err = e.client.Enforce(ctx, scim.Deactivate, acct, control.Params{})
	require.NoError(t, err)

	assert.Equal(t, []string{
		"PUT /scim/v2/Users/" + acct.ID,            // the other writer
		"PUT /scim/v2/Users/" + acct.ID + ` W/"1"`, // ours, from the memo: refused
		"PUT /scim/v2/Users/" + acct.ID + ` W/"2"`, // ours, after reading again
	}, e.requests("PUT "))
	u, _ := e.app.User(ada.Email)
	assert.False(t, u.Active)
	assert.Equal(t, "Ada (renamed meanwhile)", u.DisplayName, "the other writer's change is kept")
}

// A user that keeps changing fails the enforce visibly after one more try:
// a transient error with the 412, never a success.
func TestPutRefusedTwiceFails(t *testing.T) {
	e := startETagApp(t)
	ada := demo.People(1)[0]
	acct, err := e.client.Resolve(t.Context(), person(ada))
	require.NoError(t, err)
	ctx, _ := control.WithMemo(t.Context())
	_, err = e.client.Observe(ctx, scim.Deactivate, acct, control.Params{})
	require.NoError(t, err)

	e.mu.Lock()
	e.refuse = true
	e.mu.Unlock()
	_, err = e.client.Enforce(ctx, scim.Deactivate, acct, control.Params{})
	require.ErrorIs(t, err, control.ErrTransient)
	var cerr *control.Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, http.StatusPreconditionFailed, cerr.HTTPStatus)
	assert.Len(t, e.requests("PUT "), 2, "the memo's PUT and one after reading again")
	u, _ := e.app.User(ada.Email)
	assert.True(t, u.Active, "nothing changed")

	// Without a memo a 412 is not retried in the connector: the workflow's retry reads afresh.
	_, err = e.client.Enforce(t.Context(), scim.Deactivate, acct, control.Params{})
	require.ErrorIs(t, err, control.ErrTransient)
	assert.Len(t, e.requests("PUT "), 3)
}
