package iam

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Page sizes: IAM may return fewer items than MaxItems, and small pages make
// every caller exercise pagination.
const (
	usersPage = 20
	itemsPage = 2
)

type handler func(s *Sim, f url.Values) (*xb, *apiError)

var iamActions = map[string]handler{
	"ListUsers":                       (*Sim).listUsers,
	"GetUser":                         (*Sim).getUser,
	"ListUserTags":                    (*Sim).listUserTags,
	"TagUser":                         (*Sim).tagUser,
	"UntagUser":                       (*Sim).untagUser,
	"ListAccessKeys":                  (*Sim).listAccessKeys,
	"CreateAccessKey":                 (*Sim).createAccessKey,
	"UpdateAccessKey":                 credUpdater("UpdateAccessKey", "AccessKeyId", "Access Key", func(u *user) *[]*cred { return &u.accessKeys }),
	"DeleteAccessKey":                 credDeleter("DeleteAccessKey", "AccessKeyId", "Access Key", func(u *user) *[]*cred { return &u.accessKeys }),
	"GetLoginProfile":                 (*Sim).getLoginProfile,
	"DeleteLoginProfile":              (*Sim).deleteLoginProfile,
	"UpdateLoginProfile":              (*Sim).updateLoginProfile,
	"ListSSHPublicKeys":               (*Sim).listSSHPublicKeys,
	"UpdateSSHPublicKey":              credUpdater("UpdateSSHPublicKey", "SSHPublicKeyId", "Public Key", func(u *user) *[]*cred { return &u.sshKeys }),
	"DeleteSSHPublicKey":              credDeleter("DeleteSSHPublicKey", "SSHPublicKeyId", "Public Key", func(u *user) *[]*cred { return &u.sshKeys }),
	"ListServiceSpecificCredentials":  (*Sim).listServiceSpecificCredentials,
	"UpdateServiceSpecificCredential": credUpdater("UpdateServiceSpecificCredential", "ServiceSpecificCredentialId", "Service Specific Credential", func(u *user) *[]*cred { return &u.serviceCreds }),
	"DeleteServiceSpecificCredential": credDeleter("DeleteServiceSpecificCredential", "ServiceSpecificCredentialId", "Service Specific Credential", func(u *user) *[]*cred { return &u.serviceCreds }),
	"ListSigningCertificates":         (*Sim).listSigningCertificates,
	"UpdateSigningCertificate":        credUpdater("UpdateSigningCertificate", "CertificateId", "Signing Certificate", func(u *user) *[]*cred { return &u.signingCerts }),
	"DeleteSigningCertificate":        credDeleter("DeleteSigningCertificate", "CertificateId", "Signing Certificate", func(u *user) *[]*cred { return &u.signingCerts }),
	"ListMFADevices":                  (*Sim).listMFADevices,
	"DeactivateMFADevice":             (*Sim).deactivateMFADevice,
	"DeleteVirtualMFADevice":          (*Sim).deleteVirtualMFADevice,
	"ListGroupsForUser":               (*Sim).listGroupsForUser,
	"RemoveUserFromGroup":             (*Sim).removeUserFromGroup,
	"ListAttachedUserPolicies":        (*Sim).listAttachedUserPolicies,
	"DetachUserPolicy":                (*Sim).detachUserPolicy,
	"ListUserPolicies":                (*Sim).listUserPolicies,
	"GetUserPolicy":                   (*Sim).getUserPolicy,
	"PutUserPolicy":                   (*Sim).putUserPolicy,
	"DeleteUserPolicy":                (*Sim).deleteUserPolicy,
	"DeleteUser":                      (*Sim).deleteUser,
	"ListAttachedGroupPolicies":       (*Sim).listAttachedGroupPolicies,
	"ListGroupPolicies":               (*Sim).listGroupPolicies,
	"GetGroupPolicy":                  (*Sim).getGroupPolicy,
	"GetPolicy":                       (*Sim).getPolicy,
	"GetPolicyVersion":                (*Sim).getPolicyVersion,
}

var stsActions = map[string]handler{
	"AssumeRole":        (*Sim).assumeRole,
	"GetCallerIdentity": (*Sim).getCallerIdentity,
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body) // already in memory: see readBody
	form := r.URL.Query()
	if r.Method == http.MethodPost {
		posted, perr := url.ParseQuery(string(body))
		if perr != nil {
			r.Form = url.Values{}
			writeError(w, r, http.StatusBadRequest, "Sender", "MalformedQueryString", "The query string is malformed.")
			return
		}
		for k, v := range posted {
			form[k] = v
		}
	}
	r.Form = form
	if aerr := s.authenticate(r, body); aerr != nil {
		writeError(w, r, aerr.status, aerr.typ, aerr.code, aerr.msg)
		return
	}
	action, version := form.Get("Action"), form.Get("Version")
	var h handler
	switch version {
	case iamVersion:
		h = iamActions[action]
	case stsVersion:
		h = stsActions[action]
	default:
		writeError(w, r, http.StatusBadRequest, "Sender", "InvalidAction", "Could not find operation "+action+" for version "+version)
		return
	}
	if h == nil {
		writeError(w, r, http.StatusBadRequest, "Sender", "InvalidAction", "Could not find operation "+action+" for version "+version)
		return
	}
	result, aerr := h(s, form)
	if aerr != nil {
		writeError(w, r, aerr.status, aerr.typ, aerr.code, aerr.msg)
		return
	}
	writeResult(w, action, version, result)
}

// lookup finds the user named in the form; callers hold s.mu.
func (s *Sim) lookup(f url.Values) (*user, *apiError) {
	name := f.Get("UserName")
	if name == "" {
		return nil, validation("1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null")
	}
	u, ok := s.users[name]
	if !ok {
		return nil, noSuchUser(name)
	}
	return u, nil
}

func required(f url.Values, names ...string) *apiError {
	for _, n := range names {
		if f.Get(n) == "" {
			return validation("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", strings.ToLower(n[:1])+n[1:])
		}
	}
	return nil
}

func writeUser(b *xb, u *user) {
	b.el("Path", u.path)
	b.el("UserName", u.name)
	b.el("UserId", u.id)
	b.el("Arn", u.arn)
	b.date("CreateDate", u.created)
}

func (s *Sim) listUsers(f url.Values) (*xb, *apiError) {
	prefix := f.Get("PathPrefix")
	if prefix == "" {
		prefix = "/"
	}
	if !strings.HasPrefix(prefix, "/") {
		return nil, validation("1 validation error detected: Value '%s' at 'pathPrefix' failed to satisfy constraint: Member must satisfy regular expression pattern: \\u002F[\\u0021-\\u007F]*", prefix)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := s.names
	if prefix != "/" {
		names = nil
		for _, n := range s.names {
			if strings.HasPrefix(s.users[n].path, prefix) {
				names = append(names, n)
			}
		}
	}
	start, end, err := page(len(names), f, usersPage)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("Users")
	for _, n := range names[start:end] {
		b.open("member")
		writeUser(&b, s.users[n])
		b.close("member")
	}
	b.close("Users")
	truncation(&b, end, len(names))
	return &b, nil
}

func (s *Sim) getUser(f url.Values) (*xb, *apiError) {
	if f.Get("UserName") == "" {
		return nil, validation("Must specify userName when calling with non-User credentials")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("User")
	writeUser(&b, u)
	if len(u.tags) > 0 {
		b.open("Tags")
		writeTags(&b, u.tags)
		b.close("Tags")
	}
	b.close("User")
	return &b, nil
}

func writeTags(b *xb, tags []tag) {
	for _, t := range tags {
		b.open("member")
		b.el("Key", t.key)
		b.el("Value", t.value)
		b.close("member")
	}
}

func (s *Sim) listUserTags(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	start, end, err := page(len(u.tags), f, itemsPage)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("Tags")
	writeTags(&b, u.tags[start:end])
	b.close("Tags")
	truncation(&b, end, len(u.tags))
	return &b, nil
}

var tagChars = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

func (s *Sim) tagUser(f url.Values) (*xb, *apiError) {
	var tags []tag
	for i := 1; f.Has("Tags.member." + strconv.Itoa(i) + ".Key"); i++ {
		p := "Tags.member." + strconv.Itoa(i)
		k, v := f.Get(p+".Key"), f.Get(p+".Value")
		if k == "" || len(k) > 128 || len(v) > 256 || !tagChars.MatchString(k) || !tagChars.MatchString(v) {
			return nil, validation("1 validation error detected: Value at 'tags.%d' failed to satisfy constraint: tag keys are 1-128 and values 0-256 characters of letters, digits, spaces and _.:/=+-@", i)
		}
		tags = append(tags, tag{k, v})
	}
	if len(tags) == 0 {
		return nil, validation("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	merged := slices.Clone(u.tags)
	for _, t := range tags {
		i := slices.IndexFunc(merged, func(o tag) bool { return o.key == t.key })
		if i >= 0 {
			merged[i].value = t.value
		} else {
			merged = append(merged, t)
		}
	}
	if len(merged) > 50 {
		return nil, sender(409, "LimitExceeded", "Cannot exceed quota for TagsPerUser: 50")
	}
	u.tags = merged
	for _, t := range tags {
		s.record(u.name, "TagUser", "%s=%s", t.key, t.value)
	}
	return nil, nil
}

func (s *Sim) untagUser(f url.Values) (*xb, *apiError) {
	var keys []string
	for i := 1; f.Has("TagKeys.member." + strconv.Itoa(i)); i++ {
		keys = append(keys, f.Get("TagKeys.member."+strconv.Itoa(i)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if i := slices.IndexFunc(u.tags, func(t tag) bool { return t.key == k }); i >= 0 {
			u.tags = slices.Delete(u.tags, i, i+1)
			s.record(u.name, "UntagUser", "%s", k)
		}
	}
	return nil, nil
}

// listCreds serves the List* actions over one kind of credential.
func (s *Sim) listCreds(f url.Values, pick func(*user) []*cred, filter func(*cred) bool, listName string, write func(*xb, *user, *cred)) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	var items []*cred
	for _, c := range pick(u) {
		if filter == nil || filter(c) {
			items = append(items, c)
		}
	}
	start, end, err := page(len(items), f, itemsPage)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open(listName)
	for _, c := range items[start:end] {
		b.open("member")
		write(&b, u, c)
		b.close("member")
	}
	b.close(listName)
	truncation(&b, end, len(items))
	return &b, nil
}

func (s *Sim) listAccessKeys(f url.Values) (*xb, *apiError) {
	return s.listCreds(f, func(u *user) []*cred { return u.accessKeys }, nil, "AccessKeyMetadata", func(b *xb, u *user, c *cred) {
		b.el("UserName", u.name)
		b.el("AccessKeyId", c.id)
		b.el("Status", c.status)
		b.date("CreateDate", c.created)
	})
}

func (s *Sim) listSSHPublicKeys(f url.Values) (*xb, *apiError) {
	return s.listCreds(f, func(u *user) []*cred { return u.sshKeys }, nil, "SSHPublicKeys", func(b *xb, u *user, c *cred) {
		b.el("UserName", u.name)
		b.el("SSHPublicKeyId", c.id)
		b.el("Status", c.status)
		b.date("UploadDate", c.created)
	})
}

func (s *Sim) listServiceSpecificCredentials(f url.Values) (*xb, *apiError) {
	service := f.Get("ServiceName")
	filter := func(c *cred) bool { return service == "" || c.service == service }
	return s.listCreds(f, func(u *user) []*cred { return u.serviceCreds }, filter, "ServiceSpecificCredentials", func(b *xb, u *user, c *cred) {
		b.el("UserName", u.name)
		b.el("Status", c.status)
		b.el("ServiceUserName", u.name+"-at-"+s.opts.AccountID)
		b.date("CreateDate", c.created)
		b.el("ServiceSpecificCredentialId", c.id)
		b.el("ServiceName", c.service)
	})
}

func (s *Sim) listSigningCertificates(f url.Values) (*xb, *apiError) {
	return s.listCreds(f, func(u *user) []*cred { return u.signingCerts }, nil, "Certificates", func(b *xb, u *user, c *cred) {
		b.el("UserName", u.name)
		b.el("CertificateId", c.id)
		b.el("CertificateBody", "-----BEGIN CERTIFICATE-----\nMIIBsimulated"+c.id+"\n-----END CERTIFICATE-----")
		b.el("Status", c.status)
		b.date("UploadDate", c.created)
	})
}

// credUpdater serves Update* for one kind of credential.
func credUpdater(action, idParam, noun string, pick func(*user) *[]*cred) handler {
	return func(s *Sim, f url.Values) (*xb, *apiError) {
		if err := required(f, "UserName", idParam, "Status"); err != nil {
			return nil, err
		}
		status := f.Get("Status")
		if status != "Active" && status != "Inactive" {
			return nil, validation("1 validation error detected: Value '%s' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]", status)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		u, err := s.lookup(f)
		if err != nil {
			return nil, err
		}
		id := f.Get(idParam)
		i := slices.IndexFunc(*pick(u), func(c *cred) bool { return c.id == id })
		if i < 0 {
			return nil, sender(404, "NoSuchEntity", "The %s with id %s cannot be found.", noun, id)
		}
		c := (*pick(u))[i]
		if c.status != status {
			s.record(u.name, action, "%s %s→%s", id, c.status, status)
			c.status = status
		}
		return nil, nil
	}
}

// credDeleter serves Delete* for one kind of credential.
func credDeleter(action, idParam, noun string, pick func(*user) *[]*cred) handler {
	return func(s *Sim, f url.Values) (*xb, *apiError) {
		if err := required(f, idParam); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		u, err := s.lookup(f)
		if err != nil {
			return nil, err
		}
		id := f.Get(idParam)
		list := pick(u)
		i := slices.IndexFunc(*list, func(c *cred) bool { return c.id == id })
		if i < 0 {
			return nil, sender(404, "NoSuchEntity", "The %s with id %s cannot be found.", noun, id)
		}
		*list = slices.Delete(*list, i, i+1)
		s.record(u.name, action, "%s", id)
		return nil, nil
	}
}

func (s *Sim) getLoginProfile(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	if u.loginProfile == nil {
		return nil, sender(404, "NoSuchEntity", "Login Profile for User %s cannot be found.", u.name)
	}
	var b xb
	b.open("LoginProfile")
	b.el("UserName", u.name)
	b.date("CreateDate", *u.loginProfile)
	b.el("PasswordResetRequired", "false")
	b.close("LoginProfile")
	return &b, nil
}

func (s *Sim) deleteLoginProfile(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	if u.loginProfile == nil {
		return nil, sender(404, "NoSuchEntity", "Login Profile for User %s cannot be found.", u.name)
	}
	u.loginProfile = nil
	s.record(u.name, "DeleteLoginProfile", "console password removed")
	return nil, nil
}

// createAccessKey makes a new Active key and answers its secret, the only
// time IAM ever shows it. A user holds two keys at most.
func (s *Sim) createAccessKey(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	if len(u.accessKeys) >= 2 {
		return nil, sender(409, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2")
	}
	c := &cred{id: "AKIA" + randomChars(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), status: "Active", created: time.Now().UTC().Truncate(time.Second),
		secret: randomChars(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
	u.accessKeys = append(u.accessKeys, c)
	s.record(u.name, "CreateAccessKey", "%s", c.id)
	var b xb
	b.open("AccessKey")
	b.el("UserName", u.name)
	b.el("AccessKeyId", c.id)
	b.el("Status", c.status)
	b.el("SecretAccessKey", c.secret)
	b.date("CreateDate", c.created)
	b.close("AccessKey")
	return &b, nil
}

// updateLoginProfile changes the console password. IAM never shows a
// password again; the simulator keeps its SHA-256 for tests.
func (s *Sim) updateLoginProfile(f url.Values) (*xb, *apiError) {
	pw, hasPassword := f["Password"]
	if hasPassword && (len(pw[0]) < 8 || len(pw[0]) > 128) {
		return nil, sender(400, "PasswordPolicyViolation", "Password should have a minimum length of 8")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	if u.loginProfile == nil {
		return nil, sender(404, "NoSuchEntity", "Login Profile for User %s cannot be found.", u.name)
	}
	if hasPassword {
		u.password = passwordDigest(pw[0])
		s.record(u.name, "UpdateLoginProfile", "console password changed")
	}
	return nil, nil
}

func (s *Sim) listMFADevices(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	start, end, err := page(len(u.mfa), f, itemsPage)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("MFADevices")
	for _, serial := range u.mfa[start:end] {
		b.open("member")
		b.el("UserName", u.name)
		b.el("SerialNumber", serial)
		b.date("EnableDate", u.created)
		b.close("member")
	}
	b.close("MFADevices")
	truncation(&b, end, len(u.mfa))
	return &b, nil
}

func (s *Sim) deactivateMFADevice(f url.Values) (*xb, *apiError) {
	if err := required(f, "SerialNumber"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	serial := f.Get("SerialNumber")
	i := slices.Index(u.mfa, serial)
	if i < 0 {
		return nil, sender(404, "NoSuchEntity", "MFA Device with serial number %s does not exist.", serial)
	}
	u.mfa = slices.Delete(u.mfa, i, i+1)
	if _, ok := s.virtualMFA[serial]; ok {
		s.virtualMFA[serial] = ""
	}
	s.record(u.name, "DeactivateMFADevice", "%s", serial)
	return nil, nil
}

func (s *Sim) deleteVirtualMFADevice(f url.Values) (*xb, *apiError) {
	if err := required(f, "SerialNumber"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	serial := f.Get("SerialNumber")
	owner, ok := s.virtualMFA[serial]
	if !ok {
		return nil, sender(404, "NoSuchEntity", "VirtualMFADevice with serial number %s doesn't exist.", serial)
	}
	if owner != "" {
		return nil, sender(409, "DeleteConflict", "MFA Device is still in use.")
	}
	delete(s.virtualMFA, serial)
	if name := serial[strings.LastIndex(serial, "/")+1:]; name != "" {
		s.record(name, "DeleteVirtualMFADevice", "%s", serial)
	}
	return nil, nil
}

func (s *Sim) listGroupsForUser(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	start, end, err := page(len(u.groups), f, itemsPage)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("Groups")
	for _, name := range u.groups[start:end] {
		g := s.groups[name]
		b.open("member")
		b.el("Path", "/")
		b.el("GroupName", g.name)
		b.el("GroupId", g.id)
		b.el("Arn", g.arn)
		b.date("CreateDate", g.created)
		b.close("member")
	}
	b.close("Groups")
	truncation(&b, end, len(u.groups))
	return &b, nil
}

func (s *Sim) removeUserFromGroup(f url.Values) (*xb, *apiError) {
	if err := required(f, "GroupName", "UserName"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := f.Get("GroupName")
	if _, ok := s.groups[name]; !ok {
		return nil, sender(404, "NoSuchEntity", "The group with name %s cannot be found.", name)
	}
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	i := slices.Index(u.groups, name)
	if i < 0 {
		return nil, sender(404, "NoSuchEntity", "The user with name %s cannot be found in group %s.", u.name, name)
	}
	u.groups = slices.Delete(u.groups, i, i+1)
	s.record(u.name, "RemoveUserFromGroup", "%s", name)
	return nil, nil
}

func (s *Sim) listAttachedUserPolicies(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	start, end, err := page(len(u.attached), f, itemsPage)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("AttachedPolicies")
	for _, arn := range u.attached[start:end] {
		b.open("member")
		b.el("PolicyName", arn[strings.LastIndex(arn, "/")+1:])
		b.el("PolicyArn", arn)
		b.close("member")
	}
	b.close("AttachedPolicies")
	truncation(&b, end, len(u.attached))
	return &b, nil
}

func (s *Sim) detachUserPolicy(f url.Values) (*xb, *apiError) {
	if err := required(f, "UserName", "PolicyArn"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	arn := f.Get("PolicyArn")
	i := slices.Index(u.attached, arn)
	if i < 0 {
		return nil, sender(404, "NoSuchEntity", "Policy %s was not found.", arn)
	}
	u.attached = slices.Delete(u.attached, i, i+1)
	s.record(u.name, "DetachUserPolicy", "%s", arn)
	return nil, nil
}

func (s *Sim) listUserPolicies(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	start, end, err := page(len(u.inline), f, itemsPage)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("PolicyNames")
	for _, n := range u.inline[start:end] {
		b.el("member", n)
	}
	b.close("PolicyNames")
	truncation(&b, end, len(u.inline))
	return &b, nil
}

func (s *Sim) getUserPolicy(f url.Values) (*xb, *apiError) {
	if err := required(f, "UserName", "PolicyName"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	name := f.Get("PolicyName")
	doc, ok := u.inlineDocs[name]
	if !ok {
		return nil, sender(404, "NoSuchEntity", "The user policy with name %s cannot be found.", name)
	}
	var b xb
	b.el("UserName", u.name)
	b.el("PolicyName", name)
	// IAM returns policy documents URL-encoded (RFC 3986).
	b.el("PolicyDocument", strings.ReplaceAll(url.QueryEscape(doc), "+", "%20"))
	return &b, nil
}

func (s *Sim) putUserPolicy(f url.Values) (*xb, *apiError) {
	if err := required(f, "UserName", "PolicyName", "PolicyDocument"); err != nil {
		return nil, err
	}
	doc := f.Get("PolicyDocument")
	var parsed struct {
		Statement json.RawMessage
	}
	if json.Unmarshal([]byte(doc), &parsed) != nil || len(parsed.Statement) == 0 {
		return nil, sender(400, "MalformedPolicyDocument", "Syntax errors in policy.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	name := f.Get("PolicyName")
	if _, ok := u.inlineDocs[name]; !ok {
		u.inline = append(u.inline, name)
	}
	u.inlineDocs[name] = doc
	s.record(u.name, "PutUserPolicy", "%s", name)
	return nil, nil
}

func (s *Sim) deleteUserPolicy(f url.Values) (*xb, *apiError) {
	if err := required(f, "UserName", "PolicyName"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	name := f.Get("PolicyName")
	if _, ok := u.inlineDocs[name]; !ok {
		return nil, sender(404, "NoSuchEntity", "The user policy with name %s cannot be found.", name)
	}
	delete(u.inlineDocs, name)
	u.inline = slices.DeleteFunc(u.inline, func(n string) bool { return n == name })
	s.record(u.name, "DeleteUserPolicy", "%s", name)
	return nil, nil
}

// deleteUser refuses, as IAM does, while anything is still attached.
func (s *Sim) deleteUser(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookup(f)
	if err != nil {
		return nil, err
	}
	conflict := func(what string) *apiError {
		return sender(409, "DeleteConflict", "Cannot delete entity, must %s first.", what)
	}
	switch {
	case u.loginProfile != nil:
		return nil, conflict("delete login profile")
	case len(u.accessKeys) > 0:
		return nil, conflict("delete access keys")
	case len(u.sshKeys) > 0:
		return nil, conflict("delete SSH public keys")
	case len(u.serviceCreds) > 0:
		return nil, conflict("delete service specific credentials")
	case len(u.signingCerts) > 0:
		return nil, conflict("delete signing certificates")
	case len(u.mfa) > 0:
		return nil, conflict("delete MFA device")
	case len(u.groups) > 0:
		return nil, conflict("remove all groups")
	case len(u.attached) > 0 || len(u.inline) > 0:
		return nil, conflict("delete policies")
	}
	delete(s.users, u.name)
	s.names = slices.DeleteFunc(s.names, func(n string) bool { return n == u.name })
	s.record(u.name, "DeleteUser", "%s", u.arn)
	return nil, nil
}

var roleARN = regexp.MustCompile(`^arn:aws:iam::(\d{12}):role/[\w+=,.@/-]+$`)

func (s *Sim) assumeRole(f url.Values) (*xb, *apiError) {
	if err := required(f, "RoleArn", "RoleSessionName"); err != nil {
		return nil, err
	}
	arn, name := f.Get("RoleArn"), f.Get("RoleSessionName")
	m := roleARN.FindStringSubmatch(arn)
	if m == nil {
		return nil, validation("%s is invalid", arn)
	}
	if m[1] != s.opts.AccountID {
		return nil, sender(403, "AccessDenied", "User: arn:aws:iam::%s:user/offboard is not authorized to perform: sts:AssumeRole on resource: %s", s.opts.AccountID, arn)
	}
	duration := time.Hour
	if v := f.Get("DurationSeconds"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 900 || secs > 43200 {
			return nil, validation("1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", v)
		}
		duration = time.Duration(secs) * time.Second
	}
	keyID := ident("ASIA", requestID(), 16)
	sess := session{secret: ident("", requestID(), 40), token: "FwoGZXIvYXdzE" + ident("", requestID(), 120), expires: time.Now().Add(duration)}
	s.mu.Lock()
	for id, old := range s.sessions {
		if time.Now().After(old.expires) {
			delete(s.sessions, id)
		}
	}
	s.sessions[keyID] = sess
	s.mu.Unlock()
	role := arn[strings.LastIndex(arn, "/")+1:]
	var b xb
	b.open("AssumedRoleUser")
	b.el("Arn", "arn:aws:sts::"+s.opts.AccountID+":assumed-role/"+role+"/"+name)
	b.el("AssumedRoleId", ident("AROA", "role/"+role, 17)+":"+name)
	b.close("AssumedRoleUser")
	b.open("Credentials")
	b.el("AccessKeyId", keyID)
	b.el("SecretAccessKey", sess.secret)
	b.el("SessionToken", sess.token)
	b.date("Expiration", sess.expires)
	b.close("Credentials")
	b.el("PackedPolicySize", "0")
	return &b, nil
}

func (s *Sim) getCallerIdentity(url.Values) (*xb, *apiError) {
	var b xb
	b.el("Arn", "arn:aws:iam::"+s.opts.AccountID+":user/offboard")
	b.el("UserId", ident("AIDA", "user/offboard", 17))
	b.el("Account", s.opts.AccountID)
	return &b, nil
}

// groupAttached is what each seeded group has attached: the admins group
// holds AWS's AdministratorAccess, as real accounts' admin groups do. Group
// policies never change through this API, so they are not part of the state.
func groupAttached(name string) []string {
	if name == "admins" {
		return []string{"arn:aws:iam::aws:policy/AdministratorAccess"}
	}
	return nil
}

// managedPolicies are the AWS managed policies the simulator knows, with
// their documents (as GetPolicyVersion returns them, before URL-encoding).
var managedPolicies = map[string]string{
	"AdministratorAccess": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`,
	"ReadOnlyAccess":      `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:Get*","iam:List*","s3:Get*","s3:List*","ec2:Describe*"],"Resource":"*"}]}`,
}

func (s *Sim) group(f url.Values) (*group, *apiError) {
	if err := required(f, "GroupName"); err != nil {
		return nil, err
	}
	name := f.Get("GroupName")
	g, ok := s.groups[name]
	if !ok {
		return nil, sender(404, "NoSuchEntity", "The group with name %s cannot be found.", name)
	}
	return g, nil
}

func (s *Sim) listAttachedGroupPolicies(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.group(f)
	if err != nil {
		return nil, err
	}
	arns := groupAttached(g.name)
	start, end, err := page(len(arns), f, itemsPage)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("AttachedPolicies")
	for _, arn := range arns[start:end] {
		b.open("member")
		b.el("PolicyName", arn[strings.LastIndex(arn, "/")+1:])
		b.el("PolicyArn", arn)
		b.close("member")
	}
	b.close("AttachedPolicies")
	truncation(&b, end, len(arns))
	return &b, nil
}

func (s *Sim) listGroupPolicies(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(f); err != nil {
		return nil, err
	}
	var b xb
	b.WriteString("<PolicyNames></PolicyNames>")
	truncation(&b, 0, 0)
	return &b, nil
}

func (s *Sim) getGroupPolicy(f url.Values) (*xb, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(f); err != nil {
		return nil, err
	}
	return nil, sender(404, "NoSuchEntity", "The group policy with name %s cannot be found.", f.Get("PolicyName"))
}

// managedPolicy finds an AWS managed policy by ARN.
func managedPolicy(f url.Values) (string, string, *apiError) {
	if err := required(f, "PolicyArn"); err != nil {
		return "", "", err
	}
	arn := f.Get("PolicyArn")
	name, ok := strings.CutPrefix(arn, "arn:aws:iam::aws:policy/")
	doc, known := managedPolicies[name]
	if !ok || !known {
		return "", "", sender(404, "NoSuchEntity", "Policy %s does not exist or is not attachable.", arn)
	}
	return name, doc, nil
}

func (s *Sim) getPolicy(f url.Values) (*xb, *apiError) {
	name, _, err := managedPolicy(f)
	if err != nil {
		return nil, err
	}
	var b xb
	b.open("Policy")
	b.el("PolicyName", name)
	b.el("Arn", f.Get("PolicyArn"))
	b.el("DefaultVersionId", "v1")
	b.el("IsAttachable", "true")
	b.close("Policy")
	return &b, nil
}

func (s *Sim) getPolicyVersion(f url.Values) (*xb, *apiError) {
	_, doc, err := managedPolicy(f)
	if err != nil {
		return nil, err
	}
	if v := f.Get("VersionId"); v != "v1" {
		return nil, sender(404, "NoSuchEntity", "Policy %s version %s does not exist or is not attachable.", f.Get("PolicyArn"), v)
	}
	var b xb
	b.open("PolicyVersion")
	b.el("Document", strings.ReplaceAll(url.QueryEscape(doc), "+", "%20"))
	b.el("VersionId", "v1")
	b.el("IsDefaultVersion", "true")
	b.close("PolicyVersion")
	return &b, nil
}
