package codec_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/offboard/offboard/internal/codec"
	"github.com/offboard/offboard/workflows"
)

type leaver struct {
	Name  string
	Email string
}

// farewell is a tiny workflow whose input, activity input and output and
// result all carry the leaver's email.
func farewell(ctx workflow.Context, l leaver) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var line string
	err := workflow.ExecuteActivity(ctx, farewellLine, l).Get(ctx, &line)
	return line, err
}

func farewellLine(_ context.Context, l leaver) (string, error) {
	return fmt.Sprintf("suspended %s <%s>", l.Name, l.Email), nil
}

// refuse fails with the email in its message, as a connector error might.
func refuse(_ workflow.Context, l leaver) (string, error) {
	return "", temporal.NewNonRetryableApplicationError("okta: suspend "+l.Email+": forbidden", "test", nil)
}

func TestEndToEndHistoryIsEncrypted(t *testing.T) {
	oldKey := newKey(t)
	old := keyring(t, map[string][]byte{"e2e-1": oldKey}, "e2e-1")
	dc, fc := codec.DataConverter(old), codec.FailureConverter(old)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var logs io.Writer = io.Discard
	if os.Getenv("OFFBOARD_DEVSERVER_LOGS") != "" {
		logs = os.Stderr
	}
	dev, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     temporalCLI(t),
		LogLevel:         "error",
		ClientOptions:    &client.Options{DataConverter: dc, FailureConverter: fc, Logger: quietLogger{}},
		SearchAttributes: workflows.SearchAttributes(),
		Stdout:           logs,
		Stderr:           logs,
	})
	require.NoError(t, err, "start Temporal dev server")
	t.Cleanup(func() { _ = dev.Stop() })
	c := dev.Client()

	const queue = "codec-e2e"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(farewell)
	w.RegisterWorkflow(refuse)
	w.RegisterActivity(farewellLine)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ada := leaver{Name: "Ada Lovelace", Email: email}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "deprovision-e2e-1001", TaskQueue: queue,
		Memo: map[string]any{"email": email},
	}, farewell, ada)
	require.NoError(t, err)
	var line string
	require.NoError(t, run.Get(ctx, &line), "the client with the codec decodes the result")
	assert.Equal(t, "suspended Ada Lovelace <"+email+">", line)

	failed, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "deprovision-e2e-1002", TaskQueue: queue}, refuse, ada)
	require.NoError(t, err)
	err = failed.Get(ctx, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "okta: suspend "+email, "the failure message decodes with the codec")

	// A client without the codec sees only what Temporal stores.
	raw, err := client.Dial(client.Options{HostPort: dev.FrontendHostPort(), Logger: quietLogger{}})
	require.NoError(t, err)
	t.Cleanup(raw.Close)

	for _, r := range []client.WorkflowRun{run, failed} {
		t.Run(r.GetID(), func(t *testing.T) {
			events := history(ctx, t, raw, r)
			require.NotEmpty(t, events)
			for _, ev := range events {
				b, err := proto.Marshal(ev)
				require.NoError(t, err)
				for _, secret := range []string{email, "ada.lovelace1001", "Ada Lovelace"} {
					assert.False(t, bytes.Contains(b, []byte(secret)),
						"event %d (%s) holds %q in plaintext", ev.GetEventId(), ev.GetEventType(), secret)
				}
			}
			// Not vacuous: the input really is there, sealed with the primary key.
			input := events[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
			require.Len(t, input, 1)
			assert.Equal(t, codec.Encoding, string(input[0].GetMetadata()[converter.MetadataEncoding]))
			assert.Equal(t, "e2e-1", string(input[0].GetMetadata()[codec.MetadataKeyID]))
		})
	}

	// The temporal CLI reads the run through the codec server, as the Web UI
	// does: a real client of the codec protocol.
	t.Run("temporal CLI through the codec server", func(t *testing.T) {
		const cliToken = "e2e-cli-token"
		srv := httptest.NewServer(codec.Handler(old, codec.HandlerOptions{TokenSHA256: []string{digest(cliToken)}}))
		t.Cleanup(srv.Close)
		show := func(extra ...string) string {
			args := append([]string{"workflow", "show", "--address", dev.FrontendHostPort(),
				"--workflow-id", run.GetID(), "--output", "json"}, extra...)
			out, err := exec.CommandContext(ctx, temporalCLI(t), args...).CombinedOutput()
			require.NoError(t, err, string(out))
			return string(out)
		}
		// -o json prints each payload's data as base64 of its JSON.
		input, err := json.Marshal(ada)
		require.NoError(t, err)
		result, err := json.Marshal(line)
		require.NoError(t, err)
		wantInput, wantResult := base64.StdEncoding.EncodeToString(input), base64.StdEncoding.EncodeToString(result)
		sealedMark := base64.StdEncoding.EncodeToString([]byte(codec.Encoding))

		decoded := show("--codec-endpoint", srv.URL, "--codec-auth", "Bearer "+cliToken)
		assert.Contains(t, decoded, wantInput, "the CLI shows the decrypted input")
		assert.Contains(t, decoded, wantResult, "and the decrypted result")
		assert.NotContains(t, decoded, sealedMark)

		stored := show()
		assert.NotContains(t, stored, wantInput)
		assert.NotContains(t, stored, wantResult)
		assert.Contains(t, stored, sealedMark, "without the codec server the CLI sees ciphertext")
	})

	// Without the codec the result cannot be read.
	var rawLine string
	err = raw.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, &rawLine)
	require.Error(t, err, "the default converter cannot read an encrypted result")
	assert.NotContains(t, rawLine, email)

	// The replayer with the codec replays the history; without it, it cannot.
	hist := &historypb.History{Events: history(ctx, t, raw, run)}
	replay := func(dc converter.DataConverter, fc converter.FailureConverter) error {
		rp, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: dc, FailureConverter: fc})
		require.NoError(t, err)
		rp.RegisterWorkflow(farewell)
		return rp.ReplayWorkflowHistory(quietLogger{}, hist)
	}
	require.NoError(t, replay(dc, fc), "replay with the codec")
	require.Error(t, replay(nil, nil), "replay without the codec cannot read the input")

	// After a rotation the old history still replays and new runs use the new key.
	rotated := keyring(t, map[string][]byte{"e2e-1": oldKey, "e2e-2": newKey(t)}, "e2e-2")
	rdc, rfc := codec.DataConverter(rotated), codec.FailureConverter(rotated)
	require.NoError(t, replay(rdc, rfc), "replay after the rotation")

	rc, err := client.Dial(client.Options{HostPort: dev.FrontendHostPort(), DataConverter: rdc, FailureConverter: rfc, Logger: quietLogger{}})
	require.NoError(t, err)
	t.Cleanup(rc.Close)
	rw := worker.New(rc, queue+"-rotated", worker.Options{})
	rw.RegisterWorkflow(farewell)
	rw.RegisterActivity(farewellLine)
	require.NoError(t, rw.Start())
	t.Cleanup(rw.Stop)
	next, err := rc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "deprovision-e2e-1003", TaskQueue: queue + "-rotated"}, farewell, ada)
	require.NoError(t, err)
	require.NoError(t, next.Get(ctx, &line))
	assert.Equal(t, "suspended Ada Lovelace <"+email+">", line)
	started := history(ctx, t, raw, next)[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	assert.Equal(t, "e2e-2", string(started[0].GetMetadata()[codec.MetadataKeyID]), "new runs use the new primary")
	var oldLine string
	require.NoError(t, rc.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, &oldLine), "old results still read")
	assert.Equal(t, line, oldLine)
}

// history reads every event of a run as stored, without decoding anything.
func history(ctx context.Context, t *testing.T, c client.Client, r client.WorkflowRun) []*historypb.HistoryEvent {
	t.Helper()
	it := c.GetWorkflowHistory(ctx, r.GetID(), r.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		events = append(events, ev)
	}
	return events
}

// temporalCLI is the CLI scripts/setup.sh builds into bin/; a missing one
// fails the test (a missing install must be visible, never skipped).
func temporalCLI(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test directory")
		dir = parent
	}
	path := filepath.Join(dir, "bin", "temporal")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Temporal CLI not found at %s: run scripts/setup.sh (make test does)", path)
	}
	return path
}

// quietLogger keeps the SDK's chatter out of test output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
