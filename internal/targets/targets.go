// Package targets builds the connectors the configuration names.
package targets

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/offboard/offboard/connectors/ldap"
	"github.com/offboard/offboard/connectors/okta"
	"github.com/offboard/offboard/connectors/scim"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
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
		return okta.New(ctx, okta.Config{Name: t.Name, OrgURL: t.Okta.OrgURL, Token: token, AllowHTTP: loopback(t.Okta.OrgURL)})
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
		c := scim.Config{Name: t.Name, BaseURL: t.SCIM.BaseURL, Username: t.SCIM.Username}
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
