package graph

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/offboard/offboard/sandbox/demo"
)

// Non-human identities (issue 15): app registrations and service principals
// with their owners and credentials, and users' passwords. Secret values are
// kept only as SHA-256 digests: Graph never reads them back, and neither do we.

const (
	odataApplication      = "#microsoft.graph.application"
	odataServicePrincipal = "#microsoft.graph.servicePrincipal"
	odataUser             = "#microsoft.graph.user"
)

// ownedPageSize is small so clients must follow @odata.nextLink on ownedObjects and owners.
const ownedPageSize = 2

// app is an application registration or a service principal: both carry
// owners and credentials; only a service principal has accountEnabled.
type app struct {
	id, appID, name string
	sp              bool // a service principal, not an application
	enabled         bool // service principals only
	passwords       []password
	keys            []certificate
	owners          []string // user object ids, in the order they were added
}

type password struct {
	keyID, displayName, hint string
	digest                   [32]byte
	start, end               time.Time
}

type certificate struct {
	keyID, displayName, thumbprint string
	start, end                     time.Time
}

// Application is a snapshot of one application or service principal.
type Application struct {
	ID             string   `json:"id"`
	AppID          string   `json:"appId"`
	DisplayName    string   `json:"displayName"`
	AccountEnabled bool     `json:"accountEnabled"` // service principals only
	Owners         []string `json:"owners"`         // user object ids
	Passwords      []string `json:"passwords"`      // client secret keyIds
	PasswordNames  []string `json:"passwordNames"`  // their displayNames, in the same order
	Certificates   []string `json:"certificates"`   // certificate keyIds
}

// seedNonHuman adds the demo's app registration and its service principal,
// owned by demo.ServiceOwner, and the Entra break-glass user.
func (s *Sim) seedNonHuman(people []demo.Person) {
	seeded := time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC)
	bg := &user{
		id: guid("user:" + demo.BreakGlassEntra), upn: demo.BreakGlassEntra, mail: demo.BreakGlassEntra,
		displayName: "Break Glass (Entra)", given: "Break", surname: "Glass", jobTitle: "Emergency access",
		department: "it", enabled: true, validFrom: seeded, pwdChanged: seeded,
		pwdDigest: sha256.Sum256([]byte("seeded break-glass password")),
	}
	s.users[bg.id] = bg
	s.upns[strings.ToLower(bg.upn)] = bg.id
	if len(people) < 2 {
		return
	}
	owner := guid("user:" + demo.ServiceOwner(people).EmployeeID)
	id, _ := s.AddApplication(demo.ApplicationName, owner)
	a := s.appByID(id, false)
	a.passwords = append(a.passwords, password{keyID: guid("password:" + demo.ApplicationName), displayName: "production",
		hint: "sd~", digest: sha256.Sum256([]byte("seeded client secret")), start: seeded, end: seeded.AddDate(5, 0, 0)})
	a.keys = append(a.keys, certificate{keyID: guid("certificate:" + demo.ApplicationName), displayName: "CN=" + demo.ApplicationName,
		thumbprint: "52A1F7E0D1C6B3A49F2C0E1D7B6A5C4D3E2F1A0B", start: seeded, end: seeded.AddDate(4, 0, 0)})
}

// AddApplication registers an application and its service principal, both
// owned by the given users (object ids), with no credentials.
func (s *Sim) AddApplication(name string, owners ...string) (application, servicePrincipal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &app{id: guid("application:" + name), appID: guid("appid:" + name), name: name, owners: slices.Clone(owners)}
	sp := &app{id: guid("sp:" + name), appID: a.appID, name: name, sp: true, enabled: true, owners: slices.Clone(owners)}
	s.apps = append(s.apps, a, sp)
	return a.id, sp.id
}

// Application returns a snapshot of an application or service principal by object id.
func (s *Sim) Application(id string) (Application, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appByID(id, false)
	if a == nil {
		a = s.appByID(id, true)
	}
	if a == nil {
		return Application{}, false
	}
	return a.snapshot(), true
}

// Applications returns every application and service principal, in creation
// order, for /_sandbox/applications: ids and owners, never a secret.
func (s *Sim) Applications() []Application {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Application{}
	for _, a := range s.apps {
		out = append(out, a.snapshot())
	}
	return out
}

func (a *app) snapshot() Application {
	out := Application{ID: a.id, AppID: a.appID, DisplayName: a.name, AccountEnabled: a.enabled && a.sp, Owners: slices.Clone(a.owners)}
	for _, p := range a.passwords {
		out.Passwords = append(out.Passwords, p.keyID)
		out.PasswordNames = append(out.PasswordNames, p.displayName)
	}
	for _, k := range a.keys {
		out.Certificates = append(out.Certificates, k.keyID)
	}
	return out
}

// ApplicationIDs are the object ids of the seeded app registration and its service principal.
func ApplicationIDs(name string) (application, servicePrincipal string) {
	return guid("application:" + name), guid("sp:" + name)
}

// SecretWorks reports whether value is the client secret keyID of the
// application or service principal id: what a sign-in with it would find.
func (s *Sim) SecretWorks(id, keyID string, value []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range []bool{false, true} {
		if a := s.appByID(id, sp); a != nil {
			for _, p := range a.passwords {
				if strings.EqualFold(p.keyID, keyID) {
					d := sha256.Sum256(value)
					return subtle.ConstantTimeCompare(d[:], p.digest[:]) == 1
				}
			}
		}
	}
	return false
}

// PasswordWorks reports whether value is the user's password now.
func (s *Sim) PasswordWorks(idOrUPN string, value []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(idOrUPN)
	d := sha256.Sum256(value)
	return u != nil && subtle.ConstantTimeCompare(d[:], u.pwdDigest[:]) == 1
}

// appByID finds an application (sp false) or service principal (sp true). Callers hold s.mu.
func (s *Sim) appByID(id string, sp bool) *app {
	for _, a := range s.apps {
		if a.sp == sp && strings.EqualFold(a.id, id) {
			return a
		}
	}
	return nil
}

// objectByID finds a user, application or service principal for a $ref. Callers hold s.mu.
func (s *Sim) objectByID(id string) bool {
	if s.users[strings.ToLower(id)] != nil {
		return true
	}
	return s.appByID(id, false) != nil || s.appByID(id, true) != nil
}

// collection is "applications" or "servicePrincipals"; sp says which the route serves.
func collection(sp bool) string {
	if sp {
		return "servicePrincipals"
	}
	return "applications"
}

// routeApps serves the application and service principal endpoints.
func (s *Sim) routeApps(mux *http.ServeMux) {
	mux.HandleFunc("GET /users/{id}/ownedObjects", s.ownedObjects)
	mux.HandleFunc("GET /servicePrincipals", s.listServicePrincipals)
	for _, sp := range []bool{false, true} {
		c := "/" + collection(sp)
		mux.HandleFunc("GET "+c+"/{id}", s.withApp(sp, s.getApp))
		mux.HandleFunc("PATCH "+c+"/{id}", s.withApp(sp, s.patchApp))
		mux.HandleFunc("POST "+c+"/{id}/addPassword", s.withApp(sp, s.addPassword))
		mux.HandleFunc("POST "+c+"/{id}/removePassword", s.withApp(sp, s.removePassword))
		mux.HandleFunc("GET "+c+"/{id}/owners", s.withApp(sp, s.listOwners))
		mux.HandleFunc("POST "+c+"/{id}/owners/{ref}", s.withApp(sp, s.addOwner))
		mux.HandleFunc("DELETE "+c+"/{id}/owners/{oid}/{ref}", s.withApp(sp, s.removeOwner))
	}
}

// withApp looks the object up under s.mu and answers Graph's not-found when it is not there.
func (s *Sim) withApp(sp bool, h func(http.ResponseWriter, *http.Request, *app)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		a := s.appByID(r.PathValue("id"), sp)
		if a == nil {
			notFound(w, r, r.PathValue("id"))
			return
		}
		h(w, r, a)
	}
}

var appProperties = propertyNames("id", "appId", "displayName", "accountEnabled", "passwordCredentials", "keyCredentials",
	"servicePrincipalType", "signInAudience", "createdDateTime")

// appDefaults are what Graph returns without $select (a subset of the real list, the part that matters here).
var appDefaults = []string{"id", "appId", "displayName", "passwordCredentials", "keyCredentials", "signInAudience", "createdDateTime"}
var spDefaults = []string{"id", "appId", "displayName", "accountEnabled", "passwordCredentials", "keyCredentials", "servicePrincipalType"}

func (a *app) json() map[string]any {
	passwords := []map[string]any{}
	for _, p := range a.passwords {
		passwords = append(passwords, map[string]any{"customKeyIdentifier": nil, "displayName": p.displayName,
			"endDateTime": p.end.Format(time.RFC3339), "hint": p.hint, "keyId": p.keyID, "secretText": nil,
			"startDateTime": p.start.Format(time.RFC3339)})
	}
	keys := []map[string]any{}
	for _, k := range a.keys {
		keys = append(keys, map[string]any{"customKeyIdentifier": k.thumbprint, "displayName": k.displayName,
			"endDateTime": k.end.Format(time.RFC3339), "key": nil, "keyId": k.keyID,
			"startDateTime": k.start.Format(time.RFC3339), "type": "AsymmetricX509Cert", "usage": "Verify"})
	}
	out := map[string]any{"id": a.id, "appId": a.appID, "displayName": a.name, "passwordCredentials": passwords,
		"keyCredentials": keys, "createdDateTime": "2024-01-15T09:00:00Z"}
	if a.sp {
		out["accountEnabled"] = a.enabled
		out["servicePrincipalType"] = "Application"
	} else {
		out["signInAudience"] = "AzureADMyOrg"
	}
	return out
}

func (a *app) project(sel []string) map[string]any {
	defaults := appDefaults
	if a.sp {
		defaults = spDefaults
	}
	item := project(a.json(), sel, defaults)
	item["@odata.type"] = odataApplication
	if a.sp {
		item["@odata.type"] = odataServicePrincipal
	}
	return item
}

func (s *Sim) getApp(w http.ResponseWriter, r *http.Request, a *app) {
	sel, ok := selection(w, r, r.URL.Query().Get("$select"), appProperties, "microsoft.graph."+strings.TrimPrefix(a.project(nil)["@odata.type"].(string), "#microsoft.graph."))
	if !ok {
		return
	}
	body := a.project(sel)
	delete(body, "@odata.type")
	body["@odata.context"] = contextURL(r, collection(a.sp), sel, true)
	writeJSON(w, http.StatusOK, body)
}

// ownedObjects lists the applications and service principals a user owns,
// mixed, as Graph does (it would list owned groups too; none are seeded).
func (s *Sim) ownedObjects(w http.ResponseWriter, r *http.Request) {
	sel, ok := selection(w, r, r.URL.Query().Get("$select"), appProperties, "microsoft.graph.directoryObject")
	if !ok {
		return
	}
	top, ok := topParam(w, r, r.URL.Query(), ownedPageSize)
	if !ok {
		return
	}
	s.mu.Lock()
	u := s.lookup(r.PathValue("id"))
	var items []map[string]any
	if u != nil {
		for _, a := range s.apps {
			if slices.Contains(a.owners, u.id) {
				items = append(items, a.project(sel))
			}
		}
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, r, r.PathValue("id"))
		return
	}
	writePage(w, r, contextURL(r, "directoryObjects", sel, false), items, min(top, ownedPageSize))
}

// listServicePrincipals answers GET /servicePrincipals?$filter=appId eq '...'.
func (s *Sim) listServicePrincipals(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sel, ok := selection(w, r, q.Get("$select"), appProperties, "microsoft.graph.servicePrincipal")
	if !ok {
		return
	}
	var f filter
	if src := q.Get("$filter"); src != "" {
		var err error
		if f, err = parseFilterOver(src, spFilterable); err != nil {
			writeError(w, r, http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid filter clause: "+err.Error())
			return
		}
	}
	top, ok := topParam(w, r, q, 100)
	if !ok {
		return
	}
	s.mu.Lock()
	var items []map[string]any
	for _, a := range s.apps {
		if a.sp && (f == nil || f.match(map[string]string{"appid": a.appID, "displayname": a.name, "id": a.id})) {
			item := a.project(sel)
			delete(item, "@odata.type")
			items = append(items, item)
		}
	}
	s.mu.Unlock()
	writePage(w, r, contextURL(r, "servicePrincipals", sel, false), items, top)
}

var spFilterable = map[string]bool{"appid": true, "displayname": true, "id": true}

// patchApp changes accountEnabled (service principals) or keyCredentials
// (kept by keyId: this simulator cannot take new key material).
func (s *Sim) patchApp(w http.ResponseWriter, r *http.Request, a *app) {
	var patch map[string]json.RawMessage
	if !readBody(w, r, &patch) {
		return
	}
	var enabled *bool
	var keys []certificate
	keysSet := false
	for k, v := range patch {
		switch {
		case strings.HasPrefix(k, "@odata."):
		case k == "accountEnabled" && a.sp:
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				writeError(w, r, http.StatusBadRequest, "BadRequest", "Cannot convert the literal '"+string(v)+"' to the expected type 'Edm.Boolean'.")
				return
			}
			enabled = &b
		case k == "keyCredentials":
			var in []struct {
				KeyID string `json:"keyId"`
			}
			if err := json.Unmarshal(v, &in); err != nil {
				writeError(w, r, http.StatusBadRequest, "BadRequest", "Invalid keyCredentials.")
				return
			}
			keysSet = true
			keys = []certificate{}
			for _, want := range in {
				i := slices.IndexFunc(a.keys, func(c certificate) bool { return strings.EqualFold(c.keyID, want.KeyID) })
				if i < 0 {
					writeError(w, r, http.StatusBadRequest, "KeyCredentialsInvalidEndDate", "Key credential end date is invalid.")
					return
				}
				keys = append(keys, a.keys[i])
			}
		case k == "passwordCredentials":
			writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Property 'passwordCredentials' is read-only and cannot be set: use addPassword and removePassword.")
			return
		default:
			writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid property '"+k+"'.")
			return
		}
	}
	if enabled != nil {
		a.enabled = *enabled
	}
	if keysSet {
		a.keys = keys
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) addPassword(w http.ResponseWriter, r *http.Request, a *app) {
	var body struct {
		PasswordCredential *struct {
			DisplayName string     `json:"displayName"`
			EndDateTime *time.Time `json:"endDateTime"`
		} `json:"passwordCredential"`
	}
	if !readBody(w, r, &body) {
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	p := password{keyID: newUUID(), start: now, end: now.AddDate(2, 0, 0)}
	if pc := body.PasswordCredential; pc != nil {
		p.displayName = pc.DisplayName
		if pc.EndDateTime != nil {
			p.end = pc.EndDateTime.UTC()
		}
	}
	// Graph makes the secret itself: 40 characters, any secretText sent is ignored.
	secret := randomString(40, secretAlphabet)
	p.hint, p.digest = secret[:3], sha256.Sum256([]byte(secret))
	a.passwords = append(a.passwords, p)
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": base(r) + "/$metadata#microsoft.graph.passwordCredential", "customKeyIdentifier": nil,
		"displayName": p.displayName, "endDateTime": p.end.Format(time.RFC3339), "hint": p.hint, "keyId": p.keyID,
		"secretText": secret, "startDateTime": p.start.Format(time.RFC3339),
	})
}

func (s *Sim) removePassword(w http.ResponseWriter, r *http.Request, a *app) {
	var body struct {
		KeyID string `json:"keyId"`
	}
	if !readBody(w, r, &body) {
		return
	}
	i := slices.IndexFunc(a.passwords, func(p password) bool { return strings.EqualFold(p.keyID, body.KeyID) })
	if i < 0 {
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "No password credential found with keyId '"+body.KeyID+"'.")
		return
	}
	a.passwords = slices.Delete(a.passwords, i, i+1)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) listOwners(w http.ResponseWriter, r *http.Request, a *app) {
	top, ok := topParam(w, r, r.URL.Query(), ownedPageSize)
	if !ok {
		return
	}
	items := []map[string]any{}
	for _, id := range a.owners {
		if u := s.users[id]; u != nil {
			items = append(items, map[string]any{"@odata.type": odataUser, "id": u.id, "displayName": u.displayName,
				"userPrincipalName": u.upn, "mail": u.mail})
		}
	}
	writePage(w, r, contextURL(r, "directoryObjects", nil, false), items, min(top, ownedPageSize))
}

func (s *Sim) addOwner(w http.ResponseWriter, r *http.Request, a *app) {
	if r.PathValue("ref") != "$ref" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+r.PathValue("ref")+"'.")
		return
	}
	var body struct {
		ODataID string `json:"@odata.id"`
	}
	if !readBody(w, r, &body) {
		return
	}
	i := strings.LastIndex(body.ODataID, "/directoryObjects/")
	if i < 0 || !strings.HasPrefix(body.ODataID, "http") {
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid object identifier '"+body.ODataID+"'.")
		return
	}
	id := strings.ToLower(body.ODataID[i+len("/directoryObjects/"):])
	switch {
	case !s.objectByID(id):
		notFound(w, r, id)
	case s.users[id] == nil:
		// Owners here are users; an app owning an app is not simulated.
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Only users can be added as owners in this simulator.")
	case slices.Contains(a.owners, id):
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "One or more added object references already exist for the following modified properties: 'owners'.")
	default:
		a.owners = append(a.owners, id)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Sim) removeOwner(w http.ResponseWriter, r *http.Request, a *app) {
	if r.PathValue("ref") != "$ref" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+r.PathValue("ref")+"'.")
		return
	}
	i := slices.Index(a.owners, strings.ToLower(r.PathValue("oid")))
	if i < 0 {
		writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "One or more removed object references do not exist for the following modified properties: 'owners'.")
		return
	}
	a.owners = slices.Delete(a.owners, i, i+1)
	w.WriteHeader(http.StatusNoContent)
}

// setPassword applies a passwordProfile patch. Callers hold s.mu.
func (s *Sim) setPassword(u *user, password string, now time.Time) {
	u.pwdDigest = sha256.Sum256([]byte(password))
	u.pwdChanged = now.UTC().Truncate(time.Second)
	s.record(u.id, "set_password", "", now)
}

// complexPassword is Entra's rule for cloud accounts: 8 to 256 characters,
// three of lower case, upper case, digits and symbols.
func complexPassword(p string) bool {
	if len(p) < 8 || len(p) > 256 {
		return false
	}
	var lower, upper, digit, symbol int
	for _, c := range p {
		switch {
		case unicode.IsLower(c):
			lower = 1
		case unicode.IsUpper(c):
			upper = 1
		case unicode.IsDigit(c):
			digit = 1
		default:
			symbol = 1
		}
	}
	return lower+upper+digit+symbol >= 3
}

const secretAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789~._-"

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}
