package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/codec"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/internal/targets"
	"github.com/offboard/offboard/internal/tclient"
	"github.com/offboard/offboard/internal/workerapp"
	"github.com/offboard/offboard/workflows"
)

// TestCodec runs a termination with payload encryption on, as a configuration
// with a codec section sets it up: the client and worker encrypt, Temporal
// stores only ciphertext, and the relay's duplicate check and the evidence
// archive still read the payloads through the codec.
func TestCodec(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	keyFile := filepath.Join(t.TempDir(), "codec.key")
	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600))
	s.config(defaultPolicy()) // sets the secrets' environment
	yaml := s.configYAML(defaultPolicy()) + fmt.Sprintf("codec:\n  keys: [{id: it-1, file: %s}]\n  primary: it-1\n", keyFile)
	cfg, err := config.Parse([]byte(yaml), "codec.yaml")
	require.NoError(t, err)
	require.True(t, cfg.Codec.Enabled())

	c, err := tclient.Dial(cfg, nil)
	require.NoError(t, err)
	defer c.Close()
	tgts, err := targets.Build(ctx, cfg)
	require.NoError(t, err)
	wctx, stopWorker := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- workerapp.RunWith(wctx, cfg, c, tgts, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { stopWorker(); require.NoError(t, <-done) })

	p := s.people[0]
	term := s.termination(p, nil)
	started, err := runs.Start(ctx, c, term)
	require.NoError(t, err)
	require.False(t, started.Duplicate)

	var res workflows.Result
	require.NoError(t, c.GetWorkflow(ctx, started.WorkflowID, started.RunID).Get(ctx, &res))
	require.Equal(t, workflows.PhaseCompleted, res.Phase)
	outcomes := map[string]control.Outcome{}
	for _, r := range res.Receipts {
		outcomes[r.ControlID] = r.Outcome
	}
	require.Equal(t, control.Observed, outcomes["okta/suspend"])
	_, inOkta := s.okta.User(p.Email)
	require.False(t, inOkta, "deleted from Okta after retention")

	// The redelivered event: the memo is encrypted, and still read.
	again, err := runs.Start(ctx, c, term)
	require.NoError(t, err)
	require.True(t, again.Duplicate)
	require.True(t, again.SameEvent, "the memo's event id is decoded with the codec: %+v", again)
	require.Equal(t, started.RunID, again.RunID)

	// Temporal's raw view, through a client without the codec.
	desc, err := s.temporal.Client.DescribeWorkflow(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	memo := desc.RawResponse.GetWorkflowExecutionInfo().GetMemo().GetFields()["eventId"]
	require.Equal(t, codec.Encoding, string(memo.GetMetadata()["encoding"]), "the memo is encrypted")
	require.NotContains(t, string(memo.GetData()), term.EventID)

	iter := s.temporal.Client.GetWorkflowHistory(ctx, started.WorkflowID, started.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	events, payloadEvents, sawEmployeeID := 0, 0, false
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		raw, err := proto.Marshal(ev)
		require.NoError(t, err)
		require.False(t, bytes.Contains(raw, []byte(p.Email)), "event %d (%s) holds the employee's email in plaintext", ev.GetEventId(), ev.GetEventType())
		require.False(t, bytes.Contains(raw, []byte(p.Login)) && len(p.Login) > 4, "event %d (%s) holds the login in plaintext", ev.GetEventId(), ev.GetEventType())
		if bytes.Contains(raw, []byte(codec.Encoding)) {
			payloadEvents++
		}
		// The search is sound: what is not a payload (the employee id as a
		// search attribute) is found in the same bytes.
		sawEmployeeID = sawEmployeeID || bytes.Contains(raw, []byte(p.EmployeeID))
		events++
	}
	require.Greater(t, events, 10)
	require.Greater(t, payloadEvents, 5, "payload-carrying events are encrypted")
	require.True(t, sawEmployeeID, "plaintext metadata is visible to the same search")

	// Evidence: history.json as Temporal stored it, receipts decrypted.
	dc, fc, err := tclient.Converters(cfg)
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	store := evidence.Dir{Root: t.TempDir()}
	m, err := evidence.Archive(ctx, c, started.WorkflowID, started.RunID, store, priv, evidence.KeyID(pub), evidence.WithConverters(dc, fc))
	require.NoError(t, err)
	require.Equal(t, "result", m.Facts.Source)
	require.Equal(t, p.EmployeeID, m.Facts.EmployeeID)
	dir := filepath.Join(store.Root, started.WorkflowID, started.RunID)
	hist, err := os.ReadFile(filepath.Join(dir, evidence.HistoryFile))
	require.NoError(t, err)
	// protojson writes metadata values in base64: look for the key's name.
	require.True(t, strings.Contains(string(hist), `"`+codec.MetadataKeyID+`"`), "history.json keeps the encrypted payloads")
	require.False(t, strings.Contains(string(hist), p.Email), "history.json holds no plaintext email")
	receipts, err := os.ReadFile(filepath.Join(dir, evidence.ReceiptsFile))
	require.NoError(t, err)
	require.True(t, strings.Contains(string(receipts), `"okta/suspend"`), "receipts.json is written decrypted")
	report, err := os.ReadFile(filepath.Join(dir, evidence.ReportFile))
	require.NoError(t, err)
	require.True(t, strings.Contains(string(report), p.EmployeeID), "report.html is written decrypted")
	require.NoError(t, evidence.Verify(dir, pub, evidence.WithConverters(dc, fc)))
	err = evidence.Verify(dir, pub)
	require.ErrorIs(t, err, evidence.ErrUsage, "without the key the encrypted history cannot be checked")
	require.Contains(t, err.Error(), "encrypted")
}
