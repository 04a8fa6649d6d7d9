package awsiam_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/activities"
	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/sandbox/demo"
	iamsim "github.com/offboard/offboard/sandbox/iam"
)

// IAM-shaped bodies the simulator never sends where these cases put them.
const (
	noSuchEntityXML = `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>NoSuchEntity</Code>` +
		`<Message>The user with name x cannot be found.</Message></Error><RequestId>4f1c0f52-0000-4000-8000-000000000001</RequestId></ErrorResponse>`
	accessDeniedXML = `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code>` +
		`<Message>User: arn:aws:iam::123456789012:user/offboard is not authorized to perform: iam:ListServiceSpecificCredentials with an explicit deny in a service control policy</Message></Error>` +
		`<RequestId>4f1c0f52-0000-4000-8000-000000000002</RequestId></ErrorResponse>`
)

var (
	hostileAdmin   = people[9]  // privileged: 2 keys, 3 groups over two pages, AdministratorAccess, in admins
	hostileRenamed = people[38] // margaret.dijkstra1039: ListUsers lists it on page 3, and only its tags link the email to it
)

// hostileEnv is one case's servers: the honest simulator, a hostile server
// in front of it, a connector on the hostile server and the activities
// that make claims from what the connector says.
type hostileEnv struct {
	sim    *iamsim.Sim
	srv    *hostile.Server
	client *awsiam.Client
	acts   *activities.Activities
	ctx    context.Context
}

type awsCase struct {
	name     string
	rules    func(base http.Handler) []hostile.Rule
	basePath string // the real API is served only under this path: a wrong endpoint
	run      func(t *testing.T, h *hostileEnv) (hostile.Verdict, string)
}

// TestHostile runs the awsiam connector, and the activities that turn its
// answers into receipts, against IAM servers that behave unlike the
// simulator. Every case must end in a true observation or a visible
// exception; make hostile sums the tally line this test prints.
func TestHostile(t *testing.T) {
	tally := hostile.NewTally(t, "awsiam")
	for _, tc := range append(emptyAnswerCases(), []awsCase{
		{name: "403 on ListServiceSpecificCredentials (an SCP): the other kinds are contained",
			rules: one(action("ListServiceSpecificCredentials"), hostile.Body(403, "text/xml", accessDeniedXML)),
			run:   containAll("service-specific credentials", "deactivate_service_credentials")},
		{name: "HTML 500 on the SSH key API family: the other kinds are contained",
			rules: one(action("ListSSHPublicKeys", "UpdateSSHPublicKey", "DeleteSSHPublicKey"), hostile.HTML(500)),
			run:   containAll("SSH public keys", "deactivate_ssh_keys")},
		{name: "403 on ListServiceSpecificCredentials under the combined control of older plans",
			rules: one(action("ListServiceSpecificCredentials"), hostile.Body(403, "text/xml", accessDeniedXML)),
			run:   legacyCombined},
		{name: "NoSuchEntity on ListAccessKeys of a user that exists",
			rules: one(action("ListAccessKeys"), hostile.Body(404, "text/xml", noSuchEntityXML)),
			run:   applyCase(awsiam.DeactivateAccessKeys, keysInactive)},
		{name: "NoSuchEntity naming the user on GetLoginProfile and DeleteLoginProfile of a user that exists",
			rules: one(action("GetLoginProfile", "DeleteLoginProfile"), hostile.Body(404, "text/xml", noSuchEntityXML)),
			run:   applyCase(awsiam.DeleteLoginProfile, loginProfileGone)},
		{name: "HTML 404 on ListGroupsForUser",
			rules: one(action("ListGroupsForUser"), hostile.HTML(404)),
			run:   applyCase(awsiam.RemoveGroups, groupsGone)},
		{name: "plain 404 on UpdateAccessKey",
			rules: one(action("UpdateAccessKey"), hostile.PlainNotFound()),
			run:   applyCase(awsiam.DeactivateAccessKeys, keysInactive)},
		{name: "DeleteUser answers NoSuchEntity, but the user is still there",
			rules: one(action("DeleteUser"), hostile.Body(404, "text/xml", noSuchEntityXML)),
			run:   applyCase(awsiam.DeleteUser, userGone)},
		{name: "403 on ListServiceSpecificCredentials: delete_user goes on and names what is left",
			rules: one(action("ListServiceSpecificCredentials"), hostile.Body(403, "text/xml", accessDeniedXML)),
			run:   deleteUserLeftovers},
		{name: "wrong endpoint path: resolve", basePath: "/iam", run: resolveCase(hostileAdmin)},
		{name: "wrong endpoint path: apply", basePath: "/iam", run: applyCase(awsiam.DeactivateAccessKeys, keysInactive)},
		{name: "proxy answering HTML 404 to everything: verify", rules: one(hostile.Any(), hostile.HTML(404)), run: verifyCase(awsiam.DeleteUser, userGone)},
		{name: "GetUser by name answers HTML 404: resolve", rules: one(action("GetUser"), hostile.HTML(404)), run: resolveCase(hostileAdmin)},
		{name: "ListUsers ignores Marker (serves page 1 again)", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: action("ListUsers"), Handler: dropForm(base, "Marker")}}
		}, run: resolveCase(hostileRenamed)},
		{name: "ListUsers says IsTruncated without a Marker", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: action("ListUsers"), Handler: noMarker(base)}}
		}, run: resolveCase(hostileRenamed)},
		{name: "ListGroupsForUser ignores Marker", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: action("ListGroupsForUser"), Handler: dropForm(base, "Marker")}}
		}, run: applyCase(awsiam.RemoveGroups, groupsGone)},
		{name: "policies unreadable (403) while resolving an admin", rules: one(action("ListAttachedUserPolicies", "ListGroupsForUser"), hostile.Body(403, "text/xml", accessDeniedXML)),
			run: resolveCase(hostileAdmin)},
		{name: "HTML 500 on ListAttachedUserPolicies while resolving an admin", rules: one(action("ListAttachedUserPolicies"), hostile.HTML(500)),
			run: resolveCase(hostileAdmin)},
		{name: "slow ListAccessKeys past the deadline", rules: func(base http.Handler) []hostile.Rule {
			return []hostile.Rule{{Match: action("ListAccessKeys"), Handler: hostile.Slow(5*time.Second, base)}}
		}, run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			ctx, cancel := context.WithTimeout(h.ctx, 300*time.Millisecond)
			defer cancel()
			h.ctx = ctx
			return applyCase(awsiam.DeactivateAccessKeys, keysInactive)(t, h)
		}},
		{name: "honest server: a person with no user", run: resolveNobody},
		{name: "honest server: the stale hint falls back to the email", run: resolveCase(hostileRenamed)},
		{name: "honest server: a deleted user is gone, twice", run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			_, err := h.client.Enforce(h.ctx, awsiam.DeleteUser, hostileAccount(hostileAdmin), control.Params{})
			require.NoError(t, err)
			return applyCase(awsiam.DeactivateAccessKeys, keysInactive)(t, h)
		}},
	}...) {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostileEnv(t, tc)
			v, why := tc.run(t, h)
			if (tc.rules != nil || tc.basePath != "") && h.srv.Hits() == 0 && tc.basePath == "" {
				t.Fatalf("the hostile rule was never hit: the case tests nothing")
			}
			tally.Record(t, v, why)
		})
	}
}

func newHostileEnv(t *testing.T, tc awsCase) *hostileEnv {
	t.Helper()
	// No secret: the simulator then checks only the key id, so a rule may
	// rewrite a signed body.
	sim := iamsim.New(iamsim.Options{AccessKeyID: testKey, RequestsPerSecond: 100000, People: people})
	base := sim.Handler()
	var rules []hostile.Rule
	if tc.rules != nil {
		rules = tc.rules(base)
	}
	if tc.basePath != "" {
		rules = append(rules, hostile.Rule{Match: hostile.Any(), Handler: hostile.BasePath(tc.basePath, base)})
	}
	srv := hostile.New(t, base, rules...)
	c, err := awsiam.New(t.Context(), awsiam.Config{Name: target, AccountID: "123456789012", Endpoint: srv.URL,
		Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, "")})
	require.NoError(t, err)
	// hostileRenamed's user carries another email now: only the tag scan finds it.
	honest := iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(httptestURL(t, base)), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(testKey, testSecret, ""), HTTPClient: buffered{}})
	_, err = honest.TagUser(t.Context(), &iam.TagUserInput{UserName: aws.String(hostileRenamed.Login),
		Tags: []types.Tag{{Key: aws.String("email"), Value: aws.String("renamed@example.test")}}})
	require.NoError(t, err)
	return &hostileEnv{sim: sim, srv: srv, client: c, acts: activities.New(config.Config{}, []control.Target{c}), ctx: t.Context()}
}

func httptestURL(t *testing.T, h http.Handler) string {
	return hostile.New(t, h).URL
}

func one(m hostile.Matcher, h http.Handler) func(http.Handler) []hostile.Rule {
	return func(http.Handler) []hostile.Rule { return []hostile.Rule{{Match: m, Handler: h}} }
}

// action matches IAM Query API calls by their Action (in the form body).
func action(names ...string) hostile.Matcher {
	return func(r *http.Request) bool {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f, _ := url.ParseQuery(string(body))
		return slices.Contains(names, f.Get("Action"))
	}
}

// dropForm passes the call on without the named form fields: a server that
// ignores Marker serves the first page again.
func dropForm(base http.Handler, keys ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f, _ := url.ParseQuery(string(body))
		for _, k := range keys {
			f.Del(k)
		}
		enc := f.Encode()
		r2 := r.Clone(r.Context())
		r2.Body, r2.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
		base.ServeHTTP(w, r2)
	})
}

var markerEl = regexp.MustCompile(`<Marker>[^<]*</Marker>`)

// noMarker says IsTruncated but leaves out the Marker.
func noMarker(base http.Handler) http.Handler {
	return hostile.Rewrite(base, func(_ *http.Request, status int, _ http.Header, body []byte) (int, []byte) {
		return status, markerEl.ReplaceAll(body, nil)
	})
}

func hostileAccount(p demo.Person) control.Account {
	return control.Account{Target: target, ID: p.Login, Login: p.Login}
}

// --- the truth, read from the simulator ---

type truth func(h *hostileEnv) (holds, gone bool)

func userGone(h *hostileEnv) (bool, bool) {
	_, ok := h.sim.User(hostileAdmin.Login)
	return !ok, !ok
}

func inactive(pick func(iamsim.User) []iamsim.Credential) truth {
	return func(h *hostileEnv) (bool, bool) {
		u, ok := h.sim.User(hostileAdmin.Login)
		return !ok || countStatus(pick(u), "Active") == 0, !ok
	}
}

var (
	keysInactive = inactive(func(u iamsim.User) []iamsim.Credential { return u.AccessKeys })
	sshInactive  = inactive(func(u iamsim.User) []iamsim.Credential { return u.SSHPublicKeys })
	svcInactive  = inactive(func(u iamsim.User) []iamsim.Credential { return u.ServiceSpecificCredentials })
	certInactive = inactive(func(u iamsim.User) []iamsim.Credential { return u.SigningCertificates })
)

func loginProfileGone(h *hostileEnv) (bool, bool) {
	u, ok := h.sim.User(hostileAdmin.Login)
	return !ok || !u.LoginProfile, !ok
}

func groupsGone(h *hostileEnv) (bool, bool) {
	u, ok := h.sim.User(hostileAdmin.Login)
	return !ok || len(u.Groups) == 0, !ok
}

func denyAllInForce(h *hostileEnv) (bool, bool) {
	u, ok := h.sim.User(hostileAdmin.Login)
	return !ok || u.InlinePolicies["OffboardDenyAll"] != "", !ok
}

var containmentTruth = map[string]truth{
	awsiam.DeactivateAccessKeys:   keysInactive,
	awsiam.DeleteLoginProfile:     loginProfileGone,
	awsiam.DeactivateSSHKeys:      sshInactive,
	awsiam.DeactivateServiceCreds: svcInactive,
	awsiam.DeactivateSigningCerts: certInactive,
	awsiam.DenyAllPolicy:          denyAllInForce,
}

// --- the questions asked, through the activities that make the claims ---

func input(name string, phase control.Phase) activities.ControlInput {
	return activities.ControlInput{ControlID: target + "/" + name, Target: target, Control: name, Phase: phase,
		Account: hostileAccount(hostileAdmin), Params: control.Params{Since: time.Now().Add(-time.Minute)}}
}

// judge checks a receipt's claim against the simulator.
func judge(h *hostileEnv, r control.Receipt, err error, real truth) (hostile.Verdict, string) {
	holds, gone := real(h)
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case r.Gone && !gone:
		return hostile.FalseClaim, "receipt says gone, but the user exists: " + r.Detail
	case r.Outcome == control.Observed && !holds:
		return hostile.FalseClaim, "receipt says observed, but it does not hold: " + r.Detail
	}
	return hostile.TrueObservation, string(r.Outcome) + ": " + r.Detail
}

func applyCase(name string, real truth) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		r, err := h.acts.ApplyControl(h.ctx, input(name, control.Containment))
		return judge(h, r, err, real)
	}
}

func verifyCase(name string, real truth) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		r, err := h.acts.VerifyControl(h.ctx, input(name, control.Deletion))
		return judge(h, r, err, real)
	}
}

// containAll applies every containment control, as the workflow does in
// parallel: the kind the server refuses must be its own exception, naming
// it, and every other kind must really be contained.
func containAll(kind, failing string) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		verdict, why := hostile.TrueObservation, ""
		for _, name := range h.client.Controls(control.Containment) {
			r, err := h.acts.ApplyControl(h.ctx, input(name, control.Containment))
			v, w := judge(h, r, err, containmentTruth[name])
			why += fmt.Sprintf("%s: %s: %s\n", name, v, w)
			if v == hostile.FalseClaim || (v == hostile.VisibleException && verdict == hostile.TrueObservation) {
				verdict = v
			}
			if name == failing {
				require.Error(t, err, "the kind the server refuses is an exception")
				require.Contains(t, err.Error(), kind)
			} else if holds, _ := containmentTruth[name](h); !holds || err != nil {
				t.Errorf("%s was not contained while %s failed: %v", name, kind, err)
			}
		}
		return verdict, why
	}
}

// legacyCombined: plans recorded before the split name deactivate_credentials;
// it contains the kinds it can list and fails naming exactly the other.
func legacyCombined(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	r, err := h.acts.ApplyControl(h.ctx, input(awsiam.DeactivateCreds, control.Containment))
	v, why := judge(h, r, err, svcInactive)
	require.Error(t, err)
	require.Contains(t, err.Error(), "service-specific credentials could not be listed")
	require.NotContains(t, err.Error(), "SSH public keys could not")
	for name, real := range map[string]truth{"ssh": sshInactive, "certs": certInactive} {
		holds, _ := real(h)
		require.True(t, holds, "%s contained meanwhile", name)
	}
	return v, why
}

// deleteUserLeftovers: with one kind unlistable, delete_user sweeps the
// rest and its exception names exactly what is left.
func deleteUserLeftovers(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	r, err := h.acts.ApplyControl(h.ctx, input(awsiam.DeleteUser, control.Deletion))
	v, why := judge(h, r, err, userGone)
	require.Error(t, err)
	require.Contains(t, err.Error(), "service-specific credentials could not be listed")
	require.Contains(t, err.Error(), "DeleteConflict")
	u, ok := h.sim.User(hostileAdmin.Login)
	require.True(t, ok)
	require.Empty(t, u.AccessKeys)
	require.Empty(t, u.SSHPublicKeys)
	require.Empty(t, u.Groups)
	require.Len(t, u.ServiceSpecificCredentials, 1, "what is left is what the error names")
	return v, why
}

// resolveCase: the person has a user; "no account" is false, and a found
// account must be theirs, with their admin rights (or a word that they
// could not be read: never silence).
func resolveCase(p demo.Person) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		person := control.Person{EmployeeID: p.EmployeeID, Email: p.Email, Hints: map[string]string{target: "stale-" + p.Login}}
		if p == hostileRenamed {
			person.Email = "renamed@example.test"
		}
		res, err := h.acts.ResolveAccount(h.ctx, activities.ResolveInput{Target: target, Person: person})
		switch {
		case err != nil:
			return hostile.VisibleException, err.Error()
		case res.NoAccount:
			return hostile.FalseClaim, fmt.Sprint("no account, but the user exists; searched ", res.Searched)
		case res.Account.ID != p.Login:
			return hostile.FalseClaim, "resolved " + res.Account.ID + ", the user is " + p.Login
		case p.Privileged && len(res.Account.Privileges) == 0:
			return hostile.FalseClaim, "resolved with no privileges, but the user holds AdministratorAccess"
		}
		return hostile.TrueObservation, fmt.Sprintf("resolved %s, privileges %v", res.Account.ID, res.Account.Privileges)
	}
}

// resolveNobody: "no account" is true only with a record of what was searched.
func resolveNobody(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	res, err := h.acts.ResolveAccount(h.ctx, activities.ResolveInput{Target: target, Person: control.Person{EmployeeID: "E0", Email: "nobody@example.test"}})
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case res.NoAccount && len(res.Searched) >= 3:
		return hostile.TrueObservation, fmt.Sprint("no account; searched ", res.Searched)
	case res.NoAccount:
		return hostile.FalseClaim, fmt.Sprint("no account on too thin a search: ", res.Searched)
	}
	return hostile.FalseClaim, "found an account for a person who has none"
}

// emptyAnswerCases: a 200 with an empty body, null, {}, or the IAM response
// without its list element, where IAM sends the list (<AccessKeyMetadata/>
// when empty): "no active keys", "no groups", "no account" must not rest on it.
func emptyAnswerCases() []awsCase {
	var cases []awsCase
	for _, c := range []struct {
		action, list string
		run          func(*testing.T, *hostileEnv) (hostile.Verdict, string)
	}{
		{"ListAccessKeys", "AccessKeyMetadata", applyCase(awsiam.DeactivateAccessKeys, keysInactive)},
		{"ListSSHPublicKeys", "SSHPublicKeys", applyCase(awsiam.DeactivateSSHKeys, sshInactive)},
		{"ListGroupsForUser", "Groups", applyCase(awsiam.RemoveGroups, groupsGone)},
		{"ListUsers", "Users", resolveCase(hostileRenamed)},
		{"ListAttachedUserPolicies", "AttachedPolicies", resolveCase(hostileAdmin)},
	} {
		noList := `<` + c.action + `Response xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><` + c.action + `Result><IsTruncated>false</IsTruncated></` +
			c.action + `Result><ResponseMetadata><RequestId>4f1c0f52-0000-4000-8000-000000000003</RequestId></ResponseMetadata></` + c.action + `Response>`
		for _, b := range []struct{ name, body string }{{"an empty body", ""}, {"null", "null"}, {"{}", "{}"}, {"no " + c.list + " element", noList}} {
			cases = append(cases, awsCase{name: c.action + " answers 200 with " + b.name, rules: one(action(c.action), hostile.Body(200, "text/xml", b.body)), run: c.run})
		}
	}
	// A Get call's empty 200 has no entity: not "exists", not "in force".
	for _, c := range []struct {
		action string
		run    func(*testing.T, *hostileEnv) (hostile.Verdict, string)
	}{
		{"GetUser", resolveCase(hostileAdmin)},
		{"GetLoginProfile", applyCase(awsiam.DeleteLoginProfile, loginProfileGone)},
		{"GetUserPolicy", applyCase(awsiam.DenyAllPolicy, denyAllInForce)},
	} {
		cases = append(cases, awsCase{name: c.action + " answers 200 with an empty body", rules: one(action(c.action), hostile.Body(200, "text/xml", "")), run: c.run})
	}
	return cases
}
