package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/internal/control"
)

// rateLimitDelay is how long to wait after AD says it is overloaded
// (adminLimitExceeded, "too many ..."); LDAP has no Retry-After.
const rateLimitDelay = 2 * time.Second

// tlsError is a failed TLS handshake. A certificate the configured CA does
// not vouch for will not fix itself on retry, so it is permanent: someone
// must fix CAFile/ServerName (or find out who is answering on that address).
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// bindError marks a failed bind, so a 49 is reported as the service
// account's problem rather than the user's.
type bindError struct{ err error }

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

// unexpected is an answer the directory should not give: a noSuchObject for
// something other than the entry asked about, a search that did not cover
// the base, paging that does not advance. Never "gone" or "no account".
type unexpected struct{ msg string }

func (e *unexpected) Error() string { return e.msg }

// userNotFound keeps a noSuchObject for dn only when it is the directory's
// own answer about that entry, in the directory we are configured for: its
// matchedDN (the closest entry that exists) is the base DN or under it, or,
// when the server gives no matchedDN (Samba), a read of the base DN succeeds.
// Otherwise the server does not hold our directory (a wrong server or base DN).
func (c *Client) userNotFound(conn *goldap.Conn, dn string, err error) error {
	var le *goldap.Error
	if !errors.As(err, &le) || le.ResultCode != goldap.LDAPResultNoSuchObject {
		return err
	}
	if le.MatchedDN != "" && c.underBase(le.MatchedDN) {
		return err
	}
	_, baseErr := conn.Search(goldap.NewSearchRequest(c.cfg.BaseDN, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil))
	if le.MatchedDN == "" && baseErr == nil {
		return err
	}
	return &unexpected{fmt.Sprintf("noSuchObject for %s with matchedDN %q, and the base DN %s reads %v: this server does not hold the directory (%v)",
		dn, le.MatchedDN, c.cfg.BaseDN, baseErrText(baseErr), err)}
}

func baseErrText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// underBase reports whether dn is the base DN or under it.
func (c *Client) underBase(dn string) bool {
	base, err := goldap.ParseDN(c.cfg.BaseDN)
	if err != nil {
		return false
	}
	d, err := goldap.ParseDN(dn)
	if err != nil {
		return false
	}
	return base.EqualFold(d) || base.AncestorOfFold(d)
}

func (c *Client) fail(op string, kind, err error) *control.Error {
	return &control.Error{Kind: kind, Op: "ldap " + c.cfg.Name + ": " + op, Err: err}
}

// classify turns an error from go-ldap or the network into a *control.Error.
// need says what the bind account must be allowed to do, for 50s.
func (c *Client) classify(op, need string, ctx context.Context, err error) error {
	var ce *control.Error
	if errors.As(err, &ce) {
		return err
	}
	var te *tlsError
	if errors.As(err, &te) {
		if isCertificateError(te.err) {
			return c.fail(op, control.ErrPermanent, fmt.Errorf("server certificate not trusted (check CAFile and ServerName): %w", err))
		}
		return c.fail(op, control.ErrTransient, err)
	}
	if ctx.Err() != nil {
		return c.fail(op, control.ErrTransient, fmt.Errorf("%w (%v)", ctx.Err(), err))
	}
	var un *unexpected
	if errors.As(err, &un) {
		return c.fail(op, control.ErrUnexpected, err)
	}
	var le *goldap.Error
	if !errors.As(err, &le) {
		if isNetwork(err) {
			return c.fail(op, control.ErrTransient, err)
		}
		return c.fail(op, control.ErrPermanent, err)
	}
	msg := strings.ToLower(le.Error())
	var bind *bindError
	isBind := errors.As(err, &bind)
	switch code := le.ResultCode; {
	case code == goldap.LDAPResultNoSuchObject:
		return c.fail(op, control.ErrNotFound, err)
	case code == goldap.LDAPResultReferral || code == goldap.LDAPResultSizeLimitExceeded:
		// The server sent us elsewhere or cut the answer short: what we asked was not answered whole.
		return c.fail(op, control.ErrUnexpected, err)
	case code == goldap.LDAPResultAdminLimitExceeded || strings.Contains(msg, "too many"):
		e := c.fail(op, control.ErrRateLimited, err)
		e.RetryAfter = rateLimitDelay
		return e
	case code == goldap.LDAPResultBusy || code == goldap.LDAPResultUnavailable ||
		code == goldap.LDAPResultTimeLimitExceeded || code == goldap.ErrorNetwork:
		return c.fail(op, control.ErrTransient, err)
	case code == goldap.LDAPResultInvalidCredentials || (isBind && code == goldap.LDAPResultInappropriateAuthentication):
		return c.fail(op, control.ErrUnauthorized, fmt.Errorf("bind as %s rejected: check the bind DN/UPN and its password: %w", c.cfg.BindDN, err))
	case code == goldap.ErrorEmptyPassword:
		return c.fail(op, control.ErrUnauthorized, fmt.Errorf("no password configured for %s", c.cfg.BindDN))
	case code == goldap.LDAPResultInsufficientAccessRights:
		return c.fail(op, control.ErrUnauthorized, fmt.Errorf("%s lacks the right to %s: %w", c.cfg.BindDN, need, err))
	case code == goldap.LDAPResultStrongAuthRequired || code == goldap.LDAPResultConfidentialityRequired:
		return c.fail(op, control.ErrUnauthorized, fmt.Errorf("server requires a protected (TLS) connection for %s: %w", need, err))
	default:
		return c.fail(op, control.ErrPermanent, err)
	}
}

func isCertificateError(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	if errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return true
	}
	// StartTLS failures arrive flattened into text by go-ldap.
	s := err.Error()
	return strings.Contains(s, "x509:") || strings.Contains(s, "tls: failed to verify")
}

// isNetwork reports whether the connection itself failed (as opposed to the
// server answering with an LDAP result code).
func isNetwork(err error) bool {
	var le *goldap.Error
	if errors.As(err, &le) {
		return le.ResultCode == goldap.ErrorNetwork
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) ||
		// go-ldap reports a connection its reader lost as plain text.
		strings.HasPrefix(err.Error(), "unable to read LDAP response packet")
}
