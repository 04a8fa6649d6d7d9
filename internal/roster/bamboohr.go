package roster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BambooHR reads BambooHR's employee directory (GET .../v1/employees/directory).
// The directory lists current employees only, and a company may leave some
// out of it: everyone it lists is active, and an account it cannot match is
// an orphan, an exception a person looks at, never a silent match. A leaver
// active again therefore shows as an orphan here, not as drift.
type BambooHR struct {
	BaseURL       string // https://api.bamboohr.com
	CompanyDomain string
	APIKey        string
	HTTP          *http.Client
}

// People lists the directory. Anything but a JSON directory with employees
// is an error: a roster read wrongly would make everyone an orphan.
func (b BambooHR) People(ctx context.Context) ([]Person, error) {
	base := strings.TrimRight(b.BaseURL, "/")
	if base == "" {
		base = "https://api.bamboohr.com"
	}
	u := base + "/api/gateway.php/" + url.PathEscape(b.CompanyDomain) + "/v1/employees/directory"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("bamboohr directory: %w", err)
	}
	req.SetBasicAuth(b.APIKey, "x")
	req.Header.Set("Accept", "application/json")
	hc := b.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bamboohr directory: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("bamboohr directory: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bamboohr directory: HTTP %d %s", resp.StatusCode, resp.Header.Get("X-BambooHR-Error-Message"))
	}
	var dir struct {
		Employees *[]struct {
			ID          json.RawMessage `json:"id"` // a string, or a number in some tenants
			DisplayName string          `json:"displayName"`
			WorkEmail   string          `json:"workEmail"`
			Supervisor  string          `json:"supervisor"`
		} `json:"employees"`
	}
	if err := json.Unmarshal(body, &dir); err != nil {
		return nil, fmt.Errorf("bamboohr directory: not the directory's JSON: %w", err)
	}
	if dir.Employees == nil {
		return nil, errors.New(`bamboohr directory: the answer has no "employees"`)
	}
	out := make([]Person, 0, len(*dir.Employees))
	for i, e := range *dir.Employees {
		id := strings.Trim(string(e.ID), `"`)
		if id == "" || id == "null" {
			return nil, fmt.Errorf("bamboohr directory: employee %d has no id", i)
		}
		out = append(out, Person{EmployeeID: id, Email: e.WorkEmail, Name: e.DisplayName, Status: Active, Manager: e.Supervisor})
	}
	return out, nil
}
