// Package evidence archives what an auditor can check without trusting us:
// for each closed Deprovision run, the full Temporal history (the dialect of
// `temporal workflow show -o json`), the receipts, a report for people and a
// manifest of SHA-256 digests signed with Ed25519. Verify checks all of it and
// replays the history against today's workflow code.
//
// With payload encryption (internal/codec) history.json holds the payloads
// as Temporal stored them, encrypted: replaying it, with `starter evidence
// verify` or anything else, needs the codec keys. receipts.json and
// report.html are written decrypted, for people. See WithConverters.
//
// Layout of one archived run, in a Store:
//
//	<workflow-id>/<run-id>/history.json   protojson of history.v1.History, 2-space indent, trailing newline
//	<workflow-id>/<run-id>/receipts.json  canonical JSON (sorted keys, no insignificant whitespace)
//	<workflow-id>/<run-id>/report.html    self-contained HTML (inline CSS, no scripts, no network)
//	<workflow-id>/<run-id>/manifest.json  digests, run facts and the signature, canonical JSON; written last
package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
)

// File names of an archived run.
const (
	HistoryFile  = "history.json"
	ReceiptsFile = "receipts.json"
	ReportFile   = "report.html"
	ManifestFile = "manifest.json"
)

// Files lists every file a complete archive holds besides the manifest, in
// the order they are written.
var Files = []string{HistoryFile, ReceiptsFile, ReportFile}

// FormatVersion is the manifest format this code writes and verifies.
const FormatVersion = 1

// Manifest lists the files of one archived run with their digests, the facts
// an auditor and the summary need, and the signature over all of it.
type Manifest struct {
	Format       int          `json:"format"`
	WorkflowID   string       `json:"workflowId"`
	RunID        string       `json:"runId"`
	WorkflowType string       `json:"workflowType"`
	CloseStatus  string       `json:"closeStatus"` // completed, failed, terminated, timed_out, canceled, continued_as_new
	StartTime    time.Time    `json:"startTime"`
	CloseTime    time.Time    `json:"closeTime"`
	ArchivedAt   time.Time    `json:"archivedAt"`
	Events       int          `json:"events"`
	Files        []FileDigest `json:"files"`
	Facts        Facts        `json:"facts"`
	KeyID        string       `json:"keyId"`
	// Signature is base64 Ed25519 over the canonical JSON of the manifest
	// with this field empty (omitted).
	Signature string `json:"signature,omitempty"`
}

// FileDigest is one file's SHA-256 and size.
type FileDigest struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"` // hex
	Size   int64  `json:"size"`
}

// Facts are what the run showed at close, signed with the manifest so the
// summary reads only signed data.
type Facts struct {
	// Source is "result" when the facts come from the workflow's own result,
	// "history" when they were reconstructed from a run that did not complete.
	Source         string       `json:"source"`
	EmployeeID     string       `json:"employeeId"`
	Kind           string       `json:"kind"`
	Phase          string       `json:"phase"`
	EffectiveAt    time.Time    `json:"effectiveAt"`
	ContainedAt    time.Time    `json:"containedAt,omitzero"`
	SLABreached    bool         `json:"slaBreached"`
	Deadlines      []SLAFact    `json:"deadlines"`
	Controls       int          `json:"controls"`
	OpenExceptions []string     `json:"openExceptions"` // control ids that had failed for good at close
	Waivers        []WaiverFact `json:"waivers"`
	LegalHold      *HoldFact    `json:"legalHold,omitempty"` // a hold still in force at close
	Drift          int          `json:"drift"`
}

// SLAFact is one phase's deadline.
type SLAFact struct {
	Phase    string    `json:"phase"`
	Due      time.Time `json:"due"`
	MetAt    time.Time `json:"metAt,omitzero"`
	Breached bool      `json:"breached"`
}

// WaiverFact is one accepted risk.
type WaiverFact struct {
	Control   string    `json:"control"`
	By        string    `json:"by"`
	Reason    string    `json:"reason"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// HoldFact is a legal hold in force.
type HoldFact struct {
	By      string    `json:"by"`
	CaseRef string    `json:"caseRef"`
	Since   time.Time `json:"since,omitzero"`
}

// Run names one workflow run.
type Run struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
}

func (r Run) String() string { return r.WorkflowID + "/" + r.RunID }

// ErrNotClosed is returned by Archive for a run that is still open: its
// history is not complete yet.
var ErrNotClosed = errors.New("evidence: the run is still open")

// Archive fetches the complete history of one closed run and writes its
// evidence to the store: history, receipts, report, then the signed manifest.
// A run that already has a manifest is left as it is and its manifest
// returned, so Archive can be repeated after a crash at any point. With
// encrypted payloads pass WithConverters: history.json stays encrypted, the
// receipts and the report are written decrypted.
func Archive(ctx context.Context, c client.Client, workflowID, runID string, store Store, key ed25519.PrivateKey, keyID string, opts ...Option) (Manifest, error) {
	if runID == "" {
		return Manifest{}, errors.New("evidence: archive needs a run id (a workflow id names many runs)")
	}
	run := Run{WorkflowID: workflowID, RunID: runID}
	if m, ok, err := existing(ctx, store, run); err != nil || ok {
		return m, err
	}
	events, err := fetchHistory(ctx, c, workflowID, runID)
	if err != nil {
		return Manifest{}, err
	}
	b, err := Build(run, events, time.Now(), key, keyID, opts...)
	if err != nil {
		return Manifest{}, err
	}
	if err := b.Write(ctx, store); err != nil {
		return Manifest{}, err
	}
	return b.Manifest, nil
}

// existing returns the manifest already in the store, if any.
func existing(ctx context.Context, store Store, run Run) (Manifest, bool, error) {
	raw, err := store.Get(ctx, run, ManifestFile)
	if errors.Is(err, ErrNotExist) {
		return Manifest{}, false, nil
	}
	if err != nil {
		return Manifest{}, false, fmt.Errorf("evidence: %s: %w", run, err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Manifest{}, false, fmt.Errorf("evidence: %s: existing manifest is not JSON: %w", run, err)
	}
	return m, true, nil
}

func fetchHistory(ctx context.Context, c client.Client, workflowID, runID string) ([]*historypb.HistoryEvent, error) {
	iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			return nil, fmt.Errorf("evidence: history of %s/%s: %w", workflowID, runID, err)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("evidence: history of %s/%s is empty", workflowID, runID)
	}
	if closeStatus(events[len(events)-1]) == "" {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotClosed, workflowID, runID)
	}
	return events, nil
}

// Bundle is one run's evidence, built but not yet written.
type Bundle struct {
	Run      Run
	Content  map[string][]byte // file name → bytes, manifest excluded
	Manifest Manifest
}

// Build makes the evidence of a closed run from its history events.
func Build(run Run, events []*historypb.HistoryEvent, now time.Time, key ed25519.PrivateKey, keyID string, opts ...Option) (Bundle, error) {
	if len(events) == 0 || closeStatus(events[len(events)-1]) == "" {
		return Bundle{}, fmt.Errorf("%w: %s", ErrNotClosed, run)
	}
	hist, err := MarshalHistory(events)
	if err != nil {
		return Bundle{}, err
	}
	facts, err := Extract(events, opts...)
	if err != nil {
		return Bundle{}, fmt.Errorf("evidence: %s: %w", run, err)
	}
	receipts, err := CanonicalJSON(receiptsDoc{WorkflowID: run.WorkflowID, RunID: run.RunID, Source: facts.Source, Receipts: facts.Receipts})
	if err != nil {
		return Bundle{}, err
	}
	first, last := events[0], events[len(events)-1]
	m := Manifest{
		Format:       FormatVersion,
		WorkflowID:   run.WorkflowID,
		RunID:        run.RunID,
		WorkflowType: first.GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName(),
		CloseStatus:  closeStatus(last),
		StartTime:    first.GetEventTime().AsTime().UTC(),
		CloseTime:    last.GetEventTime().AsTime().UTC(),
		ArchivedAt:   now.UTC().Truncate(time.Millisecond),
		Events:       len(events),
		Facts:        facts.facts(),
		KeyID:        keyID,
	}
	report, err := RenderReport(m, facts)
	if err != nil {
		return Bundle{}, err
	}
	content := map[string][]byte{HistoryFile: hist, ReceiptsFile: receipts, ReportFile: report}
	for _, name := range Files {
		m.Files = append(m.Files, DigestFile(name, content[name]))
	}
	if err := m.Sign(key); err != nil {
		return Bundle{}, err
	}
	return Bundle{Run: run, Content: content, Manifest: m}, nil
}

// Write puts every file, then the manifest: a crash part-way leaves no
// manifest, and the next Archive writes everything again.
func (b Bundle) Write(ctx context.Context, store Store) error {
	for _, name := range Files {
		if err := store.Put(ctx, b.Run, name, b.Content[name]); err != nil {
			return fmt.Errorf("evidence: %s: write %s: %w", b.Run, name, err)
		}
	}
	raw, err := CanonicalJSON(b.Manifest)
	if err != nil {
		return err
	}
	if err := store.Put(ctx, b.Run, ManifestFile, append(raw, '\n')); err != nil {
		return fmt.Errorf("evidence: %s: write %s: %w", b.Run, ManifestFile, err)
	}
	return nil
}

type receiptsDoc struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	Source     string `json:"source"`
	Receipts   any    `json:"receipts"`
}

// MarshalHistory writes events exactly as `temporal workflow show -o json`
// does (CLI v1.x: temporalproto's protojson, two-space indent, payloads not
// shortened, a trailing newline), so the SDK replayer and the CLI read it.
func MarshalHistory(events []*historypb.HistoryEvent) ([]byte, error) {
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
	if err != nil {
		return nil, fmt.Errorf("evidence: marshal history: %w", err)
	}
	return append(b, '\n'), nil
}

// UnmarshalHistory reads history.json.
func UnmarshalHistory(b []byte) (*historypb.History, error) {
	h := &historypb.History{}
	if err := (temporalproto.CustomJSONUnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, h); err != nil {
		return nil, err
	}
	return h, nil
}

func closeStatus(e *historypb.HistoryEvent) string {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		return "completed"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		return "failed"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		return "terminated"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
		return "timed_out"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		return "canceled"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		return "continued_as_new"
	}
	return ""
}

// DigestFile is the manifest entry for one file.
func DigestFile(name string, b []byte) FileDigest {
	sum := sha256.Sum256(b)
	return FileDigest{Name: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

// Body is the canonical JSON the signature covers: the manifest without its signature.
func (m Manifest) Body() ([]byte, error) {
	m.Signature = ""
	return CanonicalJSON(m)
}

// Sign sets KeyID's signature over the manifest body.
func (m *Manifest) Sign(key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("evidence: no Ed25519 signing key")
	}
	body, err := m.Body()
	if err != nil {
		return err
	}
	m.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))
	return nil
}

// CanonicalJSON encodes v as JSON with object keys sorted (by byte order),
// no insignificant whitespace, no HTML escaping, and numbers as written.
func CanonicalJSON(v any) ([]byte, error) {
	raw, err := marshalNoEscape(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	// encoding/json writes map keys sorted.
	return marshalNoEscape(generic)
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
