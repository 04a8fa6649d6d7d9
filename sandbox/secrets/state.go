package secrets

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/offboard/offboard/sandbox/simstate"
)

// stateVersion is the format SaveState writes.
const stateVersion = 1

// stateDoc is what SaveState writes: every secret with its versions (values
// included: it is the sandbox's store), never the configuration, faults or
// the rate limit.
type stateDoc struct {
	Version int           `json:"version"`
	Secrets []stateSecret `json:"secrets"` // by name
}

type stateSecret struct {
	Name           string     `json:"name"`
	ARN            string     `json:"arn"`
	Description    string     `json:"description,omitempty"`
	Tags           []stateTag `json:"tags"`
	Versions       []stateVer `json:"versions"` // oldest first
	Created        time.Time  `json:"created"`
	LastChanged    time.Time  `json:"lastChanged"`
	LastRotated    *time.Time `json:"lastRotated,omitempty"`
	LastAccessed   *time.Time `json:"lastAccessed,omitempty"`
	Deleted        *time.Time `json:"deleted,omitempty"`
	RotationLambda string     `json:"rotationLambda,omitempty"`
	RotationDays   int64      `json:"rotationDays,omitempty"`
}

type stateTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type stateVer struct {
	ID      string    `json:"id"`
	String  *string   `json:"string,omitempty"`
	Binary  []byte    `json:"binary,omitempty"`
	Stages  []string  `json:"stages"`
	Created time.Time `json:"created"`
}

// SaveState writes every secret as JSON; the same state gives the same bytes.
func (s *Sim) SaveState(w io.Writer) error {
	s.mu.Lock()
	doc := stateDoc{Version: stateVersion, Secrets: make([]stateSecret, 0, len(s.secrets))}
	for _, n := range s.names() {
		sec := s.secrets[n]
		ss := stateSecret{Name: sec.name, ARN: sec.arn, Description: sec.description, Tags: make([]stateTag, 0, len(sec.tags)),
			Versions: make([]stateVer, 0, len(sec.versions)), Created: sec.created, LastChanged: sec.lastChanged,
			LastRotated: sec.lastRotated, LastAccessed: sec.lastAccessed, Deleted: sec.deleted,
			RotationLambda: sec.rotationLambda, RotationDays: sec.rotationDays}
		for _, t := range sec.tags {
			ss.Tags = append(ss.Tags, stateTag{t.key, t.value})
		}
		for _, v := range sec.versions {
			ss.Versions = append(ss.Versions, stateVer{ID: v.id, String: v.str, Binary: v.bin, Stages: append([]string{}, v.stages...), Created: v.created})
		}
		doc.Secrets = append(doc.Secrets, ss)
	}
	s.mu.Unlock()
	if err := simstate.Encode(w, doc); err != nil {
		return fmt.Errorf("secrets: save state: %w", err)
	}
	return nil
}

// LoadState replaces every secret with what SaveState wrote. The document is
// checked whole first (unique names and version ids, each staging label on
// at most one version of a secret); on any error the state is left as it was.
func (s *Sim) LoadState(r io.Reader) error {
	var doc stateDoc
	if err := simstate.Decode(r, stateVersion, &doc); err != nil {
		return fmt.Errorf("secrets: load state: %w", err)
	}
	loaded := make(map[string]*secret, len(doc.Secrets))
	for i, ss := range doc.Secrets {
		if ss.Name == "" || ss.ARN == "" {
			return fmt.Errorf("secrets: load state: secret %d: name and arn are required", i)
		}
		if _, dup := loaded[ss.Name]; dup {
			return fmt.Errorf("secrets: load state: secret %s appears twice", ss.Name)
		}
		sec := &secret{name: ss.Name, arn: ss.ARN, description: ss.Description, created: ss.Created, lastChanged: ss.LastChanged,
			lastRotated: ss.LastRotated, lastAccessed: ss.LastAccessed, deleted: ss.Deleted, rotationLambda: ss.RotationLambda, rotationDays: ss.RotationDays}
		for _, t := range ss.Tags {
			sec.tags = append(sec.tags, tag{t.Key, t.Value})
		}
		var stages []string
		for _, sv := range ss.Versions {
			if sv.ID == "" || sec.version(sv.ID) != nil {
				return fmt.Errorf("secrets: load state: secret %s: version id %q missing or repeated", ss.Name, sv.ID)
			}
			if (sv.String == nil) == (sv.Binary == nil) {
				return fmt.Errorf("secrets: load state: secret %s version %s: exactly one of string and binary", ss.Name, sv.ID)
			}
			for _, st := range sv.Stages {
				if slices.Contains(stages, st) {
					return fmt.Errorf("secrets: load state: secret %s: stage %s on two versions", ss.Name, st)
				}
				stages = append(stages, st)
			}
			sec.versions = append(sec.versions, &version{id: sv.ID, str: sv.String, bin: sv.Binary, stages: append([]string{}, sv.Stages...), created: sv.Created})
		}
		loaded[ss.Name] = sec
	}
	s.mu.Lock()
	s.secrets = loaded
	s.mu.Unlock()
	return nil
}
