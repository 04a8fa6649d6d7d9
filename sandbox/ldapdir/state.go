package ldapdir

import (
	"fmt"
	"io"
	"slices"

	"github.com/offboard/offboard/sandbox/simstate"
)

// stateVersion is the format SaveState writes.
const stateVersion = 1

type stateDoc struct {
	Version int          `json:"version"`
	BaseDN  string       `json:"baseDN"`
	Entries []stateEntry `json:"entries"` // in insertion order
}

type stateEntry struct {
	DN    string      `json:"dn"`
	Attrs []stateAttr `json:"attributes"` // in insertion order
	// Password is the simulator's record of the entry's password, so that a
	// person still binds after a restart; it is sandbox data, never real.
	Password string `json:"password,omitempty"`
}

type stateAttr struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// SaveState writes the directory (every entry, its attributes and the
// sandbox passwords) as JSON.
func (s *Server) SaveState(w io.Writer) error {
	s.mu.Lock()
	doc := stateDoc{Version: stateVersion, BaseDN: s.opts.BaseDN}
	for _, k := range s.dir.order {
		e := s.dir.entries[k]
		se := stateEntry{DN: e.dn, Password: s.dir.passwords[k]}
		for _, name := range e.order {
			a := e.attrs[name]
			se.Attrs = append(se.Attrs, stateAttr{Name: a.name, Values: slices.Clone(a.vals)})
		}
		doc.Entries = append(doc.Entries, se)
	}
	s.mu.Unlock()
	if err := simstate.Encode(w, doc); err != nil {
		return fmt.Errorf("ldapdir: save state: %w", err)
	}
	return nil
}

// LoadState replaces the directory with what SaveState wrote. The document
// is checked whole first (version, base DN, every parent and every member
// present, the administrator there); on any error the directory is left as
// it was.
func (s *Server) LoadState(r io.Reader) error {
	var doc stateDoc
	if err := simstate.Decode(r, stateVersion, &doc); err != nil {
		return fmt.Errorf("ldapdir: load state: %w", err)
	}
	base, err := normDN(s.opts.BaseDN)
	if err != nil {
		return fmt.Errorf("ldapdir: load state: %w", err)
	}
	if !sameDN(doc.BaseDN, base) {
		return fmt.Errorf("ldapdir: load state: base DN %q, this directory serves %q", doc.BaseDN, s.opts.BaseDN)
	}
	d := &directory{base: base, entries: map[string]*entry{}, passwords: map[string]string{}}
	for i, se := range doc.Entries {
		e := &entry{dn: se.DN, attrs: map[string]*attr{}}
		for _, a := range se.Attrs {
			e.set(a.Name, slices.Clone(a.Values)...)
		}
		if err := d.add(e); err != nil {
			return fmt.Errorf("ldapdir: load state: entry %d: %w", i, err)
		}
		if !under(e.rdns, base) {
			return fmt.Errorf("ldapdir: load state: %s is not under %s", e.dn, s.opts.BaseDN)
		}
		if len(e.rdns) > len(base) && d.entries[key(e.rdns[1:])] == nil {
			return fmt.Errorf("ldapdir: load state: the parent of %s comes later or not at all", e.dn)
		}
		if se.Password != "" {
			d.passwords[key(e.rdns)] = se.Password
		}
	}
	for _, e := range d.entries {
		for _, m := range e.get("member") {
			if d.lookup(m) == nil {
				return fmt.Errorf("ldapdir: load state: %s has member %s, which is not in the directory", e.dn, m)
			}
		}
	}
	admin := d.lookup(s.opts.BindDN)
	if admin == nil {
		return fmt.Errorf("ldapdir: load state: the administrator %s is missing", s.opts.BindDN)
	}
	d.passwords[key(admin.rdns)] = s.opts.Password // the configured credentials win
	s.mu.Lock()
	s.dir = d
	s.mu.Unlock()
	return nil
}
