// Package secretstore is control.SecretStore over AWS Secrets Manager: a
// rotation's new value is written as an AWSPENDING version whose id is the
// rotation's token, and AWSCURRENT moves to it once the system uses it; the
// same protocol Secrets Manager's own rotation functions follow.
package secretstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// Staging labels of the protocol.
const (
	stageCurrent = "AWSCURRENT"
	stagePending = "AWSPENDING"
)

// Config is where the secret store is and how to sign in to it; the
// credentials are named like an AWS target's (environment variable or file),
// never written in the configuration.
type Config struct {
	Region          string        `yaml:"region"`   // default us-east-1
	Endpoint        string        `yaml:"endpoint"` // only for the sandbox
	AccessKeyID     config.Secret `yaml:"accessKeyID"`
	SecretAccessKey config.Secret `yaml:"secretAccessKey"`
	// Credentials, when set, win over the two above (tests, a role's
	// provider); with neither, the default chain (env, shared config, IMDS).
	Credentials aws.CredentialsProvider `yaml:"-"`
	HTTPClient  *http.Client            `yaml:"-"`
}

// Store is a control.SecretStore on one Secrets Manager region.
type Store struct {
	sm *sm.Client
}

var _ control.SecretStore = (*Store)(nil)

// New builds the Secrets Manager client. SDK retries are off: the workflow
// owns retries, and a retried write is safe because its token is its id.
func New(cfg Config) (*Store, error) {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	creds := cfg.Credentials
	if creds == nil && cfg.AccessKeyID.IsSet() != cfg.SecretAccessKey.IsSet() {
		return nil, errors.New("secretstore: accessKeyID and secretAccessKey go together: name both or neither")
	}
	if creds == nil && cfg.AccessKeyID.IsSet() {
		id, err := cfg.AccessKeyID.Value()
		if err != nil {
			return nil, fmt.Errorf("secretstore: accessKeyID: %w", err)
		}
		secret, err := cfg.SecretAccessKey.Value()
		if err != nil {
			return nil, fmt.Errorf("secretstore: secretAccessKey: %w", err)
		}
		creds = credentials.NewStaticCredentialsProvider(id, secret, "")
	}
	if creds == nil {
		def, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(cfg.Region))
		if err != nil {
			return nil, fmt.Errorf("secretstore: load default credentials: %w", err)
		}
		creds = def.Credentials
	}
	var doer bufferedBody
	if cfg.HTTPClient != nil {
		doer.next = cfg.HTTPClient
	} else {
		doer.next = awshttp.NewBuildableClient()
	}
	opts := sm.Options{Region: cfg.Region, Credentials: creds, RetryMaxAttempts: 1, HTTPClient: doer}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	return &Store{sm: sm.New(opts)}, nil
}

// PutPending stores value as version token, staged AWSPENDING. A secret
// that does not exist yet (one named "offboard/<target>/<name>") is created
// first, without a value. The same token with another value is refused by
// Secrets Manager: a stored value is never overwritten.
func (s *Store) PutPending(ctx context.Context, secret, token string, value []byte) error {
	op := "secretstore: put pending version " + short(token) + " of " + secret
	in := &sm.PutSecretValueInput{SecretId: aws.String(secret), ClientRequestToken: aws.String(token), VersionStages: []string{stagePending}}
	if utf8.Valid(value) {
		in.SecretString = aws.String(string(value))
	} else {
		in.SecretBinary = value
	}
	_, err := s.sm.PutSecretValue(ctx, in)
	if notFound(err) && !strings.HasPrefix(secret, "arn:") {
		_, cerr := s.sm.CreateSecret(ctx, &sm.CreateSecretInput{
			Name:        aws.String(secret),
			Description: aws.String("Written by Offboard's rotations"),
			Tags:        []types.Tag{{Key: aws.String("offboard:managed"), Value: aws.String("true")}},
		})
		var exists *types.ResourceExistsException
		if cerr != nil && !errors.As(cerr, &exists) {
			return classify("secretstore: create "+secret, cerr)
		}
		_, err = s.sm.PutSecretValue(ctx, in)
	}
	var exists *types.ResourceExistsException
	if errors.As(err, &exists) {
		e := classify(op, err)
		e.Err = fmt.Errorf("version %s already holds another value; a retry must reuse the stored one: %w", short(token), err)
		return e
	}
	if err != nil {
		return classify(op, err)
	}
	return nil
}

// Pending reads version token back, whatever its stage; ok is false when
// Secrets Manager has no such version (or no such secret).
func (s *Store) Pending(ctx context.Context, secret, token string) ([]byte, bool, error) {
	out, err := s.sm.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String(secret), VersionId: aws.String(token)})
	if notFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, classify("secretstore: read version "+short(token)+" of "+secret, err)
	}
	if out.SecretString != nil {
		return []byte(*out.SecretString), true, nil
	}
	return out.SecretBinary, true, nil
}

// Promote moves AWSCURRENT to version token (the old current becomes
// AWSPREVIOUS) and then takes AWSPENDING off it. Each call is safe to
// repeat: it reads the stages first and does only what is left.
func (s *Store) Promote(ctx context.Context, secret, token string) error {
	op := "secretstore: promote version " + short(token) + " of " + secret
	stages, err := s.stages(ctx, secret)
	if err != nil {
		return classify(op, err)
	}
	current := holder(stages, stageCurrent)
	if current != token {
		in := &sm.UpdateSecretVersionStageInput{SecretId: aws.String(secret), VersionStage: aws.String(stageCurrent), MoveToVersionId: aws.String(token)}
		if current != "" {
			in.RemoveFromVersionId = aws.String(current)
		}
		if _, err := s.sm.UpdateSecretVersionStage(ctx, in); err != nil {
			return classify(op, err)
		}
	}
	if holder(stages, stagePending) == token {
		_, err := s.sm.UpdateSecretVersionStage(ctx, &sm.UpdateSecretVersionStageInput{
			SecretId: aws.String(secret), VersionStage: aws.String(stagePending), RemoveFromVersionId: aws.String(token)})
		if err != nil {
			return classify(op+": remove AWSPENDING", err)
		}
	}
	return nil
}

// Current is the id of the AWSCURRENT version; "" when the secret has none.
func (s *Store) Current(ctx context.Context, secret string) (string, error) {
	stages, err := s.stages(ctx, secret)
	if err != nil {
		return "", classify("secretstore: describe "+secret, err)
	}
	return holder(stages, stageCurrent), nil
}

func (s *Store) stages(ctx context.Context, secret string) (map[string][]string, error) {
	out, err := s.sm.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: aws.String(secret)})
	if err != nil {
		return nil, err
	}
	return out.VersionIdsToStages, nil
}

// holder is the version a stage is on, "" when none. Secrets Manager keeps
// each label on one version at most.
func holder(stages map[string][]string, stage string) string {
	for id, labels := range stages {
		for _, l := range labels {
			if l == stage {
				return id
			}
		}
	}
	return ""
}

// short is a version id as people see it in errors and receipts.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func notFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// classify turns an SDK error into a *control.Error. Secrets Manager's own
// ResourceNotFoundException is the only not-found; the request body (and so
// the value) is never part of an SDK error.
func classify(op string, err error) *control.Error {
	e := &control.Error{Op: op, Err: err}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		e.HTTPStatus = respErr.HTTPStatusCode()
	}
	var withID interface{ ServiceRequestID() string }
	if errors.As(err, &withID) {
		e.RequestID = withID.ServiceRequestID()
	}
	code := ""
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var deser *smithy.DeserializationError
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		e.Kind = control.ErrTransient
	case code == "ResourceNotFoundException":
		e.Kind = control.ErrNotFound
	case code == "ThrottlingException" || e.HTTPStatus == http.StatusTooManyRequests:
		e.Kind = control.ErrRateLimited
	case code == "AccessDeniedException" || code == "UnrecognizedClientException" || code == "InvalidSignatureException" ||
		code == "MissingAuthenticationTokenException" || code == "IncompleteSignatureException" || code == "ExpiredTokenException" ||
		e.HTTPStatus == 401 || e.HTTPStatus == 403:
		e.Kind = control.ErrUnauthorized
	case code == "InternalServiceError" || code == "ServiceUnavailable" || e.HTTPStatus >= 500:
		e.Kind = control.ErrTransient
	case code == "" && errors.As(err, &deser) && e.HTTPStatus == http.StatusNotFound:
		e.Kind = control.ErrUnexpected // not Secrets Manager: a wrong endpoint or a proxy
	case e.HTTPStatus >= 300:
		e.Kind = control.ClassifyStatus(e.HTTPStatus)
	case errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF):
		e.Kind = control.ErrTransient
	default:
		e.Kind = control.ErrPermanent
	}
	return e
}

// bufferedBody hands the transport its own copy of the request body
// (aws-sdk-go-v2#2737; connectors/awsiam does the same).
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
