package roster

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBambooHRDirectory(t *testing.T) {
	body := `{"fields":[{"id":"displayName","type":"text","name":"Display name"}],
	  "employees":[{"id":"123","displayName":"Ada Lovelace","workEmail":"ada@example.test","supervisor":"Grace Hopper"},
	               {"id":124,"displayName":"Alan Turing","workEmail":"alan@example.test"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, ok := r.BasicAuth()
		switch {
		case r.URL.Path == "/api/gateway.php/acme/v1/employees/directory" && ok && user == "key-1":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		case r.URL.Path == "/api/gateway.php/broken/v1/employees/directory":
			_, _ = w.Write([]byte(`<html>maintenance</html>`))
		case r.URL.Path == "/api/gateway.php/empty/v1/employees/directory":
			_, _ = w.Write([]byte(`{"fields":[]}`))
		default:
			w.Header().Set("X-BambooHR-Error-Message", "Invalid API key")
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)

	people, err := BambooHR{BaseURL: srv.URL, CompanyDomain: "acme", APIKey: "key-1"}.People(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []Person{
		{EmployeeID: "123", Email: "ada@example.test", Name: "Ada Lovelace", Status: Active, Manager: "Grace Hopper"},
		{EmployeeID: "124", Email: "alan@example.test", Name: "Alan Turing", Status: Active},
	}, people)

	for name, b := range map[string]BambooHR{
		"wrong key":    {BaseURL: srv.URL, CompanyDomain: "acme", APIKey: "nope"},
		"not JSON":     {BaseURL: srv.URL, CompanyDomain: "broken", APIKey: "key-1"},
		"no employees": {BaseURL: srv.URL, CompanyDomain: "empty", APIKey: "key-1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := b.People(t.Context())
			require.Error(t, err)
		})
	}
}
