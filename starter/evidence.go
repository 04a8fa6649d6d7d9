package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/tclient"
	"github.com/offboard/offboard/workflows"
)

const evidenceUsage = `usage: starter evidence <command> [flags]

  verify <dir> --public-key FILE   check an archived run: signature, digests, files, replay
                                   (<dir> may also hold several runs, as "get" writes them);
                                   with payload encryption history.json is encrypted as Temporal
                                   stored it: replaying it needs the keys of the configuration's
                                   codec section (receipts.json and report.html are plaintext)
  get <employee-id> [--store DIR] [--out DIR]
                                   copy a person's archived runs out of the store (default
                                   store: the configuration's evidence.dir or evidence.s3); runs not archived
                                   yet are archived first when Temporal and the signing key are there
  public-key [--key FILE]          print the public key (PEM) of the signing key; the key id on stderr
  keygen --out FILE                make a new Ed25519 signing key (PEM, PKCS #8, mode 0600)
  summary [--from T] [--to T] [--format table|csv|html] [--store DIR]
                                   terminations, SLA met, time to contain, open exceptions,
                                   waivers and legal holds of runs effective in [from, to)
                                   (T: RFC 3339 or YYYY-MM-DD)

Every command takes --config FILE (or OFFBOARD_CONFIG); only its temporal, evidence and
codec sections are used.

Exit codes:
  0  ok
  1  the evidence was tampered with or is invalid (the message names the file)
  2  usage: bad flags or arguments, unreadable key or directory
  3  the evidence is intact but its history does not replay against this build's workflow code
  4  no evidence archived for that person
  5  anything else (Temporal or the store could not be reached)
`

func evidenceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, evidenceUsage)
		return evidence.ExitUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("starter evidence "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, evidenceUsage) }
	configPath := fs.String("config", os.Getenv("OFFBOARD_CONFIG"), "configuration file")
	var run func(pos []string) error
	switch sub {
	case "verify":
		pubPath := fs.String("public-key", "", "PEM public key of the signer")
		run = func(pos []string) error {
			if len(pos) != 1 || *pubPath == "" {
				return usageErr("verify <dir> --public-key FILE")
			}
			pub, err := evidence.LoadPublicKey(*pubPath)
			if err != nil {
				return fmt.Errorf("%w: %v", evidence.ErrUsage, err)
			}
			opts, err := verifyCodec(*configPath)
			if err != nil {
				return err
			}
			return verifyAll(pos[0], pub, stdout, opts...)
		}
	case "get":
		storeDir := fs.String("store", "", "evidence directory (default: the configuration's evidence.dir or evidence.s3)")
		out := fs.String("out", "", "where to write the runs (default: ./evidence-<employee-id>)")
		run = func(pos []string) error {
			if len(pos) != 1 {
				return usageErr("get <employee-id> [--store DIR] [--out DIR]")
			}
			cfg, err := loadConfig(*configPath)
			if err != nil {
				return err
			}
			return getEvidence(ctx, cfg, pos[0], *storeDir, *out, stdout, stderr)
		}
	case "public-key":
		keyPath := fs.String("key", "", "PEM signing key (default: the configuration's evidence.signingKey)")
		run = func(pos []string) error {
			if len(pos) != 0 {
				return usageErr("public-key [--key FILE]")
			}
			key, err := signingKey(*configPath, *keyPath)
			if err != nil {
				return err
			}
			pub := key.Public().(ed25519.PublicKey)
			fmt.Fprintln(stderr, "key id", evidence.KeyID(pub))
			_, err = stdout.Write(evidence.MarshalPublicKey(pub))
			return err
		}
	case "keygen":
		out := fs.String("out", "", "file to write the new signing key to")
		run = func(pos []string) error {
			if len(pos) != 0 || *out == "" {
				return usageErr("keygen --out FILE")
			}
			key, err := evidence.GenerateKey(*out)
			if err != nil {
				return fmt.Errorf("%w: %v", evidence.ErrUsage, err)
			}
			pub := key.Public().(ed25519.PublicKey)
			fmt.Fprintf(stdout, "wrote %s (key id %s)\nname it in the configuration: evidence.signingKey: {file: %s}\npublic key, for auditors:\n%s",
				*out, evidence.KeyID(pub), *out, evidence.MarshalPublicKey(pub))
			return nil
		}
	case "summary":
		storeDir := fs.String("store", "", "evidence directory (default: the configuration's evidence.dir or evidence.s3)")
		from := fs.String("from", "", "start of the period (RFC 3339 or YYYY-MM-DD)")
		to := fs.String("to", "", "end of the period, exclusive (default: now)")
		format := fs.String("format", "table", "table, csv or html")
		run = func(pos []string) error {
			if len(pos) != 0 {
				return usageErr("summary [--from T] [--to T] [--format table|csv|html]")
			}
			f, err := evidenceTime(*from, time.Time{})
			if err != nil {
				return err
			}
			t, err := evidenceTime(*to, time.Now().UTC())
			if err != nil {
				return err
			}
			cfg, err := loadConfig(*configPath)
			if err != nil {
				return err
			}
			store, _, err := openStore(ctx, cfg, *storeDir)
			if err != nil {
				return err
			}
			ms, err := evidence.LoadManifests(ctx, store)
			if err != nil {
				return err
			}
			s := evidence.Summarize(ms, f, t)
			switch *format {
			case "table":
				return s.WriteTable(stdout)
			case "csv":
				return s.WriteCSV(stdout)
			case "html":
				return s.WriteHTML(stdout)
			}
			return usageErr("--format is table, csv or html")
		}
	default:
		fmt.Fprintf(stderr, "starter evidence: unknown command %q\n\n%s", sub, evidenceUsage)
		return evidence.ExitUsage
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return evidence.ExitUsage
	}
	if err := run(pos); err != nil {
		fmt.Fprintf(stderr, "starter evidence %s: %v\n", sub, err)
		return evidence.ExitCode(err)
	}
	return evidence.ExitOK
}

func usageErr(form string) error {
	return fmt.Errorf("%w: starter evidence %s", evidence.ErrUsage, form)
}

// parseInterleaved lets flags come before or after the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return cfg, fmt.Errorf("%w: %v", evidence.ErrUsage, err)
	}
	return cfg, nil
}

// openStore is the --store directory when given, else the configuration's
// store (evidence.dir, or the S3 bucket of evidence.s3).
func openStore(ctx context.Context, cfg config.Config, storeDir string) (evidence.Store, string, error) {
	if storeDir != "" {
		return evidence.Dir{Root: storeDir}, storeDir, nil
	}
	store, where, err := evidence.Open(ctx, cfg.Evidence)
	if err != nil {
		return nil, "", fmt.Errorf("%w: config %s: %v", evidence.ErrUsage, cfg.Source(), err)
	}
	return store, where, nil
}

func pick(flagValue, fallback string) string {
	if flagValue != "" {
		return flagValue
	}
	return fallback
}

func evidenceTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q is not a time (RFC 3339 or YYYY-MM-DD)", evidence.ErrUsage, s)
}

// signingKey reads the key from --key, or from the configuration's secret.
func signingKey(configPath, keyPath string) (ed25519.PrivateKey, error) {
	if keyPath != "" {
		k, err := evidence.LoadPrivateKey(keyPath)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", evidence.ErrUsage, err)
		}
		return k, nil
	}
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	return keyFromConfig(cfg.Evidence)
}

func keyFromConfig(ev config.Evidence) (ed25519.PrivateKey, error) {
	if !ev.SigningKey.IsSet() {
		return nil, fmt.Errorf("%w: no signing key: name one with --key or evidence.signingKey in the configuration", evidence.ErrUsage)
	}
	pemText, err := ev.SigningKey.Value()
	if err != nil {
		return nil, fmt.Errorf("%w: evidence.signingKey: %v", evidence.ErrUsage, err)
	}
	k, err := evidence.ParsePrivateKey([]byte(pemText))
	if err != nil {
		return nil, fmt.Errorf("%w: evidence.signingKey: %v", evidence.ErrUsage, err)
	}
	return k, nil
}

// verifyAll verifies one run directory, or every run below dir.
func verifyAll(dir string, pub ed25519.PublicKey, stdout io.Writer, opts ...evidence.Option) error {
	if _, err := os.Stat(filepath.Join(dir, evidence.ReportManifestFile)); err == nil {
		return verifyReport(dir, pub, stdout) // a reconciliation, attestation or drill report (reconcile.go)
	}
	if _, err := os.Stat(filepath.Join(dir, evidence.ManifestFile)); err == nil {
		return verifyOne(dir, pub, stdout, opts...)
	}
	var dirs []string
	for _, pattern := range []string{"*", filepath.Join("*", "*")} {
		m, _ := filepath.Glob(filepath.Join(dir, pattern, evidence.ManifestFile))
		for _, p := range m {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	if len(dirs) == 0 {
		return verifyOne(dir, pub, stdout, opts...) // says what is missing
	}
	var worst error
	for _, d := range dirs {
		if err := verifyOne(d, pub, stdout, opts...); err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", d, err)
			if worst == nil || evidence.ExitCode(err) < evidence.ExitCode(worst) {
				worst = err // tampering (1) outranks a replay mismatch (3)
			}
		}
	}
	return worst
}

func verifyOne(dir string, pub ed25519.PublicKey, stdout io.Writer, opts ...evidence.Option) error {
	if err := evidence.Verify(dir, pub, opts...); err != nil {
		return err
	}
	var m evidence.Manifest
	raw, err := os.ReadFile(filepath.Join(dir, evidence.ManifestFile))
	if err == nil {
		err = json.Unmarshal(raw, &m)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok %s: %s run %s closed %s at %s; signature by %s, %d files match, history replays\n",
		dir, m.WorkflowID, m.RunID, m.CloseStatus, m.CloseTime.Format(time.RFC3339), m.KeyID, len(m.Files))
	return nil
}

// verifyCodec decodes encrypted histories with the configuration's codec
// keys. A configuration named with --config or OFFBOARD_CONFIG must load; the
// embedded sandbox default is used only when its key file is there (an
// auditor verifying plaintext evidence needs no key).
func verifyCodec(configPath string) ([]evidence.Option, error) {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	dc, fc, err := tclient.Converters(cfg)
	switch {
	case err != nil && configPath == "":
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: %v", evidence.ErrUsage, err)
	case dc == nil:
		return nil, nil
	}
	return []evidence.Option{evidence.WithConverters(dc, fc)}, nil
}

// getEvidence copies a person's runs out of the store, archiving closed runs
// first when they are not there yet and Temporal and the key are at hand.
func getEvidence(ctx context.Context, cfg config.Config, employeeID, storeDir, out string, stdout, stderr io.Writer) error {
	store, where, err := openStore(ctx, cfg, storeDir)
	if err != nil {
		return err
	}
	wid := workflows.WorkflowID(employeeID)
	runs, err := store.Runs(ctx, wid)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		if err := archiveNow(ctx, cfg, store, wid, stderr); err != nil {
			fmt.Fprintf(stderr, "starter evidence get: could not archive now: %v\n", err)
		}
		if runs, err = store.Runs(ctx, wid); err != nil {
			return err
		}
	}
	if len(runs) == 0 {
		return fmt.Errorf("no evidence archived for %s in %s: a run is archived when it closes, and one still running has none yet (a termination stays open through its retention period; `starter status -employee %s` shows where it is): %w", wid, where, employeeID, evidence.ErrNotExist)
	}
	out = pick(out, "evidence-"+employeeID)
	for _, r := range runs {
		dst := filepath.Join(out, r.RunID)
		if err := evidence.Export(ctx, store, r, dst); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", dst)
	}
	return nil
}

func archiveNow(ctx context.Context, cfg config.Config, store evidence.Store, wid string, stderr io.Writer) error {
	key, err := keyFromConfig(cfg.Evidence)
	if err != nil {
		return err
	}
	dc, fc, err := tclient.Converters(cfg)
	if err != nil {
		return err
	}
	c, err := tclient.Dial(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer c.Close()
	query := fmt.Sprintf("WorkflowId = '%s' AND ExecutionStatus != 'Running'", strings.ReplaceAll(wid, "'", ""))
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range resp.GetExecutions() {
		pub := key.Public().(ed25519.PublicKey)
		if _, err := evidence.Archive(ctx, c, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), store, key, evidence.KeyID(pub), evidence.WithConverters(dc, fc)); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stderr, "archived %s run %s\n", e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId())
	}
	return errors.Join(errs...)
}
