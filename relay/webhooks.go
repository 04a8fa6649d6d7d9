package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/offboard/offboard/internal/hris"
	"github.com/offboard/offboard/internal/runs"
	"github.com/offboard/offboard/workflows"
)

// retryAfter is what a 503 asks the sender to wait, in seconds.
const retryAfter = "60"

type workdaySource struct {
	users  []basicUser
	parser hris.Workday
}

func (rl *Relay) handleBambooHR(w http.ResponseWriter, r *http.Request) {
	const source = hris.SourceBambooHR
	src := rl.bamboo
	if src == nil {
		writeError(w, http.StatusNotFound, "the bamboohr source is not configured")
		return
	}
	mt, ok := rl.mediaType(w, r, source, "application/json", "application/x-www-form-urlencoded")
	if !ok {
		return
	}
	body, ok := rl.readBody(w, r, source)
	if !ok {
		return
	}
	if err := verifyBambooHR(src.secrets, body, r.Header, rl.now(), rl.cfg.MaxSkew.D()); err != nil {
		rl.unauthorized(w, r, source, err)
		return
	}
	var res hris.Result
	var err error
	if mt == "application/json" {
		res, err = src.parser.Parse(r.Context(), body)
	} else {
		res, err = src.parser.ParseForm(r.Context(), body)
	}
	rl.act(w, r, source, res, err)
}

func (rl *Relay) handleWorkday(w http.ResponseWriter, r *http.Request) {
	const source = hris.SourceWorkday
	src := rl.workday
	if src == nil {
		writeError(w, http.StatusNotFound, "the workday source is not configured")
		return
	}
	// Workday cannot sign: basic auth, checked before reading the body.
	if !basicAuthOK(src.users, r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="offboard-workday"`)
		rl.unauthorized(w, r, source, errors.New("basic auth credentials missing or wrong"))
		return
	}
	mt, ok := rl.mediaType(w, r, source, "text/xml", "application/xml", "application/soap+xml", "application/json")
	if !ok {
		return
	}
	body, ok := rl.readBody(w, r, source)
	if !ok {
		return
	}
	var res hris.Result
	var err error
	if mt == "application/json" {
		res, err = src.parser.ParseJSON(body)
	} else {
		res, err = src.parser.ParseXML(body)
	}
	rl.act(w, r, source, res, err)
}

func (rl *Relay) handleGeneric(w http.ResponseWriter, r *http.Request) {
	const source = hris.SourceGeneric
	src := rl.generic
	if src == nil {
		writeError(w, http.StatusNotFound, "the generic source is not configured")
		return
	}
	if _, ok := rl.mediaType(w, r, source, "application/json"); !ok {
		return
	}
	body, ok := rl.readBody(w, r, source)
	if !ok {
		return
	}
	if err := verifyGeneric(src.secrets, body, r.Header, rl.now(), rl.cfg.MaxSkew.D()); err != nil {
		rl.unauthorized(w, r, source, err)
		return
	}
	res, err := src.parser.Parse(body)
	rl.act(w, r, source, res, err)
}

func (rl *Relay) mediaType(w http.ResponseWriter, r *http.Request, source string, accepted ...string) (string, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(accepted, mt) {
		rl.metrics.webhook(source, "rejected")
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q is not accepted here; send one of %v", r.Header.Get("Content-Type"), accepted))
		return "", false
	}
	return mt, true
}

func (rl *Relay) readBody(w http.ResponseWriter, r *http.Request, source string) ([]byte, bool) {
	if r.ContentLength > MaxBody {
		rl.metrics.webhook(source, "rejected")
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is over the %d-byte limit", r.ContentLength, MaxBody))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		rl.metrics.webhook(source, "rejected")
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", MaxBody))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return nil, false
	}
	return body, true
}

func (rl *Relay) unauthorized(w http.ResponseWriter, r *http.Request, source string, err error) {
	rl.metrics.webhook(source, "unauthorized")
	rl.log.Warn("webhook refused", "source", source, "remote", r.RemoteAddr, "reason", err.Error())
	writeError(w, http.StatusUnauthorized, err.Error())
}

// Outcome is the reply for one event.
type Outcome struct {
	Status      string `json:"status"` // started, duplicate, rescinded, refused, signalled, ignored
	EmployeeID  string `json:"employeeId,omitempty"`
	EventID     string `json:"eventId,omitempty"`
	WorkflowID  string `json:"workflowId,omitempty"`
	RunID       string `json:"runId,omitempty"`
	Quarantined bool   `json:"quarantined,omitempty"`
	Note        string `json:"note,omitempty"`
}

// act starts or signals a run for every event, then replies: 202 when a run
// started, 200 otherwise; 503 with Retry-After when Temporal (or the HR
// system's API) cannot be reached, so the sender delivers again.
func (rl *Relay) act(w http.ResponseWriter, r *http.Request, source string, res hris.Result, err error) {
	switch {
	case errors.Is(err, hris.ErrMalformed):
		rl.metrics.webhook(source, "rejected")
		rl.log.Warn("webhook malformed", "source", source, "error", err.Error())
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, hris.ErrLookup):
		rl.metrics.webhook(source, "unavailable")
		rl.log.Error("webhook lookup failed: asking the sender to retry", "source", source, "error", err.Error())
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		rl.metrics.webhook(source, "rejected")
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Check every event before acting on any, so a bad one starts nothing.
	for _, ev := range res.Events {
		if ev.Action != hris.ActionStart {
			continue
		}
		if verr := ev.Termination.Validate(); verr != nil {
			rl.metrics.webhook(source, "rejected")
			rl.log.Error("webhook event cannot start a run", "source", source, "employee", ev.Termination.EmployeeID, "error", verr.Error())
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("employee %s: %v", ev.Termination.EmployeeID, verr))
			return
		}
	}
	var outcomes []Outcome
	started := false
	for _, ev := range res.Events {
		o, err := rl.apply(r.Context(), source, ev)
		if err != nil {
			rl.metrics.webhook(source, "unavailable")
			rl.log.Error("temporal unavailable: asking the sender to retry", "source", source, "employee", ev.Termination.EmployeeID, "error", err.Error())
			w.Header().Set("Retry-After", retryAfter)
			writeError(w, http.StatusServiceUnavailable, "temporal is unavailable; deliver again later")
			return
		}
		rl.metrics.webhook(source, o.Status)
		rl.log.Info("webhook event", "source", source, "employee", o.EmployeeID, "event", o.EventID, "outcome", o.Status, "quarantined", o.Quarantined, "note", o.Note)
		started = started || o.Status == "started"
		outcomes = append(outcomes, o)
	}
	for _, ig := range res.Ignored {
		rl.metrics.webhook(source, "ignored")
		outcomes = append(outcomes, Outcome{Status: "ignored", EmployeeID: ig.EmployeeID, Note: ig.Reason})
	}
	code := http.StatusOK
	if started {
		code = http.StatusAccepted
	}
	switch len(outcomes) {
	case 0:
		writeJSON(w, http.StatusOK, Outcome{Status: "ignored", Note: "the delivery named no employee"})
	case 1:
		writeJSON(w, code, outcomes[0])
	default:
		status := "processed"
		if started {
			status = "started"
		}
		writeJSON(w, code, map[string]any{"status": status, "results": outcomes})
	}
}

// apply acts on one event. Its only error is Temporal being unreachable.
func (rl *Relay) apply(ctx context.Context, source string, ev hris.Event) (Outcome, error) {
	t := ev.Termination
	o := Outcome{EmployeeID: t.EmployeeID, EventID: t.EventID, WorkflowID: workflows.WorkflowID(t.EmployeeID)}
	switch ev.Action {
	case hris.ActionRescind, hris.ActionRehire:
		v, err := rl.hrRescind(ctx, source, ev) // a signed Update (operator.go)
		switch {
		case errors.Is(err, runs.ErrUnavailable):
			return o, err
		case err != nil:
			o.Status, o.Note = "ignored", "no deprovisioning in flight for "+t.EmployeeID
		case !v.Accepted:
			// Answered 200 all the same: delivering it again changes nothing.
			o.Status, o.Note = "refused", v.Reason
		default:
			o.Status, o.Note = "rescinded", ev.Reason
		}
		return o, nil
	case hris.ActionStart:
	default:
		o.Status, o.Note = "ignored", "unknown action "+string(ev.Action)
		return o, nil
	}
	if t.Kind == workflows.KindRoleChange && rl.roles != nil && !rl.roles[t.NewRole] {
		o.Status, o.Note = "ignored", fmt.Sprintf("role %q is not in the configuration's roles: nothing to remove", t.NewRole)
		return o, nil
	}
	var cancel func()
	if t.Kind != workflows.KindRoleChange {
		t.Quarantined, cancel = rl.guard.reserve(rl.now())
	}
	st, err := runs.Start(ctx, rl.c, t)
	if err != nil {
		if cancel != nil {
			cancel()
		}
		return o, err
	}
	o.WorkflowID, o.RunID, o.Note = st.WorkflowID, st.RunID, st.Note
	if st.Duplicate {
		if cancel != nil {
			cancel()
		}
		o.Status = "duplicate"
		// Only another event for the run in flight may move it; a redelivery
		// of the run's own event never does.
		if !st.SameEvent && rl.reschedule(ctx, source, t) {
			o.Status, o.Note = "rescheduled", "the run in flight now takes effect at "+t.EffectiveAt.UTC().Format(time.RFC3339)
		}
		return o, nil
	}
	o.Status, o.Quarantined = "started", t.Quarantined
	if t.Quarantined {
		rl.metrics.quarantined.WithLabelValues(source).Inc()
		rl.log.Warn("termination quarantined by the blast-radius guard", "employee", t.EmployeeID, "max", rl.cfg.BlastRadius.Max, "window", rl.cfg.BlastRadius.Window.D())
	}
	return o, nil
}

// reschedule moves a run still waiting for its effective time when HR
// sends the same kind of event with another date; it reports whether it did.
// Failures are not errors: the run keeps its time and the reply says duplicate.
func (rl *Relay) reschedule(ctx context.Context, source string, t workflows.Termination) bool {
	if t.Kind == workflows.KindRoleChange {
		return false
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := runs.Status(qctx, rl.c, t.EmployeeID)
	if err != nil || st.Phase != workflows.PhaseScheduled || st.Kind != t.Kind || st.EffectiveAt.Equal(t.EffectiveAt) {
		return false
	}
	// A signed Update (operator.go) for the run just read, moving the time it showed.
	v, err := rl.hrDecide(ctx, source, runs.Request{EmployeeID: t.EmployeeID, RunID: st.RunID, Kind: workflows.UpdateReschedule,
		Payload: workflows.Reschedule{EffectiveAt: t.EffectiveAt, From: st.EffectiveAt}, IdempotencyKey: t.EventID})
	if err != nil || !v.Accepted {
		rl.log.Warn("reschedule not applied", "employee", t.EmployeeID, "error", fmt.Sprint(err), "reason", v.Reason)
		return false
	}
	return true
}

// blastGuard counts terminations started within a sliding window; beyond
// max, the next ones start quarantined.
type blastGuard struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	starts []*guardEntry // in arrival order
	active int           // entries in the window not cancelled
}

type guardEntry struct {
	at                time.Time
	cancelled, pruned bool
}

func newBlastGuard(max int, window time.Duration) *blastGuard {
	return &blastGuard{max: max, window: window}
}

// reserve counts one termination now and says whether it must be
// quarantined; cancel un-counts it (a duplicate, or a start that failed).
func (g *blastGuard) reserve(now time.Time) (quarantined bool, cancel func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.starts) > 0 && now.Sub(g.starts[0].at) >= g.window {
		e := g.starts[0]
		e.pruned = true
		if !e.cancelled {
			g.active--
		}
		g.starts = g.starts[1:]
	}
	quarantined = g.active >= g.max
	e := &guardEntry{at: now}
	g.starts = append(g.starts, e)
	g.active++
	return quarantined, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !e.cancelled && !e.pruned {
			g.active--
		}
		e.cancelled = true
	}
}
