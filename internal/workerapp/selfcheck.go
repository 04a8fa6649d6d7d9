package workerapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/offboard/offboard/internal/control"
)

// ProbeTimeout bounds one target's self-check.
const ProbeTimeout = 15 * time.Second

// ReprobeAfter is how long a failed self-check stands before the next use
// of the target probes it again: a fixed target recovers without a restart.
const ReprobeAfter = time.Minute

// ProbeResult is one target's self-check.
type ProbeResult struct {
	Target, Kind string
	Probed       bool     // false: the target has no self-check
	Checks       []string // what passed
	Err          error    // why it failed; nil when it passed
}

// ProbeTargets runs the self-check of every target that has one, all at
// once, each within timeout; the results are in the order of tgts.
func ProbeTargets(ctx context.Context, tgts []control.Target, timeout time.Duration) []ProbeResult {
	out := make([]ProbeResult, len(tgts))
	var wg sync.WaitGroup
	for i, t := range tgts {
		wg.Go(func() { out[i] = probe(ctx, t, timeout) })
	}
	wg.Wait()
	return out
}

// probe runs one self-check; permissions the API reports missing fail it.
func probe(ctx context.Context, t control.Target, timeout time.Duration) ProbeResult {
	r := ProbeResult{Target: t.Name(), Kind: t.Kind()}
	p, ok := t.(control.Prober)
	if !ok {
		return r
	}
	r.Probed = true
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pr, err := p.Probe(ctx)
	r.Checks = pr.Checks
	switch {
	case err != nil:
		r.Err = err
	case len(pr.Missing) > 0:
		r.Err = fmt.Errorf("missing permissions: %s", strings.Join(pr.Missing, "; "))
	}
	return r
}

// unreachable: the probe could not get an answer (network, timeout, rate
// limit, a worker stopping). That proves no misconfiguration, so the target's
// controls run and retry as usual.
func unreachable(err error) bool {
	return errors.Is(err, control.ErrTransient) || errors.Is(err, control.ErrRateLimited) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// refused: the target answered its self-check and refused it (credentials,
// a URL that is not its API, missing permissions): a configuration error.
func (r ProbeResult) refused() bool { return r.Err != nil && !unreachable(r.Err) }

// StartProbes probes every target at worker start. A target that answered
// and refused is probed once more and its second answer stands: one odd
// answer (a proxy's page) must not stop a worker.
func StartProbes(ctx context.Context, tgts []control.Target, timeout time.Duration) []ProbeResult {
	out := ProbeTargets(ctx, tgts, timeout)
	var again []control.Target
	var at []int
	for i, r := range out {
		if r.refused() {
			again, at = append(again, tgts[i]), append(at, i)
		}
	}
	for k, r := range ProbeTargets(ctx, again, timeout) {
		out[at[k]] = r
	}
	return out
}

// Misconfigured names every target that answered its self-check and refused
// it, and what is wrong; nil when there is none. Targets that did not answer
// are not named: they may be down, and their controls retry and become
// exceptions as usual.
func Misconfigured(results []ProbeResult) error {
	var bad []string
	for _, r := range results {
		if r.refused() {
			bad = append(bad, fmt.Sprintf("target %s (%s): %v", r.Target, r.Kind, r.Err))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("worker: %d target(s) refused their self-check at start, a configuration error: %s "+
		"(fix it and check with `starter doctor`; or set worker.startWithFailedTargets: true to start anyway, "+
		"those targets' controls failing as exceptions until a probe passes)", len(bad), strings.Join(bad, "; "))
}

// selfChecks holds the targets that failed their self-check; Check is
// activities.Activities.SelfCheck.
type selfChecks struct {
	targets map[string]control.Target
	now     func() time.Time
	probe   func(context.Context, control.Target) ProbeResult
	mu      sync.Mutex
	failed  map[string]*failure
}

type failure struct {
	mu   sync.Mutex
	err  error // nil once a probe passed again
	at   time.Time
	when string // "at worker start", or the time of the last probe
}

func newSelfChecks(tgts []control.Target, results []ProbeResult, now func() time.Time) *selfChecks {
	s := &selfChecks{targets: map[string]control.Target{}, now: now, failed: map[string]*failure{},
		probe: func(ctx context.Context, t control.Target) ProbeResult { return probe(ctx, t, ProbeTimeout) }}
	for _, t := range tgts {
		s.targets[t.Name()] = t
	}
	for _, r := range results {
		if r.Err != nil && !unreachable(r.Err) {
			s.failed[r.Target] = &failure{err: r.Err, at: now(), when: "at worker start"}
		}
	}
	return s
}

// Check passes a target unless its last self-check failed; a failure older
// than ReprobeAfter is probed again first (one probe at a time per target).
func (s *selfChecks) Check(name string) error {
	s.mu.Lock()
	f := s.failed[name]
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil && s.now().Sub(f.at) >= ReprobeAfter {
		r := s.probe(context.Background(), s.targets[name])
		f.at = s.now()
		if r.Err == nil || unreachable(r.Err) {
			f.err = nil
			s.mu.Lock()
			delete(s.failed, name)
			s.mu.Unlock()
		} else {
			f.err, f.when = r.Err, "at "+f.at.UTC().Format(time.RFC3339)
		}
	}
	if f.err == nil {
		return nil
	}
	return fmt.Errorf("target %s failed its self-check %s: %w", name, f.when, f.err)
}

// logProbes says what each target's self-check found; startAnyway is
// worker.startWithFailedTargets.
func logProbes(logger *slog.Logger, results []ProbeResult, startAnyway bool) {
	for _, r := range results {
		attrs := []any{"target", r.Target, "kind", r.Kind}
		switch {
		case !r.Probed:
			logger.Info("target has no self-check", attrs...)
		case r.Err == nil:
			logger.Info("target self-check passed", append(attrs, "checks", r.Checks)...)
		case unreachable(r.Err):
			logger.Warn("target self-check got no answer; its controls run and retry as usual", append(attrs, "error", r.Err.Error())...)
		case startAnyway:
			logger.Error("target FAILED its self-check: its controls fail until a probe passes (again at most once a minute)", append(attrs, "error", r.Err.Error(), "checks", r.Checks)...)
		default:
			logger.Error("target FAILED its self-check: the worker does not start (worker.startWithFailedTargets is false)", append(attrs, "error", r.Err.Error(), "checks", r.Checks)...)
		}
	}
}
