package entra_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/connectors/entra"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/fault"
	"github.com/offboard/offboard/sandbox/graph"
)

// faulty lets a test decide, request by request, to answer instead of the simulator.
type faulty struct {
	next http.RoundTripper
	mu   sync.Mutex
	// answer returns a response or an error to use instead of the simulator's, or (nil, nil).
	answer func(r *http.Request) (*http.Response, error)
	gets   int // GETs of memberOf that reached the simulator
}

func (f *faulty) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	resp, err := f.answer(r)
	if resp == nil && err == nil && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/memberOf") {
		f.gets++
	}
	f.mu.Unlock()
	if resp != nil || err != nil {
		return resp, err
	}
	return f.next.RoundTrip(r)
}

func (f *faulty) memberOfGets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets
}

const garbageBody = "<html><body>502 upstream \x00\xff{\"id\":"

func garbage(r *http.Request) *http.Response { return answer(r, garbageBody) }

func answer(r *http.Request, body string) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}
}

func faultyClient(t *testing.T, answer func(r *http.Request) (*http.Response, error)) (*graph.Sim, *entra.Client, *faulty) {
	t.Helper()
	sim := graph.New(graph.Options{People: people, RequestsPerSecond: 10000})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	f := &faulty{next: srv.Client().Transport, answer: answer}
	c, err := entra.New(entra.Config{Name: "entra", BaseURL: srv.URL, HTTPClient: &http.Client{Transport: f}})
	require.NoError(t, err)
	return sim, c, f
}

// A later page of memberOf that gets no answer at all is a lost connection,
// not "an unreadable 200": the first page's status must not judge it. Make
// chaos ended dozens of remove_groups in exceptions this way (hung requests).
func TestMemberOfLaterPageLostIsTransient(t *testing.T) {
	sim, c, _ := faultyClient(t, func(r *http.Request) (*http.Response, error) {
		if r.URL.Query().Get("$skiptoken") != "" {
			return nil, errors.New("connection reset by peer")
		}
		return nil, nil
	})
	u, ok := sim.User(people[9].Email)
	require.True(t, ok)
	require.Greater(t, len(u.Groups)+len(u.Roles), 2, "memberOf must span pages (2 a page) for this test to mean anything")
	acct := control.Account{Target: "entra", ID: u.ID}

	for _, name := range []string{"remove_groups", "remove_directory_roles"} {
		_, err := c.Observe(t.Context(), name, acct, control.Params{})
		require.ErrorIs(t, err, control.ErrTransient, name)
		var cerr *control.Error
		require.ErrorAs(t, err, &cerr)
		assert.Zero(t, cerr.HTTPStatus, "no response arrived for the page that failed")
		assert.NotContains(t, err.Error(), "unreadable")

		_, err = c.Enforce(t.Context(), name, acct, control.Params{})
		require.ErrorIs(t, err, control.ErrTransient, name)
	}
	after, _ := sim.User(people[9].Email)
	assert.Equal(t, u.Groups, after.Groups, "nothing removed from a list that was not read whole")
}

func TestUnreadableAnswerKinds(t *testing.T) {
	t.Run("a read's is asked again", func(t *testing.T) {
		_, c, _ := faultyClient(t, func(r *http.Request) (*http.Response, error) { return garbage(r), nil })
		_, err := c.Observe(t.Context(), "disable", control.Account{ID: people[0].EmployeeID}, control.Params{})
		require.ErrorIs(t, err, control.ErrTransient)
		assert.Contains(t, err.Error(), "unreadable 200 response to a read (sha256:")
	})
	t.Run("a write's waits for a person", func(t *testing.T) {
		e := setup(t, 10000)
		acct := e.account(t, people[0])
		e.sim.Faults().Add(fault.Rule{Method: http.MethodPatch, Garbage: true})
		_, err := e.client.Enforce(t.Context(), "disable", acct, control.Params{})
		require.ErrorIs(t, err, control.ErrPermanent)
		assert.Contains(t, err.Error(), "unreadable 200 response (sha256:")
	})
	// The SDK reads an empty body, {} or a null value as an empty page:
	// "no groups left" and "no such user" were claimed from them.
	for _, body := range []string{"", `{}`, `{"value":null}`} {
		t.Run("a list answered "+body, func(t *testing.T) {
			_, c, _ := faultyClient(t, func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/memberOf") || r.URL.Query().Has("$filter")) {
					return answer(r, body), nil
				}
				return nil, nil
			})
			_, err := c.Observe(t.Context(), "remove_groups", control.Account{ID: people[0].EmployeeID}, control.Params{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "no page")
			// A well-formed wrong answer will say the same again: a person looks.
			assert.ErrorIs(t, err, map[bool]error{true: control.ErrTransient, false: control.ErrPermanent}[body == ""])
			_, err = c.Resolve(t.Context(), control.Person{Email: "no.mail.match@example.test"})
			require.Error(t, err)
			assert.NotErrorIs(t, err, control.ErrNotFound, "no account claimed from a list that was not there")
		})
	}
}

// applyWithRetries runs ApplyControl as the workflow does: retried by
// Temporal on a retryable failure, at most three attempts.
func applyWithRetries(ctx workflow.Context, in activities.ControlInput) (control.Receipt, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3,
			NonRetryableErrorTypes: activities.NonRetryable},
	})
	var a *activities.Activities
	var r control.Receipt
	err := workflow.ExecuteActivity(ctx, a.ApplyControl, in).Get(ctx, &r)
	return r, err
}

func runApply(t *testing.T, c *entra.Client, acct control.Account) (control.Receipt, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(applyWithRetries)
	env.RegisterActivity(activities.New(config.Config{}, []control.Target{c}))
	env.ExecuteWorkflow(applyWithRetries, activities.ControlInput{ControlID: "entra/remove_groups", Target: "entra",
		Control: "remove_groups", Phase: control.Removal, Account: acct})
	require.True(t, env.IsWorkflowCompleted())
	var r control.Receipt
	err := env.GetWorkflowError()
	if err == nil {
		require.NoError(t, env.GetWorkflowResult(&r))
	}
	return r, err
}

// One unreadable read-back, then a good answer: the retry reads again and
// the control ends observed on that fresh read, never on the garbage.
func TestUnreadableReadBackIsReadAgain(t *testing.T) {
	var deleted, served bool
	sim, c, f := faultyClient(t, func(r *http.Request) (*http.Response, error) {
		switch {
		case r.Method == http.MethodDelete:
			deleted = true
		case deleted && !served && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/memberOf"):
			served = true // the first read-back after the removals
			return garbage(r), nil
		}
		return nil, nil
	})
	u, _ := sim.User(people[9].Email)
	acct := control.Account{Target: "entra", ID: u.ID}

	r, err := runApply(t, c, acct)
	require.NoError(t, err)
	require.True(t, served, "the read-back was never answered with garbage: the test tests nothing")
	assert.Equal(t, control.Observed, r.Outcome)
	assert.Equal(t, int32(2), r.Attempt, "observed on the retry")
	require.NotEmpty(t, r.Calls)
	last := r.Calls[len(r.Calls)-1]
	require.NotNil(t, last.Holds)
	assert.True(t, *last.Holds)
	assert.Equal(t, http.StatusOK, last.HTTPStatus)
	assert.NotEqual(t, control.Digest([]byte(garbageBody)), last.Digest, "the receipt rests on a readable answer")
	after, _ := sim.User(people[9].Email)
	assert.Equal(t, []string{graph.DynamicGroup}, after.Groups)
	assert.Greater(t, f.memberOfGets(), 3, "observe, enforce's list and the retry's fresh read reached Graph")
}

// Garbage on every read: the retries run out and the control is an exception.
func TestUnreadableEveryTimeIsAnException(t *testing.T) {
	_, c, _ := faultyClient(t, func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/memberOf") {
			return garbage(r), nil
		}
		return nil, nil
	})
	acct := control.Account{Target: "entra", ID: people[9].EmployeeID}
	r, err := runApply(t, c, acct)
	require.Error(t, err)
	assert.Empty(t, r.Outcome, "no receipt from an unreadable answer")
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, activities.ErrTypeTransient, appErr.Type())
	assert.Contains(t, err.Error(), "unreadable 200 response to a read")
}
