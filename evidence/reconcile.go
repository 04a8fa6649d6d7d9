package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// Signed reports (reconciliation now; attestation packs the same way) live
// in the store beside the runs, under <kind>/<id>/: the files, then
// report.manifest.json listing their digests, signed with the evidence key.
// The manifest has its own name so nothing reading run manifests
// (manifest.json) mistakes a report for a run.
const (
	ReportManifestFile = "report.manifest.json"
	ReconcileHTML      = "reconcile.html"
	ReconcileCSV       = "reconcile.csv"
	ReconcileJSON      = "reconcile.json"
)

// ReportManifest signs the files of one report.
type ReportManifest struct {
	Format      int          `json:"format"`
	Kind        string       `json:"kind"` // "reconcile"
	ID          string       `json:"id"`
	GeneratedAt time.Time    `json:"generatedAt"`
	Files       []FileDigest `json:"files"`
	KeyID       string       `json:"keyId"`
	Signature   string       `json:"signature,omitempty"`
}

func (m ReportManifest) body() ([]byte, error) {
	m.Signature = ""
	return CanonicalJSON(m)
}

// ReportRun is where a report of kind and id is kept in a Store.
func ReportRun(kind, id string) Run { return Run{WorkflowID: kind, RunID: id} }

// WriteReport signs files (name → content) as a report and writes them, the
// manifest last. Writing the same report again writes the same bytes.
func WriteReport(ctx context.Context, store Store, key ed25519.PrivateKey, kind, id string, at time.Time, files map[string][]byte) (string, error) {
	m := ReportManifest{Format: FormatVersion, Kind: kind, ID: id, GeneratedAt: at.UTC(), KeyID: KeyID(key.Public().(ed25519.PublicKey))}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	run := ReportRun(kind, id)
	for _, n := range names {
		m.Files = append(m.Files, DigestFile(n, files[n]))
		if err := store.Put(ctx, run, n, files[n]); err != nil {
			return "", fmt.Errorf("evidence: %s report %s: write %s: %w", kind, id, n, err)
		}
	}
	body, err := m.body()
	if err != nil {
		return "", err
	}
	m.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))
	raw, err := CanonicalJSON(m)
	if err != nil {
		return "", err
	}
	if err := store.Put(ctx, run, ReportManifestFile, append(raw, '\n')); err != nil {
		return "", fmt.Errorf("evidence: %s report %s: write manifest: %w", kind, id, err)
	}
	return run.String(), nil
}

// ExportReport copies one report's files from a store into dir, where
// VerifyReport can check them.
func ExportReport(ctx context.Context, s Store, kind, id, dir string) error {
	return export(ctx, s, ReportRun(kind, id), ReportManifestFile, kind+" report "+id, dir)
}

// VerifyReport checks a report exported to dir: the manifest's signature
// under pub, that the directory holds exactly the listed files, and each
// file's digest. The first failure is a *VerifyError naming the file.
func VerifyReport(dir string, pub ed25519.PublicKey) (ReportManifest, error) {
	var m ReportManifest
	if len(pub) != ed25519.PublicKeySize {
		return m, fmt.Errorf("%w: no Ed25519 public key", ErrUsage)
	}
	raw, err := readRegular(filepath.Join(dir, ReportManifestFile), MaxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return m, tampered(ReportManifestFile, "missing")
	}
	if err != nil {
		return m, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, tampered(ReportManifestFile, "not a report manifest: %v", err)
	}
	if canon, err := CanonicalJSON(m); err != nil || !bytes.Equal(append(canon, '\n'), raw) {
		return m, tampered(ReportManifestFile, "not in canonical form")
	}
	if want := KeyID(pub); m.KeyID != want {
		return m, tampered(ReportManifestFile, "signed by key %s, not by the given key %s", m.KeyID, want)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	body, berr := m.body()
	if err != nil || berr != nil || !ed25519.Verify(pub, body, sig) {
		return m, tampered(ReportManifestFile, "bad signature")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return m, err
	}
	listed := map[string]FileDigest{}
	for _, f := range m.Files {
		listed[f.Name] = f
	}
	for _, e := range entries {
		if _, ok := listed[e.Name()]; !ok && e.Name() != ReportManifestFile {
			return m, tampered(e.Name(), "extra file, not in the manifest")
		}
	}
	for _, f := range m.Files {
		if f.Name != filepath.Base(f.Name) || f.Name == ReportManifestFile {
			return m, tampered(f.Name, "not a report file name")
		}
		b, err := readRegular(filepath.Join(dir, f.Name), MaxFileSize)
		if errors.Is(err, fs.ErrNotExist) {
			return m, tampered(f.Name, "missing")
		}
		if err != nil {
			return m, err
		}
		if got := DigestFile(f.Name, b); got != f {
			return m, tampered(f.Name, "SHA-256 %s (%d bytes) does not match the manifest's %s (%d bytes)", got.SHA256, got.Size, f.SHA256, f.Size)
		}
	}
	return m, nil
}

// ReconcileLeavers decides, for each leaver found active, against their
// Deprovision run: none ever ran (an exception, or offboarding started when
// policy says contain), one is running (in flight: it is working on it), or
// the last one closed (drift: a new run re-contains them, started the way
// the relay starts one, with an event id of this reconciliation so a retry
// is a duplicate, never a second run).
func (a *Activities) ReconcileLeavers(ctx context.Context, in workflows.LeaversInput) ([]workflows.LeaverOutcome, error) {
	if a.Client == nil {
		return nil, temporal.NewNonRetryableApplicationError("reconcile: this worker has no Temporal client for the evidence activities", "NoClient", nil)
	}
	byPerson := map[string][]activities.Finding{}
	var order []string
	for _, f := range in.Findings {
		if _, ok := byPerson[f.EmployeeID]; !ok {
			order = append(order, f.EmployeeID)
		}
		byPerson[f.EmployeeID] = append(byPerson[f.EmployeeID], f)
	}
	slices.Sort(order)
	out := make([]workflows.LeaverOutcome, 0, len(order))
	for _, emp := range order {
		fs := byPerson[emp]
		o := workflows.LeaverOutcome{EmployeeID: emp, WorkflowID: workflows.WorkflowID(emp)}
		desc, err := a.Client.DescribeWorkflow(ctx, o.WorkflowID, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			o.Outcome = workflows.OutcomeNeverOffboard
			o.WorkflowID = ""
			if !in.Contain {
				out = append(out, o)
				continue
			}
		case err != nil:
			return nil, fmt.Errorf("reconcile: describe %s: %w", o.WorkflowID, err)
		case desc.RawResponse.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			o.Outcome, o.RunID = workflows.OutcomeInFlight, desc.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId()
			out = append(out, o)
			continue
		}
		t := leaverTermination(in.ReconcileID, fs)
		// Re-containments count against the blast-radius guard like HR
		// terminations: a bad import that re-enables hundreds of leavers
		// starts runs that wait for security, not a mass removal.
		if in.GuardMax > 0 {
			adm := workflows.AdmissionFor("start", "reconcile", t, in.GuardMax, in.GuardWindow)
			adm.Key = "start|" + t.EmployeeID + "|" + t.EventID // the effective time is now: not part of the key
			v, err := runs.Admit(ctx, a.Client, adm)
			if err != nil {
				return nil, fmt.Errorf("reconcile: %s: %w", t.EmployeeID, err)
			}
			t.Quarantined = v.Quarantined
		}
		started, err := runs.Start(ctx, a.Client, t)
		if err == nil && t.Quarantined {
			started.Outcome += ", quarantined by the blast-radius guard: waits for security (starter release-quarantine)"
		}
		switch {
		case err != nil:
			o.Outcome, o.Detail = workflows.OutcomeStartFailed, err.Error()
		case o.Outcome == workflows.OutcomeNeverOffboard:
			o.Outcome, o.WorkflowID, o.RunID, o.Detail = workflows.OutcomeContained, started.WorkflowID, started.RunID, started.Outcome
		default:
			o.Outcome, o.RunID, o.Detail = workflows.OutcomeDrift, started.RunID, started.Outcome
		}
		out = append(out, o)
		activity.RecordHeartbeat(ctx)
	}
	return out, nil
}

func leaverTermination(reconcileID string, fs []activities.Finding) workflows.Termination {
	f := fs[0]
	t := workflows.Termination{
		EventID:     "reconcile-" + reconcileID + "-" + f.EmployeeID,
		Source:      "reconcile",
		EmployeeID:  f.EmployeeID,
		Kind:        workflows.KindTermination,
		EffectiveAt: time.Now().UTC(),
		Manager:     f.Manager,
		RequestedBy: "reconcile",
	}
	for _, x := range fs {
		t.Email, t.Name = cmpOr(t.Email, x.Email), cmpOr(t.Name, x.Name)
	}
	if t.Email == "" {
		t.Accounts = map[string]string{}
		for _, x := range fs {
			t.Accounts[x.Target] = x.Login
		}
	}
	return t
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// WriteReconcileReport renders the report (HTML, CSV, JSON), signs it and
// writes it to the evidence store; it returns where.
func (a *Activities) WriteReconcileReport(ctx context.Context, rep workflows.ReconcileReport) (string, error) {
	if err := a.noKey(); err != nil {
		return "", err
	}
	files, err := RenderReconcile(rep)
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError(err.Error(), "BadReport", err)
	}
	return WriteReport(ctx, a.Store, a.Key, "reconcile", rep.ID, rep.FinishedAt, files)
}

// RenderReconcile is the report's files.
func RenderReconcile(rep workflows.ReconcileReport) (map[string][]byte, error) {
	js, err := CanonicalJSON(rep)
	if err != nil {
		return nil, err
	}
	var c bytes.Buffer
	w := csv.NewWriter(&c)
	_ = w.Write([]string{"target", "kind", "account_id", "login", "email", "employee_id", "outcome", "owner", "due_at", "workflow_id", "action"})
	for _, it := range rep.Items {
		due := ""
		if !it.DueAt.IsZero() {
			due = it.DueAt.UTC().Format(time.RFC3339)
		}
		_ = w.Write([]string{it.Target, it.Kind, csvSafe(it.AccountID), csvSafe(it.Login), csvSafe(it.Email), csvSafe(it.EmployeeID), it.Outcome, csvSafe(it.Owner), due, it.WorkflowID, csvSafe(it.Action)})
	}
	_ = w.Write(nil)
	_ = w.Write([]string{"target", "kind", "accounts", "pages", "matched", "service_owned", "leaver_active", "orphans", "service_without_owner", "error"})
	for _, t := range rep.Targets {
		n := t.Counts
		_ = w.Write([]string{t.Name, t.Kind, strconv.Itoa(n.Accounts), strconv.Itoa(n.Pages), strconv.Itoa(n.Matched), strconv.Itoa(n.ServiceOwned),
			strconv.Itoa(n.LeaverActive), strconv.Itoa(n.Orphans), strconv.Itoa(n.ServiceNoOwner), csvSafe(t.Error)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, err
	}
	var h bytes.Buffer
	if err := reconcileTmpl.Execute(&h, rep); err != nil {
		return nil, fmt.Errorf("evidence: reconcile report: %w", err)
	}
	return map[string][]byte{ReconcileJSON: append(js, '\n'), ReconcileCSV: c.Bytes(), ReconcileHTML: h.Bytes()}, nil
}

// csvSafe keeps a spreadsheet from running a cell that came from a target
// system as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

var reconcileTmpl = template.Must(template.New("reconcile").Funcs(funcs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reconciliation {{.ID}}</title>
<style>` + reportCSS + `
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;font-size:13px}</style></head>
<body><main>
<h1>Accounts reconciled with HR</h1>
<p class="meta">Reconciliation <code>{{.ID}}</code>, {{ts .StartedAt}} to {{ts .FinishedAt}}; orphan policy <code>{{.Policy}}</code>.</p>
<h2>Per target</h2>
<table><tr><th>Target</th><th>Kind</th><th>Active accounts</th><th>Matched</th><th>Service (owned)</th><th>Leavers active</th><th>Orphans</th><th>Service without owner</th><th>Coverage</th></tr>
{{range .Targets}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td>{{.Counts.Accounts}}</td><td>{{.Counts.Matched}}</td><td>{{.Counts.ServiceOwned}}</td><td>{{.Counts.LeaverActive}}</td><td>{{.Counts.Orphans}}</td><td>{{.Counts.ServiceNoOwner}}</td><td>{{if .Error}}<b>{{.Error}}</b>{{else if .Done}}whole directory read{{else}}incomplete{{end}}</td></tr>
{{end}}</table>
<h2>Findings ({{len .Items}})</h2>
<p class="meta">{{range $k, $v := .FindingTally}}{{$k}}: {{$v}} &nbsp; {{end}}</p>
{{if .NotItemised}}<p><b>{{.NotItemised}} more findings are counted per target above but not itemised here (over the limit one reconciliation carries); resolve these and run it again.</b></p>{{end}}
<table><tr><th>Target</th><th>Finding</th><th>Account</th><th>HR</th><th>Outcome</th><th>Owner</th><th>Due</th><th>Act with</th></tr>
{{range .Items}}<tr><td>{{.Target}}</td><td>{{.Kind}}</td><td>{{.Login}}<br><small>{{.AccountID}}</small></td><td>{{.EmployeeID}}</td><td>{{.Outcome}}{{if .WorkflowID}}<br><small>{{.WorkflowID}}</small>{{end}}</td><td>{{.Owner}}</td><td>{{ts .DueAt}}</td><td><code>{{.Action}}</code></td></tr>
{{end}}</table>
</main></body></html>
`))

// EnsureProofSchedules creates the schedules of issue 14, or brings them up
// to date: Reconcile every interval, Attest for the quarter just ended (at
// 03:00 UTC on the first day of each quarter) and Drill quarterly (03:00 UTC
// on the 15th of the quarter's second month). Overlapping runs are skipped.
func EnsureProofSchedules(ctx context.Context, c client.Client, reconcileEvery time.Duration) error {
	if err := EnsureReconcileSchedule(ctx, c, reconcileEvery); err != nil {
		return err
	}
	quarterly := func(month, day int) client.ScheduleSpec {
		var months []client.ScheduleRange
		for m := month; m <= 12; m += 3 {
			months = append(months, client.ScheduleRange{Start: m})
		}
		return client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{{
			Second: []client.ScheduleRange{{Start: 0}}, Minute: []client.ScheduleRange{{Start: 0}}, Hour: []client.ScheduleRange{{Start: 3}},
			DayOfMonth: []client.ScheduleRange{{Start: day}}, Month: months, DayOfWeek: []client.ScheduleRange{{Start: 0, End: 6}},
		}}}
	}
	for _, s := range []struct {
		id, wf, note string
		spec         client.ScheduleSpec
		arg          any
	}{
		{workflows.AttestScheduleID, workflows.AttestWorkflowType, "quarterly attestation pack for the quarter just ended (issue 14)", quarterly(1, 1), workflows.AttestInput{}},
		{workflows.DrillScheduleID, workflows.DrillWorkflowType, "quarterly termination drill of the canary identity (issue 14)", quarterly(2, 15), workflows.DrillInput{}},
	} {
		_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
			ID: s.id, Spec: s.spec, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, Note: s.note,
			Action: &client.ScheduleWorkflowAction{ID: s.id, Workflow: s.wf, Args: []any{s.arg}, TaskQueue: workflows.TaskQueue,
				WorkflowRunTimeout: 2 * time.Hour, StaticSummary: s.note},
		})
		if err != nil && !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return fmt.Errorf("evidence: schedule %s: %w", s.id, err)
		}
	}
	return nil
}

// EnsureReconcileSchedule creates the Reconcile schedule (every interval),
// or brings an existing one to that interval. Overlapping runs are skipped.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	action := &client.ScheduleWorkflowAction{
		ID:                 workflows.ReconcileScheduleID,
		Workflow:           workflows.ReconcileWorkflowType,
		Args:               []any{workflows.ReconcileInput{}},
		TaskQueue:          workflows.TaskQueue,
		WorkflowRunTimeout: 6 * time.Hour,
		StaticSummary:      "reconcile every target's active accounts with the HR roster",
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      workflows.ReconcileScheduleID,
		Spec:    spec,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    "orphaned accounts, drifted leavers and service accounts without owner (issue 14)",
		Action:  action,
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		err = c.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := in.Description.Schedule
				if s.Spec != nil && len(s.Spec.Intervals) == 1 && s.Spec.Intervals[0].Every == every {
					return nil, temporal.ErrSkipScheduleUpdate
				}
				s.Spec, s.Action = &spec, action
				return &client.ScheduleUpdate{Schedule: &s}, nil
			},
		})
	}
	if err != nil {
		return fmt.Errorf("evidence: schedule %s: %w", workflows.ReconcileScheduleID, err)
	}
	return nil
}
