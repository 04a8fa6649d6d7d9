package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// user is the part of a SCIM User resource Offboard reads.
type user struct {
	ID       string
	UserName string
	// Active is nil when the resource carries no "active" attribute.
	Active *bool
	Emails []string
	// Privileges are the admin-like roles and the entitlements the resource
	// carries, said for people ("scim role Admin").
	Privileges []string
	// Raw is the whole resource, for a GET + PUT round trip.
	Raw map[string]any
}

func (u user) hasEmail(email string) bool {
	for _, e := range u.Emails {
		if strings.EqualFold(e, email) {
			return true
		}
	}
	return false
}

// parseUser reads a User resource (RFC 7643 §4.1). It is strict about what
// Offboard relies on (id, userName, active) and ignores everything else.
func parseUser(body []byte) (user, error) {
	m, err := decodeObject(body)
	if err != nil {
		return user{}, err
	}
	return userFrom(m)
}

func userFrom(m map[string]any) (user, error) {
	u := user{Raw: m}
	var ok bool
	var roles, entitlements []string // roles first, whatever the map order
	if u.ID, ok = m["id"].(string); !ok || u.ID == "" {
		return user{}, errors.New(`resource has no "id"`)
	}
	// Attribute names are case-insensitive (RFC 7643 §2.1).
	for k, v := range m {
		switch strings.ToLower(k) {
		case "username":
			if u.UserName, ok = v.(string); !ok {
				return user{}, fmt.Errorf(`"userName" is %T, not a string`, v)
			}
		case "active":
			a, err := parseBool(v)
			if err != nil {
				return user{}, err
			}
			u.Active = a
		case "emails":
			u.Emails = append(u.Emails, values(v, "value")...)
		case "roles":
			// Roles are app-defined strings; only admin-like ones are
			// reported, so an ordinary "member" role does not make everyone
			// privileged.
			for _, s := range values(v, "value", "display", "type") {
				if adminLike(s) {
					roles = append(roles, "scim role "+s)
				}
			}
		case "entitlements":
			// Entitlements are rights the app granted the user by name; we
			// cannot tell which are admin, so every one is reported.
			for _, s := range values(v, "value", "display") {
				entitlements = append(entitlements, "scim entitlement "+s)
			}
		}
	}
	u.Privileges = append(roles, entitlements...)
	return u, nil
}

// values reads a multi-valued attribute (RFC 7643 §2.4): of each item, the
// first of keys it has as a non-empty string.
func values(v any, keys ...string) []string {
	var out []string
	list, _ := v.([]any)
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range keys {
			if s, ok := m[k].(string); ok && s != "" {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func adminLike(s string) bool {
	s = strings.ToLower(s)
	for _, w := range []string{"admin", "owner", "root", "superuser", "super user"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// parseBool accepts a JSON boolean, and the strings "true"/"false" some apps
// send instead; null means the attribute is absent.
func parseBool(v any) (*bool, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case bool:
		return &v, nil
	case string:
		switch strings.ToLower(v) {
		case "true":
			b := true
			return &b, nil
		case "false":
			b := false
			return &b, nil
		}
	}
	return nil, fmt.Errorf(`"active" is %#v, not a boolean`, v)
}

// listResponse is a ListResponse (RFC 7644 §3.4.2) of users. StartIndex and
// ItemsPerPage are nil when the app leaves them out.
type listResponse struct {
	TotalResults int
	StartIndex   *int
	ItemsPerPage *int
	Resources    []user
}

func parseList(body []byte) (listResponse, error) {
	var raw struct {
		TotalResults *int              `json:"totalResults"`
		StartIndex   *int              `json:"startIndex"`
		ItemsPerPage *int              `json:"itemsPerPage"`
		Resources    []json.RawMessage `json:"Resources"`
	}
	if err := decodeInto(body, &raw); err != nil {
		return listResponse{}, err
	}
	if raw.TotalResults == nil {
		return listResponse{}, errors.New(`list response has no "totalResults"`)
	}
	out := listResponse{TotalResults: *raw.TotalResults, StartIndex: raw.StartIndex, ItemsPerPage: raw.ItemsPerPage}
	for i, r := range raw.Resources {
		u, err := parseUser(r)
		if err != nil {
			return listResponse{}, fmt.Errorf("resource %d: %w", i, err)
		}
		out.Resources = append(out.Resources, u)
	}
	return out, nil
}

// providerConfig is what Offboard needs from /ServiceProviderConfig (RFC 7643 §5).
type providerConfig struct {
	patchSupported  bool
	filterSupported bool
	etagSupported   bool
}

func parseProviderConfig(body []byte) (providerConfig, error) {
	type feature struct {
		Supported bool `json:"supported"`
	}
	var raw struct {
		Patch  *feature `json:"patch"`
		Filter *feature `json:"filter"`
		Etag   *feature `json:"etag"`
	}
	if err := decodeInto(body, &raw); err != nil {
		return providerConfig{}, err
	}
	if raw.Patch == nil || raw.Filter == nil {
		return providerConfig{}, errors.New(`ServiceProviderConfig lacks "patch" or "filter"`)
	}
	cfg := providerConfig{patchSupported: raw.Patch.Supported, filterSupported: raw.Filter.Supported}
	if raw.Etag != nil {
		cfg.etagSupported = raw.Etag.Supported
	}
	return cfg, nil
}

// scimError is an error response (RFC 7644 §3.12).
type scimError struct {
	Status   string
	ScimType string
	Detail   string
	// HasSchema is true when the body names the SCIM error schema: only
	// then is a 404 the app's own "no such resource".
	HasSchema bool
}

func (e scimError) String() string {
	s := "SCIM error " + e.Status
	if e.ScimType != "" {
		s += " " + e.ScimType
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// parseError reads an error body; ok is false when the body is not one.
func parseError(body []byte) (scimError, bool) {
	var raw struct {
		Schemas  []string        `json:"schemas"`
		Status   json.RawMessage `json:"status"` // a string per the RFC, a number in some apps
		ScimType string          `json:"scimType"`
		Detail   string          `json:"detail"`
	}
	if err := decodeInto(body, &raw); err != nil {
		return scimError{}, false
	}
	hasSchema := slices.Contains(raw.Schemas, errorSchema)
	if !hasSchema && len(raw.Status) == 0 {
		return scimError{}, false
	}
	status := strings.Trim(string(raw.Status), `"`)
	return scimError{Status: status, ScimType: raw.ScimType, Detail: truncate(raw.Detail, 300), HasSchema: hasSchema}, true
}

func decodeObject(body []byte) (map[string]any, error) {
	var m map[string]any
	if err := decodeInto(body, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("body is not a JSON object")
	}
	return m, nil
}

func decodeInto(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if d.More() {
		return errors.New("trailing data after JSON body")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
