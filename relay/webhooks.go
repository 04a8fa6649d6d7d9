package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
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
	d := rl.delivery(source, r.Header.Get("X-BambooHR-Timestamp"), body)
	if rl.replayed(w, r, source, d) {
		return
	}
	var res hris.Result
	var err error
	if mt == "application/json" {
		res, err = src.parser.Parse(r.Context(), body)
	} else {
		res, err = src.parser.ParseForm(r.Context(), body)
	}
	rl.act(w, r, source, res, err, d)
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
	// Workday cannot sign, so there is no signed delivery to remember: its
	// events are idempotent by their business-process ids.
	rl.act(w, r, source, res, err, nil)
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
	d := rl.delivery(source, r.Header.Get("X-Offboard-Timestamp"), body)
	if rl.replayed(w, r, source, d) {
		return
	}
	res, err := src.parser.Parse(body)
	rl.act(w, r, source, res, err, d)
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

// Outcome is the reply for one event: its own status and HTTP code, so a
// delivery of several people answers for each (a 207-style body).
type Outcome struct {
	// Status: started, duplicate, superseded, corrected, rescheduled,
	// rescinded, refused, quarantined, ignored, rejected, unavailable.
	Status      string `json:"status"`
	Code        int    `json:"code,omitempty"`
	EmployeeID  string `json:"employeeId,omitempty"`
	EventID     string `json:"eventId,omitempty"`
	WorkflowID  string `json:"workflowId,omitempty"`
	RunID       string `json:"runId,omitempty"`
	Quarantined bool   `json:"quarantined,omitempty"`
	Note        string `json:"note,omitempty"`
	Error       string `json:"error,omitempty"`
}

// signedDelivery names a signed delivery for the replay memory.
type signedDelivery struct {
	digest string
	until  time.Time // after this its signature is stale anyway
}

// delivery digests what the signature covers: a replay has the same bytes.
func (rl *Relay) delivery(source, timestamp string, body []byte) *signedDelivery {
	h := sha256.New()
	h.Write([]byte(source + "\x00" + timestamp + "\x00"))
	h.Write(body)
	skew := rl.cfg.MaxSkew.D()
	// The timestamp may be up to skew ahead of our clock, and is valid for skew after it.
	return &signedDelivery{digest: hex.EncodeToString(h.Sum(nil))[:40], until: rl.now().Add(2 * skew)}
}

// replayed answers a signed delivery that was already acted on as a
// duplicate: a replay within the skew window, on this replica or another.
func (rl *Relay) replayed(w http.ResponseWriter, r *http.Request, source string, d *signedDelivery) bool {
	seen, err := rl.edge.Seen(r.Context(), d.digest)
	switch {
	case err != nil:
		rl.metrics.webhook(source, "unavailable")
		rl.log.Error("delivery memory unavailable: asking the sender to retry", "source", source, "error", err.Error())
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, "temporal is unavailable; deliver again later")
		return true
	case seen:
		rl.metrics.webhook(source, "duplicate")
		rl.log.Warn("signed delivery received again: answered as a duplicate", "source", source, "remote", r.RemoteAddr, "delivery", d.digest)
		writeJSON(w, http.StatusOK, Outcome{Status: "duplicate", Code: http.StatusOK, Note: "this signed delivery was already received and acted on: a replay changes nothing"})
		return true
	}
	return false
}

// act starts or signals a run for every event and replies for each (see
// replyCode); a signed delivery that was acted on is remembered (d).
func (rl *Relay) act(w http.ResponseWriter, r *http.Request, source string, res hris.Result, err error, d *signedDelivery) {
	switch {
	case errors.Is(err, hris.ErrUnknownEmployee):
		// BambooHR said so itself: delivering it again cannot help.
		rl.metrics.webhook(source, "rejected")
		rl.log.Warn("webhook names an employee the HR system does not have", "source", source, "error", err.Error())
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
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
	var results []Outcome
	for _, ev := range res.Events {
		o, err := rl.apply(r.Context(), source, ev)
		switch {
		case errors.Is(err, errItem):
			rl.log.Warn("webhook event refused", "source", source, "employee", o.EmployeeID, "event", o.EventID, "error", o.Error)
		case err != nil:
			o.Status, o.Code, o.Error = "unavailable", http.StatusServiceUnavailable, "temporal is unavailable; deliver again later"
			rl.log.Error("temporal unavailable: asking the sender to retry", "source", source, "employee", o.EmployeeID, "error", err.Error())
		default:
			rl.log.Info("webhook event", "source", source, "employee", o.EmployeeID, "event", o.EventID, "outcome", o.Status, "quarantined", o.Quarantined, "note", o.Note)
		}
		results = append(results, o)
	}
	for _, rej := range res.Rejected {
		o := Outcome{Status: "rejected", EmployeeID: shortID(rej.EmployeeID), Code: itemCode(rej.Err), Error: rej.Err.Error()}
		if o.Code == http.StatusServiceUnavailable {
			o.Status = "unavailable"
		}
		rl.log.Warn("webhook item refused", "source", source, "employee", o.EmployeeID, "error", o.Error)
		results = append(results, o)
	}
	for _, ig := range res.Ignored {
		results = append(results, Outcome{Status: "ignored", Code: http.StatusOK, EmployeeID: ig.EmployeeID, Note: ig.Reason})
	}
	for _, o := range results {
		rl.metrics.webhook(source, o.Status)
	}
	code := replyCode(results)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	} else if d != nil && code < 400 {
		// Acted on: a replay of these signed bytes is a duplicate from now on.
		if err := rl.edge.Remember(r.Context(), d.digest, d.until); err != nil {
			rl.log.Warn("delivery not remembered: a replay within the skew window would be acted on again (each event stays idempotent)", "source", source, "error", err.Error())
		}
	}
	switch len(results) {
	case 0:
		writeJSON(w, http.StatusOK, Outcome{Status: "ignored", Code: http.StatusOK, Note: "the delivery named no employee"})
	case 1:
		writeJSON(w, code, results[0])
	default:
		writeJSON(w, code, map[string]any{"status": summary(code), "results": results})
	}
}

// errItem marks an event refused on its own (Outcome.Code says how); the
// other events of the delivery go on.
var errItem = errors.New("event refused")

// itemCode is the HTTP status one refused item stands for.
func itemCode(err error) int {
	switch {
	case errors.Is(err, hris.ErrLookup):
		return http.StatusServiceUnavailable
	case errors.Is(err, hris.ErrMalformed):
		return http.StatusBadRequest
	}
	return http.StatusUnprocessableEntity
}

// replyCode is the status of the whole reply: 503 when any item should come
// again (the others are idempotent when it does), 202 when a run started or
// took the event, 200 when everything else was accepted, and a 4xx only when
// nothing was: the items' own code when they agree, else 422.
func replyCode(results []Outcome) int {
	code, accepted, rejected := http.StatusOK, false, 0
	for _, o := range results {
		switch {
		case o.Code == http.StatusServiceUnavailable:
			return http.StatusServiceUnavailable
		case o.Code >= 400:
			if rejected == 0 {
				rejected = o.Code
			} else if rejected != o.Code {
				rejected = http.StatusUnprocessableEntity
			}
		default:
			accepted = true
			if o.Code == http.StatusAccepted {
				code = http.StatusAccepted
			}
		}
	}
	if !accepted && rejected != 0 {
		return rejected
	}
	return code
}

func summary(code int) string {
	switch {
	case code == http.StatusAccepted:
		return "started"
	case code == http.StatusServiceUnavailable:
		return "unavailable"
	case code >= 400:
		return "rejected"
	}
	return "processed"
}

// shortID shows an employee id as sent, bounded: a refused one may be anything.
func shortID(id string) string {
	if len(id) > 80 {
		return strconv.Quote(id[:80]) + "..."
	}
	if strconv.CanBackquote(id) {
		return id
	}
	return strconv.Quote(id)
}

// apply acts on one event. Its only error is Temporal being unreachable.
func (rl *Relay) apply(ctx context.Context, source string, ev hris.Event) (Outcome, error) {
	t := ev.Termination
	o := Outcome{EmployeeID: shortID(t.EmployeeID), EventID: t.EventID, Code: http.StatusOK}
	// Every parser normalises ids; checked again here, as this is the last
	// step before a workflow id is made of it.
	if id, err := hris.NormalizeEmployeeID(t.EmployeeID); err != nil || id != t.EmployeeID {
		o.Status, o.Code, o.Error = "rejected", http.StatusUnprocessableEntity, fmt.Sprintf("employee id %s is not a valid, normalised id (%v)", shortID(t.EmployeeID), err)
		return o, errItem
	}
	o.WorkflowID = workflows.WorkflowID(t.EmployeeID)
	switch ev.Action {
	case hris.ActionRescind, hris.ActionRehire:
		// Rescinds restore access: a flood of them is held like one of terminations.
		if held, err := rl.admit(ctx, source, "rescind", t, &o); err != nil || held {
			return o, err
		}
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
	if err := t.Validate(); err != nil {
		o.Status, o.Code, o.Error = "rejected", http.StatusUnprocessableEntity, fmt.Sprintf("employee %s: %v", t.EmployeeID, err)
		return o, errItem
	}
	if t.Kind == workflows.KindRoleChange && rl.roles != nil && !rl.roles[t.NewRole] {
		o.Status, o.Note = "ignored", fmt.Sprintf("role %q is not in the configuration's roles: nothing to remove", t.NewRole)
		return o, nil
	}
	v, err := rl.edge.Admit(ctx, rl.admission(source, "start", t))
	if err != nil {
		return o, err
	}
	t.Quarantined = v.Quarantined
	st, err := runs.StartSigned(ctx, rl.c, t, rl.decisionKey)
	if err != nil {
		return o, err
	}
	o.WorkflowID, o.RunID, o.Note = st.WorkflowID, st.RunID, st.Note
	switch st.Outcome {
	case runs.OutcomeDuplicate:
		o.Status = "duplicate"
		// Only another event for the run in flight may move it; a redelivery
		// of the run's own event never does.
		if st.SameEvent {
			return o, nil
		}
		moved, err := rl.reschedule(ctx, source, t, &o)
		if err == nil && moved {
			o.Status, o.Note = "rescheduled", "the run in flight now takes effect at "+t.EffectiveAt.UTC().Format(time.RFC3339)
		}
		return o, err
	case runs.OutcomeSuperseded, runs.OutcomeCorrected:
		// The run in flight took the event (workflows.SignalHREvent).
		o.Status, o.Code, o.Quarantined = st.Outcome, http.StatusAccepted, t.Quarantined
		return o, nil
	}
	o.Status, o.Code, o.Quarantined = "started", http.StatusAccepted, t.Quarantined
	if t.Quarantined {
		rl.metrics.quarantined.WithLabelValues(source).Inc()
		rl.log.Warn("event quarantined by the blast-radius guard", "employee", t.EmployeeID, "kind", t.Kind, "reason", v.Reason)
	}
	return o, nil
}

// admission is what the blast-radius guard is asked about one event; its
// key makes a redelivery of the same event the same admission.
func (rl *Relay) admission(source, what string, t workflows.Termination) workflows.Admission {
	return workflows.AdmissionFor(what, source, t, rl.cfg.BlastRadius.Max, rl.cfg.BlastRadius.Window.D())
}

// admit asks the guard about a rescind or reschedule; a held one is not
// sent: the reply says so, and the guard's state (query "guard") lists it
// for security to apply by hand.
func (rl *Relay) admit(ctx context.Context, source, what string, t workflows.Termination, o *Outcome) (held bool, err error) {
	v, err := rl.edge.Admit(ctx, rl.admission(source, what, t))
	if err != nil || !v.Quarantined {
		return false, err
	}
	rl.metrics.quarantined.WithLabelValues(source).Inc()
	rl.log.Warn(what+" held by the blast-radius guard", "employee", t.EmployeeID, "reason", v.Reason)
	o.Status, o.Code, o.Quarantined = "quarantined", http.StatusAccepted, true
	o.Note = "held by the blast-radius guard (" + v.Reason + "): not applied; a security person applies it with the CLI if it is genuine"
	return true, nil
}

// reschedule moves a run still waiting for its effective time when HR
// sends the same kind of event with another date; it reports whether it did.
// Failures are not errors: the run keeps its time and the reply says duplicate.
func (rl *Relay) reschedule(ctx context.Context, source string, t workflows.Termination, o *Outcome) (bool, error) {
	if t.Kind == workflows.KindRoleChange {
		return false, nil
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := runs.Status(qctx, rl.c, t.EmployeeID)
	if err != nil || st.Phase != workflows.PhaseScheduled || st.Kind != t.Kind || st.EffectiveAt.Equal(t.EffectiveAt) {
		return false, nil
	}
	if held, err := rl.admit(ctx, source, "reschedule", t, o); err != nil || held {
		return false, err
	}
	// A signed Update (operator.go) for the run just read, moving the time it showed.
	v, err := rl.hrDecide(ctx, source, runs.Request{EmployeeID: t.EmployeeID, RunID: st.RunID, Kind: workflows.UpdateReschedule,
		Payload: workflows.Reschedule{EffectiveAt: t.EffectiveAt, From: st.EffectiveAt}, IdempotencyKey: t.EventID})
	if err != nil || !v.Accepted {
		rl.log.Warn("reschedule not applied", "employee", t.EmployeeID, "error", fmt.Sprint(err), "reason", v.Reason)
		return false, nil
	}
	return true, nil
}
