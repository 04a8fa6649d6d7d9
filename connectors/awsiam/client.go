// Package awsiam removes a leaver's access from one AWS account's IAM: it
// contains (access keys and other credentials inactive, console password
// gone, a deny-all inline policy that also kills STS sessions already
// issued), removes (credentials, MFA, groups, policies, in the order
// DeleteUser needs) and finally deletes the IAM user.
package awsiam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/offboard/offboard/internal/control"
)

// Config is one target: one AWS account.
type Config struct {
	Name        string // target name, e.g. "aws-prod"
	AccountID   string
	Region      string // default us-east-1
	RoleARN     string // optional: role to assume in the account
	Endpoint    string // optional base endpoint for IAM and STS (the simulator's URL)
	Credentials aws.CredentialsProvider
	HTTPClient  *http.Client
	// Non-human identities (owned.go): the tag key naming an owner (default
	// "owner"), the path under which service users are looked for (default
	// "/", every user), and Secrets Manager's endpoint when Endpoint is set
	// (the sandbox serves it apart from IAM; empty there means no secrets).
	OwnerTag          string
	ServicePathPrefix string
	SecretsEndpoint   string
}

// Client is an awsiam target. It implements control.Target.
type Client struct {
	cfg Config
	iam *iam.Client
	sts *sts.Client            // for Probe: who the credentials are
	sm  *secretsmanager.Client // for non-human identities; nil when none is configured
}

var (
	_ control.Target = (*Client)(nil)
	_ control.Prober = (*Client)(nil)
)

// New builds the IAM client. SDK retries are off: the workflow owns retries.
// With no Credentials it uses the default chain (env, shared config, IMDS...).
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Name == "" {
		return nil, errors.New("awsiam: config needs a target name")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	creds := cfg.Credentials
	if creds == nil {
		def, err := config.LoadDefaultConfig(ctx, config.WithRegion(cfg.Region))
		if err != nil {
			return nil, fmt.Errorf("awsiam %s: load default credentials: %w", cfg.Name, err)
		}
		creds = def.Credentials
	}
	var doer bufferedBody
	if cfg.HTTPClient != nil {
		doer.next = cfg.HTTPClient
	} else {
		doer.next = awshttp.NewBuildableClient()
	}
	if cfg.RoleARN != "" {
		stsOpts := sts.Options{
			Region:           cfg.Region,
			Credentials:      creds,
			RetryMaxAttempts: 1,
			APIOptions:       []func(*middleware.Stack) error{recordResponses},
		}
		if cfg.Endpoint != "" {
			stsOpts.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		stsOpts.HTTPClient = doer
		provider := stscreds.NewAssumeRoleProvider(sts.New(stsOpts), cfg.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "offboard"
		})
		creds = aws.NewCredentialsCache(provider)
	}
	opts := iam.Options{
		Region:           cfg.Region,
		Credentials:      creds,
		RetryMaxAttempts: 1,
		APIOptions:       []func(*middleware.Stack) error{recordResponses, requireLists},
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	opts.HTTPClient = doer
	probeOpts := sts.Options{Region: cfg.Region, Credentials: creds, RetryMaxAttempts: 1,
		APIOptions: []func(*middleware.Stack) error{recordResponses}, HTTPClient: doer}
	if cfg.Endpoint != "" {
		probeOpts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	return &Client{cfg: cfg, iam: iam.New(opts), sts: sts.New(probeOpts), sm: newSecretsManager(cfg, creds, doer)}, nil
}

// bufferedBody hands the transport its own in-memory copy of the request
// body. smithy-go closes the request body as soon as the response arrives,
// and when the transport's write loop has not yet read EOF it closes the
// connection under the response being read: a spurious "use of closed network
// connection" on a 200 (aws-sdk-go-v2#2737, which the SDK papers over with a
// retry, and our retries are off). IAM bodies are a few KB.
type bufferedBody struct {
	next interface {
		Do(*http.Request) (*http.Response, error)
	}
}

func (b bufferedBody) Do(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return b.next.Do(req)
	}
	buf, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	own := req.Clone(req.Context())
	own.Body = io.NopCloser(bytes.NewReader(buf))
	own.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	own.ContentLength = int64(len(buf))
	return b.next.Do(own)
}

// Name is the configured target name.
func (c *Client) Name() string { return c.cfg.Name }

// Kind is "awsiam".
func (c *Client) Kind() string { return "awsiam" }

// Control names. Each credential kind has its own controls, so one kind
// that cannot be listed is its own exception while the others are contained.
const (
	DeactivateAccessKeys   = "deactivate_access_keys"
	DeleteLoginProfile     = "delete_login_profile"
	DeactivateSSHKeys      = "deactivate_ssh_keys"
	DeactivateServiceCreds = "deactivate_service_credentials"
	DeactivateSigningCerts = "deactivate_signing_certificates"
	DenyAllPolicy          = "deny_all_policy"
	DeleteAccessKeys       = "delete_access_keys"
	DeleteSSHKeys          = "delete_ssh_keys"
	DeleteServiceCreds     = "delete_service_credentials"
	DeleteSigningCerts     = "delete_signing_certificates"
	DeleteMFADevices       = "delete_mfa_devices"
	RemoveGroups           = "remove_groups"
	DetachPolicies         = "detach_policies"
	DeleteUser             = "delete_user"
	RestoreAccess          = "restore_access"

	// DeactivateCreds and DeleteCreds cover SSH keys, service-specific
	// credentials and signing certificates together. Plans recorded before
	// the kinds were split name them, so runs in flight keep working: each
	// kind is still handled on its own and a failure names exactly the kinds
	// it could not list.
	DeactivateCreds = "deactivate_credentials"
	DeleteCreds     = "delete_credentials"
)

// Controls lists the controls per phase, in the order they should run.
// Removal's order is the order DeleteUser needs everything gone in.
func (c *Client) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{DeactivateAccessKeys, DeleteLoginProfile, DeactivateSSHKeys, DeactivateServiceCreds, DeactivateSigningCerts, DenyAllPolicy}
	case control.Removal:
		return []string{DeleteAccessKeys, DeleteSSHKeys, DeleteServiceCreds, DeleteSigningCerts, DeleteMFADevices, RemoveGroups, DetachPolicies}
	case control.Deletion:
		return []string{DeleteUser}
	case control.RoleChange:
		return []string{RemoveGroups}
	case control.Restore:
		return []string{RestoreAccess}
	}
	return nil
}

// Observe reads whether the named control holds for the account.
func (c *Client) Observe(ctx context.Context, name string, acct control.Account, params control.Params) (control.Observation, error) {
	ctx, rec := withRecorder(ctx)
	r := &run{c: c, ctx: ctx, rec: rec, user: acct.ID, control: name, params: params}
	observe, ok := observers[name]
	if !ok {
		return control.Observation{}, control.Unknown(c.cfg.Name, name)
	}
	obs, err := observe(r)
	if isNoSuchEntity(err) {
		// Gone only on GetUser's own NoSuchEntity for this user.
		gone, uerr := r.userGone(err)
		if gone {
			return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "GetUser " + acct.ID + ": NoSuchEntity", Call: rec.response()}, nil
		}
		return control.Observation{}, uerr
	}
	if err != nil {
		return control.Observation{}, r.fail(err)
	}
	obs.Readable = true
	obs.Call = rec.response()
	return obs, nil
}

// Enforce makes the named control hold. Repeating it is harmless.
func (c *Client) Enforce(ctx context.Context, name string, acct control.Account, params control.Params) (control.Response, error) {
	ctx, rec := withRecorder(ctx)
	r := &run{c: c, ctx: ctx, rec: rec, user: acct.ID, control: name, params: params}
	enforce, ok := enforcers[name]
	if !ok {
		return control.Response{}, control.Unknown(c.cfg.Name, name)
	}
	if err := enforce(r); err != nil {
		return control.Response{}, r.fail(err)
	}
	return rec.response(), nil
}
