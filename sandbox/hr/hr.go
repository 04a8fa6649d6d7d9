// Package hr simulates the HR systems reconciliation reads its roster from,
// seeded with the demo company every target simulator has:
//
//	GET  /api/gateway.php/{company}/v1/employees/directory   BambooHR's employee directory (current employees)
//	POST /ccx/service/{tenant}/Human_Resources/{version}     Workday Get_Workers (SOAP, every worker, paged)
//	PUT  /_sandbox/workers/{employeeID}                      body "active" or "terminated": HR's view of a person
//	GET  /_sandbox/workers/{employeeID}                      that view
//
// Like the real services it refuses a wrong credential, answers Workday's
// errors as SOAP faults, and pages by Response_Filter Page/Count.
package hr

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/offboard/offboard/sandbox/demo"
)

// Options seed the simulator.
type Options struct {
	People  []demo.Person
	Leavers []string // employee ids HR shows as terminated
	// BambooHR: the company domain and the API key (sent as the basic-auth user).
	CompanyDomain, APIKey string
	// Workday: the integration system user's basic-auth credentials.
	Username, Password string
}

// Server is the simulated HR system.
type Server struct {
	opts Options
	mu   sync.Mutex
	term map[string]bool // employee id → terminated
}

// New seeds a simulator.
func New(o Options) *Server {
	s := &Server{opts: o, term: map[string]bool{}}
	for _, id := range o.Leavers {
		s.term[id] = true
	}
	return s
}

// Handler serves the routes the package comment lists.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/gateway.php/{company}/v1/employees/directory", s.directory)
	mux.HandleFunc("POST /ccx/service/{tenant}/Human_Resources/{version}", s.getWorkers)
	mux.HandleFunc("GET /_sandbox/workers/{id}", s.showWorker)
	mux.HandleFunc("PUT /_sandbox/workers/{id}", s.setWorker)
	return mux
}

func (s *Server) terminated(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.term[id]
}

func (s *Server) find(id string) (demo.Person, bool) {
	i := slices.IndexFunc(s.opts.People, func(p demo.Person) bool { return p.EmployeeID == id })
	if i < 0 {
		return demo.Person{}, false
	}
	return s.opts.People[i], true
}

func (s *Server) showWorker(w http.ResponseWriter, r *http.Request) {
	p, ok := s.find(r.PathValue("id"))
	if !ok {
		http.Error(w, "no such worker", http.StatusNotFound)
		return
	}
	status := "active"
	if s.terminated(p.EmployeeID) {
		status = "terminated"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"employeeId": p.EmployeeID, "email": p.Email, "status": status})
}

func (s *Server) setWorker(w http.ResponseWriter, r *http.Request) {
	p, ok := s.find(r.PathValue("id"))
	if !ok {
		http.Error(w, "no such worker", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64))
	status := strings.TrimSpace(string(body))
	if status != "active" && status != "terminated" {
		http.Error(w, `body must be "active" or "terminated"`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.term[p.EmployeeID] = status == "terminated"
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// directory is BambooHR's employee directory: current employees only.
func (s *Server) directory(w http.ResponseWriter, r *http.Request) {
	key, _, ok := r.BasicAuth()
	if r.PathValue("company") != s.opts.CompanyDomain || !ok || key != s.opts.APIKey || s.opts.APIKey == "" {
		w.Header().Set("X-BambooHR-Error-Message", "Invalid API key")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	type employee struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
		FirstName   string `json:"firstName"`
		LastName    string `json:"lastName"`
		WorkEmail   string `json:"workEmail"`
		Department  string `json:"department"`
	}
	out := struct {
		Fields    []map[string]string `json:"fields"`
		Employees []employee          `json:"employees"`
	}{Fields: []map[string]string{
		{"id": "displayName", "type": "text", "name": "Display name"},
		{"id": "workEmail", "type": "email", "name": "Work Email"},
	}, Employees: []employee{}}
	for _, p := range s.opts.People {
		if s.terminated(p.EmployeeID) {
			continue
		}
		out.Employees = append(out.Employees, employee{ID: p.EmployeeID, DisplayName: p.Name(),
			FirstName: p.First, LastName: p.Last, WorkEmail: p.Email, Department: p.Department})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// fault answers as Workday does: HTTP 500 with a SOAP fault.
func fault(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(msg))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:%s</faultcode><faultstring>%s</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>`, code, b.String())
}

// getWorkers is Get_Workers: every worker, terminated ones too unless
// Exclude_Inactive_Workers, Count per page (default 100, at most 999).
func (s *Server) getWorkers(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || s.opts.Username == "" || user != s.opts.Username || pass != s.opts.Password {
		fault(w, "Client.authenticationError", "invalid username or password")
		return
	}
	var req struct {
		Body struct {
			Get *struct {
				Exclude string `xml:"Request_Criteria>Exclude_Inactive_Workers"`
				Page    string `xml:"Response_Filter>Page"`
				Count   string `xml:"Response_Filter>Count"`
			} `xml:"urn:com.workday/bsvc Get_Workers_Request"`
		} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = xml.Unmarshal(body, &req)
	}
	if err != nil || req.Body.Get == nil {
		fault(w, "Client.validationError", "Validation error occurred. The request is not a Get_Workers_Request")
		return
	}
	num := func(v string, def, hi int) (int, bool) {
		if strings.TrimSpace(v) == "" {
			return def, true
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return n, err == nil && n >= 1 && n <= hi
	}
	page, ok1 := num(req.Body.Get.Page, 1, 1<<30)
	count, ok2 := num(req.Body.Get.Count, 100, 999)
	if !ok1 || !ok2 {
		fault(w, "Client.validationError", "Validation error occurred. Page must be positive and Count between 1 and 999")
		return
	}
	exclude := req.Body.Get.Exclude == "1" || req.Body.Get.Exclude == "true"
	var workers []demo.Person
	for _, p := range s.opts.People {
		if !exclude || !s.terminated(p.EmployeeID) {
			workers = append(workers, p)
		}
	}
	pages := (len(workers) + count - 1) / count
	from, to := min((page-1)*count, len(workers)), min(page*count, len(workers))
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<env:Body>
<wd:Get_Workers_Response xmlns:wd="urn:com.workday/bsvc" wd:version="%s">
<wd:Response_Filter><wd:Page>%d</wd:Page><wd:Count>%d</wd:Count></wd:Response_Filter>
<wd:Response_Results><wd:Total_Results>%d</wd:Total_Results><wd:Total_Pages>%d</wd:Total_Pages><wd:Page_Results>%d</wd:Page_Results><wd:Page>%d</wd:Page></wd:Response_Results>
<wd:Response_Data>
`, xmlText(r.PathValue("version")), page, count, len(workers), pages, to-from, page)
	for _, p := range workers[from:to] {
		s.writeWorker(&b, p)
	}
	b.WriteString("</wd:Response_Data>\n</wd:Get_Workers_Response>\n</env:Body>\n</env:Envelope>\n")
	_, _ = io.WriteString(w, b.String())
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeWorker writes one wd:Worker the way Get_Workers does (the parts a
// roster reads, and a few around them).
func (s *Server) writeWorker(b *strings.Builder, p demo.Person) {
	active, terminated, termination := "1", "0", ""
	if s.terminated(p.EmployeeID) {
		active, terminated = "0", "1"
		termination = "<wd:Termination_Date>2026-01-30-08:00</wd:Termination_Date><wd:Termination_Last_Day_of_Work>2026-01-30-08:00</wd:Termination_Last_Day_of_Work>" +
			`<wd:Primary_Termination_Reason_Reference wd:Descriptor="Resignation"><wd:ID wd:type="Event_Classification_Subcategory_ID">TERMINATE_EMPLOYEE_VOLUNTARY_RESIGNATION</wd:ID></wd:Primary_Termination_Reason_Reference>` +
			"<wd:Termination_Involuntary>0</wd:Termination_Involuntary>"
	}
	sum := sha256.Sum256([]byte(p.EmployeeID))
	wid := hex.EncodeToString(sum[:16]) // a WID is 32 hex digits
	fmt.Fprintf(b, `<wd:Worker>
<wd:Worker_Reference><wd:ID wd:type="WID">%s</wd:ID><wd:ID wd:type="Employee_ID">%s</wd:ID></wd:Worker_Reference>
<wd:Worker_Descriptor>%s</wd:Worker_Descriptor>
<wd:Worker_Data>
<wd:Worker_ID>%s</wd:Worker_ID>
<wd:User_ID>%s</wd:User_ID>
<wd:Personal_Data>
<wd:Name_Data><wd:Legal_Name_Data><wd:Name_Detail_Data wd:Formatted_Name="%s" wd:Reporting_Name="%s"><wd:Country_Reference><wd:ID wd:type="ISO_3166-1_Alpha-2_Code">US</wd:ID></wd:Country_Reference><wd:First_Name>%s</wd:First_Name><wd:Last_Name>%s</wd:Last_Name></wd:Name_Detail_Data></wd:Legal_Name_Data></wd:Name_Data>
<wd:Contact_Data><wd:Email_Address_Data wd:Email_Address_ID="EMAIL_REFERENCE-%s"><wd:Email_Address>%s</wd:Email_Address><wd:Usage_Data wd:Public="1"><wd:Type_Data wd:Primary="1"><wd:Type_Reference wd:Descriptor="Work"><wd:ID wd:type="Communication_Usage_Type_ID">WORK</wd:ID></wd:Type_Reference></wd:Type_Data></wd:Usage_Data></wd:Email_Address_Data></wd:Contact_Data>
</wd:Personal_Data>
<wd:Employment_Data>
<wd:Worker_Job_Data wd:Primary_Job="1"><wd:Position_Data wd:Effective_Date="2020-01-01-08:00"><wd:Position_ID>P-%s</wd:Position_ID><wd:Business_Title>%s</wd:Business_Title></wd:Position_Data></wd:Worker_Job_Data>
<wd:Worker_Status_Data><wd:Active>%s</wd:Active><wd:Active_Status_Date>2020-01-01-08:00</wd:Active_Status_Date><wd:Hire_Date>2020-01-01-08:00</wd:Hire_Date><wd:Original_Hire_Date>2020-01-01-08:00</wd:Original_Hire_Date><wd:Terminated>%s</wd:Terminated>%s<wd:Not_Returning>0</wd:Not_Returning><wd:Return_Unknown>0</wd:Return_Unknown><wd:Rehire>0</wd:Rehire><wd:Hire_Rescinded>0</wd:Hire_Rescinded></wd:Worker_Status_Data>
</wd:Employment_Data>
</wd:Worker_Data>
</wd:Worker>
`, wid, p.EmployeeID, xmlText(p.Name()), p.EmployeeID, xmlText(p.Login), xmlText(p.Name()), xmlText(p.Name()),
		xmlText(p.First), xmlText(p.Last), p.EmployeeID, xmlText(p.Email), p.EmployeeID, xmlText(p.Department),
		active, terminated, termination)
}
