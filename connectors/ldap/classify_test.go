package ldap

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"unicode/utf16"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
)

func TestClassify(t *testing.T) {
	c, err := New(Config{Name: "ad", URL: "ldaps://dc1.corp.example.test", BindDN: "svc-offboard@corp.example.test", Password: "Secret-Pa55", BaseDN: "DC=corp,DC=example,DC=test"})
	require.NoError(t, err)
	ldapErr := func(code uint16, msg string) error { return goldap.NewError(code, errors.New(msg)) }
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		want     error
		contains string
	}{
		{"no such object", nil, ldapErr(32, "00002030: No such Base DN"), control.ErrNotFound, ""},
		{"busy", nil, ldapErr(51, "busy"), control.ErrTransient, ""},
		{"unavailable", nil, ldapErr(52, "unavailable"), control.ErrTransient, ""},
		{"time limit", nil, ldapErr(3, "time limit"), control.ErrTransient, ""},
		{"network", nil, ldapErr(goldap.ErrorNetwork, "connection reset"), control.ErrTransient, ""},
		{"connection lost", nil, errors.New("unable to read LDAP response packet: EOF"), control.ErrTransient, ""},
		{"eof", nil, io.EOF, control.ErrTransient, ""},
		{"dial refused", nil, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, control.ErrTransient, ""},
		{"cancelled", cancelled, ldapErr(goldap.ErrorNetwork, "ldap: connection closed"), control.ErrTransient, "canceled"},
		{"invalid credentials", nil, &bindError{ldapErr(49, "80090308: LdapErr: DSID-0C0903A9, data 52e")}, control.ErrUnauthorized, "svc-offboard@corp.example.test"},
		{"insufficient rights", nil, ldapErr(50, "00002098: no write property access"), control.ErrUnauthorized, "lacks the right to Write userAccountControl"},
		{"strong auth required", nil, &bindError{ldapErr(8, "BindSimple: Transport encryption required.")}, control.ErrUnauthorized, "TLS"},
		{"empty password", nil, &bindError{ldapErr(goldap.ErrorEmptyPassword, "empty password not allowed")}, control.ErrUnauthorized, "no password"},
		{"admin limit", nil, ldapErr(11, "admin limit exceeded"), control.ErrRateLimited, ""},
		{"too many", nil, ldapErr(51, "too many outstanding requests"), control.ErrRateLimited, ""},
		{"constraint", nil, ldapErr(19, "0000052D: Constraint violation"), control.ErrPermanent, ""},
		{"unwilling", nil, ldapErr(53, "will not perform"), control.ErrPermanent, ""},
		{"other", nil, ldapErr(80, "internal error"), control.ErrPermanent, ""},
		{"bad cert", nil, &tlsError{x509.UnknownAuthorityError{}}, control.ErrPermanent, "CAFile"},
		{"handshake reset", nil, &tlsError{errors.New("connection reset by peer")}, control.ErrTransient, ""},
		{"starttls cert, as text", nil, &tlsError{ldapErr(goldap.ErrorNetwork, "TLS handshake failed (tls: failed to verify certificate: x509: certificate signed by unknown authority)")}, control.ErrPermanent, ""},
		{"garbage", nil, errors.New(`userAccountControl "abc": invalid syntax`), control.ErrPermanent, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			err := c.classify("disable CN=x", "Write userAccountControl on CN=x", ctx, tc.err)
			require.ErrorIs(t, err, tc.want)
			var ce *control.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "ldap ad: disable CN=x", ce.Op)
			assert.Contains(t, err.Error(), tc.contains)
			assert.NotContains(t, err.Error(), "Secret-Pa55")
			if tc.want == control.ErrRateLimited {
				assert.Equal(t, rateLimitDelay, ce.RetryAfter)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	base := Config{URL: "ldaps://dc1", BaseDN: "DC=corp,DC=example,DC=test", BindDN: "x", Password: "y"}
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"plain ldap without StartTLS", func(c *Config) { c.URL = "ldap://dc1:389" }},
		{"other scheme", func(c *Config) { c.URL = "http://dc1" }},
		{"no host", func(c *Config) { c.URL = "ldaps://" }},
		{"no base DN", func(c *Config) { c.BaseDN = "" }},
		{"missing CA file", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			_, err := New(cfg)
			assert.Error(t, err)
		})
	}
	c, err := New(base)
	require.NoError(t, err)
	assert.Equal(t, "ad", c.Name())
	assert.Equal(t, "ldap", c.Kind())
}

func TestRandomPassword(t *testing.T) {
	a, b := randomPassword(), randomPassword()
	assert.NotEqual(t, a, b)
	u := make([]uint16, len(a)/2)
	for i := range u {
		u[i] = uint16(a[2*i]) | uint16(a[2*i+1])<<8
	}
	pw := string(utf16.Decode(u))
	assert.Regexp(t, `^"Aa1![A-Z2-7]{26}"$`, pw, fmt.Sprintf("quoted UTF-16LE: %q", pw))
}
