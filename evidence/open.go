package evidence

import (
	"context"
	"fmt"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/offboard/offboard/internal/config"
)

// Open returns the store the configuration names, and where it is for logs
// ("s3://bucket/prefix" or the directory). Secrets are read here, not when
// the configuration is loaded.
func Open(ctx context.Context, cfg config.Evidence) (Store, string, error) {
	e := cfg.S3
	if e == nil {
		return Dir{Root: cfg.Dir}, cfg.Dir, nil
	}
	opts := s3.Options{Region: e.Region, UsePathStyle: e.PathStyle}
	if e.Endpoint != "" {
		opts.BaseEndpoint = aws.String(e.Endpoint)
	}
	if e.AccessKeyID.IsSet() {
		id, err := e.AccessKeyID.Value()
		if err != nil {
			return nil, "", fmt.Errorf("evidence.s3.accessKeyID: %w", err)
		}
		secret, err := e.SecretAccessKey.Value()
		if err != nil {
			return nil, "", fmt.Errorf("evidence.s3.secretAccessKey: %w", err)
		}
		opts.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
	} else {
		def, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(e.Region))
		if err != nil {
			return nil, "", fmt.Errorf("evidence.s3: load default AWS credentials: %w", err)
		}
		opts.Credentials = def.Credentials
	}
	store, err := NewS3(s3.New(opts), S3Options{Bucket: e.Bucket, Prefix: e.Prefix,
		Mode: types.ObjectLockMode(e.Mode), Retention: e.Retention.D()})
	if err != nil {
		return nil, "", err
	}
	return store, "s3://" + path.Join(e.Bucket, store.opts.Prefix), nil
}
