package roster

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Workday reads every worker, current and former, with Get_Workers from a
// tenant's Human_Resources web service
// (https://HOST/ccx/service/TENANT/Human_Resources/v42.0), page by page.
//
// Anything unexpected is an error, so no account is judged against a roster
// read wrongly: a SOAP fault or an answer that is not a Get_Workers
// response, a worker without an Employee_ID or Contingent_Worker_ID, a
// Worker_Status_Data without Active and Terminated as "1"/"0", or paging that
// does not add up (a page other than the one asked for, a worker served
// twice, fewer or more workers than Total_Results).
type Workday struct {
	URL      string // the Human_Resources endpoint, version included
	Username string // the integration system user, e.g. ISU_Offboard@tenant
	Password string
	PageSize int // workers per page; default 500 (Workday allows up to 999)
	HTTP     *http.Client
	Now      func() time.Time // pins every page to one moment; default time.Now
	// CacheFor keeps a roster read for this long in this process: a
	// reconciliation reads the roster once per batch of account pages, and
	// a large tenant's Get_Workers takes seconds (50,000 workers: about 4 s).
	CacheFor time.Duration
}

// workdayCache holds the last roster read per endpoint and user.
var workdayCache struct {
	sync.Mutex
	m map[string]workdayCached
}

type workdayCached struct {
	people []Person
	at     time.Time
}

const (
	soapEnvNS     = "http://schemas.xmlsoap.org/soap/envelope/"
	workdayNS     = "urn:com.workday/bsvc"
	workdayMaxPgs = 1_000_000 // far beyond any tenant: a Total_Pages above it is read wrongly
)

// People lists every worker. An active worker (Active 1, Terminated 0) is
// Active, a former one (Active 0, Terminated 1) Terminated; a worker neither
// active nor terminated (a hire not started yet, or rescinded) is left out,
// so an account of theirs is an orphan a person looks at, never a match.
func (w Workday) People(ctx context.Context) ([]Person, error) {
	if w.URL == "" {
		return nil, errors.New("workday get_workers: no URL")
	}
	now := w.Now
	if now == nil {
		now = time.Now
	}
	if w.CacheFor <= 0 {
		return w.read(ctx, now)
	}
	key := w.URL + "\x00" + w.Username
	workdayCache.Lock()
	c, ok := workdayCache.m[key]
	workdayCache.Unlock()
	if ok && now().Sub(c.at) < w.CacheFor {
		return slices.Clone(c.people), nil
	}
	people, err := w.read(ctx, now)
	if err != nil {
		return nil, err // an error is never kept: the next call asks again
	}
	workdayCache.Lock()
	if workdayCache.m == nil {
		workdayCache.m = map[string]workdayCached{}
	}
	workdayCache.m[key] = workdayCached{people: people, at: now()}
	workdayCache.Unlock()
	return slices.Clone(people), nil
}

// read pages through Get_Workers.
func (w Workday) read(ctx context.Context, now func() time.Time) ([]Person, error) {
	size := w.PageSize
	if size <= 0 {
		size = 500
	}
	// Every page is read as of the same moment, so a hire or a termination
	// entered while we page cannot shift workers from one page to another.
	asOf := now().UTC().Format("2006-01-02T15:04:05Z")
	var (
		out          []Person
		seen         = map[string]int{} // worker id → the page it was on
		total, pages int
		listed       int
	)
	for page := 1; ; page++ {
		res, err := w.page(ctx, page, size, asOf)
		if err != nil {
			return nil, fmt.Errorf("workday get_workers: page %d: %w", page, err)
		}
		if page == 1 {
			total, pages = res.total, res.pages
			if pages > workdayMaxPgs || (total > 0) != (pages > 0) {
				return nil, fmt.Errorf("workday get_workers: Total_Results %d in Total_Pages %d does not add up", total, pages)
			}
		} else if res.total != total || res.pages != pages {
			return nil, fmt.Errorf("workday get_workers: page %d says %d workers in %d pages, page 1 said %d in %d", page, res.total, res.pages, total, pages)
		}
		if res.page != page {
			return nil, fmt.Errorf("workday get_workers: asked for page %d, was served page %d", page, res.page)
		}
		for _, p := range res.people {
			if first, dup := seen[p.id]; dup {
				return nil, fmt.Errorf("workday get_workers: worker %s served on page %d and again on page %d", p.id, first, page)
			}
			seen[p.id] = page
			listed++
			if p.person.Status != "" {
				out = append(out, p.person)
			}
		}
		if page >= pages {
			break
		}
	}
	if listed != total {
		return nil, fmt.Errorf("workday get_workers: %d workers served, Total_Results says %d", listed, total)
	}
	return out, nil
}

type workdayWorker struct {
	id     string // as served, to find repeats
	person Person // Status "" = neither active nor terminated
}

type workdayPage struct {
	total, pages, page int
	people             []workdayWorker
}

// page asks for one page of workers, terminated ones included.
func (w Workday) page(ctx context.Context, page, size int, asOf string) (workdayPage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(getWorkersRequest(w.Username, w.Password, page, size, asOf)))
	if err != nil {
		return workdayPage{}, err
	}
	// Basic auth and the WS-Security header carry the same credentials:
	// Workday's SOAP endpoint reads the latter, gateways in front of it the former.
	req.SetBasicAuth(w.Username, w.Password)
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `""`)
	hc := w.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return workdayPage{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return workdayPage{}, fmt.Errorf("read: %w", err)
	}
	return parseGetWorkers(resp.StatusCode, resp.Header.Get("Content-Type"), body)
}

func getWorkersRequest(user, password string, page, size int, asOf string) []byte {
	esc := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="%s" xmlns:wd="%s">
  <env:Header>
    <wsse:Security env:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
      <wsse:UsernameToken>
        <wsse:Username>%s</wsse:Username>
        <wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">%s</wsse:Password>
      </wsse:UsernameToken>
    </wsse:Security>
  </env:Header>
  <env:Body>
    <wd:Get_Workers_Request>
      <wd:Request_Criteria>
        <wd:Exclude_Inactive_Workers>false</wd:Exclude_Inactive_Workers>
      </wd:Request_Criteria>
      <wd:Response_Filter>
        <wd:As_Of_Entry_DateTime>%s</wd:As_Of_Entry_DateTime>
        <wd:Page>%d</wd:Page>
        <wd:Count>%d</wd:Count>
      </wd:Response_Filter>
      <wd:Response_Group>
        <wd:Include_Reference>true</wd:Include_Reference>
        <wd:Include_Personal_Information>true</wd:Include_Personal_Information>
        <wd:Include_Employment_Information>true</wd:Include_Employment_Information>
      </wd:Response_Group>
    </wd:Get_Workers_Request>
  </env:Body>
</env:Envelope>
`, soapEnvNS, workdayNS, esc(user), esc(password), asOf, page, size)
}

// What Get_Workers answers, as far as the roster needs it. Pointers tell a
// missing element from an empty one.
type gwEnvelope struct {
	XMLName xml.Name `xml:"http://schemas.xmlsoap.org/soap/envelope/ Envelope"`
	Body    struct {
		Response *gwResponse `xml:"urn:com.workday/bsvc Get_Workers_Response"`
		Fault    *struct {
			Code   string `xml:"faultcode"`
			String string `xml:"faultstring"`
		} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault"`
	} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
}

type gwResponse struct {
	Results *struct {
		Total       *string `xml:"urn:com.workday/bsvc Total_Results"`
		Pages       *string `xml:"urn:com.workday/bsvc Total_Pages"`
		PageResults *string `xml:"urn:com.workday/bsvc Page_Results"`
		Page        *string `xml:"urn:com.workday/bsvc Page"`
	} `xml:"urn:com.workday/bsvc Response_Results"`
	Workers []gwWorker `xml:"urn:com.workday/bsvc Response_Data>Worker"`
}

type gwRef struct {
	Descriptor string `xml:"Descriptor,attr"`
	IDs        []struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"ID"`
}

func (r gwRef) id(typ string) string {
	for _, id := range r.IDs {
		if id.Type == typ {
			return strings.TrimSpace(id.Value)
		}
	}
	return ""
}

type gwWorker struct {
	Reference  *gwRef `xml:"Worker_Reference"`
	Descriptor string `xml:"Worker_Descriptor"`
	Data       *struct {
		UserID   string `xml:"User_ID"`
		Personal struct {
			Name struct {
				Formatted string `xml:"Formatted_Name,attr"`
			} `xml:"Name_Data>Legal_Name_Data>Name_Detail_Data"`
			Emails []struct {
				Address string  `xml:"Email_Address"`
				Types   []gwRef `xml:"Usage_Data>Type_Data>Type_Reference"`
			} `xml:"Contact_Data>Email_Address_Data"`
		} `xml:"Personal_Data"`
		Employment *struct {
			Status *struct {
				Active     *string `xml:"Active"`
				Terminated *string `xml:"Terminated"`
			} `xml:"Worker_Status_Data"`
			Jobs []struct {
				Primary string `xml:"Primary_Job,attr"`
				Manager gwRef  `xml:"Position_Data>Manager_as_of_last_detected_manager_change_Reference"`
			} `xml:"Worker_Job_Data"`
		} `xml:"Employment_Data"`
	} `xml:"Worker_Data"`
}

// parseGetWorkers reads one answer to Get_Workers_Request.
func parseGetWorkers(status int, contentType string, body []byte) (workdayPage, error) {
	var env gwEnvelope
	err := xml.Unmarshal(body, &env)
	if err == nil && env.Body.Fault != nil {
		return workdayPage{}, fmt.Errorf("HTTP %d, SOAP fault %s: %s", status, strings.TrimSpace(env.Body.Fault.Code), strings.TrimSpace(env.Body.Fault.String))
	}
	if status != http.StatusOK {
		return workdayPage{}, fmt.Errorf("HTTP %d (%s), not a Get_Workers response", status, contentType)
	}
	if err != nil {
		return workdayPage{}, fmt.Errorf("not a SOAP envelope (%s): %v", contentType, err)
	}
	r := env.Body.Response
	if r == nil {
		return workdayPage{}, errors.New("the SOAP body holds no wd:Get_Workers_Response")
	}
	if r.Results == nil {
		return workdayPage{}, errors.New("no wd:Response_Results")
	}
	var out workdayPage
	for _, f := range []struct {
		name string
		v    *string
		dst  *int
	}{{"Total_Results", r.Results.Total, &out.total}, {"Total_Pages", r.Results.Pages, &out.pages}, {"Page", r.Results.Page, &out.page}} {
		if f.v == nil {
			return workdayPage{}, fmt.Errorf("wd:Response_Results has no %s", f.name)
		}
		n, err := strconv.Atoi(strings.TrimSpace(*f.v))
		if err != nil || n < 0 {
			return workdayPage{}, fmt.Errorf("wd:Response_Results/%s %q is not a count", f.name, *f.v)
		}
		*f.dst = n
	}
	if r.Results.PageResults == nil || strings.TrimSpace(*r.Results.PageResults) != strconv.Itoa(len(r.Workers)) {
		return workdayPage{}, fmt.Errorf("wd:Page_Results does not say the %d workers served", len(r.Workers))
	}
	for i, w := range r.Workers {
		p, err := workdayPerson(w)
		if err != nil {
			return workdayPage{}, fmt.Errorf("worker %d of the page: %w", i+1, err)
		}
		out.people = append(out.people, p)
	}
	return out, nil
}

func workdayPerson(w gwWorker) (workdayWorker, error) {
	if w.Reference == nil {
		return workdayWorker{}, errors.New("no wd:Worker_Reference")
	}
	id := w.Reference.id("Employee_ID")
	if id == "" {
		id = w.Reference.id("Contingent_Worker_ID")
	}
	if id == "" {
		return workdayWorker{}, errors.New("wd:Worker_Reference has no Employee_ID or Contingent_Worker_ID")
	}
	if w.Data == nil || w.Data.Employment == nil || w.Data.Employment.Status == nil {
		return workdayWorker{}, fmt.Errorf("worker %s: no wd:Worker_Data/wd:Employment_Data/wd:Worker_Status_Data", id)
	}
	st := w.Data.Employment.Status
	active, err := workdayBool(st.Active)
	if err != nil {
		return workdayWorker{}, fmt.Errorf("worker %s: wd:Active: %w", id, err)
	}
	terminated, err := workdayBool(st.Terminated)
	if err != nil {
		return workdayWorker{}, fmt.Errorf("worker %s: wd:Terminated: %w", id, err)
	}
	p := Person{EmployeeID: id, Login: strings.TrimSpace(w.Data.UserID), Name: strings.TrimSpace(w.Data.Personal.Name.Formatted)}
	switch {
	case active && terminated:
		return workdayWorker{}, fmt.Errorf("worker %s: both Active and Terminated", id)
	case active:
		p.Status = Active
	case terminated:
		p.Status = Terminated
	}
	if p.Name == "" {
		p.Name = strings.TrimSpace(w.Descriptor)
	}
	for _, e := range w.Data.Personal.Emails {
		for _, t := range e.Types {
			if strings.EqualFold(t.id("Communication_Usage_Type_ID"), "WORK") && p.Email == "" {
				p.Email = strings.TrimSpace(e.Address)
			}
		}
	}
	for i, j := range w.Data.Employment.Jobs {
		if i == 0 || workdayTrue(j.Primary) {
			p.Manager = strings.TrimSpace(j.Manager.Descriptor)
			if p.Manager == "" {
				p.Manager = j.Manager.id("Employee_ID")
			}
		}
		if workdayTrue(j.Primary) {
			break
		}
	}
	return workdayWorker{id: id, person: p}, nil
}

// workdayBool reads an xsd:boolean that must be there; Workday writes "1"/"0".
func workdayBool(v *string) (bool, error) {
	if v == nil {
		return false, errors.New("missing")
	}
	switch strings.TrimSpace(*v) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", *v)
}

func workdayTrue(s string) bool { b, err := workdayBool(&s); return err == nil && b }
