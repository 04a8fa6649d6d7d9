package hr_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/roster"
	"github.com/offboard/offboard/sandbox/demo"
	"github.com/offboard/offboard/sandbox/hr"
)

func start(t *testing.T, o hr.Options) string {
	srv := httptest.NewServer(hr.New(o).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// Offboard's Workday roster reads the simulator's Get_Workers across pages,
// leavers included, and its BambooHR roster the directory of current
// employees: both clients are the production ones.
func TestRostersReadTheSandbox(t *testing.T) {
	people := demo.People(250)
	base := start(t, hr.Options{People: people, Leavers: []string{"E1003", "E1250"},
		CompanyDomain: "sandbox", APIKey: "key", Username: "ISU@sandbox", Password: "pw"})
	wd := roster.Workday{URL: base + "/ccx/service/sandbox/Human_Resources/v42.0", Username: "ISU@sandbox", Password: "pw", PageSize: 100}

	got, err := wd.People(t.Context())
	require.NoError(t, err, "250 workers in 3 pages of at most 100")
	require.Len(t, got, 250)
	assert.Equal(t, roster.Person{EmployeeID: "E1001", Email: people[0].Email, Login: people[0].Login, Name: people[0].Name(), Status: roster.Active}, got[0])
	byID := map[string]roster.Person{}
	for _, p := range got {
		byID[p.EmployeeID] = p
	}
	assert.Equal(t, roster.Terminated, byID["E1003"].Status)
	assert.Equal(t, roster.Terminated, byID["E1250"].Status, "the last worker of the last page")
	assert.Equal(t, roster.Active, byID["E1249"].Status)

	dir, err := roster.BambooHR{BaseURL: base, CompanyDomain: "sandbox", APIKey: "key"}.People(t.Context())
	require.NoError(t, err)
	require.Len(t, dir, 248, "the directory lists current employees only")
	assert.Equal(t, roster.Person{EmployeeID: "E1001", Email: people[0].Email, Name: people[0].Name(), Status: roster.Active}, dir[0])

	// HR's view changes at run time, as a termination entered in HR would.
	req, _ := http.NewRequest(http.MethodPut, base+"/_sandbox/workers/E1001", strings.NewReader("terminated"))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	got, err = wd.People(t.Context())
	require.NoError(t, err)
	assert.Equal(t, roster.Terminated, got[0].Status)
	dir, err = roster.BambooHR{BaseURL: base, CompanyDomain: "sandbox", APIKey: "key"}.People(t.Context())
	require.NoError(t, err)
	assert.Len(t, dir, 247)
}

// A wrong credential is refused as the real services refuse it: Workday
// with a SOAP fault, BambooHR with 401; the rosters report an error.
func TestSandboxRefusesWrongCredentials(t *testing.T) {
	base := start(t, hr.Options{People: demo.People(3), CompanyDomain: "sandbox", APIKey: "key", Username: "ISU@sandbox", Password: "pw"})
	_, err := roster.Workday{URL: base + "/ccx/service/sandbox/Human_Resources/v42.0", Username: "ISU@sandbox", Password: "wrong"}.People(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SOAP fault SOAP-ENV:Client.authenticationError")
	_, err = roster.BambooHR{BaseURL: base, CompanyDomain: "sandbox", APIKey: "wrong"}.People(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 401")

	// Not a Get_Workers request: a validation fault, as Workday answers.
	req, _ := http.NewRequest(http.MethodPost, base+"/ccx/service/sandbox/Human_Resources/v42.0", strings.NewReader("<hello/>"))
	req.SetBasicAuth("ISU@sandbox", "pw")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, string(body), "Client.validationError")
}
