package hris

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	for _, r := range res.Rejected {
		if r.Err == nil || !errors.Is(r.Err, ErrMalformed) && !errors.Is(r.Err, ErrLookup) && !errors.Is(r.Err, ErrUnknownEmployee) {
			t.Fatalf("rejected item with an unclassified error: %+v", r)
		}
	}
	for _, ev := range res.Events {
		term := ev.Termination
		if term.EventID == "" || term.EmployeeID == "" || term.Source == "" {
			t.Fatalf("event without id, employee or source: %+v", ev)
		}
		if id, err := NormalizeEmployeeID(term.EmployeeID); err != nil || id != term.EmployeeID {
			t.Fatalf("event for employee %q, which is not a normalised id (%v)", term.EmployeeID, err)
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

// FuzzNormalizeEmployeeID: an accepted id is the trimmed, upper-cased input,
// made only of the allowed bytes, short enough, and normalising it again
// changes nothing; the case of the input never matters.
func FuzzNormalizeEmployeeID(f *testing.F) {
	for _, s := range []string{"E1001", " e1001", "Müller-7", "E\x001", "-x", "C-1234.a_b", strings.Repeat("9", 65), "\u00a0E1\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, err := NormalizeEmployeeID(in)
		lower, lerr := NormalizeEmployeeID(strings.ToLower(in))
		if err != nil {
			if id != "" {
				t.Fatalf("refused %q but returned %q", in, id)
			}
			return
		}
		if id != strings.ToUpper(strings.TrimSpace(in)) {
			t.Fatalf("%q normalised to %q", in, id)
		}
		if len(id) == 0 || len(id) > MaxEmployeeIDLen {
			t.Fatalf("%q: length %d", in, len(id))
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') || i == 0 && (c == '-' || c == '_' || c == '.') {
				t.Fatalf("%q normalised to %q with byte %q at %d", in, id, c, i)
			}
		}
		if again, err := NormalizeEmployeeID(id); err != nil || again != id {
			t.Fatalf("%q: not idempotent: %q, %v", id, again, err)
		}
		if lerr != nil || lower != id {
			t.Fatalf("%q and its lower case differ: %q vs %q (%v)", in, id, lower, lerr)
		}
	})
}
