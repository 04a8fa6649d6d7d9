package scimapp

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/elimity-com/scim/optional"

	"github.com/offboard/offboard/sandbox/simstate"
)

// stateVersion is the format SaveState writes.
const stateVersion = 1

// stateDoc is the app's user store as SaveState writes it: what SCIM clients
// change or see, never the configuration, the bearer token, faults or the
// rate limit. The app serves no /Groups, so there are no groups to keep,
// and ids are random, so there is no counter.
type stateDoc struct {
	Version     int                     `json:"version"`
	Users       []stateUser             `json:"users"`       // in creation order, the order lists answer in
	Transitions map[string][]Transition `json:"transitions"` // by user id; they outlive the user
}

type stateUser struct {
	ID string `json:"id"`
	// ExternalID is null when the user has none (a PUT without it drops it).
	ExternalID *string `json:"externalId"`
	// Attributes are the stored SCIM attributes as the library validated
	// them, without id, externalId, meta and schemas.
	Attributes map[string]any `json:"attributes"`
	Meta       stateMeta      `json:"meta"`
}

type stateMeta struct {
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"lastModified"`
	Version      int       `json:"version"` // the ETag is W/"<version>"
}

// reserved are attributes the store keeps elsewhere or makes up (see record.set).
var reserved = []string{"id", "externalId", "meta", "schemas"}

// SaveState writes the app's directory state as JSON: every user with all
// its attributes, active flag, externalId, meta (created, lastModified,
// version) in creation order, and the recorded transitions. The same state
// always gives the same bytes.
func (a *App) SaveState(w io.Writer) error {
	a.mu.Lock()
	doc := stateDoc{
		Version:     stateVersion,
		Users:       make([]stateUser, 0, len(a.order)),
		Transitions: make(map[string][]Transition, len(a.transitions)),
	}
	for _, id := range a.order {
		rec := a.users[id]
		su := stateUser{
			ID:         id,
			Attributes: deepCopy(rec.attrs).(map[string]any),
			Meta:       stateMeta{Created: rec.created, LastModified: rec.modified, Version: rec.version},
		}
		if rec.external.Present() {
			ext := rec.external.Value()
			su.ExternalID = &ext
		}
		doc.Users = append(doc.Users, su)
	}
	for id, trs := range a.transitions {
		doc.Transitions[id] = slices.Clone(trs)
	}
	a.mu.Unlock()
	if err := simstate.Encode(w, doc); err != nil {
		return fmt.Errorf("scimapp: save state: %w", err)
	}
	return nil
}

// LoadState replaces the app's directory state with what SaveState wrote.
// The document is decoded and checked whole first (version, unique ids and
// userNames, an "active" that is a boolean, a version and timestamps in
// meta); on any error the app is left as it was.
func (a *App) LoadState(r io.Reader) error {
	users, order, transitions, err := decodeState(r)
	if err != nil {
		return fmt.Errorf("scimapp: load state: %w", err)
	}
	a.mu.Lock()
	a.users, a.order, a.transitions = users, order, transitions
	a.mu.Unlock()
	return nil
}

func decodeState(r io.Reader) (map[string]*record, []string, map[string][]Transition, error) {
	var doc stateDoc
	if err := simstate.Decode(r, stateVersion, &doc); err != nil {
		return nil, nil, nil, err
	}

	users := make(map[string]*record, len(doc.Users))
	order := make([]string, 0, len(doc.Users))
	userNames := make(map[string]string, len(doc.Users)) // lower-cased userName → id
	for i, su := range doc.Users {
		if su.ID == "" {
			return nil, nil, nil, fmt.Errorf("user %d has no id", i)
		}
		if _, dup := users[su.ID]; dup {
			return nil, nil, nil, fmt.Errorf("user id %s appears twice", su.ID)
		}
		userName, ok := su.Attributes["userName"].(string)
		if !ok || userName == "" {
			return nil, nil, nil, fmt.Errorf("user %s has no userName", su.ID)
		}
		if other, dup := userNames[strings.ToLower(userName)]; dup {
			return nil, nil, nil, fmt.Errorf("users %s and %s both have userName %q", other, su.ID, userName)
		}
		userNames[strings.ToLower(userName)] = su.ID
		if v, present := su.Attributes["active"]; present {
			if _, ok := v.(bool); !ok {
				return nil, nil, nil, fmt.Errorf("user %s: active is %v, not a boolean", su.ID, v)
			}
		}
		for _, k := range reserved {
			if _, present := su.Attributes[k]; present {
				return nil, nil, nil, fmt.Errorf("user %s: %s is not kept among the attributes", su.ID, k)
			}
		}
		if su.Meta.Version < 1 || su.Meta.Created.IsZero() || su.Meta.LastModified.IsZero() {
			return nil, nil, nil, fmt.Errorf("user %s: meta needs created, lastModified and a version of at least 1", su.ID)
		}
		rec := &record{
			attrs:    maps.Clone(su.Attributes),
			created:  su.Meta.Created.UTC(),
			modified: su.Meta.LastModified.UTC(),
			version:  su.Meta.Version,
		}
		if su.ExternalID != nil {
			rec.external = optional.NewString(*su.ExternalID)
		}
		users[su.ID] = rec
		order = append(order, su.ID)
	}
	transitions := make(map[string][]Transition, len(doc.Transitions))
	for id, trs := range doc.Transitions {
		if id == "" {
			return nil, nil, nil, errors.New("transitions for a user with no id")
		}
		transitions[id] = slices.Clone(trs)
	}
	return users, order, transitions, nil
}
