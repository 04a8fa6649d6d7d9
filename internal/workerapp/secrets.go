package workerapp

import (
	"fmt"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/secretstore"
)

// secretStore is where rotations write new values (issue 15): AWS Secrets
// Manager as nonHuman.secretStore names it; nil when none is configured, and
// a rotation then fails as an exception naming the missing store.
func secretStore(cfg config.Config) (control.SecretStore, error) {
	s := cfg.NonHuman.SecretStore
	if !s.IsSet() {
		return nil, nil
	}
	store, err := secretstore.New(secretstore.Config{Region: s.Region, Endpoint: s.Endpoint, AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey})
	if err != nil {
		return nil, fmt.Errorf("config %s: nonHuman.secretStore: %w", cfg.Source(), err)
	}
	return store, nil
}
