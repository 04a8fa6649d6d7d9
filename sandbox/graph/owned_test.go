package graph_test

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/graph"
)

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestOwnedObjectsMixedAndPaged(t *testing.T) {
	sim, srv := newServer(t, 0)
	people := demo.People(20)
	owner, _ := sim.User(demo.ServiceOwner(people).Email)
	sim.AddApplication("ledger-export", owner.ID)

	var types, names []string
	pages := 0
	for next := srv.URL + "/v1.0/users/" + owner.ID + "/ownedObjects"; next != ""; pages++ {
		resp, body := do(t, http.MethodGet, next, nil, nil)
		require.Equal(t, 200, resp.StatusCode, body)
		for _, v := range body["value"].([]any) {
			item := v.(map[string]any)
			types = append(types, item["@odata.type"].(string))
			names = append(names, item["displayName"].(string))
			for _, pc := range item["passwordCredentials"].([]any) {
				assert.Nil(t, pc.(map[string]any)["secretText"], "never a secret on read")
			}
		}
		next, _ = body["@odata.nextLink"].(string)
	}
	assert.Equal(t, 2, pages)
	assert.Equal(t, []string{"#microsoft.graph.application", "#microsoft.graph.servicePrincipal",
		"#microsoft.graph.application", "#microsoft.graph.servicePrincipal"}, types)
	assert.Equal(t, []string{demo.ApplicationName, demo.ApplicationName, "ledger-export", "ledger-export"}, names)

	resp, body := do(t, http.MethodGet, srv.URL+"/v1.0/users/nobody@example.test/ownedObjects", nil, nil)
	assert.Equal(t, 404, resp.StatusCode)
	assert.Equal(t, "Request_ResourceNotFound", errorCode(body))

	resp, body = do(t, http.MethodGet, srv.URL+"/_sandbox/applications", nil, nil)
	require.Equal(t, 200, resp.StatusCode)
	assert.Len(t, body["applications"], 4)
}

func TestAddAndRemovePassword(t *testing.T) {
	sim, srv := newServer(t, 0)
	appID, _ := graph.ApplicationIDs(demo.ApplicationName)
	api := srv.URL + "/v1.0/applications/" + appID

	resp, body := do(t, http.MethodPost, api+"/addPassword", gz(t, `{"passwordCredential":{"displayName":"rotation","secretText":"mine"}}`),
		map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/json"})
	require.Equal(t, 200, resp.StatusCode, body)
	secret := body["secretText"].(string)
	keyID := body["keyId"].(string)
	assert.Len(t, secret, 40, "Graph makes the secret; what the client sent is ignored")
	assert.Equal(t, secret[:3], body["hint"])
	assert.True(t, sim.SecretWorks(appID, keyID, []byte(secret)))
	assert.False(t, sim.SecretWorks(appID, keyID, []byte("mine")))

	resp, body = do(t, http.MethodGet, api+"?$select=id,passwordCredentials", nil, nil)
	require.Equal(t, 200, resp.StatusCode)
	creds := body["passwordCredentials"].([]any)
	require.Len(t, creds, 2)
	assert.Nil(t, creds[1].(map[string]any)["secretText"])
	assert.Equal(t, "rotation", creds[1].(map[string]any)["displayName"])
	assert.NotContains(t, body, "keyCredentials", "$select honoured")

	resp, _ = do(t, http.MethodPost, api+"/removePassword", []byte(`{"keyId":"`+keyID+`"}`), nil)
	assert.Equal(t, 204, resp.StatusCode)
	resp, body = do(t, http.MethodPost, api+"/removePassword", []byte(`{"keyId":"`+keyID+`"}`), nil)
	assert.Equal(t, 400, resp.StatusCode)
	assert.Equal(t, "Request_BadRequest", errorCode(body))
	assert.False(t, sim.SecretWorks(appID, keyID, []byte(secret)))

	// Client secrets change only through addPassword and removePassword.
	resp, _ = do(t, http.MethodPatch, api, []byte(`{"passwordCredentials":[]}`), nil)
	assert.Equal(t, 400, resp.StatusCode)
	got, _ := sim.Application(appID)
	assert.Len(t, got.Passwords, 1)

	resp, body = do(t, http.MethodPost, srv.URL+"/v1.0/applications/00000000-0000-4000-8000-000000000000/addPassword", []byte(`{}`), nil)
	assert.Equal(t, 404, resp.StatusCode)
	assert.Equal(t, "Request_ResourceNotFound", errorCode(body))
}

func TestOwnersByReference(t *testing.T) {
	sim, srv := newServer(t, 0)
	people := demo.People(20)
	leaver, _ := sim.User(demo.ServiceOwner(people).Email)
	manager, _ := sim.User(people[0].Email)
	_, spID := graph.ApplicationIDs(demo.ApplicationName)
	api := srv.URL + "/v1.0/servicePrincipals/" + spID + "/owners"
	ref := []byte(`{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/` + manager.ID + `"}`)

	resp, _ := do(t, http.MethodPost, api+"/$ref", ref, nil)
	require.Equal(t, 204, resp.StatusCode)
	resp, body := do(t, http.MethodPost, api+"/$ref", ref, nil)
	assert.Equal(t, 400, resp.StatusCode, "already an owner")
	assert.Contains(t, body["error"].(map[string]any)["message"], "already exist")
	resp, body = do(t, http.MethodPost, api+"/$ref", []byte(`{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/00000000-0000-4000-8000-000000000000"}`), nil)
	assert.Equal(t, 404, resp.StatusCode)
	assert.Equal(t, "Request_ResourceNotFound", errorCode(body))

	resp, body = do(t, http.MethodGet, api, nil, nil)
	require.Equal(t, 200, resp.StatusCode)
	var upns []string
	for _, v := range body["value"].([]any) {
		item := v.(map[string]any)
		assert.Equal(t, "#microsoft.graph.user", item["@odata.type"])
		upns = append(upns, item["userPrincipalName"].(string))
	}
	assert.Equal(t, []string{leaver.UPN, manager.UPN}, upns)

	resp, _ = do(t, http.MethodDelete, api+"/"+leaver.ID+"/$ref", nil, nil)
	assert.Equal(t, 204, resp.StatusCode)
	resp, body = do(t, http.MethodDelete, api+"/"+leaver.ID+"/$ref", nil, nil)
	assert.Equal(t, 404, resp.StatusCode)
	assert.Equal(t, "Request_ResourceNotFound", errorCode(body))
	got, _ := sim.Application(spID)
	assert.Equal(t, []string{manager.ID}, got.Owners)
}

func TestServicePrincipalSignInAndFilter(t *testing.T) {
	sim, srv := newServer(t, 0)
	appID, spID := graph.ApplicationIDs(demo.ApplicationName)
	app, _ := sim.Application(appID)
	q := url.Values{"$filter": {"appId eq '" + app.AppID + "'"}, "$select": {"id,appId,accountEnabled"}}
	resp, body := do(t, http.MethodGet, srv.URL+"/v1.0/servicePrincipals?"+q.Encode(), nil, nil)
	require.Equal(t, 200, resp.StatusCode, body)
	require.Len(t, body["value"].([]any), 1)
	assert.Equal(t, spID, body["value"].([]any)[0].(map[string]any)["id"])
	resp, _ = do(t, http.MethodGet, srv.URL+"/v1.0/servicePrincipals?"+url.Values{"$filter": {"mail eq 'x'"}}.Encode(), nil, nil)
	assert.Equal(t, 400, resp.StatusCode)

	resp, _ = do(t, http.MethodPatch, srv.URL+"/v1.0/servicePrincipals/"+spID, []byte(`{"accountEnabled":false}`), nil)
	require.Equal(t, 204, resp.StatusCode)
	got, _ := sim.Application(spID)
	assert.False(t, got.AccountEnabled)
	resp, _ = do(t, http.MethodPatch, srv.URL+"/v1.0/applications/"+appID, []byte(`{"accountEnabled":false}`), nil)
	assert.Equal(t, 400, resp.StatusCode, "an application has no accountEnabled")

	resp, _ = do(t, http.MethodPatch, srv.URL+"/v1.0/applications/"+appID, []byte(`{"keyCredentials":[]}`), nil)
	require.Equal(t, 204, resp.StatusCode)
	got, _ = sim.Application(appID)
	assert.Empty(t, got.Certificates)
}

func TestPasswordProfile(t *testing.T) {
	sim, srv := newServer(t, 0)
	api := srv.URL + "/v1.0/users/" + url.PathEscape(demo.BreakGlassEntra)
	before, ok := sim.User(demo.BreakGlassEntra)
	require.True(t, ok)
	assert.True(t, before.AccountEnabled)

	resp, body := do(t, http.MethodPatch, api, []byte(`{"passwordProfile":{"password":"short","forceChangePasswordNextSignIn":false}}`), nil)
	assert.Equal(t, 400, resp.StatusCode)
	assert.NotContains(t, body["error"].(map[string]any)["message"], "short", "Graph never echoes a password")
	after, _ := sim.User(demo.BreakGlassEntra)
	assert.Equal(t, before.LastPasswordChange, after.LastPasswordChange)

	start := time.Now().Truncate(time.Second)
	resp, _ = do(t, http.MethodPatch, api, []byte(`{"passwordProfile":{"password":"Correct-Horse-9-Battery","forceChangePasswordNextSignIn":false}}`), nil)
	require.Equal(t, 204, resp.StatusCode)
	assert.True(t, sim.PasswordWorks(demo.BreakGlassEntra, []byte("Correct-Horse-9-Battery")))
	resp, body = do(t, http.MethodGet, api+"?$select=id,lastPasswordChangeDateTime", nil, nil)
	require.Equal(t, 200, resp.StatusCode)
	changed, err := time.Parse(time.RFC3339, body["lastPasswordChangeDateTime"].(string))
	require.NoError(t, err)
	assert.False(t, changed.Before(start))
	assert.Equal(t, []string{"set_password"}, []string{sim.Transitions(demo.BreakGlassEntra)[0].Action})
}

func TestApplicationsSurviveARestart(t *testing.T) {
	sim, srv := newServer(t, 0)
	people := demo.People(20)
	appID, _ := graph.ApplicationIDs(demo.ApplicationName)
	manager, _ := sim.User(people[0].Email)
	resp, body := do(t, http.MethodPost, srv.URL+"/v1.0/applications/"+appID+"/addPassword", []byte(`{"passwordCredential":{"displayName":"r"}}`), nil)
	require.Equal(t, 200, resp.StatusCode)
	secret, keyID := body["secretText"].(string), body["keyId"].(string)
	resp, _ = do(t, http.MethodPost, srv.URL+"/v1.0/applications/"+appID+"/owners/$ref",
		[]byte(`{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/`+manager.ID+`"}`), nil)
	require.Equal(t, 204, resp.StatusCode)
	resp, _ = do(t, http.MethodPatch, srv.URL+"/v1.0/users/"+url.PathEscape(demo.BreakGlassEntra),
		[]byte(`{"passwordProfile":{"password":"Correct-Horse-9-Battery"}}`), nil)
	require.Equal(t, 204, resp.StatusCode)

	var saved bytes.Buffer
	require.NoError(t, sim.SaveState(&saved))
	assert.NotContains(t, saved.String(), secret, "secrets are saved as digests")
	assert.NotContains(t, saved.String(), "Correct-Horse-9-Battery")

	fresh := graph.New(graph.Options{People: demo.People(3)})
	require.NoError(t, fresh.LoadState(bytes.NewReader(saved.Bytes())))
	want, _ := sim.Application(appID)
	got, ok := fresh.Application(appID)
	require.True(t, ok)
	assert.Equal(t, want, got)
	assert.True(t, fresh.SecretWorks(appID, keyID, []byte(secret)))
	assert.True(t, fresh.PasswordWorks(demo.BreakGlassEntra, []byte("Correct-Horse-9-Battery")))
	u1, _ := sim.User(demo.BreakGlassEntra)
	u2, _ := fresh.User(demo.BreakGlassEntra)
	assert.Equal(t, u1.LastPasswordChange, u2.LastPasswordChange)
}
