// Package s3fake runs an in-process S3 for tests: gofakes3, plus what
// evidence needs of S3 that gofakes3 lacks.
//
// gofakes3 stores the Object Lock headers as object metadata and returns
// them on HEAD, but it does not enforce them: versioned buckets work, yet a
// locked object can still be deleted or overwritten, and it does not insist
// on a checksum for locked puts the way S3 does. Tests prove what Offboard
// sends on every put (Puts), not what S3 then refuses. It does not answer
// GetObjectLockConfiguration either; the server here answers it as S3 does.
package s3fake

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
)

// Credentials the Client signs with; the server accepts any.
const (
	AccessKeyID     = "AKIDTEST"
	SecretAccessKey = "s3fake-secret"
	Region          = "us-east-1"
)

// Server is a running fake S3, path-style, on loopback.
type Server struct {
	URL  string
	next http.Handler

	mu      sync.Mutex
	buckets map[string]bool        // bucket → created with Object Lock
	puts    map[string]http.Header // "/bucket/key" → headers of its latest PUT
}

// Start serves a fake S3 until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{next: gofakes3.New(s3mem.New()).Server(), buckets: map[string]bool{}, puts: map[string]http.Header{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Client is an SDK client for the server, without SDK retries.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint:     aws.String(s.URL),
		Region:           Region,
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		RetryMaxAttempts: 1,
	})
}

// CreateBucket makes a bucket, with Object Lock enabled or not.
func (s *Server) CreateBucket(t testing.TB, name string, objectLock bool) {
	t.Helper()
	_, err := s.Client().CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(objectLock)})
	require.NoError(t, err)
}

// Puts returns the headers of every object PUT since the last ResetPuts, by
// "/bucket/key".
func (s *Server) Puts() map[string]http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.puts)
}

// ResetPuts forgets the PUTs seen so far.
func (s *Server) ResetPuts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.puts)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(r.URL.Path, "/")
	_, lockQuery := r.URL.Query()["object-lock"]
	s.mu.Lock()
	switch {
	case r.Method == http.MethodPut && strings.Contains(path, "/"):
		s.puts["/"+path] = r.Header.Clone()
	case r.Method == http.MethodPut && !lockQuery:
		s.buckets[path] = r.Header.Get("X-Amz-Bucket-Object-Lock-Enabled") == "true"
	case r.Method == http.MethodGet && lockQuery:
		locked, exists := s.buckets[path]
		s.mu.Unlock()
		objectLockConfiguration(w, path, exists, locked)
		return
	}
	s.mu.Unlock()
	s.next.ServeHTTP(w, r)
}

// objectLockConfiguration answers GetObjectLockConfiguration as S3 does.
func objectLockConfiguration(w http.ResponseWriter, bucket string, exists, locked bool) {
	w.Header().Set("Content-Type", "application/xml")
	const head = `<?xml version="1.0" encoding="UTF-8"?>`
	switch {
	case !exists:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, head+`<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>%s</BucketName></Error>`, bucket)
	case !locked:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, head+`<Error><Code>ObjectLockConfigurationNotFoundError</Code><Message>Object Lock configuration does not exist for this bucket</Message><BucketName>%s</BucketName></Error>`, bucket)
	default:
		fmt.Fprint(w, head+`<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>`)
	}
}
