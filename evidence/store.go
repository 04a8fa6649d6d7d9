package evidence

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrNotExist is returned by a Store for a file it does not hold.
var ErrNotExist = fs.ErrNotExist

// Store keeps archived runs. Every Put is atomic (a reader sees the whole
// file or none of it) and may be repeated.
type Store interface {
	Put(ctx context.Context, run Run, name string, data []byte) error
	// Get returns the file, or an error wrapping ErrNotExist.
	Get(ctx context.Context, run Run, name string) ([]byte, error)
	// List names the files held for one run, sorted.
	List(ctx context.Context, run Run) ([]string, error)
	// Runs lists the runs with a manifest, of one workflow id or of all when
	// workflowID is "".
	Runs(ctx context.Context, workflowID string) ([]Run, error)
}

// segment turns an id into one safe path segment.
func segment(id string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("evidence: %q is not a usable id", id)
	}
	return url.PathEscape(id), nil
}

func unsegment(s string) string {
	v, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return v
}

func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("evidence: %q is not a file name", name)
	}
	return nil
}

// Dir is a Store in a local directory: <root>/<workflow-id>/<run-id>/<file>.
type Dir struct {
	Root string
}

// RunDir is the directory holding one run's files.
func (d Dir) RunDir(run Run) (string, error) {
	w, err := segment(run.WorkflowID)
	if err != nil {
		return "", err
	}
	r, err := segment(run.RunID)
	if err != nil {
		return "", err
	}
	return filepath.Join(d.Root, w, r), nil
}

// Put writes to a temporary file in the same directory, syncs it and renames
// it over the name, then syncs the directory.
func (d Dir) Put(_ context.Context, run Run, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	dir, err := d.RunDir(run)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeAtomic(dir, name, data); err != nil {
		return err
	}
	if name == ManifestFile {
		removeTemps(dir) // what an earlier, crashed write left behind
	}
	return nil
}

func isTemp(name string) bool { return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") }

func removeTemps(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if isTemp(e.Name()) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func writeAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chmod(f.Name(), 0o444); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	if dh, derr := os.Open(dir); derr == nil {
		_ = dh.Sync()
		_ = dh.Close()
	}
	return nil
}

// Get reads one file.
func (d Dir) Get(_ context.Context, run Run, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	dir, err := d.RunDir(run)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(dir, name))
}

// List names the run's files, leaving out temporary files of a write in
// progress (Verify, reading the directory itself, counts them as extra).
func (d Dir) List(_ context.Context, run Run) ([]string, error) {
	dir, err := d.RunDir(run)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if isTemp(e.Name()) {
			continue
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names, nil
}

// Runs lists the runs that have a manifest.
func (d Dir) Runs(_ context.Context, workflowID string) ([]Run, error) {
	pattern := filepath.Join(d.Root, "*", "*", ManifestFile)
	if workflowID != "" {
		w, err := segment(workflowID)
		if err != nil {
			return nil, err
		}
		pattern = filepath.Join(d.Root, w, "*", ManifestFile)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	runs := make([]Run, 0, len(matches))
	for _, m := range matches {
		runDir := filepath.Dir(m)
		runs = append(runs, Run{WorkflowID: unsegment(filepath.Base(filepath.Dir(runDir))), RunID: unsegment(filepath.Base(runDir))})
	}
	slices.SortFunc(runs, func(a, b Run) int { return strings.Compare(a.String(), b.String()) })
	return runs, nil
}

// ReadManifest reads and decodes a run's manifest from a store.
func ReadManifest(ctx context.Context, s Store, run Run) (Manifest, error) {
	m, ok, err := existing(ctx, s, run)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, fmt.Errorf("evidence: %s: %w", run, ErrNotExist)
	}
	return m, nil
}

// Export copies one run's files from a store into a local directory, where
// Verify can check them.
func Export(ctx context.Context, s Store, run Run, dir string) error {
	return export(ctx, s, run, ManifestFile, fmt.Sprint(run), dir)
}

// export copies every file of run into dir, once its manifest is there.
func export(ctx context.Context, s Store, run Run, manifest, what, dir string) error {
	names, err := s.List(ctx, run)
	if err != nil {
		return err
	}
	if !slices.Contains(names, manifest) {
		return fmt.Errorf("evidence: %s has no manifest: %w", what, ErrNotExist)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, n := range names {
		b, err := s.Get(ctx, run, n)
		if err != nil {
			return err
		}
		if err := writeAtomic(dir, n, b); err != nil {
			return err
		}
	}
	return nil
}
