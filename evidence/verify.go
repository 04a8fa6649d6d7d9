package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// The kinds of verification failure, for errors.Is.
var (
	// ErrTampered: the evidence is not what was signed, or is malformed:
	// a bad signature, another key, a digest mismatch, a missing or extra
	// file, a history that is not a history.
	ErrTampered = errors.New("evidence does not verify")
	// ErrReplay: the evidence is intact but today's workflow code does not
	// replay its history (non-determinism, or a workflow no longer registered).
	ErrReplay = errors.New("history does not replay against the current workflow code")
	// ErrUsage: the command was given something it cannot use (a missing
	// directory, an unreadable key).
	ErrUsage = errors.New("usage")
)

// VerifyError says what failed and in which file.
type VerifyError struct {
	Kind error  // ErrTampered or ErrReplay
	File string // the file at fault, "" when none is
	Err  error
}

func (e *VerifyError) Error() string {
	msg := e.Kind.Error()
	if e.File != "" {
		msg += ": " + e.File
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrTampered) work.
func (e *VerifyError) Is(target error) bool { return target == e.Kind }

func (e *VerifyError) Unwrap() error { return e.Err }

func tampered(file, format string, args ...any) error {
	return &VerifyError{Kind: ErrTampered, File: file, Err: fmt.Errorf(format, args...)}
}

// Exit codes of `starter evidence`, documented in its usage.
const (
	ExitOK       = 0
	ExitTampered = 1 // evidence tampered with or invalid
	ExitUsage    = 2 // bad flags or arguments, unreadable key or directory
	ExitReplay   = 3 // intact, but the history does not replay against today's code
	ExitNotFound = 4 // no evidence archived for that person or run
	ExitFailure  = 5 // anything else: Temporal or the store could not be reached
)

// ExitCode maps an error from this package to the CLI's exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrReplay):
		return ExitReplay
	case errors.Is(err, ErrTampered):
		return ExitTampered
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case errors.Is(err, ErrNotExist):
		return ExitNotFound
	}
	return ExitFailure
}

// Verify checks one archived run in a local directory: the manifest's
// signature under pub, that the directory holds exactly the files the
// manifest lists and each matches its digest, that the receipts are the ones
// the history holds, and that the history replays against today's workflow
// code. The first failure is returned as a *VerifyError naming the file.
// An encrypted history needs the codec's converters (WithConverters); without
// them Verify says so (ErrUsage) after the signature and digests check out.
func Verify(dir string, pub ed25519.PublicKey, opts ...Option) error {
	m, err := verifyManifest(dir, pub)
	if err != nil {
		return err
	}
	content, err := verifyFiles(dir, m)
	if err != nil {
		return err
	}
	hist, err := UnmarshalHistory(content[HistoryFile])
	if err != nil {
		return tampered(HistoryFile, "not a Temporal history: %v", err)
	}
	if err := checkHistory(hist, m); err != nil {
		return err
	}
	o := optionsOf(opts)
	if !o.custom {
		if id, ok := encryptedInput(hist); ok {
			return fmt.Errorf("%w: %s is encrypted (codec key %q): verify with the codec keys (--config naming the codec section)", ErrUsage, HistoryFile, id)
		}
	}
	x, err := Extract(hist.GetEvents(), opts...)
	if err != nil {
		return tampered(HistoryFile, "%v", err)
	}
	want, err := CanonicalJSON(receiptsDoc{WorkflowID: m.WorkflowID, RunID: m.RunID, Source: x.Source, Receipts: x.Receipts})
	if err != nil {
		return err
	}
	if !bytes.Equal(want, content[ReceiptsFile]) {
		return tampered(ReceiptsFile, "the receipts are not the ones history.json holds")
	}
	return Replay(hist, m.WorkflowID, m.RunID, opts...)
}

// encryptedInput reports whether the run's input is an encrypted payload.
func encryptedInput(hist *historypb.History) (string, bool) {
	in := hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(in) == 0 {
		return "", false
	}
	return encryptedPayload(in[0])
}

// Replay runs the history through today's workflow code, decoding payloads
// with the given converters (WithConverters) when they are encrypted.
func Replay(hist *historypb.History, workflowID, runID string, opts ...Option) error {
	o := optionsOf(opts)
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: o.dc, FailureConverter: o.fc})
	if err != nil {
		return fmt.Errorf("evidence: replayer: %w", err)
	}
	RegisterWorkflows(r)
	quiet := log.NewStructuredLogger(slog.New(slog.DiscardHandler))
	err = r.ReplayWorkflowHistoryWithOptions(quiet, hist, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: workflowID, RunID: runID},
	})
	if err != nil {
		return &VerifyError{Kind: ErrReplay, File: HistoryFile, Err: err}
	}
	return nil
}

func verifyManifest(dir string, pub ed25519.PublicKey) (Manifest, error) {
	var m Manifest
	if len(pub) != ed25519.PublicKeySize {
		return m, fmt.Errorf("%w: no Ed25519 public key", ErrUsage)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return m, fmt.Errorf("%w: %s is not a directory of evidence", ErrUsage, dir)
	}
	raw, err := readRegular(filepath.Join(dir, ManifestFile), MaxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return m, tampered(ManifestFile, "missing")
	}
	if err != nil {
		return m, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, tampered(ManifestFile, "not a manifest: %v", err)
	}
	// The file must be exactly the canonical form of what it says, so no
	// byte can change without changing the signed content.
	canon, err := CanonicalJSON(m)
	if err != nil || !bytes.Equal(append(canon, '\n'), raw) {
		return m, tampered(ManifestFile, "not in canonical form")
	}
	if m.Format != FormatVersion {
		return m, tampered(ManifestFile, "format %d is not %d", m.Format, FormatVersion)
	}
	if want := KeyID(pub); m.KeyID != want {
		return m, tampered(ManifestFile, "signed by key %s, not by the given key %s", m.KeyID, want)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return m, tampered(ManifestFile, "signature is not base64")
	}
	body, err := m.Body()
	if err != nil {
		return m, err
	}
	if !ed25519.Verify(pub, body, sig) {
		return m, tampered(ManifestFile, "bad signature")
	}
	return m, nil
}

func verifyFiles(dir string, m Manifest) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	listed := map[string]FileDigest{}
	for _, f := range m.Files {
		listed[f.Name] = f
	}
	for _, name := range Files {
		if _, ok := listed[name]; !ok {
			return nil, tampered(ManifestFile, "does not list %s", name)
		}
	}
	for _, e := range entries {
		if e.Name() == ManifestFile {
			continue
		}
		if _, ok := listed[e.Name()]; !ok {
			return nil, tampered(e.Name(), "extra file, not in the manifest")
		}
	}
	content := map[string][]byte{}
	for _, f := range m.Files {
		if !slices.Contains(Files, f.Name) {
			return nil, tampered(f.Name, "listed in the manifest but not an evidence file")
		}
		b, err := readRegular(filepath.Join(dir, f.Name), MaxFileSize)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, tampered(f.Name, "missing")
		}
		if err != nil {
			return nil, err
		}
		if got := DigestFile(f.Name, b); got != f {
			return nil, tampered(f.Name, "SHA-256 %s (%d bytes) does not match the manifest's %s (%d bytes)", got.SHA256, got.Size, f.SHA256, f.Size)
		}
		content[f.Name] = b
	}
	return content, nil
}

// Limits on what verify reads: Temporal caps a history at 50 MB, and a
// manifest lists a handful of digests.
const (
	MaxFileSize     = 64 << 20
	MaxManifestSize = 1 << 20
)

// readRegular reads a regular file of at most max bytes. Anything else (a
// FIFO that would block forever, a device, a symlink, a directory, a file
// that is or grows too large) is refused as tampered: evidence is plain files.
func readRegular(path string, max int64) ([]byte, error) {
	name := filepath.Base(path)
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, tampered(name, "is not a regular file (%s)", st.Mode().Type())
	}
	if st.Size() > max {
		return nil, tampered(name, "is %d bytes, over the %d-byte limit", st.Size(), max)
	}
	// O_NONBLOCK: if a FIFO is swapped in after the Lstat, opening it does
	// not wait for a writer; the Stat of the open file then refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, tampered(name, "is not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("evidence: read %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, tampered(name, "is over the %d-byte limit", max)
	}
	return b, nil
}

// checkHistory: events numbered 1..n in order, closed as the manifest says.
func checkHistory(h *historypb.History, m Manifest) error {
	events := h.GetEvents()
	if len(events) == 0 {
		return tampered(HistoryFile, "no events")
	}
	if len(events) != m.Events {
		return tampered(HistoryFile, "%d events, the manifest says %d", len(events), m.Events)
	}
	for i, e := range events {
		if e.GetEventId() != int64(i+1) {
			return tampered(HistoryFile, "event %d has id %d: events are missing or out of order", i+1, e.GetEventId())
		}
	}
	if got := closeStatus(events[len(events)-1]); got != m.CloseStatus {
		return tampered(HistoryFile, "closes as %q, the manifest says %q", got, m.CloseStatus)
	}
	return nil
}
