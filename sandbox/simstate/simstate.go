// Package simstate is the file format every simulator's SaveState and
// LoadState share: one indented JSON document with a top-level "version".
package simstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// Encode writes doc as indented JSON.
func Encode(w io.Writer, doc any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(doc)
}

// Decode reads one document into doc strictly: it must carry "version":
// version, be well-formed with nothing after it, and name no field doc
// does not have.
func Decode(r io.Reader, version int, doc any) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var head struct {
		Version *int `json:"version"`
	}
	// Unmarshal takes the whole input: malformed JSON and anything after the
	// document are refused here.
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("not a state document: %w", err)
	}
	switch {
	case head.Version == nil:
		return errors.New("no version")
	case *head.Version != version:
		return fmt.Errorf("version %d, want %d", *head.Version, version)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(doc)
}

// SortedKeys lists a set's members in order, never as null, so that the same
// state always saves to the same bytes.
func SortedKeys(set map[string]bool) []string {
	if keys := slices.Sorted(maps.Keys(set)); keys != nil {
		return keys
	}
	return []string{}
}
