package evidence_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/offboard/offboard/evidence"
)

// recordHistory writes a run's history to testdata/histories/<name>.json
// for workflows' TestReplayHistories, when OFFBOARD_RECORD_HISTORIES=1.
func recordHistory(t *testing.T, c client.Client, workflowID, runID, name string) {
	t.Helper()
	if os.Getenv("OFFBOARD_RECORD_HISTORIES") != "1" {
		return
	}
	it := c.GetWorkflowHistory(t.Context(), workflowID, runID, false, 0)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		events = append(events, e)
	}
	b, err := evidence.MarshalHistory(events)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "testdata", "histories", name+".json"), b, 0o644))
}
