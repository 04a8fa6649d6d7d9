package graph

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/offboard/offboard/sandbox/simstate"
)

// stateVersion is the format SaveState writes.
const stateVersion = 1

// stateDoc is the saved directory: everything an API client can change or
// see. Fault rules and the throttle are not part of it. Users are sorted and
// groups and roles keep their order, so an unchanged directory saves to the
// same bytes.
type stateDoc struct {
	Version int         `json:"version"`
	Users   []stateUser `json:"users"` // live users, by id
	// DeletedUsers are the UPNs (lower-cased) the simulator still resolves
	// to a deleted user's id, so that Transitions finds them by UPN.
	DeletedUsers   []stateDeletedUser `json:"deletedUsers"`
	Groups         []stateGroup       `json:"groups"`         // in creation order, which is memberOf order
	DirectoryRoles []stateRole        `json:"directoryRoles"` // listed in memberOf after the groups
	// Transitions are keyed by object id; they include deleted users'.
	Transitions map[string][]Transition `json:"transitions"`
	// Applications are the app registrations and service principals, in creation order.
	Applications []stateApp `json:"applications,omitempty"`
}

// stateApp is an application or a service principal. Client secrets are
// kept as digests only, as the simulator keeps them.
type stateApp struct {
	ID               string          `json:"id"`
	AppID            string          `json:"appId"`
	DisplayName      string          `json:"displayName"`
	ServicePrincipal bool            `json:"servicePrincipal,omitempty"`
	AccountEnabled   bool            `json:"accountEnabled,omitempty"`
	Owners           []string        `json:"owners"` // user ids, in the order they were added
	Passwords        []statePassword `json:"passwordCredentials"`
	Keys             []stateKey      `json:"keyCredentials"`
}

type statePassword struct {
	KeyID       string    `json:"keyId"`
	DisplayName string    `json:"displayName"`
	Hint        string    `json:"hint"`
	SHA256      string    `json:"sha256"`
	Start       time.Time `json:"startDateTime"`
	End         time.Time `json:"endDateTime"`
}

type stateKey struct {
	KeyID       string    `json:"keyId"`
	DisplayName string    `json:"displayName"`
	Thumbprint  string    `json:"customKeyIdentifier"`
	Start       time.Time `json:"startDateTime"`
	End         time.Time `json:"endDateTime"`
}

type stateUser struct {
	ID                      string    `json:"id"`
	UPN                     string    `json:"userPrincipalName"`
	Mail                    string    `json:"mail"`
	DisplayName             string    `json:"displayName"`
	GivenName               string    `json:"givenName"`
	Surname                 string    `json:"surname"`
	JobTitle                string    `json:"jobTitle,omitempty"`
	Department              string    `json:"department"`
	AccountEnabled          bool      `json:"accountEnabled"`
	SignInSessionsValidFrom time.Time `json:"signInSessionsValidFromDateTime"`
	Licenses                []string  `json:"licenses"` // directly assigned skuIds, in assignment order
	OtherMails              []string  `json:"otherMails,omitempty"`
	LastPasswordChange      time.Time `json:"lastPasswordChangeDateTime,omitzero"`
	PasswordSHA256          string    `json:"passwordSha256,omitempty"` // the password's digest, never the password
}

type stateDeletedUser struct {
	ID  string `json:"id"`
	UPN string `json:"userPrincipalName"`
}

type stateGroup struct {
	ID             string   `json:"id"`
	DisplayName    string   `json:"displayName"`
	Dynamic        bool     `json:"dynamic,omitempty"`
	MembershipRule string   `json:"membershipRule,omitempty"`
	Licenses       []string `json:"licenses,omitempty"` // skuIds granted through group-based licensing
	Members        []string `json:"members"`            // user ids, sorted
}

type stateRole struct {
	ID             string   `json:"id"`
	DisplayName    string   `json:"displayName"`
	RoleTemplateID string   `json:"roleTemplateId"`
	Members        []string `json:"members"` // user ids, sorted
}

const (
	odataGroup         = "#microsoft.graph.group"
	odataDirectoryRole = "#microsoft.graph.directoryRole"
)

// SaveState writes the simulator's directory state as JSON: users with
// their profile, account state, sign-in sessions and licences, the UPNs of
// deleted users, groups (dynamic rule, group licences, members) and
// directory roles with their members, in memberOf order, and every user's
// transitions. Ids are derived, not counted, so there is no sequence to
// save. Fault rules and the throttle are not saved.
func (s *Sim) SaveState(w io.Writer) error {
	s.mu.Lock()
	doc := stateDoc{
		Version: stateVersion, Users: []stateUser{}, DeletedUsers: []stateDeletedUser{},
		Groups: []stateGroup{}, DirectoryRoles: []stateRole{},
		Transitions: make(map[string][]Transition, len(s.log)),
	}
	for _, id := range slices.Sorted(maps.Keys(s.users)) {
		u := s.users[id]
		doc.Users = append(doc.Users, stateUser{
			ID: u.id, UPN: u.upn, Mail: u.mail, DisplayName: u.displayName,
			GivenName: u.given, Surname: u.surname, JobTitle: u.jobTitle, Department: u.department,
			AccountEnabled: u.enabled, SignInSessionsValidFrom: u.validFrom,
			Licenses: append([]string{}, u.licenses...), OtherMails: slices.Clone(u.otherMails),
			LastPasswordChange: u.pwdChanged, PasswordSHA256: digestHex(u.pwdDigest),
		})
	}
	for _, upn := range slices.Sorted(maps.Keys(s.upns)) {
		if id := s.upns[upn]; s.users[id] == nil {
			doc.DeletedUsers = append(doc.DeletedUsers, stateDeletedUser{ID: id, UPN: upn})
		}
	}
	for _, g := range s.groups {
		doc.Groups = append(doc.Groups, stateGroup{
			ID: g.id, DisplayName: g.name, Dynamic: g.dynamic, MembershipRule: g.rule,
			Licenses: slices.Clone(g.licenses), Members: simstate.SortedKeys(g.members),
		})
	}
	for _, r := range s.roles {
		doc.DirectoryRoles = append(doc.DirectoryRoles, stateRole{
			ID: r.id, DisplayName: r.name, RoleTemplateID: r.template, Members: simstate.SortedKeys(r.members),
		})
	}
	for id, ts := range s.log {
		doc.Transitions[id] = slices.Clone(ts)
	}
	for _, a := range s.apps {
		doc.Applications = append(doc.Applications, a.state())
	}
	s.mu.Unlock()

	if err := simstate.Encode(w, doc); err != nil {
		return fmt.Errorf("graph: save state: %w", err)
	}
	return nil
}

// LoadState replaces the simulator's directory state with what SaveState
// wrote, rebuilding the UPN index. The document is checked whole first
// (version 1, well-formed, no unknown fields, lower-case unique object ids,
// unique UPNs, lower-case skuIds, unique group and role ids and role
// template ids, every member a live user); on any error the state is left
// as it was. Fault rules and the throttle are kept.
func (s *Sim) LoadState(r io.Reader) error {
	doc, err := decodeState(r)
	if err != nil {
		return fmt.Errorf("graph: load state: %w", err)
	}
	st, err := doc.build()
	if err != nil {
		return fmt.Errorf("graph: load state: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users, s.upns = st.users, st.upns
	s.groups, s.roles = st.groups, st.roles
	s.apps = st.apps
	s.log = st.log
	return nil
}

func decodeState(r io.Reader) (*stateDoc, error) {
	var doc stateDoc
	if err := simstate.Decode(r, stateVersion, &doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

// directoryState is what LoadState swaps in.
type directoryState struct {
	users  map[string]*user
	upns   map[string]string
	groups []*group
	roles  []*group
	apps   []*app
	log    map[string][]Transition
}

// build checks the document and turns it into fresh structures that share
// nothing with it.
func (doc *stateDoc) build() (*directoryState, error) {
	st := &directoryState{
		users: make(map[string]*user, len(doc.Users)),
		upns:  make(map[string]string, len(doc.Users)+len(doc.DeletedUsers)),
		log:   make(map[string][]Transition, len(doc.Transitions)),
	}
	// Lookups lower-case the id or UPN they are given, so stored ids and
	// skuIds must be lower-case to be found.
	checkID := func(what, id string) error {
		switch {
		case id == "":
			return fmt.Errorf("%s has no id", what)
		case id != strings.ToLower(id):
			return fmt.Errorf("%s id %s is not lower-case", what, id)
		}
		return nil
	}
	addUPN := func(upn, id string) error {
		if upn == "" {
			return fmt.Errorf("user %s has no userPrincipalName", id)
		}
		key := strings.ToLower(upn)
		if other, ok := st.upns[key]; ok {
			return fmt.Errorf("userPrincipalName %s belongs to both %s and %s", upn, other, id)
		}
		st.upns[key] = id
		return nil
	}
	checkLicenses := func(what string, skus []string) error {
		for i, sku := range skus {
			switch {
			case sku == "" || sku != strings.ToLower(sku):
				return fmt.Errorf("%s has skuId %q, which is not a lower-case id", what, sku)
			case slices.Contains(skus[:i], sku):
				return fmt.Errorf("%s has skuId %s twice", what, sku)
			}
		}
		return nil
	}

	for i, su := range doc.Users {
		if err := checkID(fmt.Sprintf("user %d", i), su.ID); err != nil {
			return nil, err
		}
		if st.users[su.ID] != nil {
			return nil, fmt.Errorf("user id %s appears twice", su.ID)
		}
		if err := addUPN(su.UPN, su.ID); err != nil {
			return nil, err
		}
		if err := checkLicenses("user "+su.ID, su.Licenses); err != nil {
			return nil, err
		}
		pwd, err := parseDigest(su.PasswordSHA256)
		if err != nil {
			return nil, fmt.Errorf("user %s: passwordSha256: %w", su.ID, err)
		}
		st.users[su.ID] = &user{
			id: su.ID, upn: su.UPN, mail: su.Mail, displayName: su.DisplayName,
			given: su.GivenName, surname: su.Surname, jobTitle: su.JobTitle, department: su.Department,
			enabled: su.AccountEnabled, validFrom: su.SignInSessionsValidFrom,
			licenses: slices.Clone(su.Licenses), otherMails: slices.Clone(su.OtherMails),
			pwdChanged: su.LastPasswordChange, pwdDigest: pwd,
		}
	}
	deleted := map[string]bool{}
	for i, sd := range doc.DeletedUsers {
		if err := checkID(fmt.Sprintf("deleted user %d", i), sd.ID); err != nil {
			return nil, err
		}
		if st.users[sd.ID] != nil {
			return nil, fmt.Errorf("user %s is both live and deleted", sd.ID)
		}
		if err := addUPN(sd.UPN, sd.ID); err != nil {
			return nil, err
		}
		deleted[sd.ID] = true
	}

	// Group and role ids are matched case-insensitively, role template ids too.
	seen := map[string]string{} // lower-case id → what has it
	claim := func(what, id string) error {
		key := strings.ToLower(id)
		if id == "" {
			return fmt.Errorf("%s has no id", what)
		}
		if other, ok := seen[key]; ok {
			return fmt.Errorf("%s has the id %s of %s", what, id, other)
		}
		seen[key] = what
		return nil
	}
	members := func(what string, ids []string) (map[string]bool, error) {
		set := make(map[string]bool, len(ids))
		for _, id := range ids {
			if st.users[id] == nil {
				if deleted[id] {
					return nil, fmt.Errorf("%s has member %s, a deleted user", what, id)
				}
				return nil, fmt.Errorf("%s has member %s, which is not a user", what, id)
			}
			set[id] = true
		}
		return set, nil
	}
	for i, sg := range doc.Groups {
		what := fmt.Sprintf("group %d (%s)", i, sg.DisplayName)
		if err := claim(what, sg.ID); err != nil {
			return nil, err
		}
		if sg.DisplayName == "" {
			return nil, fmt.Errorf("group %s has no displayName", sg.ID)
		}
		if err := checkLicenses(what, sg.Licenses); err != nil {
			return nil, err
		}
		set, err := members(what, sg.Members)
		if err != nil {
			return nil, err
		}
		st.groups = append(st.groups, &group{
			id: sg.ID, name: sg.DisplayName, dynamic: sg.Dynamic, rule: sg.MembershipRule,
			licenses: slices.Clone(sg.Licenses), members: set, odataType: odataGroup,
		})
	}
	for i, sr := range doc.DirectoryRoles {
		what := fmt.Sprintf("directory role %d (%s)", i, sr.DisplayName)
		if err := claim(what, sr.ID); err != nil {
			return nil, err
		}
		switch {
		case sr.DisplayName == "":
			return nil, fmt.Errorf("directory role %s has no displayName", sr.ID)
		case sr.RoleTemplateID == "":
			return nil, fmt.Errorf("directory role %s has no roleTemplateId", sr.ID)
		}
		// A role is addressed by id or roleTemplateId, so the template
		// must not name anything else either.
		if err := claim(what+" roleTemplateId", sr.RoleTemplateID); err != nil {
			return nil, err
		}
		set, err := members(what, sr.Members)
		if err != nil {
			return nil, err
		}
		st.roles = append(st.roles, &group{
			id: sr.ID, name: sr.DisplayName, template: sr.RoleTemplateID, members: set, odataType: odataDirectoryRole,
		})
	}
	for i, sa := range doc.Applications {
		a, err := sa.build(fmt.Sprintf("application %d (%s)", i, sa.DisplayName), st.users, claim)
		if err != nil {
			return nil, err
		}
		st.apps = append(st.apps, a)
	}
	for id, ts := range doc.Transitions {
		if id == "" {
			return nil, errors.New("transitions for an empty user id")
		}
		st.log[id] = slices.Clone(ts)
	}
	return st, nil
}

func (a *app) state() stateApp {
	out := stateApp{ID: a.id, AppID: a.appID, DisplayName: a.name, ServicePrincipal: a.sp, AccountEnabled: a.enabled && a.sp,
		Owners: append([]string{}, a.owners...), Passwords: []statePassword{}, Keys: []stateKey{}}
	for _, p := range a.passwords {
		out.Passwords = append(out.Passwords, statePassword{KeyID: p.keyID, DisplayName: p.displayName, Hint: p.hint,
			SHA256: digestHex(p.digest), Start: p.start, End: p.end})
	}
	for _, k := range a.keys {
		out.Keys = append(out.Keys, stateKey{KeyID: k.keyID, DisplayName: k.displayName, Thumbprint: k.thumbprint, Start: k.start, End: k.end})
	}
	return out
}

// build checks one saved application: lower-case unique ids, an appId,
// owners that are live users, digests that are digests.
func (sa stateApp) build(what string, users map[string]*user, claim func(what, id string) error) (*app, error) {
	switch {
	case sa.ID != strings.ToLower(sa.ID):
		return nil, fmt.Errorf("%s id %s is not lower-case", what, sa.ID)
	case sa.AppID == "":
		return nil, fmt.Errorf("%s has no appId", what)
	case sa.DisplayName == "":
		return nil, fmt.Errorf("%s has no displayName", what)
	}
	if err := claim(what, sa.ID); err != nil {
		return nil, err
	}
	a := &app{id: sa.ID, appID: sa.AppID, name: sa.DisplayName, sp: sa.ServicePrincipal, enabled: sa.AccountEnabled && sa.ServicePrincipal}
	for _, o := range sa.Owners {
		if users[o] == nil || slices.Contains(a.owners, o) {
			return nil, fmt.Errorf("%s has owner %s, which is not a live user or is listed twice", what, o)
		}
		a.owners = append(a.owners, o)
	}
	for _, p := range sa.Passwords {
		d, err := parseDigest(p.SHA256)
		if err != nil || p.KeyID == "" || d == ([32]byte{}) {
			return nil, fmt.Errorf("%s has a password credential without a keyId or a sha256 digest", what)
		}
		a.passwords = append(a.passwords, password{keyID: p.KeyID, displayName: p.DisplayName, hint: p.Hint, digest: d, start: p.Start, end: p.End})
	}
	for _, k := range sa.Keys {
		if k.KeyID == "" {
			return nil, fmt.Errorf("%s has a key credential without a keyId", what)
		}
		a.keys = append(a.keys, certificate{keyID: k.KeyID, displayName: k.DisplayName, thumbprint: k.Thumbprint, start: k.Start, end: k.End})
	}
	return a, nil
}

// digestHex is a SHA-256 digest in hex, or "" for none.
func digestHex(d [32]byte) string {
	if d == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(d[:])
}

func parseDigest(s string) ([32]byte, error) {
	var d [32]byte
	if s == "" {
		return d, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(d) {
		return d, errors.New("not a hex SHA-256 digest")
	}
	copy(d[:], b)
	return d, nil
}
