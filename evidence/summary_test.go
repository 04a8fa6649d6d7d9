package evidence_test

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/evidence"
)

var t0 = time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)

// manifestOf is a run effective at t0+day, contained after ttc (0: never).
func manifestOf(id string, day int, ttc time.Duration, breached bool) evidence.Manifest {
	eff := t0.Add(time.Duration(day) * 24 * time.Hour)
	m := evidence.Manifest{WorkflowID: "deprovision-" + id, RunID: "r-" + id, CloseStatus: "completed", StartTime: eff, CloseTime: eff.Add(time.Hour),
		Facts: evidence.Facts{EmployeeID: id, Kind: "termination", EffectiveAt: eff, OpenExceptions: []string{}, Waivers: []evidence.WaiverFact{}}}
	c := evidence.SLAFact{Phase: "containment", Due: eff.Add(15 * time.Minute), Breached: breached}
	if ttc > 0 {
		m.Facts.ContainedAt = eff.Add(ttc)
		c.MetAt = m.Facts.ContainedAt
	}
	m.Facts.Deadlines = []evidence.SLAFact{c, {Phase: "credentials", Due: eff.Add(24 * time.Hour), MetAt: eff.Add(2 * time.Hour)}}
	return m
}

func TestSummarizeMath(t *testing.T) {
	ms := []evidence.Manifest{
		manifestOf("E1", 0, 1*time.Minute, false),
		manifestOf("E2", 1, 2*time.Minute, false),
		manifestOf("E3", 2, 3*time.Minute, false),
		manifestOf("E4", 3, 20*time.Minute, true), // contained late
		manifestOf("E5", 4, 0, true),              // never contained
		manifestOf("E6", 40, time.Minute, false),  // outside the period
	}
	ms[4].CloseStatus = "terminated"
	ms[4].Facts.OpenExceptions = []string{"okta/suspend"}
	ms[4].Facts.LegalHold = &evidence.HoldFact{By: "legal@x", CaseRef: "CASE-1"}
	ms[4].Facts.Deadlines = ms[4].Facts.Deadlines[:1] // never reached removal
	ms[1].Facts.Kind = "role_change"
	ms[2].Facts.Waivers = []evidence.WaiverFact{
		{Control: "aws/deny_all", By: "sec@x", Reason: "break-glass", ExpiresAt: t0.Add(60 * 24 * time.Hour)},
		{Control: "scim/deactivate", By: "sec@x", Reason: "vendor down", ExpiresAt: t0.Add(2 * 24 * time.Hour)}, // expired by To
	}
	// E3 started a minute after its effective time: time to contain counts from the start.
	ms[2].StartTime = ms[2].Facts.EffectiveAt.Add(time.Minute)

	s := evidence.Summarize(ms, t0, t0.Add(30*24*time.Hour))
	assert.Equal(t, 5, s.Runs)
	assert.Equal(t, 4, s.Terminations, "role changes are not terminations")
	assert.Equal(t, map[string]int{"completed": 4, "terminated": 1}, s.ByClose)

	require.Len(t, s.SLAs, 2)
	assert.Equal(t, evidence.SLAShare{Phase: "containment", Met: 3, Missed: 2}, s.SLAs[0])
	assert.InDelta(t, 0.6, s.SLAs[0].Share(), 1e-9)
	assert.Equal(t, evidence.SLAShare{Phase: "credentials", Met: 4, Missed: 0}, s.SLAs[1])
	assert.InDelta(t, 1.0, s.SLAs[1].Share(), 1e-9)

	// Contained: 1m, 2m, 2m (3m from the effective time, 2m from the start), 20m.
	assert.Equal(t, 4, s.TimeToContain.Count)
	assert.Equal(t, 2*time.Minute, s.TimeToContain.Median, "mean of the two middle values")
	assert.Equal(t, 20*time.Minute, s.TimeToContain.P95, "nearest rank: ceil(0.95*4) = 4th")
	assert.Equal(t, 20*time.Minute, s.TimeToContain.Max)

	require.Len(t, s.Exceptions, 1)
	assert.Equal(t, "okta/suspend", s.Exceptions[0].What)
	require.Len(t, s.Waivers, 1, "only the waiver still in force at the period's end")
	assert.Contains(t, s.Waivers[0].What, "aws/deny_all")
	require.Len(t, s.LegalHolds, 1)
	assert.Equal(t, "CASE-1", s.LegalHolds[0].What)
	assert.Len(t, s.Points, 5)
}

func TestSummaryStatsOddAndEmpty(t *testing.T) {
	var ms []evidence.Manifest
	for i, m := range []int{5, 1, 3, 2, 4, 9, 7, 8, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21} {
		ms = append(ms, manifestOf("E"+string(rune('a'+i)), i, time.Duration(m)*time.Second, false))
	}
	s := evidence.Summarize(ms, time.Time{}, time.Time{})
	assert.Equal(t, 21, s.TimeToContain.Count)
	assert.Equal(t, 11*time.Second, s.TimeToContain.Median)
	assert.Equal(t, 20*time.Second, s.TimeToContain.P95, "ceil(0.95*21) = 20th smallest")

	empty := evidence.Summarize(nil, t0, t0.Add(time.Hour))
	assert.Equal(t, 0, empty.Runs)
	assert.Empty(t, empty.SLAs)
	assert.True(t, math.IsNaN(evidence.SLAShare{}.Share()))
	var buf bytes.Buffer
	require.NoError(t, empty.WriteHTML(&buf))
	assert.Contains(t, buf.String(), "No run in this period")
}

func TestSummaryRenderings(t *testing.T) {
	s := evidence.Summarize([]evidence.Manifest{
		manifestOf("E1", 0, time.Minute, false),
		manifestOf("E2", 1, 20*time.Minute, true),
	}, t0, t0.Add(7*24*time.Hour))

	var table bytes.Buffer
	require.NoError(t, s.WriteTable(&table))
	assert.Contains(t, table.String(), "Terminations")
	assert.Regexp(t, `containment SLA met\s+50\.0%`, table.String())
	assert.Regexp(t, `Time to contain, median\s+10m30s`, table.String())

	var out bytes.Buffer
	require.NoError(t, s.WriteCSV(&out))
	rows, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, []string{"metric", "key", "value"}, rows[0])
	assert.Contains(t, rows, []string{"sla_met_share", "containment", "0.5000"})
	assert.Contains(t, rows, []string{"terminations", "", "2"})
	assert.Contains(t, rows, []string{"time_to_contain_median_seconds", "", "630.000"})

	var page bytes.Buffer
	require.NoError(t, s.WriteHTML(&page))
	html := page.String()
	assert.Contains(t, html, "<svg")
	assert.Equal(t, 2, strings.Count(html, "<rect "), "one bar per run")
	assert.Contains(t, html, `class="bad"`, "the late run is red")
	assert.NotContains(t, html, "<script")
	writeArtifact(t, "summary.html", page.Bytes())
}

// writeArtifact keeps a rendered page for people to look at when
// OFFBOARD_ARTIFACTS names a directory.
func writeArtifact(t *testing.T, name string, b []byte) {
	if dir := os.Getenv("OFFBOARD_ARTIFACTS"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
}

// The summary reads the signed manifests of a store.
func TestLoadManifestsFromAStore(t *testing.T) {
	f := getFixture(t)
	ms, err := evidence.LoadManifests(t.Context(), f.archived)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	s := evidence.Summarize(ms, time.Time{}, time.Time{})
	assert.Equal(t, 2, s.Terminations)
	assert.Equal(t, 1, len(s.LegalHolds), "the terminated run's hold")
	require.NotEmpty(t, s.SLAs)
	assert.Equal(t, "containment", s.SLAs[0].Phase)
	assert.Equal(t, 2, s.SLAs[0].Met)
}
