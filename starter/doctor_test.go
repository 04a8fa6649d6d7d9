package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/workerapp"
	"github.com/offboard/offboard/sandbox/demo"
	iamsim "github.com/offboard/offboard/sandbox/iam"
	oktasim "github.com/offboard/offboard/sandbox/okta"
	"github.com/offboard/offboard/sandbox/scimapp"
)

// fakeTarget is a target whose self-check answers what the test says; with
// probe nil it has none.
type fakeTarget struct {
	name  string
	probe func() (control.Probe, error)
}

func (f fakeTarget) Name() string                    { return f.name }
func (f fakeTarget) Kind() string                    { return "fake" }
func (f fakeTarget) Controls(control.Phase) []string { return nil }
func (f fakeTarget) Resolve(context.Context, control.Person) (control.Account, error) {
	return control.Account{}, nil
}
func (f fakeTarget) Observe(context.Context, string, control.Account, control.Params) (control.Observation, error) {
	return control.Observation{}, nil
}
func (f fakeTarget) Enforce(context.Context, string, control.Account, control.Params) (control.Response, error) {
	return control.Response{}, nil
}

type proberTarget struct{ fakeTarget }

func (p proberTarget) Probe(context.Context) (control.Probe, error) { return p.probe() }

func answers(checks []string, missing []string, err error) func() (control.Probe, error) {
	return func() (control.Probe, error) { return control.Probe{Checks: checks, Missing: missing}, err }
}

func TestDoctor(t *testing.T) {
	good := proberTarget{fakeTarget{"okta", answers([]string{"GET /api/v1/users/me: 200"}, nil, nil)}}
	plain := fakeTarget{name: "legacy"}
	badURL := proberTarget{fakeTarget{"scim-crm", answers(nil, nil, &control.Error{Kind: control.ErrUnexpected, Op: "scim-crm: probe", HTTPStatus: 404, Err: errors.New("not a SCIM API")})}}
	missing := proberTarget{fakeTarget{"entra", answers([]string{"GET /organization: 200"}, []string{"User.ReadWrite.All"}, nil)}}

	var out bytes.Buffer
	code := doctor(t.Context(), []control.Target{good, plain}, nil, time.Second, &out)
	assert.Equal(t, exitOK, code, out.String())
	assert.Equal(t, "okta (fake)            ok\n"+
		"                         GET /api/v1/users/me: 200\n"+
		"legacy (fake)          no self-check\n"+
		"1 of 1 targets passed their self-check\n", out.String())

	out.Reset()
	unbuilt := []workerapp.ProbeResult{{Target: "aws", Kind: "awsiam", Probed: true, Err: errors.New("aws.accessKeyID: environment variable AWS_KEY is not set")}}
	code = doctor(t.Context(), []control.Target{good, badURL, missing, plain}, unbuilt, time.Second, &out)
	assert.Equal(t, exitFailed, code)
	for _, want := range []string{
		"aws (awsiam)           FAILED: aws.accessKeyID: environment variable AWS_KEY is not set\n",
		"okta (fake)            ok\n",
		"scim-crm (fake)        FAILED: scim-crm: probe: unexpected answer (HTTP 404): not a SCIM API\n",
		"entra (fake)           FAILED: missing permissions: User.ReadWrite.All\n",
		"legacy (fake)          no self-check\n",
		"3 of 4 targets FAILED their self-check: aws, scim-crm, entra\n",
	} {
		assert.Contains(t, out.String(), want)
	}
}

func TestDoctorUsage(t *testing.T) {
	t.Setenv("OFFBOARD_CONFIG", "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("targets: []\n"), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-fix"}, "flag provided but not defined: -fix"},
		{"stray argument", []string{"okta"}, `unexpected argument "okta"`},
		{"bad config", []string{"-config", bad}, "targets: lists no target system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := starter(t, append([]string{"doctor"}, tc.args...)...)
			assert.Equal(t, exitUsage, code, stderr)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// The real connectors' self-checks against the sandbox simulators: a
// configuration that is right passes; a wrong token and a wrong base path
// are named.
func TestDoctorAgainstSimulators(t *testing.T) {
	people := demo.People(3)
	okta := httptest.NewServer(oktasim.New(oktasim.Options{Token: "okta-token", People: people}).Handler())
	t.Cleanup(okta.Close)
	app, err := scimapp.New(scimapp.Options{Name: "crm", Bearer: "scim-token", PatchSupported: true, People: people})
	require.NoError(t, err)
	crm := httptest.NewServer(app.Handler())
	t.Cleanup(crm.Close)
	aws := httptest.NewServer(iamsim.New(iamsim.Options{AccessKeyID: "AKIADOCTOR", SecretAccessKey: "aws-secret", People: people}).Handler())
	t.Cleanup(aws.Close)
	t.Setenv("DOCTOR_OKTA_TOKEN", "okta-token")
	t.Setenv("DOCTOR_SCIM_TOKEN", "scim-token")
	t.Setenv("DOCTOR_AWS_KEY_ID", "AKIADOCTOR")
	t.Setenv("DOCTOR_AWS_SECRET", "aws-secret")
	t.Setenv("DOCTOR_WRONG_TOKEN", "not-the-token")

	write := func(body string) string {
		path := filepath.Join(t.TempDir(), "offboard.yaml")
		require.NoError(t, os.WriteFile(path, []byte("targets:\n"+body), 0o600))
		return path
	}
	target := map[string]string{
		"okta": fmt.Sprintf("  - {name: okta, kind: okta, okta: {orgURL: %q, token: {env: DOCTOR_OKTA_TOKEN}}}\n", okta.URL),
		"crm":  fmt.Sprintf("  - {name: crm, kind: scim, scim: {baseURL: %q, bearer: {env: DOCTOR_SCIM_TOKEN}}}\n", crm.URL+"/scim/v2"),
		"aws":  fmt.Sprintf("  - {name: aws, kind: awsiam, aws: {accountID: \"123456789012\", endpoint: %q, accessKeyID: {env: DOCTOR_AWS_KEY_ID}, secretAccessKey: {env: DOCTOR_AWS_SECRET}}}\n", aws.URL),
	}

	code, stdout, stderr := starter(t, "doctor", "-config", write(target["okta"]+target["crm"]+target["aws"]))
	assert.Equal(t, exitOK, code, stdout+stderr)
	assert.Contains(t, stdout, "okta (okta)            ok\n")
	assert.Contains(t, stdout, "crm (scim)             ok\n")
	assert.Contains(t, stdout, "aws (awsiam)           ok\n")
	assert.Contains(t, stdout, "3 of 3 targets passed their self-check\n")

	wrongToken := fmt.Sprintf("  - {name: okta, kind: okta, okta: {orgURL: %q, token: {env: DOCTOR_WRONG_TOKEN}}}\n", okta.URL)
	wrongPath := fmt.Sprintf("  - {name: crm, kind: scim, scim: {baseURL: %q, bearer: {env: DOCTOR_SCIM_TOKEN}}}\n", crm.URL+"/v2")
	unset := "  - {name: aws, kind: awsiam, aws: {accountID: \"123456789012\", endpoint: \"http://127.0.0.1:1\", accessKeyID: {env: DOCTOR_UNSET}, secretAccessKey: {env: DOCTOR_AWS_SECRET}}}\n"
	code, stdout, stderr = starter(t, "doctor", "-config", write(wrongToken+wrongPath+unset))
	assert.Equal(t, exitFailed, code, stdout+stderr)
	assert.Contains(t, stdout, "okta (okta)            FAILED: ")
	assert.Contains(t, stdout, "crm (scim)             FAILED: ")
	assert.Contains(t, stdout, "aws (awsiam)           FAILED: ")
	assert.Contains(t, stdout, "DOCTOR_UNSET")
	assert.Contains(t, stdout, "3 of 3 targets FAILED their self-check: aws, okta, crm\n")
	assert.NotContains(t, stdout, "not-the-token", "no secret in the report")
}
