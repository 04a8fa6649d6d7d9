// Package tclient dials Temporal the same way for the worker and the starter:
// address, namespace, mTLS or API key from the configuration, and payload
// encryption (internal/codec) when the configuration has a codec section.
package tclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"

	"github.com/offboard/offboard/internal/codec"
	"github.com/offboard/offboard/internal/config"
)

// Options builds client options from the configuration: the temporal
// section, and the codec section's data and failure converters when payload
// encryption is on (the key files are read here, not when parsing).
func Options(full config.Config, logger *slog.Logger) (client.Options, error) {
	cfg := full.Temporal
	opts := client.Options{HostPort: cfg.Address, Namespace: cfg.Namespace}
	dc, fc, err := Converters(full)
	if err != nil {
		return opts, err
	}
	opts.DataConverter, opts.FailureConverter = dc, fc
	if logger != nil {
		opts.Logger = log.NewStructuredLogger(logger)
	}
	if cfg.TLS != nil {
		tlsCfg, err := tlsConfig(*cfg.TLS)
		if err != nil {
			return opts, err
		}
		opts.ConnectionOptions.TLS = tlsCfg
	}
	if cfg.APIKey.IsSet() {
		key, err := cfg.APIKey.Value()
		if err != nil {
			return opts, fmt.Errorf("temporal: apiKey: %w", err)
		}
		opts.Credentials = client.NewAPIKeyStaticCredentials(key)
		if opts.ConnectionOptions.TLS == nil {
			opts.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	return opts, nil
}

// Dial connects to Temporal.
func Dial(cfg config.Config, logger *slog.Logger) (client.Client, error) {
	opts, err := Options(cfg, logger)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("temporal: dial %s: %w", cfg.Temporal.Address, err)
	}
	return c, nil
}

// Keyring loads the codec keys named by the configuration's codec section.
// It returns nil, nil when payload encryption is off.
func Keyring(cfg config.Config) (*codec.Keyring, error) {
	if !cfg.Codec.Enabled() {
		return nil, nil
	}
	k, err := codec.LoadKeyring(cfg.Codec.KeyFiles(), cfg.Codec.Primary)
	if err != nil {
		return nil, fmt.Errorf("config %s: codec.keys: %w", cfg.Source(), err)
	}
	return k, nil
}

// Converters are the data and failure converters for the configuration,
// for users that are not a client (the replayer, evidence): both nil (the
// SDK defaults) when payload encryption is off.
func Converters(cfg config.Config) (converter.DataConverter, converter.FailureConverter, error) {
	k, err := Keyring(cfg)
	if err != nil || k == nil {
		return nil, nil, err
	}
	return codec.DataConverter(k), codec.FailureConverter(k), nil
}

func tlsConfig(t config.TLS) (*tls.Config, error) {
	out := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("temporal: tls client certificate: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("temporal: tls caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal: tls caFile %s holds no PEM certificate", t.CAFile)
		}
		out.RootCAs = pool
	}
	return out, nil
}
