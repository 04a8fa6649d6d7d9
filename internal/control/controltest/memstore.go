// Package controltest holds test doubles of the connector contract shared
// by the connectors' tests.
package controltest

import (
	"context"
	"errors"
	"sync"
)

// MemStore is an in-memory control.SecretStore following Secrets Manager's
// stages: versions by token, one current. FailPut and FailPromote make the
// next such call fail, as a store outage would.
type MemStore struct {
	mu          sync.Mutex
	Versions    map[string]map[string][]byte // secret → token → value
	current     map[string]string
	FailPut     int
	FailPromote int
}

// NewMemStore is an empty store.
func NewMemStore() *MemStore {
	return &MemStore{Versions: map[string]map[string][]byte{}, current: map[string]string{}}
}

// ErrStoreDown is what a failing call answers.
var ErrStoreDown = errors.New("secrets manager: InternalServiceError")

func (s *MemStore) PutPending(_ context.Context, secret, token string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailPut > 0 {
		s.FailPut--
		return ErrStoreDown
	}
	if s.Versions[secret] == nil {
		s.Versions[secret] = map[string][]byte{}
	}
	if old, ok := s.Versions[secret][token]; ok && string(old) != string(value) {
		return errors.New("ResourceExistsException: version " + token + " holds another value")
	}
	s.Versions[secret][token] = append([]byte(nil), value...)
	return nil
}

func (s *MemStore) Pending(_ context.Context, secret, token string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.Versions[secret][token]
	return v, ok, nil
}

func (s *MemStore) Promote(_ context.Context, secret, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailPromote > 0 {
		s.FailPromote--
		return ErrStoreDown
	}
	if _, ok := s.Versions[secret][token]; !ok {
		return errors.New("ResourceNotFoundException: no version " + token)
	}
	s.current[secret] = token
	return nil
}

func (s *MemStore) Current(_ context.Context, secret string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[secret], nil
}

// Value is the current version's value.
func (s *MemStore) Value(secret string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Versions[secret][s.current[secret]]
}
