package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// stateful is a simulator whose directory can be saved and loaded.
type stateful interface {
	SaveState(w io.Writer) error
	LoadState(r io.Reader) error
}

// stateStore keeps each simulator's state in <dir>/<name>.json.
type stateStore struct {
	dir    string
	logger *slog.Logger
	sims   map[string]stateful
	last   map[string][]byte // what was last written, to skip unchanged files
}

func (s *stateStore) names() []string {
	names := make([]string, 0, len(s.sims))
	for n := range s.sims {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// load restores every simulator that has a state file; the others keep
// their seed. A state file that cannot be read stops the sandbox, naming it
// (make clean starts over).
func (s *stateStore) load() error {
	for _, name := range s.names() {
		path := filepath.Join(s.dir, name+".json")
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			s.logger.Info("simulator seeded", "system", name)
			continue
		}
		if err != nil {
			return fmt.Errorf("state %s: %w", path, err)
		}
		if err := s.sims[name].LoadState(bytes.NewReader(b)); err != nil {
			return fmt.Errorf("state %s: %w (make clean starts from a fresh seed)", path, err)
		}
		s.logger.Info("simulator state loaded", "system", name, "file", path)
	}
	return nil
}

// keep saves every simulator's state every interval and once more when ctx
// ends.
func (s *stateStore) keep(ctx context.Context, every time.Duration) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.save()
		case <-tick.C:
			if err := s.save(); err != nil {
				s.logger.Error("saving simulator state", "err", err)
			}
		}
	}
}

// save writes each changed state through a temporary file and a rename, so
// a crash never leaves half a file.
func (s *stateStore) save() error {
	if s.last == nil {
		s.last = map[string][]byte{}
	}
	var errs []error
	for _, name := range s.names() {
		var buf bytes.Buffer
		if err := s.sims[name].SaveState(&buf); err != nil {
			errs = append(errs, fmt.Errorf("state %s: %w", name, err))
			continue
		}
		if bytes.Equal(buf.Bytes(), s.last[name]) {
			continue
		}
		path := filepath.Join(s.dir, name+".json")
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
			errs = append(errs, fmt.Errorf("state %s: %w", name, err))
			continue
		}
		if err := os.Rename(tmp, path); err != nil {
			errs = append(errs, fmt.Errorf("state %s: %w", name, err))
			continue
		}
		s.last[name] = buf.Bytes()
	}
	return errors.Join(errs...)
}
