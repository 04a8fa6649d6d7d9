package hris

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// HR roles reach Termination.Roles from every format that carries one, so a
// break-glass account known by a role is rotated when its holder leaves.

func TestGenericRoles(t *testing.T) {
	res, err := Generic{}.Parse([]byte(`{"type":"termination","employeeId":"E1","email":"a@example.test","effectiveAt":"2026-03-14T17:00:00Z",
		"roles":["DBA"," on-call ","","dba"]}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"DBA", "on-call"}, res.Events[0].Termination.Roles, "trimmed, blanks dropped, once each")
}

func TestBambooHRJobTitleIsTheRole(t *testing.T) {
	api := newFakeBamboo()
	emp := api.emps["1001"]
	emp.JobTitle = "Database Administrator"
	api.emps["1001"] = emp
	res, err := BambooHR{API: api}.Parse(t.Context(), fixture(t, "bamboohr", "event_updated_status.json"))
	require.NoError(t, err)
	assert.Equal(t, []string{"Database Administrator"}, res.Events[0].Termination.Roles)

	// Field-based: the title the webhook posts.
	body := `{"employees":[{"id":"1002","changedFields":["Status"],"fields":{"Status":"Inactive","Termination Date":"2026-03-14",
		"Work Email":"b@example.test","Job Title":{"value":"SRE"}}}]}`
	res, err = BambooHR{}.Parse(t.Context(), []byte(body))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, []string{"SRE"}, res.Events[0].Termination.Roles)
}

func TestWorkdaySOAPRoles(t *testing.T) {
	body := strings.Replace(string(fixture(t, "workday", "terminate_employee.xml")), "<wd:Business_Title>Senior Engineer</wd:Business_Title>",
		`<wd:Business_Title>Senior Engineer</wd:Business_Title>
		<wd:Job_Profile_Summary_Data><wd:Job_Profile_Reference wd:Descriptor="Database Administrator"><wd:ID wd:type="Job_Profile_ID">DBA</wd:ID></wd:Job_Profile_Reference>
		<wd:Job_Profile_Name>Database Administrator</wd:Job_Profile_Name></wd:Job_Profile_Summary_Data>`, 1)
	body = strings.Replace(body, "<wd:Employment_Data>", `<wd:Role_Data><wd:Organization_Role_Data>
		<wd:Organization_Role><wd:Role_Reference wd:Descriptor="On-Call Lead"><wd:ID wd:type="Organization_Role_ID">ON_CALL</wd:ID></wd:Role_Reference></wd:Organization_Role>
		<wd:Organization_Role><wd:Role_Reference><wd:ID wd:type="Organization_Role_ID">Security_Partner</wd:ID></wd:Role_Reference></wd:Organization_Role>
		</wd:Organization_Role_Data></wd:Role_Data><wd:Employment_Data>`, 1)
	res, err := Workday{}.ParseXML([]byte(body))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, []string{"Database Administrator", "Senior Engineer", "On-Call Lead", "Security_Partner"}, res.Events[0].Termination.Roles)
}

func TestWorkdayRaaSRoles(t *testing.T) {
	res, err := Workday{}.ParseJSON([]byte(`{"Report_Entry":[{"Employee_ID":"E1","Email_Address":"a@example.test","Terminated":"1",
		"Termination_Date":"2026-03-14","Job_Profile":"DBA","Security_Groups":[{"Descriptor":"Break Glass Holders"},"Domain Admins"]}]}`))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, []string{"Break Glass Holders", "Domain Admins", "DBA"}, res.Events[0].Termination.Roles)

	res, err = Workday{}.ParseXML([]byte(`<wd:Report_Data xmlns:wd="urn:com.workday.report/CR_Offboard"><wd:Report_Entry>
		<wd:Employee_ID>E2</wd:Employee_ID><wd:Email_Address>b@example.test</wd:Email_Address><wd:Terminated>1</wd:Terminated>
		<wd:Termination_Date>2026-03-14</wd:Termination_Date>
		<wd:Roles wd:Descriptor="On-Call"/><wd:Roles wd:Descriptor="DBA"/></wd:Report_Entry></wd:Report_Data>`))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, []string{"On-Call", "DBA"}, res.Events[0].Termination.Roles, "every value of a multi-instance column")
}
