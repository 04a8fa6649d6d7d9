package hris

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/offboard/offboard/workflows"
)

// SourceBambooHR names BambooHR in Termination.Source and event ids.
const SourceBambooHR = "bamboohr"

// BambooEmployee is what the relay reads about one employee from
// BambooHR's REST API (GET /v1/employees/{id}?fields=...).
type BambooEmployee struct {
	ID                      string `json:"id"`
	Status                  string `json:"status"`          // Active | Inactive
	TerminationDate         string `json:"terminationDate"` // "2026-03-14"; "" or "0000-00-00" when none
	HireDate                string `json:"hireDate"`
	EmploymentHistoryStatus string `json:"employmentHistoryStatus"` // Full-Time, Contractor, Terminated...
	JobTitle                string `json:"jobTitle"`
	WorkEmail               string `json:"workEmail"`
	DisplayName             string `json:"displayName"`
	FirstName               string `json:"firstName"`
	LastName                string `json:"lastName"`
	SupervisorEmail         string `json:"supervisorEmail"`
}

// BambooFields are the fields the relay asks BambooHR for.
var BambooFields = []string{"status", "terminationDate", "hireDate", "employmentHistoryStatus", "jobTitle",
	"workEmail", "displayName", "firstName", "lastName", "supervisorEmail"}

// BambooAPI reads one employee. Event-based webhooks carry ids only, so the
// decision needs the employee's current record.
type BambooAPI interface {
	Employee(ctx context.Context, id string) (BambooEmployee, error)
}

// BambooClient is BambooHR's REST API, authenticated with an API key as the
// basic-auth user (password "x"), as BambooHR documents.
type BambooClient struct {
	BaseURL       string // https://api.bamboohr.com
	CompanyDomain string
	APIKey        string
	HTTP          *http.Client
}

// Employee reads the fields the relay decides on.
func (c *BambooClient) Employee(ctx context.Context, id string) (BambooEmployee, error) {
	var emp BambooEmployee
	u := strings.TrimRight(c.BaseURL, "/") + "/api/gateway.php/" + url.PathEscape(c.CompanyDomain) +
		"/v1/employees/" + url.PathEscape(id) + "?fields=" + strings.Join(BambooFields, ",")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return emp, fmt.Errorf("bamboohr: read employee %s: %w: %v", id, ErrLookup, err)
	}
	req.SetBasicAuth(c.APIKey, "x")
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return emp, fmt.Errorf("bamboohr: read employee %s: %w: %v", id, ErrLookup, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return emp, fmt.Errorf("bamboohr: read employee %s: %w: %v", id, ErrLookup, err)
	}
	msg := resp.Header.Get("X-BambooHR-Error-Message")
	switch {
	case resp.StatusCode == http.StatusNotFound && msg != "":
		// BambooHR's own answer (its error header): no such employee. A bare
		// 404 may be a wrong companyDomain or a proxy, so it stays a lookup
		// failure that the sender delivers again.
		return emp, fmt.Errorf("bamboohr: read employee %s: %w: HTTP 404 %s", id, ErrUnknownEmployee, msg)
	case resp.StatusCode != http.StatusOK:
		return emp, fmt.Errorf("bamboohr: read employee %s: %w: HTTP %d %s", id, ErrLookup, resp.StatusCode, msg)
	}
	var raw map[string]flexValue
	if err := json.Unmarshal(body, &raw); err != nil {
		return emp, fmt.Errorf("bamboohr: read employee %s: %w: response is not JSON: %v", id, ErrLookup, err)
	}
	fields := map[string]string{}
	for k, v := range raw {
		fields[normField(k)] = v.String()
	}
	emp = employeeFromFields(fields)
	if emp.ID == "" {
		emp.ID = id
	}
	return emp, nil
}

// BambooHR parses both of BambooHR's webhook payload styles.
//
// Event-based (recommended by BambooHR): {"type":"employee.updated",
// "timestamp":"2026-01-31T18:42:00+0000","data":{"companyId":"12345",
// "employeeId":"67890","changedFields":["status"]}} carries ids only: the
// employee is read through API. Field-based (legacy): {"employees":[{"id":
// "123","action":"Updated","timestamp":...,"changedFields":["Status"],
// "fields":{"Status":"Inactive","Termination Date":"2026-03-14",...}}]} may
// batch several employees; values come as strings or {"value": ...}, ids as
// strings or numbers, field names as BambooHR's English names or aliases.
type BambooHR struct {
	API      BambooAPI      // required for event-based payloads
	Location *time.Location // reads date-only termination dates; nil = UTC
	Now      func() time.Time
}

type bambooEventPayload struct {
	Type      *string `json:"type"`
	Timestamp string  `json:"timestamp"`
	Data      *struct {
		CompanyID     flexValue   `json:"companyId"`
		EmployeeID    flexValue   `json:"employeeId"`
		ChangedFields []flexValue `json:"changedFields"`
	} `json:"data"`
	Employees *[]bambooFieldEmployee `json:"employees"`
}

type bambooFieldEmployee struct {
	ID            flexValue            `json:"id"`
	Action        string               `json:"action"`
	Timestamp     string               `json:"timestamp"`
	ChangedFields []flexValue          `json:"changedFields"`
	Fields        map[string]flexValue `json:"fields"`
}

// Parse reads a JSON delivery.
func (p BambooHR) Parse(ctx context.Context, body []byte) (Result, error) {
	var pl bambooEventPayload
	if err := decodeJSON(body, &pl); err != nil {
		return Result{}, malformed(SourceBambooHR, err)
	}
	switch {
	case pl.Employees != nil:
		return p.fieldBased(ctx, *pl.Employees)
	case pl.Type != nil || pl.Data != nil:
		if pl.Type == nil {
			return Result{}, missing(SourceBambooHR, "type")
		}
		if pl.Data == nil {
			return Result{}, missing(SourceBambooHR, "data")
		}
		var changed []string
		for _, f := range pl.Data.ChangedFields {
			changed = append(changed, f.String())
		}
		return p.eventBased(ctx, *pl.Type, pl.Timestamp, pl.Data.EmployeeID.String(), changed)
	}
	return Result{}, invalid(SourceBambooHR, "body", "is neither an event-based payload (type, data) nor a field-based one (employees)")
}

// ParseForm reads an event-based delivery posted as a URL-encoded form
// (type=employee.updated&data[employeeId]=67890&data[changedFields][0]=status).
func (p BambooHR) ParseForm(ctx context.Context, body []byte) (Result, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Result{}, malformed(SourceBambooHR, err)
	}
	if form.Get("type") == "" {
		if strings.HasPrefix(firstKey(form), "employees[") {
			return Result{}, invalid(SourceBambooHR, "body", "is a field-based form post: configure the webhook to post JSON")
		}
		return Result{}, missing(SourceBambooHR, "type")
	}
	var keys []string
	for k := range form {
		if strings.HasPrefix(k, "data[changedFields]") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var changed []string
	for _, k := range keys {
		changed = append(changed, form[k]...)
	}
	return p.eventBased(ctx, form.Get("type"), form.Get("timestamp"), form.Get("data[employeeId]"), changed)
}

func firstKey(v url.Values) string {
	for k := range v {
		return k
	}
	return ""
}

func (p BambooHR) eventBased(ctx context.Context, typ, timestamp, rawID string, changed []string) (Result, error) {
	employeeID, err := employeeID(SourceBambooHR, "data.employeeId", rawID)
	if err != nil {
		return Result{}, err
	}
	switch typ {
	case "employee.updated", "employee_with_fields.updated":
	case "employee.created", "employee.deleted":
		// A leaver arrives as an update (status → Inactive); a deleted record
		// is a data correction, and a new record has no access to remove yet.
		return Result{Ignored: []Ignored{{EmployeeID: employeeID, Reason: typ + " is not a termination: BambooHR announces leavers as employee.updated"}}}, nil
	default:
		return Result{Ignored: []Ignored{{EmployeeID: employeeID, Reason: "event type " + strconv.Quote(typ) + " is not handled"}}}, nil
	}
	if !touchesEmployment(changed) {
		return Result{Ignored: []Ignored{{EmployeeID: employeeID, Reason: "no employment field changed (" + strings.Join(changed, ", ") + ")"}}}, nil
	}
	if p.API == nil {
		return Result{}, fmt.Errorf("bamboohr: employee %s: %w: no BambooHR API configured to read the employee an event-based webhook names", employeeID, ErrLookup)
	}
	emp, err := p.readEmployee(ctx, employeeID)
	if err != nil {
		return Result{}, err
	}
	return p.decide(emp, changed, p.when(timestamp), "data")
}

// readEmployee reads the employee through the API: an error is
// ErrUnknownEmployee when BambooHR says so, ErrLookup otherwise.
func (p BambooHR) readEmployee(ctx context.Context, id string) (BambooEmployee, error) {
	emp, err := p.API.Employee(ctx, id)
	switch {
	case errors.Is(err, ErrLookup), errors.Is(err, ErrUnknownEmployee):
		return emp, err
	case err != nil:
		return emp, fmt.Errorf("bamboohr: employee %s: %w: %v", id, ErrLookup, err)
	}
	emp.ID = id // the id we asked for, normalised
	return emp, nil
}

func (p BambooHR) fieldBased(ctx context.Context, employees []bambooFieldEmployee) (Result, error) {
	var res Result
	reject := func(id string, err error) { res.Rejected = append(res.Rejected, Rejected{EmployeeID: id, Err: err}) }
	for i, e := range employees {
		at := fmt.Sprintf("employees[%d]", i)
		id, err := employeeID(SourceBambooHR, at+".id", e.ID.String())
		if err != nil {
			reject(e.ID.String(), err)
			continue
		}
		switch strings.ToLower(e.Action) {
		case "created", "deleted":
			res.Ignored = append(res.Ignored, Ignored{EmployeeID: id, Reason: "action " + e.Action + " is not a termination"})
			continue
		}
		var changed []string
		for _, f := range e.ChangedFields {
			changed = append(changed, f.String())
		}
		fields := map[string]string{}
		for k, v := range e.Fields {
			fields[normField(k)] = v.String()
		}
		emp := employeeFromFields(fields)
		emp.ID = id
		if emp.Status == "" {
			if p.API == nil {
				res.Ignored = append(res.Ignored, Ignored{EmployeeID: id, Reason: "the webhook posts no Status field: add Status, Termination Date and Work Email to its post fields"})
				continue
			}
			read, err := p.readEmployee(ctx, id)
			if err != nil {
				reject(id, err)
				continue
			}
			emp = read
		}
		r, err := p.decide(emp, changed, p.when(e.Timestamp), at+".fields")
		if err != nil {
			reject(id, err)
			continue
		}
		res.Events = append(res.Events, r.Events...)
		res.Ignored = append(res.Ignored, r.Ignored...)
	}
	return res, nil
}

// decide maps the employee's current record to an event.
func (p BambooHR) decide(emp BambooEmployee, changed []string, at time.Time, where string) (Result, error) {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	status := strings.ToLower(strings.TrimSpace(emp.Status))
	name := emp.DisplayName
	if name == "" {
		name = strings.TrimSpace(emp.FirstName + " " + emp.LastName)
	}
	termDate := strings.TrimSpace(emp.TerminationDate)
	if termDate == "0000-00-00" {
		termDate = ""
	}
	switch {
	case status == "inactive":
		kind := workflows.KindTermination
		if h := strings.ToLower(emp.EmploymentHistoryStatus); strings.Contains(h, "contract") || strings.Contains(h, "temporary") {
			kind = workflows.KindContractEnd
		}
		effective := at
		idTime := time.Time{}
		if termDate != "" {
			d, err := parseWhen(termDate, loc, true)
			if err != nil {
				return Result{}, invalid(SourceBambooHR, where+".terminationDate", "%v", err)
			}
			effective, idTime = d, d
		}
		if emp.WorkEmail == "" {
			return Result{}, missing(SourceBambooHR, where+".workEmail")
		}
		t := workflows.Termination{
			EventID:     EventID(SourceBambooHR, emp.ID, string(kind), idTime),
			Source:      SourceBambooHR,
			EmployeeID:  emp.ID,
			Email:       emp.WorkEmail,
			Name:        name,
			Kind:        kind,
			EffectiveAt: effective,
			Manager:     emp.SupervisorEmail,
			// BambooHR's record names a job title and nothing like a
			// security role or group: the title is the HR role.
			Roles: roles(emp.JobTitle),
		}
		return Result{Events: []Event{{Action: ActionStart, Termination: t}}}, nil
	case status == "active" && changedAny(changed, "hiredate", "originalhiredate", "rehiredate"):
		return Result{Events: []Event{{Action: ActionRehire, Reason: "rehired in BambooHR", Termination: workflows.Termination{
			EventID: EventID(SourceBambooHR, emp.ID, "rehire", time.Time{}), Source: SourceBambooHR, EmployeeID: emp.ID, EffectiveAt: at}}}}, nil
	case status == "active" && changedAny(changed, "status", "terminationdate", "employmenthistorystatus", "employmentstatus"):
		return Result{Events: []Event{{Action: ActionRescind, Reason: "termination cancelled in BambooHR (status Active)", Termination: workflows.Termination{
			EventID: EventID(SourceBambooHR, emp.ID, "rescind", time.Time{}), Source: SourceBambooHR, EmployeeID: emp.ID, EffectiveAt: at}}}}, nil
	case status == "active" && changedAny(changed, "jobtitle") && emp.JobTitle != "":
		if emp.WorkEmail == "" {
			return Result{}, missing(SourceBambooHR, where+".workEmail")
		}
		t := workflows.Termination{
			EventID:     EventID(SourceBambooHR, emp.ID, "role_change:"+emp.JobTitle, time.Time{}),
			Source:      SourceBambooHR,
			EmployeeID:  emp.ID,
			Email:       emp.WorkEmail,
			Name:        name,
			Kind:        workflows.KindRoleChange,
			NewRole:     emp.JobTitle,
			EffectiveAt: at,
			Manager:     emp.SupervisorEmail,
		}
		return Result{Events: []Event{{Action: ActionStart, Termination: t}}}, nil
	case status == "":
		return Result{}, missing(SourceBambooHR, where+".status")
	}
	return Result{Ignored: []Ignored{{EmployeeID: emp.ID, Reason: "status " + emp.Status + ": nothing to do for " + strings.Join(changed, ", ")}}}, nil
}

func (p BambooHR) when(ts string) time.Time {
	if t, err := parseWhen(ts, time.UTC, false); err == nil && len(strings.TrimSpace(ts)) > 10 {
		return t
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64); err == nil {
		return time.Unix(n, 0)
	}
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func touchesEmployment(changed []string) bool {
	if len(changed) == 0 {
		return true // no list: read the record to be safe
	}
	return changedAny(changed, "status", "terminationdate", "employmenthistorystatus", "employmentstatus",
		"hiredate", "originalhiredate", "rehiredate", "jobtitle")
}

func changedAny(changed []string, names ...string) bool {
	for _, c := range changed {
		n := normField(c)
		for _, want := range names {
			if n == want {
				return true
			}
		}
	}
	return false
}

// normField makes "Termination Date", "terminationDate" and
// "termination_date" the same key.
func normField(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	switch n := b.String(); n {
	case "employmentstatus":
		return "employmenthistorystatus"
	case "reportingto", "supervisor":
		return "supervisoremail"
	default:
		return n
	}
}

func employeeFromFields(f map[string]string) BambooEmployee {
	return BambooEmployee{
		ID:                      f["id"],
		Status:                  f["status"],
		TerminationDate:         f["terminationdate"],
		HireDate:                f["hiredate"],
		EmploymentHistoryStatus: f["employmenthistorystatus"],
		JobTitle:                f["jobtitle"],
		WorkEmail:               f["workemail"],
		DisplayName:             f["displayname"],
		FirstName:               f["firstname"],
		LastName:                f["lastname"],
		SupervisorEmail:         f["supervisoremail"],
	}
}

// flexValue accepts a JSON string, number, bool, null or {"value": ...}.
type flexValue struct{ s string }

func (v flexValue) String() string { return v.s }

func (v *flexValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		v.s = ""
	case b[0] == '"':
		return json.Unmarshal(b, &v.s)
	case b[0] == '{':
		var obj struct {
			Value *flexValue `json:"value"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return err
		}
		if obj.Value != nil {
			v.s = obj.Value.s
		}
	case b[0] == '[':
		return errors.New("expected a value, got a list")
	default:
		v.s = string(b) // number or bool, as written
	}
	return nil
}

// decodeJSON decodes one JSON value, ignoring unknown fields, and says where
// a syntax or type error is.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return fmt.Errorf("invalid JSON at byte %d: %v", syn.Offset, syn)
		case errors.As(err, &typ):
			return fmt.Errorf("field %s: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		case errors.Is(err, io.EOF):
			return errors.New("empty body")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("invalid JSON: the body ends in the middle of a value (truncated?)")
		}
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value in the body")
	}
	return nil
}
