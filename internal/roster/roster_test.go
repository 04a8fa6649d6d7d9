package roster

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCSV(t *testing.T) {
	people, err := ParseCSV(strings.NewReader("employee_id,email,login,status,manager\nE1,a@x.test,a,active,m@x.test\nE2, B@X.test ,,Terminated,\n"), "t.csv")
	require.NoError(t, err)
	require.Len(t, people, 2)
	assert.Equal(t, Person{EmployeeID: "E2", Email: "B@X.test", Status: Terminated}, people[1])

	x := NewIndex(people)
	p, ok := x.Match("", "b@x.test", "")
	require.True(t, ok)
	assert.Equal(t, "E2", p.EmployeeID)
	p, ok = x.Match("", "", "a@x.test") // a login that is an e-mail
	require.True(t, ok)
	assert.Equal(t, "E1", p.EmployeeID)
	p, ok = x.Match("", "", "b") // the e-mail's local part
	require.True(t, ok)
	assert.Equal(t, "E2", p.EmployeeID)
	_, ok = x.Match("", "nobody@x.test", "nobody")
	assert.False(t, ok)
}

func TestParseCSVRefusesWhatItCannotRead(t *testing.T) {
	for name, in := range map[string]string{
		"no status column": "employee_id,email\nE1,a@x.test\n",
		"no employee id":   "employee_id,status\n,active\n",
		"unknown status":   "employee_id,status\nE1,on leave\n",
		"empty":            "",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(in), "t.csv")
			require.Error(t, err)
		})
	}
}

// A rehire's active row wins over the old terminated one, in either order.
func TestIndexPrefersActive(t *testing.T) {
	for _, people := range [][]Person{
		{{EmployeeID: "E1", Email: "a@x.test", Status: Terminated}, {EmployeeID: "E9", Email: "a@x.test", Status: Active}},
		{{EmployeeID: "E9", Email: "a@x.test", Status: Active}, {EmployeeID: "E1", Email: "a@x.test", Status: Terminated}},
	} {
		p, ok := NewIndex(people).Match("", "a@x.test", "")
		require.True(t, ok)
		assert.Equal(t, Active, p.Status)
	}
}
