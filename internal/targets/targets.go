// Package targets builds the connectors the configuration names.
package targets

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/offboard/offboard/connectors/awsiam"
	"github.com/offboard/offboard/connectors/entra"
	"github.com/offboard/offboard/connectors/ldap"
	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/readretry"
)

// Build returns one control.Target per configured target, in order.
func Build(ctx context.Context, cfg config.Config) ([]control.Target, error) {
	var out []control.Target
	for i, t := range cfg.Targets {
		tgt, err := build(ctx, cfg, t)
		if err != nil {
			return nil, fmt.Errorf("config %s: targets.%d (%s): %w", cfg.Source(), i, t.Name, err)
		}
		out = append(out, tgt)
	}
	return out, nil
}

func build(ctx context.Context, cfg config.Config, t config.Target) (control.Target, error) {
	switch t.Kind {
	case "okta":
		token, err := t.Okta.Token.Value()
		if err != nil {
			return nil, fmt.Errorf("okta.token: %w", err)
		}
		return okta.New(ctx, okta.Config{Name: t.Name, OrgURL: t.Okta.OrgURL, Token: token, AllowHTTP: loopback(t.Okta.OrgURL), HTTPClient: httpClient()})
	case "entra":
		c := entra.Config{Name: t.Name, TenantID: t.Entra.TenantID, ClientID: t.Entra.ClientID, BaseURL: t.Entra.BaseURL, HTTPClient: httpClient()}
		if t.Entra.ClientSecret.IsSet() {
			secret, err := t.Entra.ClientSecret.Value()
			if err != nil {
				return nil, fmt.Errorf("entra.clientSecret: %w", err)
			}
			c.ClientSecret = secret
		}
		return entra.New(c)
	case "awsiam":
		c := awsiam.Config{Name: t.Name, AccountID: t.AWS.AccountID, Region: t.AWS.Region, RoleARN: t.AWS.RoleARN, Endpoint: t.AWS.Endpoint, HTTPClient: httpClient(),
			OwnerTag: t.AWS.OwnerTag, ServicePathPrefix: t.AWS.ServicePathPrefix, SecretsEndpoint: t.AWS.SecretsEndpoint}
		if t.AWS.AccessKeyID.IsSet() {
			id, err := t.AWS.AccessKeyID.Value()
			if err != nil {
				return nil, fmt.Errorf("aws.accessKeyID: %w", err)
			}
			secret, err := t.AWS.SecretAccessKey.Value()
			if err != nil {
				return nil, fmt.Errorf("aws.secretAccessKey: %w", err)
			}
			c.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
		}
		return awsiam.New(ctx, c)
	case "ldap":
		password, err := t.LDAP.Password.Value()
		if err != nil {
			return nil, fmt.Errorf("ldap.password: %w", err)
		}
		return ldap.New(ldap.Config{
			Name: t.Name, URL: t.LDAP.URL, StartTLS: t.LDAP.StartTLS, CAFile: t.LDAP.CAFile, ServerName: t.LDAP.ServerName,
			BindDN: t.LDAP.BindDN, Password: password, BaseDN: t.LDAP.BaseDN, ScramblePassword: t.LDAP.ScramblePassword,
			Timeout: t.LDAP.Timeout.D(),
		})
	case "scim":
		c := scim.Config{Name: t.Name, BaseURL: t.SCIM.BaseURL, Username: t.SCIM.Username, HTTPClient: httpClient()}
		var err error
		if t.SCIM.Bearer.IsSet() {
			if c.Bearer, err = t.SCIM.Bearer.Value(); err != nil {
				return nil, fmt.Errorf("scim.bearer: %w", err)
			}
		}
		if t.SCIM.Password.IsSet() {
			if c.Password, err = t.SCIM.Password.Value(); err != nil {
				return nil, fmt.Errorf("scim.password: %w", err)
			}
		}
		return scim.New(c)
	}
	return nil, fmt.Errorf("kind %s is not built into this worker", t.Kind)
}

// httpClient is what every HTTP connector talks through: reads retried in
// place on transient failures (see readretry), changes left to Temporal.
func httpClient() *http.Client { return readretry.Client(30 * time.Second) }

// loopback reports whether u points at this machine: only then is plain http allowed.
func loopback(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	if p.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(p.Hostname())
	return ip != nil && ip.IsLoopback()
}
