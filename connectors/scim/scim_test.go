package scim_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/scimapp"
)

const token = "app-token-do-not-log"

// sandbox is one simulated app behind httptest, with a log of the requests it saw.
type sandbox struct {
	app    *scimapp.App
	srv    *httptest.Server
	client *scim.Client
	mu     sync.Mutex
	seen   []string // "METHOD /path"
}

func (s *sandbox) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *sandbox) count(prefix string) int {
	n := 0
	for _, r := range s.requests() {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

func startApp(t *testing.T, opts scimapp.Options) *sandbox {
	t.Helper()
	opts.Bearer = token
	if opts.People == nil {
		opts.People = demo.People(5)
	}
	app, err := scimapp.New(opts)
	require.NoError(t, err)
	s := &sandbox{app: app}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		app.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.client = newClient(t, "scim-"+opts.Name, s.srv.URL+"/scim/v2", token)
	return s
}

func newClient(t *testing.T, name, base, bearer string) *scim.Client {
	t.Helper()
	c, err := scim.New(scim.Config{Name: name, BaseURL: base, Bearer: bearer, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	require.NoError(t, err)
	return c
}

func person(p demo.Person) control.Person {
	return control.Person{EmployeeID: p.EmployeeID, Email: p.Email, Name: p.Name()}
}

func TestNewValidates(t *testing.T) {
	tests := map[string]scim.Config{
		"no name":       {BaseURL: "http://x/scim/v2", Bearer: "t"},
		"relative url":  {Name: "a", BaseURL: "/scim/v2", Bearer: "t"},
		"no credential": {Name: "a", BaseURL: "http://x/scim/v2"},
		"both":          {Name: "a", BaseURL: "http://x/scim/v2", Bearer: "t", Username: "u", Password: "p"},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := scim.New(cfg)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "t\"")
		})
	}
	c, err := scim.New(scim.Config{Name: "scim-x", BaseURL: "https://x.example/scim/v2/", Username: "u", Password: "p"})
	require.NoError(t, err)
	assert.Equal(t, "scim", c.Kind())
	assert.Equal(t, "scim-x", c.Name())
	assert.Equal(t, []string{"deactivate"}, c.Controls(control.Containment))
	assert.Empty(t, c.Controls(control.Removal))
	assert.Equal(t, []string{"delete"}, c.Controls(control.Deletion))
	assert.Empty(t, c.Controls(control.RoleChange))
	assert.Equal(t, []string{"reactivate"}, c.Controls(control.Restore))
}

// TestLifecycle runs the workflow's sequence against an app with PATCH and
// one without, where the connector must fall back to GET + PUT.
func TestLifecycle(t *testing.T) {
	tests := []struct {
		name         string
		patch        bool
		wantMethod   string   // how active was changed
		wantDisabled []string // transitions after deactivation
	}{
		{"crm", true, "PATCH", []string{"deactivate"}},
		{"wiki", false, "PUT", []string{"replace", "deactivate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := startApp(t, scimapp.Options{Name: tt.name, PatchSupported: tt.patch})
			c := s.client
			ada := demo.People(1)[0]

			acct, err := c.Resolve(ctx, person(ada))
			require.NoError(t, err)
			before, _ := s.app.User(ada.Email)
			assert.Equal(t, control.Account{Target: "scim-" + tt.name, ID: before.ID, Login: ada.Email}, acct)

			obs, err := c.Observe(ctx, "deactivate", acct, control.Params{})
			require.NoError(t, err)
			assert.False(t, obs.Holds)
			assert.True(t, obs.Readable)
			assert.Equal(t, "active=true", obs.Detail)
			assert.Equal(t, http.StatusOK, obs.Call.HTTPStatus)
			assert.NotEmpty(t, obs.Call.Digest)

			resp, err := c.Enforce(ctx, "deactivate", acct, control.Params{})
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.HTTPStatus)
			assert.Equal(t, 1, s.count(tt.wantMethod+" /scim/v2/Users/"), s.requests())
			assert.Zero(t, s.count(map[bool]string{true: "PUT", false: "PATCH"}[tt.patch]+" "), s.requests())

			obs, err = c.Observe(ctx, "deactivate", acct, control.Params{})
			require.NoError(t, err)
			assert.True(t, obs.Holds)
			assert.True(t, obs.Readable)
			u, _ := s.app.User(ada.Email)
			assert.False(t, u.Active, "the app really deactivated the user")
			assert.Equal(t, ada.EmployeeID, u.ExternalID, "nothing else was lost")
			assert.Equal(t, before.Emails, u.Emails)
			assert.Equal(t, tt.wantDisabled, actions(s.app.Transitions(acct.ID)))

			// Repeating is harmless: no new state change.
			_, err = c.Enforce(ctx, "deactivate", acct, control.Params{})
			require.NoError(t, err)
			assert.Equal(t, tt.wantDisabled, actions(s.app.Transitions(acct.ID)))

			// Restore.
			obs, err = c.Observe(ctx, "reactivate", acct, control.Params{})
			require.NoError(t, err)
			assert.False(t, obs.Holds)
			_, err = c.Enforce(ctx, "reactivate", acct, control.Params{})
			require.NoError(t, err)
			obs, err = c.Observe(ctx, "reactivate", acct, control.Params{})
			require.NoError(t, err)
			assert.True(t, obs.Holds)
			u, _ = s.app.User(ada.Email)
			assert.True(t, u.Active)

			// Delete.
			obs, err = c.Observe(ctx, "delete", acct, control.Params{})
			require.NoError(t, err)
			assert.False(t, obs.Holds)
			resp, err = c.Enforce(ctx, "delete", acct, control.Params{})
			require.NoError(t, err)
			assert.Equal(t, http.StatusNoContent, resp.HTTPStatus)
			_, ok := s.app.User(ada.Email)
			assert.False(t, ok)
			for _, name := range []string{"delete", "deactivate"} {
				obs, err = c.Observe(ctx, name, acct, control.Params{})
				require.NoError(t, err)
				assert.Equal(t, control.Observation{Holds: true, Readable: true, Gone: true, Detail: "user does not exist", Call: obs.Call}, obs)
				assert.Equal(t, http.StatusNotFound, obs.Call.HTTPStatus)
			}
			_, err = c.Enforce(ctx, "delete", acct, control.Params{})
			assert.ErrorIs(t, err, control.ErrNotFound, "a second delete finds nothing to delete")
			_, err = c.Enforce(ctx, "deactivate", acct, control.Params{})
			assert.ErrorIs(t, err, control.ErrNotFound)
			assert.Equal(t, "delete", actions(s.app.Transitions(acct.ID))[len(s.app.Transitions(acct.ID))-1])

			assert.Equal(t, 1, s.count("GET /scim/v2/ServiceProviderConfig"), "read once and cached")
		})
	}
}

func TestPatchAdvertisedButRefused(t *testing.T) {
	faults := fault.New()
	faults.Add(fault.Rule{Method: http.MethodPatch, Status: http.StatusNotImplemented})
	s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true, Faults: faults})
	ada := demo.People(1)[0]
	acct, err := s.client.Resolve(t.Context(), person(ada))
	require.NoError(t, err)

	for range 2 {
		_, err = s.client.Enforce(t.Context(), "deactivate", acct, control.Params{})
		require.NoError(t, err)
	}
	u, _ := s.app.User(ada.Email)
	assert.False(t, u.Active)
	assert.Equal(t, 1, s.count("PATCH "), "after one 501 the client stops trying PATCH")
	assert.Equal(t, []string{"replace", "deactivate"}, actions(s.app.Transitions(acct.ID)))
}

func TestResolve(t *testing.T) {
	s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true})
	ctx := t.Context()
	people := demo.People(3)
	grace := createUser(t, s, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"grace","emails":[{"value":"grace.h@example.test","type":"work"}]}`)
	quoted := createUser(t, s, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"o\"brien\\q@example.test"}`)
	alsoQuoted := createUser(t, s, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"quotes","emails":[{"value":"a\"b@example.test"}]}`)
	ken, _ := s.app.User(people[2].Email)

	tests := []struct {
		name      string
		p         control.Person
		wantID    string
		wantLogin string
		wantErr   error
	}{
		{"by userName", person(people[0]), mustUser(t, s, people[0].Email).ID, people[0].Email, nil},
		{"userName is case-insensitive", control.Person{Email: strings.ToUpper(people[1].Email)}, mustUser(t, s, people[1].Email).ID, people[1].Email, nil},
		{"by email", control.Person{Email: "grace.h@example.test"}, grace, "grace", nil},
		{"by hint", control.Person{Email: "someone.else@example.test", Hints: map[string]string{"scim-crm": ken.ID, "okta": "00u1"}}, ken.ID, people[2].Email, nil},
		{"quote in userName", control.Person{Email: `o"brien\q@example.test`}, quoted, `o"brien\q@example.test`, nil},
		{"quote in email", control.Person{Email: `a"b@example.test`}, alsoQuoted, "quotes", nil},
		{"not found", control.Person{Email: "nobody@example.test"}, "", "", control.ErrNotFound},
		{"a filter-ish email finds nobody", control.Person{Email: `x" or userName pr or userName eq "y`}, "", "", control.ErrNotFound},
		{"hint to a missing user, email finds another", control.Person{Email: people[0].Email, Hints: map[string]string{"scim-crm": "nope"}}, "", "", control.ErrPermanent},
		{"hint to a missing user, email finds nobody", control.Person{Email: "nobody@example.test", Hints: map[string]string{"scim-crm": "nope"}}, "", "", control.ErrNotFound},
		{"no email", control.Person{EmployeeID: "E9"}, "", "", control.ErrPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct, err := s.client.Resolve(ctx, tt.p)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				var cerr *control.Error
				require.ErrorAs(t, err, &cerr)
				if tt.wantErr == control.ErrNotFound {
					// A no-account says what it searched: userName, email (and the hint).
					want := 2
					if tt.p.Hints != nil {
						want = 3
					}
					require.Len(t, cerr.Searched, want)
					assert.Contains(t, cerr.Searched[len(cerr.Searched)-2], "GET /Users?filter=userName eq ")
					assert.Contains(t, cerr.Searched[len(cerr.Searched)-1], "GET /Users?filter=emails.value eq ")
					assert.Contains(t, cerr.Searched[len(cerr.Searched)-1], "0 match")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, control.Account{Target: "scim-crm", ID: tt.wantID, Login: tt.wantLogin}, acct)
		})
	}
}

// TestResolveWithoutFiltering scans the user list when the app cannot
// filter, and trusts the scan only when every page is the one asked for.
func TestResolveWithoutFiltering(t *testing.T) {
	people := demo.People(150) // two pages of 100
	omitStart := false
	users := make([]string, len(people))
	for i, p := range people {
		users[i] = `{"id":"u` + p.EmployeeID + `","userName":"` + p.Login + `","emails":[{"value":"` + p.Email + `"}],"active":true}`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/scim+json")
		switch r.URL.Path {
		case "/scim/v2/ServiceProviderConfig":
			_, _ = w.Write([]byte(`{"patch":{"supported":true},"filter":{"supported":false,"maxResults":0}}`))
		case "/scim/v2/Users":
			assert.Empty(t, r.URL.Query().Get("filter"))
			page, start := users[100:], `"startIndex":101,`
			if r.URL.Query().Get("startIndex") == "1" {
				page, start = users[:100], `"startIndex":1,`
			}
			if omitStart {
				start = ""
			}
			_, _ = w.Write([]byte(`{"totalResults":150,` + start + `"itemsPerPage":` + strconv.Itoa(len(page)) + `,"Resources":[` + strings.Join(page, ",") + `]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, "scim-legacy", srv.URL+"/scim/v2", token)

	acct, err := c.Resolve(t.Context(), control.Person{Email: strings.ToUpper(people[120].Email)})
	require.NoError(t, err)
	assert.Equal(t, "u"+people[120].EmployeeID, acct.ID)
	assert.Equal(t, people[120].Login, acct.Login)

	_, err = c.Resolve(t.Context(), control.Person{Email: "nobody@example.test"})
	assert.ErrorIs(t, err, control.ErrNotFound)
	var cerr *control.Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, []string{"GET /Users (every page: the app cannot filter): 150 of totalResults 150 read in 2 page(s), 0 match"}, cerr.Searched)

	// Paging the app does not report cannot be checked: no claim of "none".
	omitStart = true
	_, err = c.Resolve(t.Context(), control.Person{Email: "nobody@example.test"})
	assert.ErrorIs(t, err, control.ErrUnexpected)
	assert.Contains(t, err.Error(), "startIndex")
}

// TestClassification checks how every kind of failure is reported.
func TestClassification(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		wantKind    error
		wantRetry   time.Duration // lower bound
		wantContain string
	}{
		{"404", 404, nil, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"Resource u1 not found."}`, control.ErrNotFound, 0, "Resource u1 not found."},
		// Any other 404 is not the app saying "no such user": it names the endpoint.
		{"404 html", 404, map[string]string{"Content-Type": "text/html"}, `<html><center>nginx</center></html>`, control.ErrUnexpected, 0, "GET http://"},
		{"404 foreign json", 404, map[string]string{"Content-Type": "application/json"}, `{"status":404,"error":"Not Found","path":"/scim/v2/Users/u1"}`, control.ErrUnexpected, 0, "/scim/v2/Users/u1"},
		{"404 scim status without the error schema", 404, nil, `{"status":"404","detail":"no route"}`, control.ErrUnexpected, 0, "check the base URL"},
		{"404 scim error schema, other status", 404, nil, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400"}`, control.ErrUnexpected, 0, "check the base URL"},
		{"429 seconds", 429, map[string]string{"Retry-After": "7"}, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429"}`, control.ErrRateLimited, 7 * time.Second, "429"},
		{"429 date", 429, map[string]string{"Retry-After": date}, ``, control.ErrRateLimited, 80 * time.Second, "Too Many Requests"},
		{"503", 503, map[string]string{"Retry-After": "3"}, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"503"}`, control.ErrTransient, 3 * time.Second, "503"},
		{"500 html", 500, map[string]string{"Content-Type": "text/html"}, `<html>oops</html>`, control.ErrTransient, 0, "not a SCIM error"},
		{"401", 401, nil, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"Invalid token"}`, control.ErrUnauthorized, 0, "provisioning rights"},
		{"403", 403, nil, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":403,"detail":"scope users:write missing"}`, control.ErrUnauthorized, 0, "users:write"},
		{"400 invalidValue", 400, nil, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"invalidValue","status":"400","detail":"bad"}`, control.ErrPermanent, 0, "invalidValue"},
		{"409", 409, nil, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"uniqueness","status":"409"}`, control.ErrPermanent, 0, "uniqueness"},
		{"412", 412, nil, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"412"}`, control.ErrTransient, 0, "412"},
		// A read's answer that is not JSON at all is asked again; a well-formed wrong one is not.
		{"garbage 200", 200, map[string]string{"Content-Type": "text/html"}, `<html>login page</html>`, control.ErrTransient, 0, "sha256:"},
		{"200 not json", 200, nil, `{"id":`, control.ErrTransient, 0, "not JSON"},
		{"200 no id", 200, nil, `{"userName":"x","active":false}`, control.ErrPermanent, 0, `no "id"`},
		{"200 odd active", 200, nil, `{"id":"u1","userName":"x","active":"maybe"}`, control.ErrPermanent, 0, `"active"`},
		{"200 array", 200, nil, `[]`, control.ErrPermanent, 0, "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, "Bearer "+token, r.Header.Get("Authorization"))
				w.Header().Set("Content-Type", "application/scim+json")
				w.Header().Set("X-Request-Id", "req-42")
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, "scim-stub", srv.URL+"/scim/v2", token)

			// Enforce("deactivate") on the PUT path starts with a GET, which every row answers.
			_, err := c.Observe(t.Context(), "reactivate", control.Account{ID: "u1"}, control.Params{})
			if tt.wantKind == control.ErrNotFound {
				require.NoError(t, err, "the app's own 404 on a read of the user means gone")
				_, err = c.Enforce(t.Context(), "delete", control.Account{ID: "u1"}, control.Params{})
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.wantKind)
			var cerr *control.Error
			require.ErrorAs(t, err, &cerr)
			assert.Equal(t, tt.status, cerr.HTTPStatus)
			assert.Equal(t, "req-42", cerr.RequestID)
			assert.GreaterOrEqual(t, cerr.RetryAfter, tt.wantRetry)
			assert.LessOrEqual(t, cerr.RetryAfter, tt.wantRetry+15*time.Second)
			if tt.body != "" {
				assert.Equal(t, control.Digest([]byte(tt.body)), cerr.Digest)
			}
			assert.Contains(t, err.Error(), tt.wantContain)
			assert.Contains(t, err.Error(), "scim-stub: ")
			assert.NotContains(t, err.Error(), token)
		})
	}
}

// TestAgainstApp checks classification against the simulator's own failures.
func TestAgainstApp(t *testing.T) {
	ada := demo.People(1)[0]

	t.Run("wrong token", func(t *testing.T) {
		s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true})
		c := newClient(t, "scim-crm", s.srv.URL+"/scim/v2", "wrong-token")
		_, err := c.Resolve(t.Context(), person(ada))
		assert.ErrorIs(t, err, control.ErrUnauthorized)
		assert.NotContains(t, err.Error(), "wrong-token")
	})

	t.Run("rate limited", func(t *testing.T) {
		s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true, RequestsPerSecond: 1})
		// The ServiceProviderConfig read spends the only token; the lookup is refused.
		_, err := s.client.Resolve(t.Context(), person(ada))
		require.ErrorIs(t, err, control.ErrRateLimited)
		var cerr *control.Error
		require.ErrorAs(t, err, &cerr)
		assert.Equal(t, time.Second, cerr.RetryAfter)
	})

	t.Run("injected 503", func(t *testing.T) {
		s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true})
		acct, err := s.client.Resolve(t.Context(), person(ada))
		require.NoError(t, err)
		s.app.Faults().Add(fault.Rule{Method: http.MethodPatch, PathPrefix: "/scim/v2/Users/", Status: 503, Count: 1})
		_, err = s.client.Enforce(t.Context(), "deactivate", acct, control.Params{})
		require.ErrorIs(t, err, control.ErrTransient)
		u, _ := s.app.User(ada.Email)
		assert.True(t, u.Active, "nothing changed")
		// The retry the workflow makes goes through.
		_, err = s.client.Enforce(t.Context(), "deactivate", acct, control.Params{})
		require.NoError(t, err)
		u, _ = s.app.User(ada.Email)
		assert.False(t, u.Active)
	})

	t.Run("hang vs deadline", func(t *testing.T) {
		s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true})
		acct, err := s.client.Resolve(t.Context(), person(ada))
		require.NoError(t, err)
		s.app.Faults().Add(fault.Rule{Method: http.MethodGet, PathPrefix: "/scim/v2/Users/", Hang: true})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = s.client.Observe(ctx, "deactivate", acct, control.Params{})
		require.ErrorIs(t, err, control.ErrTransient)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), err)
		assert.Less(t, time.Since(start), 3*time.Second)
	})

	t.Run("resource without active", func(t *testing.T) {
		s := startApp(t, scimapp.Options{Name: "wiki"})
		id := createUser(t, s, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"noactive"}`)
		// The app defaults active on create; a PUT without it drops the attribute.
		putUser(t, s, id, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"noactive"}`)
		obs, err := s.client.Observe(t.Context(), "deactivate", control.Account{ID: id}, control.Params{})
		require.NoError(t, err)
		assert.False(t, obs.Readable)
		assert.False(t, obs.Holds)
	})

	t.Run("unknown control", func(t *testing.T) {
		s := startApp(t, scimapp.Options{Name: "crm"})
		_, err := s.client.Enforce(t.Context(), "remove_groups", control.Account{ID: "x"}, control.Params{})
		assert.ErrorIs(t, err, control.ErrUnknownControl)
		_, err = s.client.Observe(t.Context(), "suspend", control.Account{ID: "x"}, control.Params{})
		assert.ErrorIs(t, err, control.ErrUnknownControl)
	})
}

func actions(ts []scimapp.Transition) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Action)
	}
	return out
}

func mustUser(t *testing.T, s *sandbox, userName string) scimapp.User {
	t.Helper()
	u, ok := s.app.User(userName)
	require.True(t, ok, userName)
	return u
}

func createUser(t *testing.T, s *sandbox, body string) string {
	t.Helper()
	resp := send(t, s, http.MethodPost, "/scim/v2/Users", body)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc := resp.Header.Get("Location")
	return loc[strings.LastIndex(loc, "/")+1:]
}

func putUser(t *testing.T, s *sandbox, id, body string) {
	t.Helper()
	resp := send(t, s, http.MethodPut, "/scim/v2/Users/"+id, body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func send(t *testing.T, s *sandbox, method, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := s.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func TestBasicAuth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "provisioner" || pass != "pa55word" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		assert.Equal(t, "/scim/v2/Users/u1", r.URL.Path)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(`{"id":"u1","userName":"a","active":false}`))
	}))
	t.Cleanup(srv.Close)
	for _, pass := range []string{"pa55word", "wrong-pass"} {
		c, err := scim.New(scim.Config{Name: "scim-basic", BaseURL: srv.URL + "/scim/v2", Username: "provisioner", Password: pass})
		require.NoError(t, err)
		obs, err := c.Observe(t.Context(), "deactivate", control.Account{ID: "u1"}, control.Params{})
		if pass == "wrong-pass" {
			assert.ErrorIs(t, err, control.ErrUnauthorized)
			assert.NotContains(t, err.Error(), pass)
			continue
		}
		require.NoError(t, err)
		assert.True(t, obs.Holds, "application/json is accepted as well as application/scim+json")
	}
}

// TestProbe: the self-check proves the base URL answers SCIM and the token
// reads /Users, and names whichever is wrong.
func TestProbe(t *testing.T) {
	s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true})
	pr, err := s.client.Probe(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{
		"GET /ServiceProviderConfig: 200, SCIM urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
		"GET /ResourceTypes: 200, SCIM urn:ietf:params:scim:api:messages:2.0:ListResponse",
		"GET /Users?startIndex=1&count=1: 200, SCIM urn:ietf:params:scim:api:messages:2.0:ListResponse",
	}, pr.Checks)
	assert.Empty(t, pr.Missing)

	t.Run("wrong token", func(t *testing.T) {
		_, err := newClient(t, "scim-crm", s.srv.URL+"/scim/v2", "wrong-token").Probe(t.Context())
		require.ErrorIs(t, err, control.ErrUnauthorized)
		assert.Contains(t, err.Error(), "the credential was refused")
		assert.NotContains(t, err.Error(), "wrong-token")
	})
	t.Run("wrong base path", func(t *testing.T) {
		_, err := newClient(t, "scim-crm", s.srv.URL+"/scim", token).Probe(t.Context())
		require.ErrorIs(t, err, control.ErrUnexpected)
		assert.Contains(t, err.Error(), "the base URL "+s.srv.URL+"/scim does not answer with a SCIM API")
	})
	t.Run("JSON without the SCIM schemas", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"patch":{"supported":true},"filter":{"supported":true}}`))
		}))
		t.Cleanup(srv.Close)
		_, err := newClient(t, "scim-x", srv.URL, token).Probe(t.Context())
		require.ErrorIs(t, err, control.ErrUnexpected)
		assert.Contains(t, err.Error(), "does not carry the schema urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig")
	})
}

// TestResolveReportsPrivileges: admin-like roles and every entitlement the
// user resource carries come back as Privileges; ordinary roles do not.
func TestResolveReportsPrivileges(t *testing.T) {
	s := startApp(t, scimapp.Options{Name: "crm", PatchSupported: true})
	createUser(t, s, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"root@example.test",
		"roles":[{"value":"Org Admin"},{"value":"member"}],"entitlements":[{"value":"billing:write"}]}`)
	createUser(t, s, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"plain@example.test","roles":[{"value":"member"}]}`)

	acct, err := s.client.Resolve(t.Context(), control.Person{Email: "root@example.test"})
	require.NoError(t, err)
	assert.Equal(t, []string{"scim role Org Admin", "scim entitlement billing:write"}, acct.Privileges)
	acct, err = s.client.Resolve(t.Context(), control.Person{Email: "plain@example.test"})
	require.NoError(t, err)
	assert.Empty(t, acct.Privileges)
}
