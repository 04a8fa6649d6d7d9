package hris

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/workflows"
)

// SourceWorkday names Workday in Termination.Source and event ids.
const SourceWorkday = "workday"

// Workday parses what a Workday tenant can send, since it has no signed
// webhooks:
//
//   - SOAP: an Integration System subscription's notification, or a
//     Get_Workers response forwarded by a Studio step. Every wd:Worker
//     element (namespace urn:com.workday/bsvc) anywhere in the document is
//     read: Worker_Reference/ID[@wd:type=Employee_ID|Contingent_Worker_ID],
//     Worker_Data/Personal_Data (Legal_Name_Data, Email_Address_Data),
//     Employment_Data/Worker_Status_Data (Active, Terminated,
//     Termination_Date, Termination_Last_Day_of_Work,
//     Primary_Termination_Reason_Reference, Termination_Involuntary, Rehire,
//     Hire_Rescinded), Worker_Job_Data/Position_Data (Business_Title,
//     Position_Title) and Transaction_Log_Entry_Data (the business process,
//     its WID, and Is_Rescind_Or_Rescinded). A wd:Event_Reference WID outside
//     the workers names the event when a single worker is sent.
//   - RaaS: a custom report in JSON ({"Report_Entry":[{...}]}) or XML
//     (wd:Report_Data/wd:Report_Entry) whose columns use the same names
//     (Employee_ID, Email_Address, Terminated, Termination_Date, ...); see
//     raasColumns for the aliases accepted.
//
// Booleans arrive as "1"/"0". Dates without a zone are read in Location,
// Pacific Time by default: Workday integration users run in PT.
type Workday struct {
	Location *time.Location // nil = America/Los_Angeles
	Now      func() time.Time
}

type wdID struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type wdRef struct {
	Descriptor string `xml:"Descriptor,attr"`
	IDs        []wdID `xml:"ID"`
}

func (r wdRef) id(types ...string) string {
	for _, t := range types {
		for _, id := range r.IDs {
			if strings.EqualFold(id.Type, t) {
				return strings.TrimSpace(id.Value)
			}
		}
	}
	return ""
}

// text is the descriptor and every id, for matching words like "Terminate".
func (r wdRef) text() string {
	parts := []string{r.Descriptor}
	for _, id := range r.IDs {
		parts = append(parts, id.Value)
	}
	return strings.Join(parts, " ")
}

type wdWorker struct {
	Reference wdRef `xml:"Worker_Reference"`
	Data      struct {
		WorkerID string `xml:"Worker_ID"`
		Personal struct {
			Name struct {
				Formatted string `xml:"Formatted_Name,attr"`
				First     string `xml:"First_Name"`
				Last      string `xml:"Last_Name"`
			} `xml:"Name_Data>Legal_Name_Data>Name_Detail_Data"`
			Emails []struct {
				Address string `xml:"Email_Address"`
				Usage   []struct {
					Types []wdRef `xml:"Type_Data>Type_Reference"`
				} `xml:"Usage_Data"`
			} `xml:"Contact_Data>Email_Address_Data"`
		} `xml:"Personal_Data"`
		Employment struct {
			Status struct {
				Active            string `xml:"Active"`
				Terminated        string `xml:"Terminated"`
				TerminationDate   string `xml:"Termination_Date"`
				LastDay           string `xml:"Termination_Last_Day_of_Work"`
				EndEmploymentDate string `xml:"End_Employment_Date"`
				Reason            wdRef  `xml:"Primary_Termination_Reason_Reference"`
				Involuntary       string `xml:"Termination_Involuntary"`
				Rehire            string `xml:"Rehire"`
				HireRescinded     string `xml:"Hire_Rescinded"`
			} `xml:"Worker_Status_Data"`
			Jobs []struct {
				Position struct {
					Title         string `xml:"Position_Title"`
					BusinessTitle string `xml:"Business_Title"`
					WorkerType    wdRef  `xml:"Worker_Type_Reference"`
					Manager       wdRef  `xml:"Manager_as_of_last_detected_manager_change_Reference"`
					JobProfile    struct {
						Name      string `xml:"Job_Profile_Name"`
						Reference wdRef  `xml:"Job_Profile_Reference"`
					} `xml:"Job_Profile_Summary_Data"`
				} `xml:"Position_Data"`
			} `xml:"Worker_Job_Data"`
		} `xml:"Employment_Data"`
		// Organization roles the worker holds (Get_Workers with Include_Roles).
		OrgRoles []struct {
			Role    wdRef `xml:"Role_Reference"`
			OrgRole wdRef `xml:"Organization_Role_Reference"`
		} `xml:"Role_Data>Organization_Role_Data>Organization_Role"`
		Logs []struct {
			Reference wdRef `xml:"Transaction_Log_Reference"`
			Data      struct {
				Description string `xml:"Transaction_Log_Description"`
				Effective   string `xml:"Transaction_Effective_Moment"`
				Type        wdRef  `xml:"Transaction_Log_Type_Reference"`
				Rescind     string `xml:"Is_Rescind_Or_Rescinded"`
			} `xml:"Transaction_Log_Data"`
		} `xml:"Transaction_Log_Entry_Data>Transaction_Log_Entry"`
	} `xml:"Worker_Data"`
}

// wdFacts is one worker as either form describes it.
type wdFacts struct {
	where         string
	EmployeeID    string
	Email         string
	Name          string
	Manager       string
	Contingent    bool
	Active        string
	Terminated    string
	Rehire        string
	HireRescinded string
	Involuntary   string
	Rescinded     string
	TermDate      string
	LastDay       string
	Reason        string
	Process       string // business process type, e.g. "Terminate Employee"
	EventID       string
	NewRole       string
	Roles         []string // job profile, business title, organization roles
}

// ParseXML reads a SOAP notification, a Get_Workers response or a RaaS XML report.
func (p Workday) ParseXML(body []byte) (Result, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	var facts []wdFacts
	var eventRef string
	sawRoot := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, malformed(SourceWorkday, fmt.Errorf("invalid XML: %v", err))
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		sawRoot = true
		switch se.Name.Local {
		case "Worker":
			var w wdWorker
			if err := dec.DecodeElement(&w, &se); err != nil {
				return Result{}, malformed(SourceWorkday, fmt.Errorf("invalid XML in Worker %d: %v", len(facts)+1, err))
			}
			facts = append(facts, workerFacts(w, fmt.Sprintf("Worker[%d]", len(facts))))
		case "Report_Entry":
			var e struct {
				Cols []struct {
					XMLName    xml.Name
					Descriptor string `xml:"Descriptor,attr"`
					Value      string `xml:",chardata"`
					IDs        []wdID `xml:"ID"`
				} `xml:",any"`
			}
			if err := dec.DecodeElement(&e, &se); err != nil {
				return Result{}, malformed(SourceWorkday, fmt.Errorf("invalid XML in Report_Entry %d: %v", len(facts)+1, err))
			}
			cols := map[string]string{}
			for _, c := range e.Cols {
				// A reference column carries a descriptor and ids: keep both.
				k := normField(c.XMLName.Local)
				v := firstNonEmpty(c.Value, c.Descriptor)
				if slices.Contains(raasRoleColumns, k) && cols[k] != "" {
					v = cols[k] + "; " + v // a multi-instance column: every value is a role
				}
				cols[k] = v
				for _, id := range c.IDs {
					if k := normField(id.Type); cols[k] == "" {
						cols[k] = strings.TrimSpace(id.Value)
					}
				}
			}
			facts = append(facts, raasFacts(cols, fmt.Sprintf("Report_Entry[%d]", len(facts))))
		case "Event_Reference":
			var r wdRef
			if err := dec.DecodeElement(&r, &se); err != nil {
				return Result{}, malformed(SourceWorkday, fmt.Errorf("invalid XML in Event_Reference: %v", err))
			}
			eventRef = r.id("WID", "Event_ID")
		case "Fault":
			return Result{}, invalid(SourceWorkday, "Body", "is a SOAP Fault, not a notification")
		}
	}
	if !sawRoot {
		return Result{}, malformed(SourceWorkday, errors.New("empty document"))
	}
	if len(facts) == 0 {
		return Result{}, missing(SourceWorkday, "Worker (or Report_Entry)")
	}
	if len(facts) == 1 && facts[0].EventID == "" && eventRef != "" {
		facts[0].EventID = eventRef
	}
	return p.decideAll(facts)
}

// raasValue is one JSON report cell: a value, or a multi-instance column's
// list of values or {"Descriptor": ...} objects, joined by "; ".
type raasValue struct{ flexValue }

func (v *raasValue) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) == 0 || b[0] != '[' {
		return v.flexValue.UnmarshalJSON(b)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	var vals []string
	for _, it := range items {
		var ref struct {
			Descriptor string `json:"Descriptor"`
		}
		var fv flexValue
		if json.Unmarshal(it, &ref) == nil && ref.Descriptor != "" {
			vals = append(vals, ref.Descriptor)
		} else if err := fv.UnmarshalJSON(it); err != nil {
			return err
		} else if fv.s != "" {
			vals = append(vals, fv.s)
		}
	}
	v.s = strings.Join(vals, "; ")
	return nil
}

// ParseJSON reads a RaaS JSON report: {"Report_Entry":[{"Employee_ID":...}]}.
func (p Workday) ParseJSON(body []byte) (Result, error) {
	var report struct {
		Entries *[]map[string]raasValue `json:"Report_Entry"`
	}
	if err := decodeJSON(body, &report); err != nil {
		return Result{}, malformed(SourceWorkday, err)
	}
	if report.Entries == nil {
		return Result{}, missing(SourceWorkday, "Report_Entry")
	}
	var facts []wdFacts
	for i, e := range *report.Entries {
		cols := map[string]string{}
		for k, v := range e {
			cols[normField(k)] = strings.TrimSpace(v.String())
		}
		facts = append(facts, raasFacts(cols, fmt.Sprintf("Report_Entry[%d]", i)))
	}
	return p.decideAll(facts)
}

func workerFacts(w wdWorker, where string) wdFacts {
	st := w.Data.Employment.Status
	f := wdFacts{
		where:         where,
		EmployeeID:    w.Reference.id("Employee_ID", "Contingent_Worker_ID"),
		Contingent:    w.Reference.id("Contingent_Worker_ID") != "",
		Active:        st.Active,
		Terminated:    st.Terminated,
		Rehire:        st.Rehire,
		HireRescinded: st.HireRescinded,
		Involuntary:   st.Involuntary,
		TermDate:      firstNonEmpty(st.TerminationDate, st.EndEmploymentDate),
		LastDay:       st.LastDay,
		Reason:        st.Reason.text(),
	}
	if f.EmployeeID == "" {
		f.EmployeeID = strings.TrimSpace(w.Data.WorkerID)
	}
	n := w.Data.Personal.Name
	f.Name = firstNonEmpty(n.Formatted, strings.TrimSpace(n.First+" "+n.Last))
	for _, e := range w.Data.Personal.Emails {
		addr := strings.TrimSpace(e.Address)
		if addr == "" {
			continue
		}
		work := false
		for _, u := range e.Usage {
			for _, t := range u.Types {
				work = work || strings.Contains(strings.ToUpper(t.text()), "WORK")
			}
		}
		if work {
			f.Email = addr
			break
		}
		if f.Email == "" {
			f.Email = addr
		}
	}
	for _, j := range w.Data.Employment.Jobs {
		pos := j.Position
		f.NewRole = firstNonEmpty(f.NewRole, pos.BusinessTitle, pos.Title)
		if strings.Contains(strings.ToLower(pos.WorkerType.text()), "contingent") {
			f.Contingent = true
		}
		f.Manager = firstNonEmpty(f.Manager, pos.Manager.id("Employee_ID"))
		f.Roles = append(f.Roles, firstNonEmpty(pos.JobProfile.Name, pos.JobProfile.Reference.Descriptor), pos.BusinessTitle)
	}
	// User-based security groups are not part of a worker's data in
	// Get_Workers: a RaaS report can add them as a column (raasColumns "roles").
	for _, r := range w.Data.OrgRoles {
		f.Roles = append(f.Roles, firstNonEmpty(r.Role.Descriptor, r.OrgRole.Descriptor, r.Role.id("Organization_Role_ID"), r.OrgRole.id("Organization_Role_ID")))
	}
	f.Roles = roles(f.Roles...)
	// The notification's business process: the latest entry that matters.
	for _, l := range w.Data.Logs {
		typ := firstNonEmpty(l.Data.Type.id("Business_Process_Type"), l.Data.Type.Descriptor, l.Data.Description)
		if processKind(typ) == "" {
			continue
		}
		f.Process = typ
		f.Rescinded = l.Data.Rescind
		f.EventID = l.Reference.id("WID")
	}
	return f
}

// raasColumns lists the report column names accepted, normalised (lower
// case, letters and digits only), first match wins.
var raasColumns = map[string][]string{
	"employee":    {"employeeid", "contingentworkerid", "workerid", "employee"},
	"contingent":  {"contingentworkerid"},
	"email":       {"workemail", "emailwork", "primaryworkemail", "emailprimarywork", "emailaddress", "email"},
	"name":        {"legalname", "name", "worker", "formattedname"},
	"manager":     {"manageremail", "manager", "managerid"},
	"active":      {"active"},
	"terminated":  {"terminated"},
	"rehire":      {"rehire"},
	"rescindhire": {"hirerescinded"},
	"involuntary": {"terminationinvoluntary", "involuntary"},
	"rescinded":   {"isrescindorrescinded", "rescinded"},
	"termdate":    {"terminationdate", "endemploymentdate", "contractenddate"},
	"lastday":     {"terminationlastdayofwork", "lastdayofwork"},
	"reason":      {"primaryterminationreason", "primaryterminationreasonreference", "terminationreason"},
	"process":     {"businessprocesstype", "businessprocess", "eventtype", "transactionlogtype"},
	"event":       {"eventwid", "eventid", "eventreference", "transactionlogwid"},
	"role":        {"businesstitle", "positiontitle", "jobprofile", "newrole"},
	"workertype":  {"workertype"},
}

// raasRoleColumns are the report columns whose values are HR roles, all of
// them read (a multi-instance column arrives as several values).
var raasRoleColumns = []string{"roles", "role", "securityroles", "securitygroups", "usersecuritygroups",
	"organizationroles", "jobprofile", "jobprofilename", "businesstitle"}

func raasFacts(cols map[string]string, where string) wdFacts {
	get := func(key string) string {
		for _, c := range raasColumns[key] {
			if v := cols[c]; v != "" {
				return v
			}
		}
		return ""
	}
	return wdFacts{
		where:         where,
		EmployeeID:    get("employee"),
		Contingent:    get("contingent") != "" || strings.Contains(strings.ToLower(get("workertype")), "contingent"),
		Email:         get("email"),
		Name:          get("name"),
		Manager:       get("manager"),
		Active:        get("active"),
		Terminated:    get("terminated"),
		Rehire:        get("rehire"),
		HireRescinded: get("rescindhire"),
		Involuntary:   get("involuntary"),
		Rescinded:     get("rescinded"),
		TermDate:      get("termdate"),
		LastDay:       get("lastday"),
		Reason:        get("reason"),
		Process:       get("process"),
		EventID:       get("event"),
		NewRole:       get("role"),
		Roles: func() []string {
			var rs []string
			for _, c := range raasRoleColumns {
				rs = append(rs, cols[c])
			}
			return roles(rs...)
		}(),
	}
}

// processKind sorts business processes into what Offboard cares about.
func processKind(p string) string {
	p = strings.ToLower(p)
	switch {
	case strings.Contains(p, "terminat"), strings.Contains(p, "end contingent worker contract"), strings.Contains(p, "end contract"):
		return "termination"
	case strings.Contains(p, "hire"):
		return "hire"
	case strings.Contains(p, "change job"), strings.Contains(p, "job change"), strings.Contains(p, "transfer"), strings.Contains(p, "promot"), strings.Contains(p, "demot"):
		return "role_change"
	}
	return ""
}

func (p Workday) decideAll(facts []wdFacts) (Result, error) {
	var res Result
	for _, f := range facts {
		r, err := p.decide(f)
		switch {
		case err != nil && len(facts) > 1:
			res.Rejected = append(res.Rejected, Rejected{EmployeeID: f.EmployeeID, Err: err})
			continue
		case err != nil:
			return Result{}, err
		}
		res.Events = append(res.Events, r.Events...)
		res.Ignored = append(res.Ignored, r.Ignored...)
	}
	return res, nil
}

func (p Workday) decide(f wdFacts) (Result, error) {
	loc := p.Location
	if loc == nil {
		var err error
		if loc, err = time.LoadLocation("America/Los_Angeles"); err != nil {
			loc = time.UTC
		}
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	employee, err := employeeID(SourceWorkday, f.where+".Worker_Reference/ID[@wd:type=Employee_ID]", f.EmployeeID)
	if err != nil {
		return Result{}, err
	}
	f.EmployeeID = employee
	id := func(kind string, effective time.Time) string {
		if f.EventID != "" {
			return SourceWorkday + "-" + f.EventID
		}
		return EventID(SourceWorkday, f.EmployeeID, kind, effective)
	}
	proc := processKind(f.Process)
	switch {
	case proc == "termination" && truthy(f.Rescinded) && !truthy(f.Terminated):
		// The rescinded business process has the WID of the termination it cancels.
		refers := ""
		if f.EventID != "" {
			refers = id(string(workflows.KindTermination), time.Time{})
		}
		return Result{Events: []Event{{Action: ActionRescind, Reason: "Workday rescinded " + f.Process, RefersTo: refers, Termination: workflows.Termination{
			EventID: id("rescind", time.Time{}), Source: SourceWorkday, EmployeeID: f.EmployeeID, EffectiveAt: now()}}}}, nil
	case truthy(f.HireRescinded):
		// The hire will not happen: accounts provisioned ahead of day one must go now.
		return p.start(f, workflows.KindTermination, "", now(), id("hire_rescinded", time.Time{}))
	case truthy(f.Terminated) || (proc == "termination" && f.TermDate != ""):
		kind := workflows.KindTermination
		if f.Contingent {
			kind = workflows.KindContractEnd
		}
		reason := workflows.ReasonVoluntary
		r := strings.ToLower(f.Reason)
		switch {
		case strings.Contains(r, "cause"), strings.Contains(r, "misconduct"):
			reason = workflows.ReasonForCause
		case truthy(f.Involuntary), strings.Contains(r, "involuntary"):
			reason = workflows.ReasonInvoluntary
		case f.Involuntary == "" && f.Reason == "":
			reason = ""
		}
		// The last day of work ends access when it comes before the termination date.
		day, field := f.TermDate, "Termination_Date"
		if f.LastDay != "" {
			day, field = f.LastDay, "Termination_Last_Day_of_Work"
		}
		if day == "" {
			return Result{}, missing(SourceWorkday, f.where+".Worker_Status_Data/Termination_Date")
		}
		immediate := reason == workflows.ReasonInvoluntary || reason == workflows.ReasonForCause
		effective, err := parseWhen(day, loc, !immediate)
		if err != nil {
			return Result{}, invalid(SourceWorkday, f.where+"."+field, "%v", err)
		}
		if f.LastDay != "" && f.TermDate != "" {
			if td, err := parseWhen(f.TermDate, loc, !immediate); err == nil && td.Before(effective) {
				effective = td
			}
		}
		return p.start(f, kind, reason, effective, id(string(kind), effective))
	case truthy(f.Rehire) && truthy(f.Active) && (proc == "" || proc == "hire"):
		return Result{Events: []Event{{Action: ActionRehire, Reason: "rehired in Workday", Termination: workflows.Termination{
			EventID: id("rehire", time.Time{}), Source: SourceWorkday, EmployeeID: f.EmployeeID, EffectiveAt: now()}}}}, nil
	case proc == "role_change" && !truthy(f.Terminated) && f.NewRole != "":
		return p.start(f, workflows.KindRoleChange, "", now(), id("role_change:"+f.NewRole, time.Time{}))
	}
	return Result{Ignored: []Ignored{{EmployeeID: f.EmployeeID, Reason: "not a termination, rescind, rehire or job change (" + firstNonEmpty(f.Process, "no business process") + ")"}}}, nil
}

func (p Workday) start(f wdFacts, kind workflows.Kind, reason workflows.Reason, effective time.Time, eventID string) (Result, error) {
	if f.Email == "" {
		return Result{}, missing(SourceWorkday, f.where+".Email_Address")
	}
	t := workflows.Termination{
		EventID:     eventID,
		Source:      SourceWorkday,
		EmployeeID:  f.EmployeeID,
		Email:       f.Email,
		Name:        f.Name,
		Kind:        kind,
		Reason:      reason,
		EffectiveAt: effective,
		Manager:     f.Manager,
	}
	if kind == workflows.KindRoleChange {
		t.NewRole = f.NewRole
	} else {
		t.Roles = f.Roles
	}
	return Result{Events: []Event{{Action: ActionStart, Termination: t}}}, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}
