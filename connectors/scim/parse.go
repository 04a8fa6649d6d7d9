package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// user is the part of a SCIM User resource Offboard reads.
type user struct {
	ID       string
	UserName string
	// Active is nil when the resource carries no "active" attribute.
	Active *bool
	Emails []string
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
			list, _ := v.([]any)
			for _, e := range list {
				if em, ok := e.(map[string]any); ok {
					if s, ok := em["value"].(string); ok {
						u.Emails = append(u.Emails, s)
					}
				}
			}
		}
	}
	return u, nil
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

// listResponse is a ListResponse (RFC 7644 §3.4.2) of users.
type listResponse struct {
	TotalResults int
	Resources    []user
}

func parseList(body []byte) (listResponse, error) {
	var raw struct {
		TotalResults *int              `json:"totalResults"`
		Resources    []json.RawMessage `json:"Resources"`
	}
	if err := decodeInto(body, &raw); err != nil {
		return listResponse{}, err
	}
	if raw.TotalResults == nil {
		return listResponse{}, errors.New(`list response has no "totalResults"`)
	}
	out := listResponse{TotalResults: *raw.TotalResults}
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
	isError := len(raw.Status) > 0
	for _, s := range raw.Schemas {
		isError = isError || s == errorSchema
	}
	if !isError {
		return scimError{}, false
	}
	status := strings.Trim(string(raw.Status), `"`)
	return scimError{Status: status, ScimType: raw.ScimType, Detail: truncate(raw.Detail, 300)}, true
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
