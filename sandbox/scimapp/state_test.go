package scimapp_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/scimapp"
	"github.com/offboard/offboard/sandbox/simstate/simstatetest"
)

const deactivate = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`

// list pages through GET /Users and returns the resources in order.
func (h harness) list(t *testing.T, filter string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for start := 1; ; {
		path := "/scim/v2/Users?count=3&startIndex=" + strconv.Itoa(start)
		if filter != "" {
			path += "&filter=" + url.QueryEscape(filter)
		}
		status, _, body := h.call(t, http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, status, body)
		res := body["Resources"].([]any)
		for _, r := range res {
			out = append(out, r.(map[string]any))
		}
		start += len(res)
		if len(res) == 0 || float64(start) > body["totalResults"].(float64) {
			return out
		}
	}
}

func ids(users []map[string]any) []string {
	var out []string
	for _, u := range users {
		out = append(out, u["id"].(string))
	}
	return out
}

// get fetches one user; meta.location names the server, so it is left out.
func (h harness) get(t *testing.T, id string) (int, string, map[string]any) {
	t.Helper()
	status, hdr, body := h.call(t, http.MethodGet, "/scim/v2/Users/"+id, "")
	if meta, ok := body["meta"].(map[string]any); ok {
		delete(meta, "location")
	}
	return status, hdr.Get("ETag"), body
}

// offboard deactivates Ada by PATCH, replaces Alan without his externalId,
// deletes Grace and creates a new hire; it returns the ids of the four.
func offboard(t *testing.T, h harness) (ada, alan, grace, hire string) {
	t.Helper()
	people := demo.People(3)
	id := func(p demo.Person) string {
		u, ok := h.app.User(p.Email)
		require.True(t, ok)
		return u.ID
	}
	ada, alan, grace = id(people[0]), id(people[1]), id(people[2])
	status, _, body := h.call(t, http.MethodPatch, "/scim/v2/Users/"+ada, deactivate)
	require.Equal(t, http.StatusOK, status, body)

	status, _, body = h.call(t, http.MethodGet, "/scim/v2/Users/"+alan, "")
	require.Equal(t, http.StatusOK, status)
	delete(body, "externalId")
	body["displayName"] = "Alan (contractor)"
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	status, _, body = h.call(t, http.MethodPut, "/scim/v2/Users/"+alan, string(raw))
	require.Equal(t, http.StatusOK, status, body)

	status, _, _ = h.call(t, http.MethodDelete, "/scim/v2/Users/"+grace, "")
	require.Equal(t, http.StatusNoContent, status)

	status, _, body = h.call(t, http.MethodPost, "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"new.hire@example.test","externalId":"E9001","name":{"givenName":"New","familyName":"Hire"},
		"emails":[{"value":"new.hire@example.test","type":"work","primary":true}],"phoneNumbers":[{"value":"+1 555 0100","type":"mobile"}],"title":"Intern"}`)
	require.Equal(t, http.StatusCreated, status, body)
	return ada, alan, grace, body["id"].(string)
}

// State saved from one app and loaded into a new one with another seed
// answers through the SCIM API as the old one did, and the new one goes on
// from there.
func TestStateSurvivesARestart(t *testing.T) {
	old := start(t, scimapp.Options{PatchSupported: true})
	ada, alan, grace, hire := offboard(t, old)
	listBefore := old.list(t, "")
	adaStatus, adaETag, adaBefore := old.get(t, ada)
	require.Equal(t, http.StatusOK, adaStatus)
	_, alanETag, alanBefore := old.get(t, alan)
	_, hireETag, hireBefore := old.get(t, hire)
	var saved bytes.Buffer
	require.NoError(t, old.app.SaveState(&saved))
	assert.Contains(t, saved.String(), `"version": 1`)
	assert.NotContains(t, saved.String(), token, "the bearer token is not state")

	// Another seed: more people, all active, with ids of their own.
	fresh := start(t, scimapp.Options{PatchSupported: true, People: demo.People(8)})
	seeded := ids(fresh.list(t, ""))
	require.Len(t, seeded, 8)

	require.NoError(t, fresh.app.LoadState(bytes.NewReader(saved.Bytes())))

	listAfter := fresh.list(t, "")
	assert.Equal(t, ids(listBefore), ids(listAfter), "the saved users, in the saved order")
	for i := range listBefore {
		delete(listBefore[i]["meta"].(map[string]any), "location")
		delete(listAfter[i]["meta"].(map[string]any), "location")
	}
	assert.Equal(t, listBefore, listAfter, "every attribute and meta")
	for _, id := range seeded {
		status, _, _ := fresh.get(t, id)
		assert.Equal(t, http.StatusNotFound, status, "the new seed's users are gone")
	}

	status, etag, body := fresh.get(t, ada)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, false, body["active"], "the deactivated user is still inactive")
	assert.Equal(t, adaBefore, body)
	assert.Equal(t, adaETag, etag)
	assert.Equal(t, `W/"2"`, body["meta"].(map[string]any)["version"])
	_, etag, body = fresh.get(t, alan)
	assert.Equal(t, alanBefore, body)
	assert.Equal(t, alanETag, etag)
	assert.NotContains(t, body, "externalId", "the dropped externalId stays dropped")
	assert.Equal(t, "Alan (contractor)", body["displayName"])
	_, etag, body = fresh.get(t, hire)
	assert.Equal(t, hireBefore, body)
	assert.Equal(t, hireETag, etag)
	assert.Equal(t, "E9001", body["externalId"])
	status, _, _ = fresh.get(t, grace)
	assert.Equal(t, http.StatusNotFound, status, "the deleted user stays deleted")

	// Filters see the loaded users as they are.
	assert.Equal(t, []string{ada}, ids(fresh.list(t, `active eq false`)))
	assert.Empty(t, fresh.list(t, `externalId eq "E1002"`))
	assert.Equal(t, []string{hire}, ids(fresh.list(t, `externalId eq "E9001"`)))
	assert.Empty(t, fresh.list(t, `userName eq "`+demo.People(3)[2].Email+`"`))

	// The admin endpoint and the history of the deleted user.
	resp, err := fresh.srv.Client().Get(fresh.srv.URL + "/_sandbox/users/" + demo.People(1)[0].Email)
	require.NoError(t, err)
	defer resp.Body.Close()
	var admin struct {
		scimapp.User
		Transitions []scimapp.Transition `json:"transitions"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&admin))
	assert.False(t, admin.Active)
	require.Len(t, admin.Transitions, 1)
	assert.Equal(t, "deactivate", admin.Transitions[0].Action)
	assert.True(t, old.app.Transitions(ada)[0].At.Equal(admin.Transitions[0].At))
	require.Len(t, fresh.app.Transitions(grace), 1)
	assert.Equal(t, "delete", fresh.app.Transitions(grace)[0].Action)

	// The loaded state is live: uniqueness holds against it, a new user gets
	// a fresh id and goes last, changes bump the saved version.
	status, _, body = fresh.call(t, http.MethodPost, "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"NEW.HIRE@example.test"}`)
	assert.Equal(t, http.StatusConflict, status, body)
	status, _, body = fresh.call(t, http.MethodPost, "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"second.hire@example.test"}`)
	require.Equal(t, http.StatusCreated, status, body)
	newID := body["id"].(string)
	assert.NotContains(t, append(ids(listBefore), grace), newID)
	assert.Equal(t, append(ids(listBefore), newID), ids(fresh.list(t, "")))
	status, _, body = fresh.call(t, http.MethodPatch, "/scim/v2/Users/"+ada,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":true}]}`)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, `W/"3"`, body["meta"].(map[string]any)["version"])
	require.Len(t, fresh.app.Transitions(ada), 2)
	assert.Equal(t, "reactivate", fresh.app.Transitions(ada)[1].Action)
	_, _, body = old.get(t, ada)
	assert.Equal(t, false, body["active"], "the old app is not touched")
}

// meta.created and meta.lastModified are saved and loaded to the nanosecond,
// though the API shows them to the second.
func TestStateKeepsMetaTimes(t *testing.T) {
	old := start(t, scimapp.Options{PatchSupported: true})
	ada, _, _, _ := offboard(t, old)
	var saved bytes.Buffer
	require.NoError(t, old.app.SaveState(&saved))
	var doc struct {
		Users []struct {
			ID   string `json:"id"`
			Meta struct {
				Created      time.Time `json:"created"`
				LastModified time.Time `json:"lastModified"`
			} `json:"meta"`
		} `json:"users"`
	}
	require.NoError(t, json.Unmarshal(saved.Bytes(), &doc))
	require.Equal(t, ada, doc.Users[0].ID)
	assert.True(t, doc.Users[0].Meta.LastModified.After(doc.Users[0].Meta.Created), "the PATCH came after the seed")
	assert.True(t, doc.Users[1].Meta.LastModified.After(doc.Users[1].Meta.Created), "so did the PUT")

	edited := editState(t, saved.Bytes(), func(users []any, _ map[string]any) {
		meta := users[0].(map[string]any)["meta"].(map[string]any)
		meta["created"] = "2025-01-02T03:04:05.123456789Z"
		meta["lastModified"] = "2025-06-07T08:09:10.5Z"
	})
	fresh := start(t, scimapp.Options{PatchSupported: true})
	require.NoError(t, fresh.app.LoadState(strings.NewReader(edited)))
	_, _, body := fresh.get(t, ada)
	meta := body["meta"].(map[string]any)
	assert.Equal(t, "2025-01-02T03:04:05Z", meta["created"])
	assert.Equal(t, "2025-06-07T08:09:10Z", meta["lastModified"])
}

// The same state saves to the same bytes, and a save of a loaded state is
// the document it was loaded from.
func TestSaveStateIsStable(t *testing.T) {
	old := start(t, scimapp.Options{PatchSupported: true})
	offboard(t, old)
	var first, second, again bytes.Buffer
	require.NoError(t, old.app.SaveState(&first))
	require.NoError(t, old.app.SaveState(&second))
	assert.Equal(t, first.String(), second.String())
	fresh := start(t, scimapp.Options{People: demo.People(1)})
	require.NoError(t, fresh.app.LoadState(bytes.NewReader(first.Bytes())))
	require.NoError(t, fresh.app.SaveState(&again))
	assert.Equal(t, first.String(), again.String())
}

// editState decodes a saved document, lets edit change it and encodes it again.
func editState(t *testing.T, saved []byte, edit func(users []any, doc map[string]any)) string {
	t.Helper()
	return simstatetest.Edit(t, saved, func(doc map[string]any) { edit(doc["users"].([]any), doc) })
}

func attrs(u any) map[string]any { return u.(map[string]any)["attributes"].(map[string]any) }

// A document that is not version 1, not JSON or not consistent is refused
// with an error, and the app answers as before.
func TestLoadStateRefusesBadDocuments(t *testing.T) {
	h := start(t, scimapp.Options{PatchSupported: true})
	ada, _, _, _ := offboard(t, h)
	var saved bytes.Buffer
	require.NoError(t, h.app.SaveState(&saved))
	good := saved.Bytes()
	before := h.list(t, "")

	docs := map[string]string{
		"unknown version": strings.Replace(string(good), `"version": 1`, `"version": 2`, 1),
		"no version":      `{"users": []}`,
		"not JSON":        "{",
		"truncated":       string(good[:len(good)/2]),
		"trailing data":   string(good) + "{}",
		"unknown field": editState(t, good, func(users []any, _ map[string]any) {
			users[0].(map[string]any)["password"] = "x"
		}),
		"id twice": editState(t, good, func(users []any, _ map[string]any) {
			users[1].(map[string]any)["id"] = users[0].(map[string]any)["id"]
		}),
		"userName twice": editState(t, good, func(users []any, _ map[string]any) {
			attrs(users[1])["userName"] = strings.ToUpper(attrs(users[0])["userName"].(string))
		}),
		"no userName": editState(t, good, func(users []any, _ map[string]any) {
			delete(attrs(users[0]), "userName")
		}),
		"active not a boolean": editState(t, good, func(users []any, _ map[string]any) {
			attrs(users[0])["active"] = "False"
		}),
		"meta among the attributes": editState(t, good, func(users []any, _ map[string]any) {
			attrs(users[0])["meta"] = map[string]any{"version": `W/"9"`}
		}),
		"no meta version": editState(t, good, func(users []any, _ map[string]any) {
			users[0].(map[string]any)["meta"].(map[string]any)["version"] = 0
		}),
	}
	fresh := start(t, scimapp.Options{People: demo.People(1)})
	require.NoError(t, fresh.app.LoadState(bytes.NewReader(good)), "the unedited document loads")

	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			err := h.app.LoadState(strings.NewReader(doc))
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "scimapp: load state: "), err.Error())
			var after bytes.Buffer
			require.NoError(t, h.app.SaveState(&after))
			assert.Equal(t, saved.String(), after.String(), "the state is as it was")
			assert.Equal(t, before, h.list(t, ""))
			_, _, body := h.get(t, ada)
			assert.Equal(t, false, body["active"])
		})
	}
	assert.EqualError(t, h.app.LoadState(strings.NewReader(docs["unknown version"])), "scimapp: load state: version 2, want 1")
	assert.ErrorContains(t, h.app.LoadState(strings.NewReader(docs["userName twice"])), "both have userName")
}

// Saves and loads while clients use the API (run with -race).
func TestStateConcurrentWithClients(t *testing.T) {
	h := start(t, scimapp.Options{PatchSupported: true, People: demo.People(10), RequestsPerSecond: 100000})
	var saved bytes.Buffer
	require.NoError(t, h.app.SaveState(&saved))
	var wg sync.WaitGroup
	// do sends one request; require must not be used off the test goroutine.
	do := func(method, path, body string) (int, error) {
		req, err := http.NewRequestWithContext(t.Context(), method, h.srv.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, p := range demo.People(10) {
		u, _ := h.app.User(p.Email)
		wg.Go(func() {
			for range 5 {
				status, err := do(http.MethodPatch, "/scim/v2/Users/"+u.ID, deactivate)
				assert.NoError(t, err)
				assert.Equal(t, http.StatusOK, status)
				status, err = do(http.MethodGet, "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "`+p.Email+`"`), "")
				assert.NoError(t, err)
				assert.Equal(t, http.StatusOK, status)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			var buf bytes.Buffer
			assert.NoError(t, h.app.SaveState(&buf))
			assert.NoError(t, h.app.LoadState(bytes.NewReader(saved.Bytes())))
		}
	})
	wg.Wait()
}
