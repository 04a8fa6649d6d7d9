package iam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/offboard/offboard/sandbox/simstate"
)

// stateVersion is the format SaveState writes.
const stateVersion = 1

// stateDoc is the account as SaveState writes it. It holds what API callers
// change or see (users and everything attached to them, groups, virtual MFA
// devices, the transitions the admin endpoint shows), never the
// configuration, the API's own credentials, AssumeRole sessions, faults or
// the rate limit.
type stateDoc struct {
	Version           int                     `json:"version"`
	Users             []stateUser             `json:"users"`             // by name
	Groups            []stateGroup            `json:"groups"`            // by name
	VirtualMFADevices []stateMFADevice        `json:"virtualMFADevices"` // by serial number
	Transitions       map[string][]Transition `json:"transitions"`       // by user name; they outlive the user
}

type stateUser struct {
	Name                       string             `json:"name"`
	UserID                     string             `json:"userId"`
	ARN                        string             `json:"arn"`
	Path                       string             `json:"path"`
	Created                    time.Time          `json:"created"`
	Tags                       []stateTag         `json:"tags"` // in the order ListUserTags answers
	AccessKeys                 []stateCred        `json:"accessKeys"`
	LoginProfile               *stateLoginProfile `json:"loginProfile"` // null: no console password
	SSHPublicKeys              []stateCred        `json:"sshPublicKeys"`
	ServiceSpecificCredentials []stateCred        `json:"serviceSpecificCredentials"`
	SigningCertificates        []stateCred        `json:"signingCertificates"`
	MFADevices                 []string           `json:"mfaDevices"` // serial numbers, in enable order
	Groups                     []string           `json:"groups"`
	AttachedPolicies           []string           `json:"attachedPolicies"` // ARNs
	InlinePolicies             []stateInline      `json:"inlinePolicies"`   // in creation order
}

type stateTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type stateCred struct {
	ID      string    `json:"id"`
	Status  string    `json:"status"`
	Created time.Time `json:"created"`
	Service string    `json:"service,omitempty"` // service-specific credentials only
	Secret  string    `json:"secret,omitempty"`  // access keys CreateAccessKey made
}

type stateLoginProfile struct {
	Created        time.Time `json:"created"`
	PasswordSHA256 string    `json:"passwordSHA256,omitempty"`
}

type stateInline struct {
	Name     string `json:"name"`
	Document string `json:"document"`
}

type stateGroup struct {
	Name    string    `json:"name"`
	GroupID string    `json:"groupId"`
	ARN     string    `json:"arn"`
	Created time.Time `json:"created"`
}

type stateMFADevice struct {
	SerialNumber string `json:"serialNumber"`
	User         string `json:"user"` // "" = not assigned
}

// SaveState writes the simulator's directory state as JSON: users with
// their tags, access keys, login profiles, SSH keys, service-specific
// credentials, signing certificates, MFA devices, group memberships and
// policies; groups; virtual MFA devices; and the recorded transitions.
// The same state always gives the same bytes.
func (s *Sim) SaveState(w io.Writer) error {
	s.mu.Lock()
	doc := stateDoc{
		Version:           stateVersion,
		Users:             make([]stateUser, 0, len(s.names)),
		Groups:            make([]stateGroup, 0, len(s.groups)),
		VirtualMFADevices: make([]stateMFADevice, 0, len(s.virtualMFA)),
		Transitions:       make(map[string][]Transition, len(s.transitions)),
	}
	for _, n := range s.names {
		doc.Users = append(doc.Users, saveUser(s.users[n]))
	}
	for _, g := range s.groups {
		doc.Groups = append(doc.Groups, stateGroup{Name: g.name, GroupID: g.id, ARN: g.arn, Created: g.created})
	}
	for serial, owner := range s.virtualMFA {
		doc.VirtualMFADevices = append(doc.VirtualMFADevices, stateMFADevice{SerialNumber: serial, User: owner})
	}
	for n, trs := range s.transitions {
		doc.Transitions[n] = slices.Clone(trs)
	}
	s.mu.Unlock()
	sort.Slice(doc.Groups, func(i, j int) bool { return doc.Groups[i].Name < doc.Groups[j].Name })
	sort.Slice(doc.VirtualMFADevices, func(i, j int) bool {
		return doc.VirtualMFADevices[i].SerialNumber < doc.VirtualMFADevices[j].SerialNumber
	})
	if err := simstate.Encode(w, doc); err != nil {
		return fmt.Errorf("iam: save state: %w", err)
	}
	return nil
}

// saveUser copies u into its saved form; the caller holds s.mu.
func saveUser(u *user) stateUser {
	su := stateUser{
		Name: u.name, UserID: u.id, ARN: u.arn, Path: u.path, Created: u.created,
		Tags:                       make([]stateTag, 0, len(u.tags)),
		AccessKeys:                 saveCreds(u.accessKeys),
		SSHPublicKeys:              saveCreds(u.sshKeys),
		ServiceSpecificCredentials: saveCreds(u.serviceCreds),
		SigningCertificates:        saveCreds(u.signingCerts),
		MFADevices:                 append([]string{}, u.mfa...),
		Groups:                     append([]string{}, u.groups...),
		AttachedPolicies:           append([]string{}, u.attached...),
		InlinePolicies:             make([]stateInline, 0, len(u.inline)),
	}
	for _, t := range u.tags {
		su.Tags = append(su.Tags, stateTag{Key: t.key, Value: t.value})
	}
	if u.loginProfile != nil {
		su.LoginProfile = &stateLoginProfile{Created: *u.loginProfile, PasswordSHA256: u.password}
	}
	for _, n := range u.inline {
		su.InlinePolicies = append(su.InlinePolicies, stateInline{Name: n, Document: u.inlineDocs[n]})
	}
	return su
}

func saveCreds(cs []*cred) []stateCred {
	out := make([]stateCred, 0, len(cs))
	for _, c := range cs {
		out = append(out, stateCred{ID: c.id, Status: c.status, Created: c.created, Service: c.service, Secret: c.secret})
	}
	return out
}

// LoadState replaces the simulator's directory state with what SaveState
// wrote. The document is decoded and checked whole first (version, unique
// names and ids, every group membership and MFA assignment pointing at
// something present); on any error the state is left as it was. The name
// index ListUsers pages through is rebuilt; AssumeRole sessions, faults and
// the configuration are kept.
func (s *Sim) LoadState(r io.Reader) error {
	var doc stateDoc
	if err := simstate.Decode(r, stateVersion, &doc); err != nil {
		return fmt.Errorf("iam: load state: %w", err)
	}
	st, err := buildState(doc)
	if err != nil {
		return fmt.Errorf("iam: load state: %w", err)
	}
	s.mu.Lock()
	s.users, s.names, s.groups, s.virtualMFA, s.transitions = st.users, st.names, st.groups, st.virtualMFA, st.transitions
	s.mu.Unlock()
	return nil
}

// loaded is a decoded and checked state, ready to be swapped in.
type loaded struct {
	users       map[string]*user
	names       []string
	groups      map[string]*group
	virtualMFA  map[string]string
	transitions map[string][]Transition
}

func buildState(doc stateDoc) (*loaded, error) {
	st := &loaded{
		users:       make(map[string]*user, len(doc.Users)),
		groups:      make(map[string]*group, len(doc.Groups)),
		virtualMFA:  make(map[string]string, len(doc.VirtualMFADevices)),
		transitions: make(map[string][]Transition, len(doc.Transitions)),
	}
	for i, sg := range doc.Groups {
		if sg.Name == "" || sg.GroupID == "" || sg.ARN == "" {
			return nil, fmt.Errorf("group %d: name, groupId and arn are required", i)
		}
		if _, dup := st.groups[sg.Name]; dup {
			return nil, fmt.Errorf("group %s appears twice", sg.Name)
		}
		st.groups[sg.Name] = &group{name: sg.Name, id: sg.GroupID, arn: sg.ARN, created: sg.Created}
	}
	for _, sm := range doc.VirtualMFADevices {
		if sm.SerialNumber == "" {
			return nil, errors.New("a virtual MFA device has no serial number")
		}
		if _, dup := st.virtualMFA[sm.SerialNumber]; dup {
			return nil, fmt.Errorf("virtual MFA device %s appears twice", sm.SerialNumber)
		}
		st.virtualMFA[sm.SerialNumber] = sm.User
	}
	ids := map[string]string{} // user, access key, … ids → what has it
	claim := func(id, what string) error {
		if id == "" {
			return fmt.Errorf("%s has no id", what)
		}
		if other, dup := ids[id]; dup {
			return fmt.Errorf("%s has id %s, as %s does", what, id, other)
		}
		ids[id] = what
		return nil
	}
	for i, su := range doc.Users {
		if su.Name == "" {
			return nil, fmt.Errorf("user %d has no name", i)
		}
		if _, dup := st.users[su.Name]; dup {
			return nil, fmt.Errorf("user %s appears twice", su.Name)
		}
		u, err := buildUser(su, st, claim)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", su.Name, err)
		}
		st.users[u.name] = u
		st.names = append(st.names, u.name)
	}
	sort.Strings(st.names)
	for serial, owner := range st.virtualMFA {
		if owner == "" {
			continue
		}
		u, ok := st.users[owner]
		if !ok {
			return nil, fmt.Errorf("virtual MFA device %s is assigned to %s, who is not a user", serial, owner)
		}
		if !slices.Contains(u.mfa, serial) {
			return nil, fmt.Errorf("virtual MFA device %s is assigned to %s, whose MFA devices do not list it", serial, owner)
		}
	}
	for name, trs := range doc.Transitions {
		if name == "" {
			return nil, errors.New("transitions for a user with no name")
		}
		st.transitions[name] = slices.Clone(trs)
	}
	return st, nil
}

// buildUser checks one saved user against the groups and devices already in
// st; claim reserves the ids it carries.
func buildUser(su stateUser, st *loaded, claim func(id, what string) error) (*user, error) {
	if su.ARN == "" || !strings.HasPrefix(su.Path, "/") {
		return nil, errors.New("arn and a path starting with / are required")
	}
	if err := claim(su.UserID, "user "+su.Name); err != nil {
		return nil, err
	}
	u := &user{
		name: su.Name, id: su.UserID, arn: su.ARN, path: su.Path, created: su.Created,
		inlineDocs: make(map[string]string, len(su.InlinePolicies)),
	}
	for _, t := range su.Tags {
		if t.Key == "" {
			return nil, errors.New("a tag has no key")
		}
		if slices.ContainsFunc(u.tags, func(o tag) bool { return o.key == t.Key }) {
			return nil, fmt.Errorf("tag %s appears twice", t.Key)
		}
		u.tags = append(u.tags, tag{t.Key, t.Value})
	}
	var err error
	if u.accessKeys, err = buildCreds(su.AccessKeys, "access key", claim); err != nil {
		return nil, err
	}
	if u.sshKeys, err = buildCreds(su.SSHPublicKeys, "SSH public key", claim); err != nil {
		return nil, err
	}
	if u.serviceCreds, err = buildCreds(su.ServiceSpecificCredentials, "service-specific credential", claim); err != nil {
		return nil, err
	}
	if u.signingCerts, err = buildCreds(su.SigningCertificates, "signing certificate", claim); err != nil {
		return nil, err
	}
	if su.LoginProfile != nil {
		created := su.LoginProfile.Created
		u.loginProfile = &created
		u.password = su.LoginProfile.PasswordSHA256
	}
	for _, serial := range su.MFADevices {
		if serial == "" || slices.Contains(u.mfa, serial) {
			return nil, fmt.Errorf("MFA device %q is empty or listed twice", serial)
		}
		if owner, virtual := st.virtualMFA[serial]; virtual && owner != su.Name {
			return nil, fmt.Errorf("MFA device %s is assigned to %q in the virtual MFA devices", serial, owner)
		}
		u.mfa = append(u.mfa, serial)
	}
	for _, g := range su.Groups {
		if _, ok := st.groups[g]; !ok {
			return nil, fmt.Errorf("member of group %s, which does not exist", g)
		}
		if slices.Contains(u.groups, g) {
			return nil, fmt.Errorf("member of group %s twice", g)
		}
		u.groups = append(u.groups, g)
	}
	for _, arn := range su.AttachedPolicies {
		if arn == "" || slices.Contains(u.attached, arn) {
			return nil, fmt.Errorf("attached policy %q is empty or listed twice", arn)
		}
		u.attached = append(u.attached, arn)
	}
	for _, p := range su.InlinePolicies {
		if p.Name == "" {
			return nil, errors.New("an inline policy has no name")
		}
		if _, dup := u.inlineDocs[p.Name]; dup {
			return nil, fmt.Errorf("inline policy %s appears twice", p.Name)
		}
		if !json.Valid([]byte(p.Document)) {
			return nil, fmt.Errorf("inline policy %s is not JSON", p.Name)
		}
		u.inline = append(u.inline, p.Name)
		u.inlineDocs[p.Name] = p.Document
	}
	// Every list the API pages through is non-nil, as seed makes them.
	u.tags = nonNil(u.tags)
	u.mfa, u.groups, u.attached, u.inline = nonNil(u.mfa), nonNil(u.groups), nonNil(u.attached), nonNil(u.inline)
	return u, nil
}

func buildCreds(scs []stateCred, noun string, claim func(id, what string) error) ([]*cred, error) {
	out := make([]*cred, 0, len(scs))
	for _, sc := range scs {
		if err := claim(sc.ID, noun+" "+sc.ID); err != nil {
			return nil, err
		}
		if sc.Status != "Active" && sc.Status != "Inactive" {
			return nil, fmt.Errorf("%s %s has status %q, want Active or Inactive", noun, sc.ID, sc.Status)
		}
		out = append(out, &cred{id: sc.ID, status: sc.Status, created: sc.Created, service: sc.Service, secret: sc.Secret})
	}
	return out, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
