package hris

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seeds adds every fixture of a source to the corpus.
func seeds(f *testing.F, dir string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in testdata/%s", dir)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkResult holds for every parser: either a classified error, or events
// the relay can act on without further checks.
func checkResult(t *testing.T, res Result, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLookup) {
			t.Fatalf("unclassified error: %v", err)
		}
		return
	}
	for _, ev := range res.Events {
		term := ev.Termination
		if term.EventID == "" || term.EmployeeID == "" || term.Source == "" {
			t.Fatalf("event without id, employee or source: %+v", ev)
		}
		switch ev.Action {
		case ActionStart:
			if verr := term.Validate(); verr != nil {
				t.Fatalf("start event fails Validate: %v (%+v)", verr, term)
			}
		case ActionRescind, ActionRehire:
		default:
			t.Fatalf("unknown action %q", ev.Action)
		}
	}
}

func FuzzBambooHR(f *testing.F) {
	seeds(f, "bamboohr")
	f.Add([]byte(`{"employees":[{"id":1,"fields":{"Status":{"value":{"value":"Inactive"}},"Work Email":"a@b","Termination Date":"0001-01-01"}}]}`))
	api := newFakeBamboo()
	api.emps["1002"] = BambooEmployee{ID: "1002", Status: "Active", JobTitle: "analyst", WorkEmail: "x@example.test"}
	p := BambooHR{API: api, Now: func() time.Time { return time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC) }}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := p.Parse(t.Context(), body)
		checkResult(t, res, err)
		res, err = p.ParseForm(t.Context(), body)
		checkResult(t, res, err)
	})
}

func FuzzWorkday(f *testing.F) {
	seeds(f, "workday")
	p := Workday{Now: func() time.Time { return time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC) }}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := p.ParseXML(body)
		checkResult(t, res, err)
		res, err = p.ParseJSON(body)
		checkResult(t, res, err)
	})
}

func FuzzGeneric(f *testing.F) {
	seeds(f, "generic")
	p := Generic{Now: func() time.Time { return time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC) }}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := p.Parse(body)
		checkResult(t, res, err)
	})
}
