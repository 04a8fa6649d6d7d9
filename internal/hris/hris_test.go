package hris

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/workflows"
)

func fixture(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, parts...)...))
	require.NoError(t, err)
	return b
}

// fakeBamboo is BambooHR's REST API in memory.
type fakeBamboo struct {
	mu    sync.Mutex
	emps  map[string]BambooEmployee
	err   error
	calls int
}

func (f *fakeBamboo) Employee(_ context.Context, id string) (BambooEmployee, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return BambooEmployee{}, f.err
	}
	e, ok := f.emps[id]
	if !ok {
		return BambooEmployee{}, errors.New("HTTP 404")
	}
	return e, nil
}

func newFakeBamboo() *fakeBamboo {
	return &fakeBamboo{emps: map[string]BambooEmployee{
		"1001": {ID: "1001", Status: "Inactive", TerminationDate: "2026-03-14", EmploymentHistoryStatus: "Terminated",
			WorkEmail: "ada.lovelace1001@example.test", FirstName: "Ada", LastName: "Lovelace", SupervisorEmail: "grace.lovelace1003@example.test"},
		"1004": {ID: "1004", Status: "Active", TerminationDate: "0000-00-00", WorkEmail: "barbara.lovelace1004@example.test"},
	}}
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestBambooHREventBased(t *testing.T) {
	api := newFakeBamboo()
	p := BambooHR{API: api}

	res, err := p.Parse(t.Context(), fixture(t, "bamboohr", "event_updated_status.json"))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	ev := res.Events[0]
	assert.Equal(t, ActionStart, ev.Action)
	term := ev.Termination
	assert.Equal(t, "1001", term.EmployeeID)
	assert.Equal(t, "ada.lovelace1001@example.test", term.Email)
	assert.Equal(t, "Ada Lovelace", term.Name)
	assert.Equal(t, workflows.KindTermination, term.Kind)
	assert.Equal(t, SourceBambooHR, term.Source)
	assert.Equal(t, "grace.lovelace1003@example.test", term.Manager)
	// The termination date is the last day: access ends when it does (UTC by default).
	assert.Equal(t, time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), term.EffectiveAt)
	require.NoError(t, term.Validate())

	// The same change delivered twice gets the same event id.
	again, err := p.Parse(t.Context(), fixture(t, "bamboohr", "event_updated_status.json"))
	require.NoError(t, err)
	assert.Equal(t, term.EventID, again.Events[0].Termination.EventID)
	assert.Regexp(t, `^bamboohr-[0-9a-f]{24}$`, term.EventID)

	// The company's zone moves the end of the last day.
	p.Location = mustZone(t, "Asia/Riyadh")
	res, err = p.Parse(t.Context(), fixture(t, "bamboohr", "event_updated_status.json"))
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 3, 14, 21, 0, 0, 0, time.UTC), res.Events[0].Termination.EffectiveAt.UTC())
}

func TestBambooHREventBasedOthers(t *testing.T) {
	tests := []struct {
		file      string
		wantCalls int
		action    Action
		ignored   string
	}{
		{file: "event_updated_firstname.json", wantCalls: 0, ignored: "no employment field changed"},
		{file: "event_created.json", wantCalls: 0, ignored: "BambooHR announces leavers as employee.updated"},
		{file: "event_updated_reactivated.json", wantCalls: 1, action: ActionRescind},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			api := newFakeBamboo()
			res, err := BambooHR{API: api}.Parse(t.Context(), fixture(t, "bamboohr", tt.file))
			require.NoError(t, err)
			assert.Equal(t, tt.wantCalls, api.calls, "API reads")
			if tt.ignored != "" {
				assert.Empty(t, res.Events)
				require.Len(t, res.Ignored, 1)
				assert.Contains(t, res.Ignored[0].Reason, tt.ignored)
				return
			}
			require.Len(t, res.Events, 1)
			assert.Equal(t, tt.action, res.Events[0].Action)
			assert.Equal(t, "1004", res.Events[0].Termination.EmployeeID)
		})
	}
}

func TestBambooHRLookupFailures(t *testing.T) {
	body := fixture(t, "bamboohr", "event_updated_status.json")
	_, err := BambooHR{}.Parse(t.Context(), body)
	assert.ErrorIs(t, err, ErrLookup, "no API configured")

	api := newFakeBamboo()
	api.err = errors.New("connection refused")
	_, err = BambooHR{API: api}.Parse(t.Context(), body)
	assert.ErrorIs(t, err, ErrLookup)
	assert.NotErrorIs(t, err, ErrMalformed)
}

func TestBambooHRFieldBased(t *testing.T) {
	api := newFakeBamboo()
	res, err := BambooHR{API: api}.Parse(t.Context(), fixture(t, "bamboohr", "field_based_batch.json"))
	require.NoError(t, err)
	assert.Zero(t, api.calls, "field-based payloads carry the values")
	require.Len(t, res.Events, 2)

	term := res.Events[0].Termination
	assert.Equal(t, "1005", term.EmployeeID, "numeric id read as a string")
	assert.Equal(t, "barbara.lovelace1005@example.test", term.Email)
	assert.Equal(t, "Barbara Lovelace", term.Name)
	assert.Equal(t, workflows.KindTermination, term.Kind)
	assert.Equal(t, time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), term.EffectiveAt)

	role := res.Events[1].Termination
	assert.Equal(t, "1006", role.EmployeeID)
	assert.Equal(t, workflows.KindRoleChange, role.Kind)
	assert.Equal(t, "analyst", role.NewRole, `{"value": ...} fields`)
	assert.Equal(t, time.Date(2026, 3, 13, 17, 5, 13, 0, time.UTC), role.EffectiveAt.UTC(), "the delivery's timestamp")
	require.NoError(t, role.Validate())

	require.Len(t, res.Ignored, 1)
	assert.Equal(t, "1007", res.Ignored[0].EmployeeID)

	res, err = BambooHR{Location: mustZone(t, "America/Chicago")}.Parse(t.Context(), fixture(t, "bamboohr", "field_based_contractor.json"))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	c := res.Events[0].Termination
	assert.Equal(t, workflows.KindContractEnd, c.Kind)
	assert.Equal(t, "Ken Lovelace", c.Name)
	assert.Equal(t, time.Date(2026, 7, 1, 5, 0, 0, 0, time.UTC), c.EffectiveAt.UTC(), "end of 30 June in Chicago (CDT)")
}

func TestBambooHRForm(t *testing.T) {
	api := newFakeBamboo()
	body := "type=employee.updated&timestamp=2026-03-13T17%3A05%3A12%2B0000&data%5BcompanyId%5D=12345&data%5BemployeeId%5D=1001&data%5BchangedFields%5D%5B0%5D=status"
	res, err := BambooHR{API: api}.ParseForm(t.Context(), []byte(body))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, "1001", res.Events[0].Termination.EmployeeID)
}

func TestBambooHRMalformed(t *testing.T) {
	_, err := BambooHR{API: newFakeBamboo()}.Parse(t.Context(), fixture(t, "bamboohr", "malformed.json"))
	require.ErrorIs(t, err, ErrMalformed)

	_, err = BambooHR{API: newFakeBamboo()}.Parse(t.Context(), fixture(t, "bamboohr", "missing_employee_id.json"))
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "data.employeeId", fe.Field)
	assert.ErrorIs(t, err, ErrMalformed)

	_, err = BambooHR{}.Parse(t.Context(), []byte(`{"hello":"world"}`))
	require.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "neither an event-based payload")

	// An inactive employee without a work e-mail cannot be deprovisioned:
	// that item is rejected naming the field.
	res, err := BambooHR{}.Parse(t.Context(), []byte(`{"employees":[{"id":"9","changedFields":["Status"],"fields":{"Status":"Inactive"}}]}`))
	require.NoError(t, err)
	require.Len(t, res.Rejected, 1)
	require.ErrorAs(t, res.Rejected[0].Err, &fe)
	assert.Equal(t, "employees[0].fields.workEmail", fe.Field)
}

// One bad item of a batch is rejected alone; the others go on.
func TestBambooHRFieldBasedRejectsItemsAlone(t *testing.T) {
	api := newFakeBamboo()
	api.emps["1010"] = BambooEmployee{ID: "1010", Status: "Inactive", TerminationDate: "2026-03-14", WorkEmail: "x1010@example.test"}
	body := `{"employees":[
		{"id":"Müller-7","changedFields":["Status"],"fields":{"Status":"Inactive","Work Email":"m@example.test"}},
		{"id":"1010","changedFields":["Status"]},
		{"id":"1011","changedFields":["Status"]},
		{"id":" 1005 ","changedFields":["Status"],"fields":{"Status":"Inactive","Work Email":"b@example.test","Termination Date":"2026-03-14"}}]}`
	res, err := BambooHR{API: api}.Parse(t.Context(), []byte(body))
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	assert.Equal(t, "1010", res.Events[0].Termination.EmployeeID, "read through the API")
	assert.Equal(t, "1005", res.Events[1].Termination.EmployeeID, "trimmed")
	require.Len(t, res.Rejected, 2)
	assert.Equal(t, "Müller-7", res.Rejected[0].EmployeeID)
	assert.ErrorIs(t, res.Rejected[0].Err, ErrMalformed)
	assert.ErrorContains(t, res.Rejected[0].Err, "employees[0].id")
	assert.Equal(t, "1011", res.Rejected[1].EmployeeID)
	assert.ErrorIs(t, res.Rejected[1].Err, ErrLookup, "the fake's bare 404 is not BambooHR saying no such employee")
}

func TestBambooClient(t *testing.T) {
	var gotPath, gotQuery, gotUser, gotPass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.Query().Get("fields")
		gotUser, gotPass, _ = r.BasicAuth()
		if r.URL.Path == "/api/gateway.php/acme/v1/employees/404" {
			http.Error(w, "", http.StatusNotFound)
			return
		}
		if r.URL.Path == "/api/gateway.php/acme/v1/employees/40404" {
			w.Header().Set("X-BambooHR-Error-Message", "Employee not found")
			http.Error(w, "", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"1001","status":"Inactive","terminationDate":"2026-03-14","workEmail":"ada.lovelace1001@example.test","displayName":"Ada Lovelace","jobTitle":null}`))
	}))
	defer srv.Close()
	c := &BambooClient{BaseURL: srv.URL, CompanyDomain: "acme", APIKey: "key-123", HTTP: srv.Client()}
	emp, err := c.Employee(t.Context(), "1001")
	require.NoError(t, err)
	assert.Equal(t, "/api/gateway.php/acme/v1/employees/1001", gotPath)
	assert.Contains(t, gotQuery, "terminationDate")
	assert.Equal(t, "key-123", gotUser)
	assert.Equal(t, "x", gotPass)
	assert.Equal(t, BambooEmployee{ID: "1001", Status: "Inactive", TerminationDate: "2026-03-14", WorkEmail: "ada.lovelace1001@example.test", DisplayName: "Ada Lovelace"}, emp)

	_, err = c.Employee(t.Context(), "404")
	require.ErrorIs(t, err, ErrLookup, "a bare 404 may be a wrong companyDomain or a proxy: ask again later")
	assert.NotErrorIs(t, err, ErrUnknownEmployee)
	assert.Contains(t, err.Error(), "HTTP 404")
	assert.NotContains(t, err.Error(), "key-123", "the API key never appears in errors")

	_, err = c.Employee(t.Context(), "40404")
	require.ErrorIs(t, err, ErrUnknownEmployee, "BambooHR's own 404 is final")
	assert.NotErrorIs(t, err, ErrLookup)
}

func TestBambooHRUnknownEmployeeIsFinal(t *testing.T) {
	api := newFakeBamboo()
	api.err = fmt.Errorf("bamboohr: read employee 77: %w: HTTP 404 Employee not found", ErrUnknownEmployee)
	_, err := BambooHR{API: api}.Parse(t.Context(), fixture(t, "bamboohr", "event_updated_status.json"))
	require.ErrorIs(t, err, ErrUnknownEmployee)
	assert.NotErrorIs(t, err, ErrLookup)
}

func TestWorkdaySOAP(t *testing.T) {
	pt := mustZone(t, "America/Los_Angeles")
	p := Workday{Now: func() time.Time { return time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) }}

	res, err := p.ParseXML(fixture(t, "workday", "terminate_employee.xml"))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	term := res.Events[0].Termination
	assert.Equal(t, ActionStart, res.Events[0].Action)
	assert.Equal(t, "E1012", term.EmployeeID)
	assert.Equal(t, "alan.turing1012@example.test", term.Email, "the WORK address, not the home one")
	assert.Equal(t, "Alan Turing", term.Name)
	assert.Equal(t, "E1023", term.Manager)
	assert.Equal(t, workflows.KindTermination, term.Kind)
	assert.Equal(t, workflows.ReasonVoluntary, term.Reason)
	assert.Equal(t, "workday-c2b5e8a1f4d74b0e9a6c3d2e1f0a9b8c", term.EventID, "the business process's WID")
	// Last day of work is 20 March, zone-less: Pacific Time; access ends at its end.
	assert.Equal(t, time.Date(2026, 3, 21, 0, 0, 0, 0, pt), term.EffectiveAt)
	require.NoError(t, term.Validate())

	// Handled for workers east of PT: the tenant's zone can be set.
	ny := Workday{Location: mustZone(t, "America/New_York")}
	res, err = ny.ParseXML(fixture(t, "workday", "terminate_employee.xml"))
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 3, 21, 4, 0, 0, 0, time.UTC), res.Events[0].Termination.EffectiveAt.UTC(), "NY midnight, not PT's three hours later")

	res, err = p.ParseXML(fixture(t, "workday", "rescind_termination.xml"))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, ActionRescind, res.Events[0].Action)
	assert.Equal(t, "E1013", res.Events[0].Termination.EmployeeID)
	assert.Contains(t, res.Events[0].Reason, "Terminate Employee")

	res, err = p.ParseXML(fixture(t, "workday", "end_contingent_worker_contract.xml"))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	c := res.Events[0].Termination
	assert.Equal(t, "C1014", c.EmployeeID)
	assert.Equal(t, workflows.KindContractEnd, c.Kind)
	assert.Equal(t, "workday-5e4d3c2b1a0f4e9d8c7b6a5f4e3d2c1b", c.EventID, "the notification's Event_Reference")
	assert.Equal(t, time.Date(2026, 5, 1, 0, 0, 0, 0, pt), c.EffectiveAt)
	assert.Equal(t, "edsger.turing1014@example.test", c.Email)
}

func TestWorkdayRaaS(t *testing.T) {
	pt := mustZone(t, "America/Los_Angeles")
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	p := Workday{Now: func() time.Time { return now }}

	res, err := p.ParseJSON(fixture(t, "workday", "raas_report.json"))
	require.NoError(t, err)
	require.Len(t, res.Events, 3)

	fired := res.Events[0]
	assert.Equal(t, ActionStart, fired.Action)
	assert.Equal(t, "E1015", fired.Termination.EmployeeID)
	assert.Equal(t, "barbara.turing1015@example.test", fired.Termination.Email)
	assert.Equal(t, workflows.ReasonForCause, fired.Termination.Reason, "misconduct")
	assert.Equal(t, time.Date(2026, 3, 16, 0, 0, 0, 0, pt), fired.Termination.EffectiveAt, "for cause: the start of the day")
	assert.Equal(t, "workday-9f8e7d6c5b4a49388716a5b4c3d2e1f0", fired.Termination.EventID)

	assert.Equal(t, ActionRehire, res.Events[1].Action)
	assert.Equal(t, "E1016", res.Events[1].Termination.EmployeeID)

	role := res.Events[2].Termination
	assert.Equal(t, workflows.KindRoleChange, role.Kind)
	assert.Equal(t, "analyst", role.NewRole)
	assert.Equal(t, now, role.EffectiveAt)
	require.NoError(t, role.Validate())

	res, err = p.ParseXML(fixture(t, "workday", "raas_report.xml"))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	k := res.Events[0].Termination
	assert.Equal(t, "E1018", k.EmployeeID)
	assert.Equal(t, "Ken Turing", k.Name)
	assert.Equal(t, "ken.turing1018@example.test", k.Email)
	// The last day of work (22 May, given with its zone) comes before the termination date.
	assert.Equal(t, time.Date(2026, 5, 23, 7, 0, 0, 0, time.UTC), k.EffectiveAt.UTC())
	assert.Regexp(t, `^workday-[0-9a-f]{24}$`, k.EventID, "derived from content: no event id in the report")
}

func TestWorkdayMalformed(t *testing.T) {
	_, err := Workday{}.ParseXML(fixture(t, "workday", "malformed.xml"))
	require.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "invalid XML")

	_, err = Workday{}.ParseXML(fixture(t, "workday", "no_email.xml"))
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "Worker[0].Email_Address", fe.Field)

	_, err = Workday{}.ParseXML([]byte(`<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body/></env:Envelope>`))
	require.ErrorAs(t, err, &fe)
	assert.Contains(t, fe.Field, "Worker")

	_, err = Workday{}.ParseJSON([]byte(`{"Report_Entry":[{"Terminated":"1","Termination_Date":"2026-03-01","Email":"a@b"}]}`))
	require.ErrorAs(t, err, &fe)
	assert.Contains(t, fe.Field, "Report_Entry[0]")

	_, err = Workday{}.ParseJSON([]byte(`{"Report_Entry":[{"Employee_ID":"E1","Terminated":"1","Termination_Date":"14/03/2026","Email":"a@b"}]}`))
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "Report_Entry[0].Termination_Date", fe.Field)
}

func TestGeneric(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	p := Generic{Now: func() time.Time { return now }}

	res, err := p.Parse(fixture(t, "generic", "termination.json"))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	term := res.Events[0].Termination
	assert.Equal(t, workflows.Termination{
		EventID: "evt-2026-0042", Source: SourceGeneric, EmployeeID: "E1021", Email: "ada.hopper1021@example.test",
		Name: "Ada Hopper", Kind: workflows.KindTermination, Reason: workflows.ReasonVoluntary,
		EffectiveAt: time.Date(2026, 3, 14, 17, 0, 0, 0, time.UTC), Manager: "grace.hopper1023@example.test",
		Accounts: map[string]string{"okta": "00u1ada1021"}, RequestedBy: "hr-bot@example.test",
	}, term)

	res, err = p.Parse(fixture(t, "generic", "batch.json"))
	require.NoError(t, err)
	require.Len(t, res.Events, 4)
	ce := res.Events[0].Termination
	assert.Equal(t, workflows.KindContractEnd, ce.Kind)
	assert.Equal(t, time.Date(2026, 6, 30, 22, 0, 0, 0, time.UTC), ce.EffectiveAt.UTC(), "end of 30 June in Berlin")
	assert.Regexp(t, `^generic-[0-9a-f]{24}$`, ce.EventID)
	fc := res.Events[1].Termination
	assert.Equal(t, workflows.ReasonForCause, fc.Reason)
	assert.Equal(t, time.Date(2026, 3, 13, 4, 0, 0, 0, time.UTC), fc.EffectiveAt.UTC(), "for cause: start of the day in New York")
	require.NotNil(t, fc.LegalHold)
	assert.Equal(t, "LIT-7", fc.LegalHold.CaseRef)
	assert.Equal(t, "analyst", res.Events[2].Termination.NewRole)
	assert.Equal(t, ActionRescind, res.Events[3].Action)
	assert.Equal(t, now, res.Events[3].Termination.EffectiveAt)
	for _, ev := range res.Events[:3] {
		require.NoError(t, ev.Termination.Validate())
	}
}

func TestGenericErrors(t *testing.T) {
	tests := []struct {
		name, body, field string
	}{
		{"missing email", string(fixture(t, "generic", "missing_email.json")), "email"},
		{"missing employee", `{"type":"termination","email":"a@b","effectiveAt":"2026-03-14"}`, "employeeId"},
		{"missing type", `{"employeeId":"E1","email":"a@b","effectiveAt":"2026-03-14"}`, "type"},
		{"bad type", `{"type":"promotion","employeeId":"E1","email":"a@b","effectiveAt":"2026-03-14"}`, "type"},
		{"bad reason", `{"type":"termination","reason":"redundancy","employeeId":"E1","email":"a@b","effectiveAt":"2026-03-14"}`, "reason"},
		{"bad date", `{"type":"termination","employeeId":"E1","email":"a@b","effectiveAt":"next tuesday"}`, "effectiveAt"},
		{"bad zone", `{"type":"termination","employeeId":"E1","email":"a@b","effectiveAt":"2026-03-14","timeZone":"Mars/Olympus"}`, "timeZone"},
		{"role change without role", `{"type":"role_change","employeeId":"E1","email":"a@b","effectiveAt":"2026-03-14"}`, "newRole"},
		{"non-ASCII employee", `{"type":"termination","employeeId":"Müller-7","email":"a@b","effectiveAt":"2026-03-14"}`, "employeeId"},
		{"empty batch", `{"events":[]}`, "events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generic{}.Parse([]byte(tt.body))
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
	for _, body := range []string{string(fixture(t, "generic", "malformed.json")), `[]`, `"x"`, ``, `{"employeeId": 7}`, `{} {}`} {
		_, err := Generic{}.Parse([]byte(body))
		assert.ErrorIs(t, err, ErrMalformed, body)
	}
}

func TestGenericBatchRejectsItemsAlone(t *testing.T) {
	long := strings.Repeat("E", MaxEmployeeIDLen+1)
	body := `{"events":[
		{"type":"termination","employeeId":"e1001","email":"a@b","effectiveAt":"2026-03-14"},
		{"type":"termination","employeeId":"Müller-7","email":"m@b","effectiveAt":"2026-03-14"},
		{"type":"termination","employeeId":"E\u00071","email":"c@b","effectiveAt":"2026-03-14"},
		{"type":"termination","employeeId":"` + long + `","email":"l@b","effectiveAt":"2026-03-14"},
		{"type":"termination","email":"a@b","effectiveAt":"2026-03-14"},
		{"type":"rescind","employeeId":" E1002","rescinds":"evt-9"}]}`
	res, err := Generic{}.Parse([]byte(body))
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	assert.Equal(t, "E1001", res.Events[0].Termination.EmployeeID)
	assert.Equal(t, "E1002", res.Events[1].Termination.EmployeeID)
	assert.Equal(t, "evt-9", res.Events[1].RefersTo)
	require.Len(t, res.Rejected, 4)
	for i, field := range []string{"events[1].employeeId", "events[2].employeeId", "events[3].employeeId", "events[4].employeeId"} {
		var fe *FieldError
		require.ErrorAs(t, res.Rejected[i].Err, &fe)
		assert.Equal(t, field, fe.Field)
	}
	assert.Equal(t, "Müller-7", res.Rejected[0].EmployeeID)
}

func TestNormalizeEmployeeID(t *testing.T) {
	for in, want := range map[string]string{
		"E1001": "E1001", "e1001": "E1001", " E1001": "E1001", "E1001\n": "E1001", "\u00a0e1001\t": "E1001",
		"1005": "1005", "C-1234": "C-1234", "ab_c.d": "AB_C.D", strings.Repeat("9", MaxEmployeeIDLen): strings.Repeat("9", MaxEmployeeIDLen),
	} {
		got, err := NormalizeEmployeeID(in)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
	for _, in := range []string{"", "   ", "Müller-7", "E\x001", "E\u00071", "E 1001", "-E1", ".E1", "../E1", "E1/2", "E1001\u200b",
		strings.Repeat("9", MaxEmployeeIDLen+1), strings.Repeat("x", 1001)} {
		_, err := NormalizeEmployeeID(in)
		assert.Error(t, err, "%q", in)
	}
}

func TestParseWhen(t *testing.T) {
	pt := mustZone(t, "America/Los_Angeles")
	tests := []struct {
		in       string
		endOfDay bool
		want     time.Time
		bad      bool
	}{
		{in: "2026-03-14T17:00:00Z", want: time.Date(2026, 3, 14, 17, 0, 0, 0, time.UTC)},
		{in: "2026-01-31T18:42:00+0000", want: time.Date(2026, 1, 31, 18, 42, 0, 0, time.UTC)},
		{in: "2026-03-20T00:00:00.000-07:00", want: time.Date(2026, 3, 20, 7, 0, 0, 0, time.UTC)},
		{in: "2026-03-14T09:00:00", want: time.Date(2026, 3, 14, 9, 0, 0, 0, pt)},
		{in: "2026-03-14", want: time.Date(2026, 3, 14, 0, 0, 0, 0, pt)},
		{in: "2026-03-14", endOfDay: true, want: time.Date(2026, 3, 15, 0, 0, 0, 0, pt)},
		{in: "2026-03-14-05:00", want: time.Date(2026, 3, 14, 5, 0, 0, 0, time.UTC)},
		{in: "2026-03-14Z", want: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)},
		{in: "0001-01-01", bad: true},
		{in: "2026-13-01", bad: true},
		{in: "2026-03-14+5", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := parseWhen(tt.in, pt, tt.endOfDay)
		if tt.bad {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.True(t, tt.want.Equal(got), "%s: got %s want %s", tt.in, got, tt.want)
	}
}
