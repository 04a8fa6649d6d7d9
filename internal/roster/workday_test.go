package roster

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A worker as Get_Workers (v42.0) writes it, trimmed to what surrounds the
// parts a roster reads. status is the inside of wd:Worker_Status_Data.
func wdWorkerXML(idType, id, name, userID, workEmail, status string) string {
	return fmt.Sprintf(`
  <wd:Worker>
    <wd:Worker_Reference>
      <wd:ID wd:type="WID">3aa5550b7fe348b98d7b5741afc65534</wd:ID>
      <wd:ID wd:type="%s">%s</wd:ID>
    </wd:Worker_Reference>
    <wd:Worker_Descriptor>%s</wd:Worker_Descriptor>
    <wd:Worker_Data>
      <wd:Worker_ID>%s</wd:Worker_ID>
      <wd:User_ID>%s</wd:User_ID>
      <wd:Personal_Data>
        <wd:Name_Data>
          <wd:Legal_Name_Data>
            <wd:Name_Detail_Data wd:Formatted_Name="%s" wd:Reporting_Name="%s">
              <wd:Country_Reference><wd:ID wd:type="ISO_3166-1_Alpha-2_Code">US</wd:ID></wd:Country_Reference>
            </wd:Name_Detail_Data>
          </wd:Legal_Name_Data>
        </wd:Name_Data>
        <wd:Contact_Data>
          <wd:Email_Address_Data wd:Email_Address_ID="EMAIL_REFERENCE-6-1">
            <wd:Email_Address>home-%s</wd:Email_Address>
            <wd:Usage_Data wd:Public="0">
              <wd:Type_Data wd:Primary="1"><wd:Type_Reference wd:Descriptor="Home"><wd:ID wd:type="Communication_Usage_Type_ID">HOME</wd:ID></wd:Type_Reference></wd:Type_Data>
            </wd:Usage_Data>
          </wd:Email_Address_Data>
          <wd:Email_Address_Data wd:Email_Address_ID="EMAIL_REFERENCE-6-2">
            <wd:Email_Address>%s</wd:Email_Address>
            <wd:Usage_Data wd:Public="1">
              <wd:Type_Data wd:Primary="1"><wd:Type_Reference wd:Descriptor="Work"><wd:ID wd:type="Communication_Usage_Type_ID">WORK</wd:ID></wd:Type_Reference></wd:Type_Data>
            </wd:Usage_Data>
          </wd:Email_Address_Data>
        </wd:Contact_Data>
      </wd:Personal_Data>
      <wd:Employment_Data>
        <wd:Worker_Job_Data wd:Primary_Job="1">
          <wd:Position_Data wd:Effective_Date="2019-04-01-07:00">
            <wd:Position_ID>P-00123</wd:Position_ID>
            <wd:Business_Title>Engineer</wd:Business_Title>
            <wd:Manager_as_of_last_detected_manager_change_Reference wd:Descriptor="Logan McNeil">
              <wd:ID wd:type="WID">0e44c92412d34b01ace61e80a47aaf6d</wd:ID>
              <wd:ID wd:type="Employee_ID">21001</wd:ID>
            </wd:Manager_as_of_last_detected_manager_change_Reference>
          </wd:Position_Data>
        </wd:Worker_Job_Data>
        <wd:Worker_Status_Data>%s</wd:Worker_Status_Data>
      </wd:Employment_Data>
    </wd:Worker_Data>
  </wd:Worker>`, idType, id, name, id, userID, name, name, workEmail, workEmail, status)
}

const (
	wdActive     = `<wd:Active>1</wd:Active><wd:Active_Status_Date>2019-04-01-07:00</wd:Active_Status_Date><wd:Hire_Date>2019-04-01-07:00</wd:Hire_Date><wd:Terminated>0</wd:Terminated><wd:Rehire>0</wd:Rehire><wd:Hire_Rescinded>0</wd:Hire_Rescinded>`
	wdTerminated = `<wd:Active>0</wd:Active><wd:Active_Status_Date>2026-01-30-08:00</wd:Active_Status_Date><wd:Hire_Date>2019-04-01-07:00</wd:Hire_Date><wd:Terminated>1</wd:Terminated><wd:Termination_Date>2026-01-30-08:00</wd:Termination_Date><wd:Termination_Last_Day_of_Work>2026-01-30-08:00</wd:Termination_Last_Day_of_Work><wd:Termination_Involuntary>0</wd:Termination_Involuntary><wd:Rehire>0</wd:Rehire><wd:Hire_Rescinded>0</wd:Hire_Rescinded>`
	wdPreHire    = `<wd:Active>0</wd:Active><wd:Hire_Date>2027-01-04-08:00</wd:Hire_Date><wd:Terminated>0</wd:Terminated><wd:Rehire>0</wd:Rehire><wd:Hire_Rescinded>0</wd:Hire_Rescinded>`
)

// wdPage is a Get_Workers_Response; results is the inside of Response_Results.
func wdPage(page, count int, results string, workers ...string) string {
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
 <env:Body>
  <wd:Get_Workers_Response xmlns:wd="urn:com.workday/bsvc" wd:version="v42.0">
   <wd:Request_Criteria><wd:Exclude_Inactive_Workers>0</wd:Exclude_Inactive_Workers></wd:Request_Criteria>
   <wd:Response_Filter><wd:As_Of_Effective_Date>2026-11-29-08:00</wd:As_Of_Effective_Date><wd:As_Of_Entry_DateTime>2026-11-29T05:15:00.000-08:00</wd:As_Of_Entry_DateTime><wd:Page>%d</wd:Page><wd:Count>%d</wd:Count></wd:Response_Filter>
   <wd:Response_Results>%s</wd:Response_Results>
   <wd:Response_Data>%s
   </wd:Response_Data>
  </wd:Get_Workers_Response>
 </env:Body>
</env:Envelope>`, page, count, results, strings.Join(workers, ""))
}

func wdResults(total, pages, pageResults, page int) string {
	return fmt.Sprintf(`<wd:Total_Results>%d</wd:Total_Results><wd:Total_Pages>%d</wd:Total_Pages><wd:Page_Results>%d</wd:Page_Results><wd:Page>%d</wd:Page>`, total, pages, pageResults, page)
}

var (
	wdAda   = wdWorkerXML("Employee_ID", "21044", "Ada Lovelace", "ada.lovelace", "ada@example.test", wdActive)
	wdAlan  = wdWorkerXML("Employee_ID", "21045", "Alan Turing", "alan.turing", "alan@example.test", wdTerminated)
	wdGrace = wdWorkerXML("Contingent_Worker_ID", "C-0042", "Grace Hopper", "grace.hopper", "grace@example.test", wdActive)
	wdKen   = wdWorkerXML("Employee_ID", "21046", "Ken Thompson", "ken.thompson", "ken@example.test", wdPreHire)
)

// askedWorkers is what the roster asked for.
type askedWorkers struct {
	User, Password string
	Page, Count    int
	AsOf, Exclude  string
}

// workdayServer answers each Get_Workers request with serve(page).
func workdayServer(t *testing.T, serve func(w http.ResponseWriter, req askedWorkers)) (*httptest.Server, *[]askedWorkers) {
	var mu sync.Mutex
	var seen []askedWorkers
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Body struct {
				Get struct {
					Exclude string `xml:"Request_Criteria>Exclude_Inactive_Workers"`
					AsOf    string `xml:"Response_Filter>As_Of_Entry_DateTime"`
					Page    int    `xml:"Response_Filter>Page"`
					Count   int    `xml:"Response_Filter>Count"`
				} `xml:"urn:com.workday/bsvc Get_Workers_Request"`
			} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := xml.Unmarshal(body, &env); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		user, pw, _ := r.BasicAuth()
		req := askedWorkers{User: user, Password: pw, Page: env.Body.Get.Page, Count: env.Body.Get.Count, AsOf: env.Body.Get.AsOf, Exclude: env.Body.Get.Exclude}
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		serve(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestWorkdayGetWorkers(t *testing.T) {
	srv, seen := workdayServer(t, func(w http.ResponseWriter, req askedWorkers) {
		switch req.Page {
		case 1:
			_, _ = io.WriteString(w, wdPage(1, 2, wdResults(4, 2, 2, 1), wdAda, wdAlan))
		case 2:
			_, _ = io.WriteString(w, wdPage(2, 2, wdResults(4, 2, 2, 2), wdGrace, wdKen))
		}
	})
	now := time.Date(2026, 11, 29, 13, 15, 0, 0, time.UTC)
	people, err := Workday{URL: srv.URL, Username: "ISU_Offboard@acme", Password: "pw<&>", PageSize: 2, Now: func() time.Time { return now }}.People(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []Person{
		{EmployeeID: "21044", Email: "ada@example.test", Login: "ada.lovelace", Name: "Ada Lovelace", Status: Active, Manager: "Logan McNeil"},
		{EmployeeID: "21045", Email: "alan@example.test", Login: "alan.turing", Name: "Alan Turing", Status: Terminated, Manager: "Logan McNeil"},
		{EmployeeID: "C-0042", Email: "grace@example.test", Login: "grace.hopper", Name: "Grace Hopper", Status: Active, Manager: "Logan McNeil"},
	}, people, "the pre-hire Ken is neither active nor a leaver: left out, so his accounts are orphans")

	require.Len(t, *seen, 2)
	for i, req := range *seen {
		assert.Equal(t, i+1, req.Page)
		assert.Equal(t, 2, req.Count)
		assert.Equal(t, "ISU_Offboard@acme", req.User)
		assert.Equal(t, "pw<&>", req.Password, "the password is escaped in the WS-Security header, sent as is in basic auth")
		assert.Equal(t, "2026-11-29T13:15:00Z", req.AsOf, "every page as of the same moment")
		assert.Equal(t, "false", req.Exclude, "leavers are asked for too")
	}
}

// Each answer that does not add up is an error naming what is wrong, never
// a roster with people missing or read as the wrong status.
func TestWorkdayRefusesWhatItCannotRead(t *testing.T) {
	soap := func(inside string) string {
		return `<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>` + inside + `</env:Body></env:Envelope>`
	}
	for _, tc := range []struct {
		name   string
		serve  func(w http.ResponseWriter, page int)
		wantIn string
	}{
		{"a page served twice (Page ignored)", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(1, 2, wdResults(4, 2, 2, 1), wdAda, wdAlan))
		}, "asked for page 2, was served page 1"},
		{"the same workers again as page 2", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(page, 2, wdResults(4, 2, 2, page), wdAda, wdAlan))
		}, "worker 21044 served on page 1 and again on page 2"},
		{"fewer workers than Total_Results", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(page, 2, wdResults(5, 2, 2, page), []string{wdAda, wdGrace}[page-1], []string{wdAlan, wdKen}[page-1]))
		}, "4 workers served, Total_Results says 5"},
		{"totals change between pages", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(page, 2, wdResults(2+page*2, 2, 2, page), []string{wdAda, wdGrace}[page-1], []string{wdAlan, wdKen}[page-1]))
		}, "page 1 said 4 in 2"},
		{"Page_Results unlike the page", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(1, 2, wdResults(2, 1, 3, 1), wdAda, wdAlan))
		}, "Page_Results does not say the 2 workers"},
		{"no Response_Results", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, strings.Replace(wdPage(1, 2, "", wdAda), "<wd:Response_Results></wd:Response_Results>", "", 1))
		}, "no wd:Response_Results"},
		{"no Total_Pages", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(1, 2, `<wd:Total_Results>1</wd:Total_Results><wd:Page_Results>1</wd:Page_Results><wd:Page>1</wd:Page>`, wdAda))
		}, "has no Total_Pages"},
		{"a worker without Terminated", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(1, 2, wdResults(1, 1, 1, 1), strings.Replace(wdAda, "<wd:Terminated>0</wd:Terminated>", "", 1)))
		}, "worker 21044: wd:Terminated: missing"},
		{"a worker without Worker_Status_Data", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(1, 2, wdResults(1, 1, 1, 1), strings.Replace(wdWorkerXML("Employee_ID", "21047", "Edsger Dijkstra", "ed", "ed@example.test", wdActive), "<wd:Worker_Status_Data>"+wdActive+"</wd:Worker_Status_Data>", "", 1)))
		}, "worker 21047: no wd:Worker_Data/wd:Employment_Data/wd:Worker_Status_Data"},
		{"a worker without an employee id", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(1, 2, wdResults(1, 1, 1, 1), wdWorkerXML("Applicant_ID", "A-1", "Barbara Liskov", "bl", "bl@example.test", wdActive)))
		}, "no Employee_ID or Contingent_Worker_ID"},
		{"a boolean that is not one", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(1, 2, wdResults(1, 1, 1, 1), strings.Replace(wdAda, "<wd:Active>1</wd:Active>", "<wd:Active>Y</wd:Active>", 1)))
		}, `wd:Active: "Y" is not a boolean`},
		{"active and terminated at once", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, wdPage(1, 2, wdResults(1, 1, 1, 1), strings.Replace(wdAda, "<wd:Terminated>0</wd:Terminated>", "<wd:Terminated>1</wd:Terminated>", 1)))
		}, "both Active and Terminated"},
		{"a SOAP fault", func(w http.ResponseWriter, page int) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, soap(`<env:Fault><faultcode>SOAP-ENV:Client.validationError</faultcode><faultstring>Validation error occurred. Invalid ID value.</faultstring></env:Fault>`))
		}, "SOAP fault SOAP-ENV:Client.validationError: Validation error occurred. Invalid ID value."},
		{"a fault answered with 200", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, soap(`<env:Fault><faultcode>env:Server</faultcode><faultstring>Processing error occurred.</faultstring></env:Fault>`))
		}, "Processing error occurred."},
		{"an HTML error page from a proxy", func(w http.ResponseWriter, page int) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
		}, "HTTP 502 (text/html), not a Get_Workers response"},
		{"an HTML page with 200 (a login page)", func(w http.ResponseWriter, page int) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<!DOCTYPE html><html><body>Sign in to Workday</body></html>")
		}, "not a SOAP envelope"},
		{"another operation's answer", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, soap(`<wd:Get_Organizations_Response xmlns:wd="urn:com.workday/bsvc"/>`))
		}, "holds no wd:Get_Workers_Response"},
		{"Get_Workers_Response in another namespace", func(w http.ResponseWriter, page int) {
			_, _ = io.WriteString(w, strings.ReplaceAll(wdPage(1, 2, wdResults(1, 1, 1, 1), wdAda), "urn:com.workday/bsvc", "urn:example:other"))
		}, "holds no wd:Get_Workers_Response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := workdayServer(t, func(w http.ResponseWriter, req askedWorkers) { tc.serve(w, req.Page) })
			people, err := Workday{URL: srv.URL, Username: "u", Password: "p", PageSize: 2}.People(t.Context())
			require.Error(t, err)
			assert.Nil(t, people)
			assert.Contains(t, err.Error(), tc.wantIn)
		})
	}
}

// Within CacheFor the roster is read once per endpoint; an error is never
// kept, and past CacheFor the roster is read again.
func TestWorkdayCache(t *testing.T) {
	fail := true
	srv, seen := workdayServer(t, func(w http.ResponseWriter, req askedWorkers) {
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, wdPage(1, 500, wdResults(2, 1, 2, 1), wdAda, wdAlan))
	})
	now := time.Date(2026, 11, 29, 13, 0, 0, 0, time.UTC)
	wd := Workday{URL: srv.URL, Username: "u", Password: "p", CacheFor: 10 * time.Minute, Now: func() time.Time { return now }}

	_, err := wd.People(t.Context())
	require.Error(t, err)
	fail = false
	people, err := wd.People(t.Context())
	require.NoError(t, err, "the failure was not kept")
	require.Len(t, people, 2)
	people[0].Status = "changed by the caller"
	require.Len(t, *seen, 2)

	now = now.Add(9 * time.Minute)
	for range 2 {
		again, err := wd.People(t.Context())
		require.NoError(t, err)
		assert.Equal(t, Active, again[0].Status, "the cache hands out copies")
		again[0].Status = "changed by the caller"
	}
	assert.Len(t, *seen, 2, "read from the cache")

	now = now.Add(2 * time.Minute)
	_, err = wd.People(t.Context())
	require.NoError(t, err)
	assert.Len(t, *seen, 3, "read again past CacheFor")
}

// Whatever a server answers, the parser errs or returns workers each with an
// id and a status it read; it never panics.
func FuzzParseGetWorkers(f *testing.F) {
	f.Add(200, wdPage(1, 2, wdResults(4, 2, 2, 1), wdAda, wdAlan))
	f.Add(200, wdPage(1, 2, wdResults(1, 1, 1, 1), wdKen))
	f.Add(500, `<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><env:Fault><faultcode>x</faultcode></env:Fault></env:Body></env:Envelope>`)
	f.Add(200, "<html></html>")
	f.Fuzz(func(t *testing.T, status int, body string) {
		page, err := parseGetWorkers(status, "text/xml", []byte(body))
		if err != nil {
			return
		}
		require.Equal(t, http.StatusOK, status)
		for _, w := range page.people {
			require.NotEmpty(t, w.id)
			require.Equal(t, w.id, w.person.EmployeeID)
			require.Contains(t, []string{Active, Terminated, ""}, w.person.Status)
		}
	})
}
