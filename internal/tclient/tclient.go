// Package tclient dials Temporal the same way for the worker and the starter:
// address, namespace, mTLS or API key from the configuration.
package tclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/offboard/offboard/internal/config"
)

// Options builds client options from the configuration.
func Options(cfg config.Temporal, logger *slog.Logger) (client.Options, error) {
	opts := client.Options{HostPort: cfg.Address, Namespace: cfg.Namespace}
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
func Dial(cfg config.Temporal, logger *slog.Logger) (client.Client, error) {
	opts, err := Options(cfg, logger)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("temporal: dial %s: %w", cfg.Address, err)
	}
	return c, nil
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
