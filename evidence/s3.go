package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Options say where and how long evidence is kept in S3.
type S3Options struct {
	Bucket string
	Prefix string // key prefix, e.g. "offboard/evidence"; keys are <prefix>/<workflow-id>/<run-id>/<file>
	// Mode is the Object Lock retention mode set on every object: COMPLIANCE
	// (nobody, root included, can delete or shorten it) or GOVERNANCE
	// (users with s3:BypassGovernanceRetention can).
	Mode types.ObjectLockMode
	// Retention is how long each object is locked from the time it is written.
	Retention time.Duration
	Now       func() time.Time // for tests; time.Now by default
}

// S3 is a Store in an S3 bucket with Object Lock. The bucket must have been
// created with Object Lock enabled (which turns versioning on): writing a
// file again adds a version, it never replaces a locked one.
type S3 struct {
	client *s3.Client
	opts   S3Options
}

// NewS3 checks the options and returns the store.
func NewS3(c *s3.Client, o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("evidence: s3: bucket is required")
	}
	switch o.Mode {
	case types.ObjectLockModeCompliance, types.ObjectLockModeGovernance:
	default:
		return nil, fmt.Errorf("evidence: s3: object lock mode %q is not COMPLIANCE or GOVERNANCE", o.Mode)
	}
	if o.Retention <= 0 {
		return nil, errors.New("evidence: s3: retention must be positive")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Prefix = strings.Trim(o.Prefix, "/")
	return &S3{client: c, opts: o}, nil
}

func (s *S3) runPrefix(run Run) (string, error) {
	w, err := segment(run.WorkflowID)
	if err != nil {
		return "", err
	}
	r, err := segment(run.RunID)
	if err != nil {
		return "", err
	}
	return path.Join(s.opts.Prefix, w, r) + "/", nil
}

func (s *S3) key(run Run, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	p, err := s.runPrefix(run)
	if err != nil {
		return "", err
	}
	return p + name, nil
}

// Put writes one object with its retention mode and retain-until date, and a
// SHA-256 checksum S3 checks on arrival (Object Lock puts need one).
func (s *S3) Put(ctx context.Context, run Run, name string, data []byte) error {
	key, err := s.key(run, name)
	if err != nil {
		return err
	}
	ctype := "application/json"
	if strings.HasSuffix(name, ".html") {
		ctype = "text/html; charset=utf-8"
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:                    aws.String(s.opts.Bucket),
		Key:                       aws.String(key),
		Body:                      bytes.NewReader(data),
		ContentLength:             aws.Int64(int64(len(data))),
		ContentType:               aws.String(ctype),
		ChecksumAlgorithm:         types.ChecksumAlgorithmSha256,
		ObjectLockMode:            s.opts.Mode,
		ObjectLockRetainUntilDate: aws.Time(s.opts.Now().Add(s.opts.Retention).UTC().Truncate(time.Second)),
	})
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

// Get reads the latest version of one object.
func (s *S3) Get(ctx context.Context, run Run, name string) ([]byte, error) {
	key, err := s.key(run, name)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("s3: %s: %w", key, ErrNotExist)
		}
		return nil, fmt.Errorf("s3: get %s: %w", key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var api smithy.APIError
	return errors.As(err, &nsk) || errors.As(err, &nf) || (errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound"))
}

// List names the files held for one run.
func (s *S3) List(ctx context.Context, run Run) ([]string, error) {
	p, err := s.runPrefix(run)
	if err != nil {
		return nil, err
	}
	var names []string
	err = s.each(ctx, p, func(key string) {
		if name := strings.TrimPrefix(key, p); name != "" && !strings.Contains(name, "/") {
			names = append(names, name)
		}
	})
	slices.Sort(names)
	return names, err
}

// Runs lists the runs with a manifest.
func (s *S3) Runs(ctx context.Context, workflowID string) ([]Run, error) {
	root := ""
	if s.opts.Prefix != "" {
		root = s.opts.Prefix + "/"
	}
	p := root
	if workflowID != "" {
		w, err := segment(workflowID)
		if err != nil {
			return nil, err
		}
		p = root + w + "/"
	}
	var runs []Run
	err := s.each(ctx, p, func(key string) {
		parts := strings.Split(strings.TrimPrefix(key, root), "/")
		if len(parts) == 3 && parts[2] == ManifestFile {
			runs = append(runs, Run{WorkflowID: unsegment(parts[0]), RunID: unsegment(parts[1])})
		}
	})
	slices.SortFunc(runs, func(a, b Run) int { return strings.Compare(a.String(), b.String()) })
	return runs, err
}

func (s *S3) each(ctx context.Context, prefix string, fn func(key string)) error {
	pager := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.opts.Bucket), Prefix: aws.String(prefix)})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			fn(aws.ToString(o.Key))
		}
	}
	return nil
}

// CheckLock fails unless the bucket exists with Object Lock enabled: S3
// refuses a put with retention headers into any other bucket, and a worker
// that starts anyway would find out only when its first run closes.
func (s *S3) CheckLock(ctx context.Context) error {
	out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(s.opts.Bucket)})
	var api smithy.APIError
	switch {
	case errors.As(err, &api) && api.ErrorCode() == "ObjectLockConfigurationNotFoundError":
		return fmt.Errorf("s3: bucket %s has no Object Lock: evidence needs a bucket created with Object Lock enabled", s.opts.Bucket)
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket":
		return fmt.Errorf("s3: bucket %s does not exist", s.opts.Bucket)
	case err != nil:
		return fmt.Errorf("s3: bucket %s: read its Object Lock configuration (the worker needs s3:GetBucketObjectLockConfiguration): %w", s.opts.Bucket, err)
	case out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled:
		return fmt.Errorf("s3: bucket %s has no Object Lock: evidence needs a bucket created with Object Lock enabled", s.opts.Bucket)
	}
	return nil
}
