package runs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/offboard/offboard/internal/decision"
	"github.com/offboard/offboard/workflows"
)

// What Start did with an HR event.
const (
	OutcomeStarted    = "started"    // a new run
	OutcomeDuplicate  = "duplicate"  // the run for this event, or another in flight: nothing changed
	OutcomeSuperseded = "superseded" // a termination took over a role change in flight
	OutcomeCorrected  = "corrected"  // the run in flight took the event's corrected identity
)

// Memo keys a run is started with, beside memoEventID: what Start needs to
// answer a later event without asking a worker.
const (
	memoKind     = "kind"
	memoIdentity = "identity"
)

// existingRun is what Start reads about the person's latest run.
type existingRun struct {
	runID, event, identity string
	kind                   workflows.Kind
	running                bool
}

// IdentityDigest names who an event says the person is: the e-mail
// (trimmed, lower case), the name and the account hints. Two events about
// the same employee with different digests mean HR corrected the identity.
func IdentityDigest(t workflows.Termination) string {
	b, _ := json.Marshal(struct {
		Email    string            `json:"email"`
		Name     string            `json:"name"`
		Accounts map[string]string `json:"accounts"` // encoding/json sorts the keys
	}{strings.ToLower(strings.TrimSpace(t.Email)), strings.TrimSpace(t.Name), t.Accounts})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// answerExisting decides what an event means for the person's run: a
// correction or a supersession is sent to that very run; anything else is a
// duplicate and changes nothing.
func answerExisting(ctx context.Context, c client.Client, t workflows.Termination, run existingRun, key ed25519.PrivateKey) (Started, error) {
	id := workflows.WorkflowID(t.EmployeeID)
	st := Started{WorkflowID: id, RunID: run.runID, SameEvent: run.event == t.EventID}
	corrects := run.identity != "" && run.identity != IdentityDigest(t)
	switch {
	case run.running && run.kind == workflows.KindRoleChange && t.Kind != workflows.KindRoleChange:
		st.Outcome, st.Note = OutcomeSuperseded, "the role change in flight (event "+run.event+") is superseded by this "+string(t.Kind)
	case run.running && corrects && (st.SameEvent || t.Kind == run.kind) && appliedBefore(ctx, c, id, run.runID, t):
		st.Outcome, st.Duplicate, st.Note = OutcomeDuplicate, true, "the run in flight already took this event's corrected identity"
		return st, nil
	case run.running && corrects && (st.SameEvent || t.Kind == run.kind):
		st.Outcome, st.Note = OutcomeCorrected, "the run in flight (event "+run.event+") takes this event's corrected identity"
	case st.SameEvent:
		st.Outcome, st.Duplicate, st.Note = OutcomeDuplicate, true, "this event already started this run"
		return st, nil
	default:
		st.Outcome, st.Duplicate, st.Note = OutcomeDuplicate, true, "a deprovisioning for this person is already in flight (event "+run.event+")"
		return st, nil
	}
	// Signed for the run read, and sent to it by its id: never to a newer one.
	if key == nil {
		return Started{}, fmt.Errorf("%s %s: %s: %w", st.Outcome, id, st.Note, ErrUnsigned)
	}
	ev, err := signHREvent(key, id, run.runID, t)
	if err != nil {
		return Started{}, err
	}
	err = c.SignalWorkflow(ctx, id, run.runID, workflows.SignalHREvent, ev)
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		// It closed a moment ago: the sender delivers again and starts a new run.
		return Started{}, fmt.Errorf("start %s: run %s closed while this event was applied to it: %w", id, run.runID, ErrUnavailable)
	case err != nil:
		return Started{}, fmt.Errorf("start %s: %s to run %s: %w: %w", id, st.Outcome, run.runID, ErrUnavailable, err)
	}
	return st, nil
}

// ErrUnsigned: an HR event that would change a run in flight came without
// the key the runs trust; only the relay (or a holder of its key) sends those.
var ErrUnsigned = errors.New("an HR event that changes a run in flight must be signed by the relay's key (relay.decisionKey): send it through `starter serve`, or correct the run with `starter correct`")

// signHREvent signs t for one run as the HR system that sent it.
func signHREvent(key ed25519.PrivateKey, workflowID, runID string, t workflows.Termination) (workflows.HREvent, error) {
	body, err := json.Marshal(t)
	if err != nil {
		return workflows.HREvent{}, fmt.Errorf("sign hr event: %w", err)
	}
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return workflows.HREvent{}, fmt.Errorf("sign hr event: %w", err)
	}
	signed, err := decision.Sign(key, decision.Decision{WorkflowID: workflowID, RunID: runID, Kind: decision.KindHREvent,
		Person: "hris:" + t.Source, Roles: []string{decision.RoleHR}, Payload: body, At: time.Now().UTC(), Nonce: hex.EncodeToString(nonce[:])})
	if err != nil {
		return workflows.HREvent{}, fmt.Errorf("sign hr event: %w", err)
	}
	return workflows.HREvent{Termination: t, Signed: &signed}, nil
}

// memoValue reads one string of the run's memo, like memoString.
func memoValue(desc *client.WorkflowExecutionDescription, key string) string {
	var s string
	if desc.Memo != nil {
		if err := desc.GetMemoValue(key, &s); err != nil {
			return ""
		}
		return s
	}
	p := desc.RawResponse.GetWorkflowExecutionInfo().GetMemo().GetFields()[key]
	if p == nil {
		return ""
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}

// queryKind asks a run started before its kind was in the memo; "" when it
// cannot answer (no worker), and the event is then a duplicate as before.
func queryKind(ctx context.Context, c client.Client, id, runID string) workflows.Kind {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, runID, workflows.QueryStatus)
	if err != nil {
		return ""
	}
	var st workflows.Status
	if v.Get(&st) != nil {
		return ""
	}
	return st.Kind
}

// appliedBefore reports whether the run already recorded a correction from
// this very event with these values (a redelivery of a correction). The
// memo keeps the identity the run started with; the run's status keeps the
// corrections since. When the run cannot answer, the event is sent again:
// the run itself ignores what it already knows.
func appliedBefore(ctx context.Context, c client.Client, id, runID string, t workflows.Termination) bool {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, runID, workflows.QueryStatus)
	if err != nil {
		return false
	}
	var st workflows.Status
	if v.Get(&st) != nil {
		return false
	}
	for _, corr := range st.Corrections {
		if corr.EventID != t.EventID {
			continue
		}
		same := corr.Email == "" || strings.EqualFold(strings.TrimSpace(corr.Email), strings.TrimSpace(t.Email))
		same = same && (corr.Name == "" || corr.Name == t.Name)
		for k, v := range corr.Accounts {
			same = same && t.Accounts[k] == v
		}
		if same {
			return true
		}
	}
	return false
}
