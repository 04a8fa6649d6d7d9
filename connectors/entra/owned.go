package entra

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/microsoftgraph/msgraph-sdk-go/applications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/serviceprincipals"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/offboard/offboard/internal/control"
)

// Non-human identities (issue 15): the app registrations and service
// principals a leaver owns, and break-glass users whose password they knew.

var _ control.Owner = (*Client)(nil)

// The steps of the non-human actions.
const (
	stepAddOwner          = "add_owner"
	stepRemoveLeaver      = "remove_leaver_owner"
	stepAddClientSecret   = "add_client_secret"
	stepRemoveOldSecrets  = "remove_old_client_secrets"
	stepRemoveCredentials = "remove_credentials"
	stepDisableSP         = "disable_service_principal"
	stepDisableSignIn     = "disable_sign_in"
	stepRotatePassword    = "rotate_password"
)

// Credential kinds, as the plan says them.
const (
	credSecret      = "client secret"
	credCertificate = "certificate"
)

const (
	permReadApps = "Application.Read.All"
	permApps     = "Application.ReadWrite.All"
	permPassword = "User-PasswordProfile.ReadWrite.All (or User.ReadWrite.All)"
)

// rotationName marks the client secret a rotation adds, so a retry finds it.
func rotationName(token string) string { return "offboard rotation " + token }

// appSelect and spSelect are what the steps read of an application or service principal.
var (
	appSelect = []string{"id", "appId", "displayName", "passwordCredentials", "keyCredentials"}
	spSelect  = []string{"id", "appId", "displayName", "passwordCredentials", "keyCredentials", "accountEnabled"}
)

// OwnedSteps lists the steps of an action on a kind of identity.
func (c *Client) OwnedSteps(kind string, action control.Action) []control.Step {
	switch {
	case (kind == control.KindApplication || kind == control.KindServicePrincipal) && action == control.Reown:
		// Add before remove: an app is never left without an owner.
		return []control.Step{{Name: stepAddOwner}, {Name: stepRemoveLeaver}}
	case (kind == control.KindApplication || kind == control.KindServicePrincipal) && action == control.Rotate:
		return []control.Step{{Name: stepAddClientSecret}, {Name: stepRemoveOldSecrets, After: control.Grace}}
	case kind == control.KindApplication && action == control.Decommission:
		return []control.Step{{Name: stepRemoveCredentials}, {Name: stepDisableSP}}
	case kind == control.KindServicePrincipal && action == control.Decommission:
		return []control.Step{{Name: stepDisableSignIn}}
	case kind == control.KindBreakGlass && action == control.Rotate:
		return []control.Step{{Name: stepRotatePassword}}
	}
	return nil
}

// Discover lists the applications and service principals the user owns,
// with their client secrets and certificates, from ownedObjects read to its
// last page. A list that cannot be trusted to be whole is an error.
func (c *Client) Discover(ctx context.Context, acct control.Account) ([]control.Owned, error) {
	id := userID(acct)
	op := fmt.Sprintf("entra: discover owned objects of %s", id)
	builder := c.graph.Users().ByUserId(id).OwnedObjects()
	objs, _, err := c.collect(ctx, op, permReadApps, "ownedObjects",
		func(ctx context.Context) (models.DirectoryObjectCollectionResponseable, error) {
			return builder.Get(ctx, &users.ItemOwnedObjectsRequestBuilderGetRequestConfiguration{
				QueryParameters: &users.ItemOwnedObjectsRequestBuilderGetQueryParameters{Select: appSelect},
			})
		},
		func(ctx context.Context, next string) (models.DirectoryObjectCollectionResponseable, error) {
			return builder.WithUrl(next).Get(ctx, nil)
		})
	if err != nil {
		return nil, c.subResource(ctx, op, id, "GET /users/"+id+"/ownedObjects", err)
	}
	out := []control.Owned{}
	for _, obj := range objs {
		var o control.Owned
		switch v := obj.(type) {
		case models.Applicationable:
			o = control.Owned{Kind: control.KindApplication, Name: deref(v.GetDisplayName()),
				Credentials: credentials(v.GetPasswordCredentials(), v.GetKeyCredentials())}
		case models.ServicePrincipalable:
			o = control.Owned{Kind: control.KindServicePrincipal, Name: deref(v.GetDisplayName()),
				Credentials: credentials(v.GetPasswordCredentials(), v.GetKeyCredentials())}
		default:
			continue // owned groups and devices are not non-human identities
		}
		o.Target, o.ID = c.name, deref(obj.GetId())
		if o.ID == "" {
			return nil, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: errors.New("an owned object without an id")}
		}
		if !credentialsRead(obj) {
			return nil, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: fmt.Errorf("%s %s was listed without its credentials: the server did not honour $select", o.Kind, o.ID)}
		}
		out = append(out, o)
	}
	return out, nil
}

// credentialsRead is false when the answer left out passwordCredentials or
// keyCredentials (absent, not empty): "none" must never be read from silence.
func credentialsRead(obj models.DirectoryObjectable) bool {
	switch v := obj.(type) {
	case models.Applicationable:
		return v.GetPasswordCredentials() != nil && v.GetKeyCredentials() != nil
	case models.ServicePrincipalable:
		return v.GetPasswordCredentials() != nil && v.GetKeyCredentials() != nil
	}
	return false
}

func credentials(passwords []models.PasswordCredentialable, keys []models.KeyCredentialable) []control.Credential {
	var out []control.Credential
	for _, p := range passwords {
		out = append(out, control.Credential{Kind: credSecret, ID: keyID(p.GetKeyId()), Status: expiry(p.GetEndDateTime())})
	}
	for _, k := range keys {
		out = append(out, control.Credential{Kind: credCertificate, ID: keyID(k.GetKeyId()), Status: expiry(k.GetEndDateTime())})
	}
	return out
}

func expiry(t *time.Time) string {
	if t == nil {
		return ""
	}
	return "expires " + t.UTC().Format(time.DateOnly)
}

func keyID(id *uuid.UUID) string {
	if id == nil {
		return ""
	}
	return id.String()
}

// ObserveOwned reads whether a step holds for o.
func (c *Client) ObserveOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	op := fmt.Sprintf("entra: observe %s %s %s", name, o.Kind, o.ID)
	switch name {
	case stepAddOwner, stepRemoveLeaver:
		return c.observeOwners(ctx, op, name, o, p)
	case stepAddClientSecret, stepRemoveOldSecrets, stepRemoveCredentials:
		return c.observeCredentials(ctx, op, name, o, p)
	case stepDisableSP:
		sps, resp, err := c.servicePrincipalsOf(ctx, op, o)
		if gone(err) {
			return goneObservation(o, resp), nil
		}
		if err != nil {
			return control.Observation{}, err
		}
		var on []string
		for _, sp := range sps {
			if enabled := sp.GetAccountEnabled(); enabled == nil || *enabled {
				on = append(on, deref(sp.GetId()))
			}
		}
		obs := control.Observation{Holds: len(on) == 0, Readable: true, Call: resp,
			Detail: fmt.Sprintf("%d service principals for the app, %d with accountEnabled=true", len(sps), len(on))}
		return obs, nil
	case stepDisableSignIn:
		sp, resp, err := c.readObject(ctx, op, o)
		if gone(err) {
			return goneObservation(o, resp), nil
		}
		if err != nil {
			return control.Observation{}, err
		}
		if sp.enabled == nil {
			return control.Observation{}, &control.Error{Kind: control.ErrUnexpected, Op: op, HTTPStatus: resp.HTTPStatus, RequestID: resp.RequestID,
				Digest: resp.Digest, Err: errors.New("the service principal was read without accountEnabled")}
		}
		return control.Observation{Holds: !*sp.enabled, Readable: true, Call: resp, Detail: fmt.Sprintf("accountEnabled=%t", *sp.enabled)}, nil
	case stepRotatePassword:
		return c.observePassword(ctx, op, o, p)
	}
	return control.Observation{}, control.Unknown(c.name, name)
}

// EnforceOwned changes Entra so the step holds. Each step reads first, so
// repeating it after a crash at any point does no harm.
func (c *Client) EnforceOwned(ctx context.Context, name string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	op := fmt.Sprintf("entra: %s %s %s", name, o.Kind, o.ID)
	switch name {
	case stepAddOwner:
		return c.addOwner(ctx, op, o, p)
	case stepRemoveLeaver:
		return c.removeLeaverOwner(ctx, op, o, p)
	case stepAddClientSecret:
		return c.addClientSecret(ctx, op, o, p)
	case stepRemoveOldSecrets:
		return c.removeOldSecrets(ctx, op, o, p)
	case stepRemoveCredentials:
		return c.removeCredentials(ctx, op, o)
	case stepDisableSP:
		sps, resp, err := c.servicePrincipalsOf(ctx, op, o)
		if err != nil {
			return resp, err
		}
		for _, sp := range sps {
			if enabled := sp.GetAccountEnabled(); enabled != nil && !*enabled {
				continue
			}
			sid := deref(sp.GetId())
			if resp, err = c.setSignIn(ctx, op+": service principal "+sid, sid, false); err != nil {
				return resp, err
			}
		}
		return resp, nil
	case stepDisableSignIn:
		if o.Kind != control.KindServicePrincipal {
			return control.Response{}, &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New("only a service principal has sign-in to disable")}
		}
		return c.setSignIn(ctx, op, o.ID, false)
	case stepRotatePassword:
		return c.rotatePassword(ctx, op, o, p)
	}
	return control.Response{}, control.Unknown(c.name, name)
}

// --- owners ---

func (c *Client) observeOwners(ctx context.Context, op, name string, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	want, err := c.ownerID(ctx, op, name, p)
	if err != nil {
		return control.Observation{}, err
	}
	owners, resp, err := c.owners(ctx, op, o)
	if gone(err) {
		return goneObservation(o, resp), nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	has := owners.has(want)
	obs := control.Observation{Readable: true, Call: resp, Detail: "owners: " + owners.say()}
	if name == stepAddOwner {
		obs.Holds = has
	} else {
		obs.Holds = !has
	}
	return obs, nil
}

// ownerID is the object id a step is about: the new owner for add_owner, the leaver for remove_leaver_owner.
func (c *Client) ownerID(ctx context.Context, op, name string, p control.OwnedParams) (string, error) {
	if name == stepRemoveLeaver {
		if id := userID(p.Leaver); id != "" {
			return id, nil
		}
		return "", &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New("no leaver account to take off the owners")}
	}
	return c.newOwner(ctx, op, p)
}

// newOwner resolves p.NewOwner (the manager's UPN or mail) to a user's
// object id. App owners in Entra are users, so a team name is refused.
func (c *Client) newOwner(ctx context.Context, op string, p control.OwnedParams) (string, error) {
	who := strings.TrimSpace(p.NewOwner)
	if who == "" {
		return "", &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New("no new owner named: the HR event carried no manager and no team is configured")}
	}
	u, _, err := c.getUser(ctx, op, who, "id", "userPrincipalName", "accountEnabled")
	if gone(err) {
		quoted := "'" + strings.ReplaceAll(who, "'", "''") + "'"
		var found []models.Userable
		found, _, err = c.searchUsers(ctx, op, "mail eq "+quoted+" or userPrincipalName eq "+quoted)
		switch {
		case err != nil:
		case len(found) == 1:
			u, _, err = c.getUser(ctx, op, deref(found[0].GetId()), "id", "userPrincipalName", "accountEnabled")
		default:
			return "", &control.Error{Kind: control.ErrPermanent, Op: op,
				Err: fmt.Errorf("new owner %q: %d users have this userPrincipalName or mail (Entra app owners must be users)", who, len(found))}
		}
	}
	if err != nil {
		return "", err
	}
	id := deref(u.GetId())
	switch {
	case strings.EqualFold(id, userID(p.Leaver)):
		return "", &control.Error{Kind: control.ErrPermanent, Op: op, Err: fmt.Errorf("new owner %q is the leaver", who)}
	case !deref(u.GetAccountEnabled()):
		return "", &control.Error{Kind: control.ErrPermanent, Op: op, Err: fmt.Errorf("new owner %q (%s) cannot sign in (accountEnabled is not true)", who, id)}
	}
	return id, nil
}

func (c *Client) addOwner(ctx context.Context, op string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	id, err := c.newOwner(ctx, op, p)
	if err != nil {
		return control.Response{}, err
	}
	owners, resp, err := c.owners(ctx, op, o)
	if err != nil || owners.has(id) {
		return resp, err
	}
	ref := models.NewReferenceCreate()
	odataID := c.baseURL + "/directoryObjects/" + id
	ref.SetOdataId(&odataID)
	return c.call(ctx, op+": add owner "+id, permApps, func(ctx context.Context) error {
		if o.Kind == control.KindServicePrincipal {
			return c.graph.ServicePrincipals().ByServicePrincipalId(o.ID).Owners().Ref().Post(ctx, ref, nil)
		}
		return c.graph.Applications().ByApplicationId(o.ID).Owners().Ref().Post(ctx, ref, nil)
	})
}

func (c *Client) removeLeaverOwner(ctx context.Context, op string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	leaver, err := c.ownerID(ctx, op, stepRemoveLeaver, p)
	if err != nil {
		return control.Response{}, err
	}
	owners, resp, err := c.owners(ctx, op, o)
	if err != nil || !owners.has(leaver) {
		return resp, err
	}
	if len(owners) < 2 {
		// Never leave an app without an owner: add_owner must hold first.
		return resp, &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New("the leaver is the only owner: the new owner must be added first")}
	}
	resp, err = c.call(ctx, op+": remove owner "+leaver, permApps, func(ctx context.Context) error {
		if o.Kind == control.KindServicePrincipal {
			return c.graph.ServicePrincipals().ByServicePrincipalId(o.ID).Owners().ByDirectoryObjectId(leaver).Ref().Delete(ctx, nil)
		}
		return c.graph.Applications().ByApplicationId(o.ID).Owners().ByDirectoryObjectId(leaver).Ref().Delete(ctx, nil)
	})
	// Graph's own not-found for the reference: already not an owner; the read-back proves it.
	if gone(err) {
		err = nil
	}
	return resp, err
}

// ownerList is an object's owners, by id and as people know them.
type ownerList []models.DirectoryObjectable

func (l ownerList) has(id string) bool {
	for _, o := range l {
		if strings.EqualFold(deref(o.GetId()), id) {
			return true
		}
	}
	return false
}

func (l ownerList) say() string {
	if len(l) == 0 {
		return "none"
	}
	var out []string
	for _, o := range l {
		name := deref(o.GetId())
		if u, ok := o.(models.Userable); ok && deref(u.GetUserPrincipalName()) != "" {
			name = deref(u.GetUserPrincipalName())
		}
		out = append(out, name)
	}
	return strings.Join(out, ", ")
}

// owners lists an application's or service principal's owners, every page.
// Graph's not-found for the owners is settled against the object itself.
func (c *Client) owners(ctx context.Context, op string, o control.Owned) (ownerList, control.Response, error) {
	first := func(ctx context.Context) (models.DirectoryObjectCollectionResponseable, error) {
		return c.graph.Applications().ByApplicationId(o.ID).Owners().Get(ctx, nil)
	}
	next := func(ctx context.Context, url string) (models.DirectoryObjectCollectionResponseable, error) {
		return c.graph.Applications().ByApplicationId(o.ID).Owners().WithUrl(url).Get(ctx, nil)
	}
	if o.Kind == control.KindServicePrincipal {
		first = func(ctx context.Context) (models.DirectoryObjectCollectionResponseable, error) {
			return c.graph.ServicePrincipals().ByServicePrincipalId(o.ID).Owners().Get(ctx, nil)
		}
		next = func(ctx context.Context, url string) (models.DirectoryObjectCollectionResponseable, error) {
			return c.graph.ServicePrincipals().ByServicePrincipalId(o.ID).Owners().WithUrl(url).Get(ctx, nil)
		}
	}
	objs, resp, err := c.collect(ctx, op, permReadApps, "owners", first, next)
	if gone(err) {
		// The object's own not-found makes it gone; any other answer stands.
		if _, r, oerr := c.readObject(ctx, op, o); oerr != nil {
			return nil, r, oerr
		}
		return nil, resp, &control.Error{Kind: control.ErrUnexpected, Op: op, HTTPStatus: resp.HTTPStatus, RequestID: resp.RequestID, Digest: resp.Digest,
			Err: fmt.Errorf("owners answered not found, but the %s reads: %v", o.Kind, err)}
	}
	return objs, resp, err
}

// collect reads a collection of directory objects to its last page. A
// nextLink served again or an object listed twice makes it untrustworthy.
func (c *Client) collect(ctx context.Context, op, permission, what string,
	first func(context.Context) (models.DirectoryObjectCollectionResponseable, error),
	next func(context.Context, string) (models.DirectoryObjectCollectionResponseable, error),
) ([]models.DirectoryObjectable, control.Response, error) {
	var out []models.DirectoryObjectable
	resp, err := c.call(ctx, op, permission, func(ctx context.Context) error {
		page, err := first(ctx)
		links, ids := map[string]bool{}, map[string]bool{}
		for n := 0; err == nil; n++ {
			if page == nil || page.GetValue() == nil {
				return errNoPage
			}
			for _, obj := range page.GetValue() {
				id := deref(obj.GetId())
				if ids[id] {
					return &pagingError{what: what, msg: id + " listed twice"}
				}
				ids[id] = true
				out = append(out, obj)
			}
			link := deref(page.GetOdataNextLink())
			switch {
			case link == "":
				return nil
			case links[link]:
				return &pagingError{what: what, msg: "@odata.nextLink repeated"}
			case n == maxPages:
				return fmt.Errorf("more than %d pages of %s", maxPages, what)
			}
			links[link] = true
			page, err = next(ctx, link)
		}
		return err
	})
	return out, resp, err
}

// --- credentials ---

// object is what the steps read of an application or service principal.
type object struct {
	appID     string
	enabled   *bool // service principals only
	passwords []models.PasswordCredentialable
	keys      []models.KeyCredentialable
}

func (c *Client) readObject(ctx context.Context, op string, o control.Owned) (object, control.Response, error) {
	var obj object
	resp, err := c.call(ctx, op, permReadApps, func(ctx context.Context) error {
		if o.Kind == control.KindServicePrincipal {
			sp, err := c.graph.ServicePrincipals().ByServicePrincipalId(o.ID).Get(ctx, &serviceprincipals.ServicePrincipalItemRequestBuilderGetRequestConfiguration{
				QueryParameters: &serviceprincipals.ServicePrincipalItemRequestBuilderGetQueryParameters{Select: spSelect},
			})
			if err == nil && sp == nil {
				err = errors.New("an empty response")
			}
			if err == nil && !credentialsRead(sp) {
				err = &pagingError{what: "servicePrincipal", msg: "read without passwordCredentials or keyCredentials"}
			}
			if err == nil {
				obj = object{appID: deref(sp.GetAppId()), enabled: sp.GetAccountEnabled(), passwords: sp.GetPasswordCredentials(), keys: sp.GetKeyCredentials()}
			}
			return err
		}
		if o.Kind != control.KindApplication {
			return &control.Error{Kind: control.ErrPermanent, Op: op, Err: fmt.Errorf("entra has no %s %s", o.Kind, o.ID)}
		}
		app, err := c.graph.Applications().ByApplicationId(o.ID).Get(ctx, &applications.ApplicationItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &applications.ApplicationItemRequestBuilderGetQueryParameters{Select: appSelect},
		})
		if err == nil && app == nil {
			err = errors.New("an empty response")
		}
		if err == nil && !credentialsRead(app) {
			err = &pagingError{what: "application", msg: "read without passwordCredentials or keyCredentials"}
		}
		if err == nil {
			obj = object{appID: deref(app.GetAppId()), passwords: app.GetPasswordCredentials(), keys: app.GetKeyCredentials()}
		}
		return err
	})
	return obj, resp, err
}

// ours are the client secrets a rotation with token added, by their name.
func (obj object) ours(token string) []models.PasswordCredentialable {
	var out []models.PasswordCredentialable
	for _, p := range obj.passwords {
		if deref(p.GetDisplayName()) == rotationName(token) {
			out = append(out, p)
		}
	}
	return out
}

func (obj object) hasPassword(id string) bool {
	for _, p := range obj.passwords {
		if strings.EqualFold(keyID(p.GetKeyId()), id) {
			return true
		}
	}
	return false
}

// oldSecrets are the client secrets o had at discovery, which a rotation replaces.
func oldSecrets(o control.Owned) []string {
	var out []string
	for _, cr := range o.Credentials {
		if cr.Kind == credSecret {
			out = append(out, cr.ID)
		}
	}
	return out
}

func (c *Client) observeCredentials(ctx context.Context, op, name string, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	rotating := name != stepRemoveCredentials
	if rotating && len(oldSecrets(o)) == 0 {
		// A service that signs in without a client secret has none to rotate.
		return control.Observation{Holds: true, Readable: true, Detail: "no client secrets at discovery: nothing to rotate" + certificatesNote(o)}, nil
	}
	if rotating {
		if err := checkStore(op, o, p); err != nil {
			return control.Observation{}, err
		}
	}
	obj, resp, err := c.readObject(ctx, op, o)
	if gone(err) {
		return goneObservation(o, resp), nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	switch name {
	case stepRemoveCredentials:
		n := len(obj.passwords) + len(obj.keys)
		return control.Observation{Holds: n == 0, Readable: true, Call: resp,
			Detail: fmt.Sprintf("%d client secrets and %d certificates left", len(obj.passwords), len(obj.keys))}, nil
	case stepRemoveOldSecrets:
		var left []string
		for _, id := range oldSecrets(o) {
			if obj.hasPassword(id) {
				left = append(left, "…"+last4(id))
			}
		}
		detail := "client secrets from discovery removed"
		if len(left) > 0 {
			detail = fmt.Sprintf("%d client secrets from discovery left: %s", len(left), strings.Join(left, ", "))
		}
		return control.Observation{Holds: len(left) == 0, Readable: true, Call: resp, Detail: detail + certificatesNote(o)}, nil
	}
	// add_client_secret: the store's current version is this rotation's and
	// the app holds exactly one client secret of this rotation.
	current, err := currentVersion(ctx, op, o, p)
	if err != nil {
		return control.Observation{}, err
	}
	ours := obj.ours(p.Token)
	detail := fmt.Sprintf("secret %s: %s; %d client secrets of this rotation on the %s", o.Secret, sayCurrent(current, p.Token), len(ours), o.Kind)
	if len(ours) == 1 {
		detail += " (…" + last4(keyID(ours[0].GetKeyId())) + ")"
	}
	return control.Observation{Holds: current == p.Token && len(ours) == 1, Readable: true, Call: resp, Detail: detail}, nil
}

// rotated is what a rotation writes to the secret store for an app.
type rotated struct {
	ClientID     string `json:"clientId"`
	KeyID        string `json:"keyId"`
	ClientSecret string `json:"clientSecret"`
}

// addClientSecret adds a client secret, writes it to the store as pending
// and promotes it. Graph makes the value (addPassword), so the order is:
// add on Entra, store pending, promote; a secret of this rotation whose
// value is not in the store is removed before a fresh one is added.
func (c *Client) addClientSecret(ctx context.Context, op string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	if len(oldSecrets(o)) == 0 {
		return control.Response{}, nil
	}
	if err := checkStore(op, o, p); err != nil {
		return control.Response{}, err
	}
	obj, resp, err := c.readObject(ctx, op, o)
	if err != nil {
		return resp, err
	}
	value, ok, err := p.Store.Pending(ctx, o.Secret, p.Token)
	if err != nil {
		return resp, storeError(op+": read the pending version", err)
	}
	kept := ""
	if ok {
		var r rotated
		if err := json.Unmarshal(value, &r); err != nil || r.KeyID == "" {
			return resp, &control.Error{Kind: control.ErrPermanent, Op: op, Err: fmt.Errorf("the pending version of %s is not a client secret this connector wrote", o.Secret)}
		}
		if !obj.hasPassword(r.KeyID) {
			return resp, &control.Error{Kind: control.ErrPermanent, Op: op,
				Err: fmt.Errorf("the pending version of %s names client secret …%s, which is no longer on the %s: a person must look", o.Secret, last4(r.KeyID), o.Kind)}
		}
		kept = r.KeyID
	}
	// A secret of this rotation that is not the stored one never reached the store: nobody has it.
	for _, pc := range obj.ours(p.Token) {
		if id := keyID(pc.GetKeyId()); !strings.EqualFold(id, kept) {
			if resp, err = c.removePassword(ctx, op, o, *pc.GetKeyId()); err != nil {
				return resp, err
			}
		}
	}
	if !ok {
		var added models.PasswordCredentialable
		if added, resp, err = c.addPassword(ctx, op, o, rotationName(p.Token)); err != nil {
			return resp, err
		}
		value, err := json.Marshal(rotated{ClientID: obj.appID, KeyID: keyID(added.GetKeyId()), ClientSecret: deref(added.GetSecretText())})
		if err == nil {
			err = p.Store.PutPending(ctx, o.Secret, p.Token, value)
		}
		if err != nil {
			// The value is lost with this attempt: take the secret off again, so
			// Entra is as it was. If that fails too, the next attempt removes it.
			_, _ = c.removePassword(ctx, op, o, *added.GetKeyId())
			return resp, storeError(op+": store the new client secret as pending", err)
		}
	}
	if err := p.Store.Promote(ctx, o.Secret, p.Token); err != nil {
		return resp, storeError(op+": promote the new client secret", err)
	}
	return resp, nil
}

// removeOldSecrets removes the client secrets o had at discovery, and only
// once the rotation's own secret is current in the store and on Entra.
func (c *Client) removeOldSecrets(ctx context.Context, op string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	old := oldSecrets(o)
	if len(old) == 0 {
		return control.Response{}, nil
	}
	if err := checkStore(op, o, p); err != nil {
		return control.Response{}, err
	}
	obj, resp, err := c.readObject(ctx, op, o)
	if err != nil {
		return resp, err
	}
	current, err := currentVersion(ctx, op, o, p)
	if err != nil {
		return resp, err
	}
	ours := obj.ours(p.Token)
	if current != p.Token || len(ours) != 1 {
		return resp, &control.Error{Kind: control.ErrPermanent, Op: op,
			Err: fmt.Errorf("the rotated client secret is not in place (%s; %d of this rotation on the %s): the old ones stay", sayCurrent(current, p.Token), len(ours), o.Kind)}
	}
	for _, id := range old {
		if !obj.hasPassword(id) || strings.EqualFold(id, keyID(ours[0].GetKeyId())) {
			continue
		}
		kid, err := uuid.Parse(id)
		if err != nil {
			return resp, &control.Error{Kind: control.ErrPermanent, Op: op, Err: fmt.Errorf("client secret keyId …%s is not a GUID", last4(id))}
		}
		if resp, err = c.removePassword(ctx, op, o, kid); err != nil {
			return resp, err
		}
	}
	return resp, nil
}

// removeCredentials removes every client secret and certificate: nothing can sign in as the app.
func (c *Client) removeCredentials(ctx context.Context, op string, o control.Owned) (control.Response, error) {
	obj, resp, err := c.readObject(ctx, op, o)
	if err != nil {
		return resp, err
	}
	for _, pc := range obj.passwords {
		if pc.GetKeyId() == nil {
			return resp, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: errors.New("a client secret without a keyId")}
		}
		if resp, err = c.removePassword(ctx, op, o, *pc.GetKeyId()); err != nil {
			return resp, err
		}
	}
	if len(obj.keys) == 0 {
		return resp, nil
	}
	// Certificates go by writing the key collection without them.
	return c.call(ctx, op+": remove certificates", permApps, func(ctx context.Context) error {
		if o.Kind == control.KindServicePrincipal {
			patch := models.NewServicePrincipal()
			patch.SetKeyCredentials([]models.KeyCredentialable{})
			_, err := c.graph.ServicePrincipals().ByServicePrincipalId(o.ID).Patch(ctx, patch, nil)
			return err
		}
		patch := models.NewApplication()
		patch.SetKeyCredentials([]models.KeyCredentialable{})
		_, err := c.graph.Applications().ByApplicationId(o.ID).Patch(ctx, patch, nil)
		return err
	})
}

func (c *Client) addPassword(ctx context.Context, op string, o control.Owned, name string) (models.PasswordCredentialable, control.Response, error) {
	cred := models.NewPasswordCredential()
	cred.SetDisplayName(&name)
	var added models.PasswordCredentialable
	resp, err := c.call(ctx, op+": add client secret", permApps, func(ctx context.Context) (err error) {
		if o.Kind == control.KindServicePrincipal {
			body := serviceprincipals.NewItemAddPasswordPostRequestBody()
			body.SetPasswordCredential(cred)
			added, err = c.graph.ServicePrincipals().ByServicePrincipalId(o.ID).AddPassword().Post(ctx, body, nil)
			return err
		}
		body := applications.NewItemAddPasswordPostRequestBody()
		body.SetPasswordCredential(cred)
		added, err = c.graph.Applications().ByApplicationId(o.ID).AddPassword().Post(ctx, body, nil)
		return err
	})
	// The body holds the new secret: not even its digest goes into a receipt
	// or an error. A credential made behind an unreadable answer carries our
	// name, so the next attempt removes it.
	resp.Digest = ""
	var ce *control.Error
	if errors.As(err, &ce) && ce.HTTPStatus >= 200 && ce.HTTPStatus < 300 {
		err = &control.Error{Kind: ce.Kind, Op: ce.Op, HTTPStatus: ce.HTTPStatus, RequestID: ce.RequestID,
			Err: errors.New("unreadable answer to addPassword (body withheld: it may hold the new secret)")}
	}
	if err == nil && (added == nil || added.GetKeyId() == nil || deref(added.GetSecretText()) == "") {
		err = &control.Error{Kind: control.ErrUnexpected, Op: op + ": add client secret", HTTPStatus: resp.HTTPStatus, RequestID: resp.RequestID,
			Err: errors.New("the answer carries no keyId or no secretText")}
	}
	return added, resp, err
}

func (c *Client) removePassword(ctx context.Context, op string, o control.Owned, id uuid.UUID) (control.Response, error) {
	return c.call(ctx, op+": remove client secret …"+last4(id.String()), permApps, func(ctx context.Context) error {
		if o.Kind == control.KindServicePrincipal {
			body := serviceprincipals.NewItemRemovePasswordPostRequestBody()
			body.SetKeyId(&id)
			return c.graph.ServicePrincipals().ByServicePrincipalId(o.ID).RemovePassword().Post(ctx, body, nil)
		}
		body := applications.NewItemRemovePasswordPostRequestBody()
		body.SetKeyId(&id)
		return c.graph.Applications().ByApplicationId(o.ID).RemovePassword().Post(ctx, body, nil)
	})
}

// --- service principals ---

// servicePrincipalsOf lists the service principals of o's app (by appId),
// checking each answer is for that app: a server that ignored the filter
// would otherwise make us judge other apps.
func (c *Client) servicePrincipalsOf(ctx context.Context, op string, o control.Owned) ([]models.ServicePrincipalable, control.Response, error) {
	obj, resp, err := c.readObject(ctx, op, o)
	if err != nil {
		return nil, resp, err
	}
	if obj.appID == "" {
		return nil, resp, &control.Error{Kind: control.ErrUnexpected, Op: op, Err: fmt.Errorf("the %s was read without an appId", o.Kind)}
	}
	filter := "appId eq '" + strings.ReplaceAll(obj.appID, "'", "''") + "'"
	var out []models.ServicePrincipalable
	resp, err = c.call(ctx, op, permReadApps, func(ctx context.Context) error {
		page, err := c.graph.ServicePrincipals().Get(ctx, &serviceprincipals.ServicePrincipalsRequestBuilderGetRequestConfiguration{
			QueryParameters: &serviceprincipals.ServicePrincipalsRequestBuilderGetQueryParameters{Filter: &filter, Select: []string{"id", "appId", "accountEnabled"}},
		})
		links := map[string]bool{}
		for n := 0; err == nil; n++ {
			if page == nil || page.GetValue() == nil {
				return errNoPage
			}
			for _, sp := range page.GetValue() {
				if !strings.EqualFold(deref(sp.GetAppId()), obj.appID) {
					return &pagingError{what: "servicePrincipals", msg: deref(sp.GetId()) + " is for another app: the server did not apply " + filter}
				}
				out = append(out, sp)
			}
			link := deref(page.GetOdataNextLink())
			switch {
			case link == "":
				return nil
			case links[link] || n == maxPages:
				return &pagingError{what: "servicePrincipals", msg: "@odata.nextLink repeated"}
			}
			links[link] = true
			page, err = c.graph.ServicePrincipals().WithUrl(link).Get(ctx, nil)
		}
		return err
	})
	if gone(err) {
		// A not-found for a search is not the app's: only its own GET can say gone.
		err = &control.Error{Kind: control.ErrUnexpected, Op: op, HTTPStatus: resp.HTTPStatus, RequestID: resp.RequestID, Digest: resp.Digest,
			Err: fmt.Errorf("GET /servicePrincipals answered not found: %v", err)}
	}
	return out, resp, err
}

func (c *Client) setSignIn(ctx context.Context, op, id string, enabled bool) (control.Response, error) {
	patch := models.NewServicePrincipal()
	patch.SetAccountEnabled(&enabled)
	return c.call(ctx, op, permApps, func(ctx context.Context) error {
		_, err := c.graph.ServicePrincipals().ByServicePrincipalId(id).Patch(ctx, patch, nil)
		return err
	})
}

// --- break-glass passwords ---

// breakGlass is what a rotation writes to the secret store for an account.
type breakGlass struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (c *Client) observePassword(ctx context.Context, op string, o control.Owned, p control.OwnedParams) (control.Observation, error) {
	if err := checkStore(op, o, p); err != nil {
		return control.Observation{}, err
	}
	if p.Since.IsZero() {
		return control.Observation{}, &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New("no rotation start time to compare lastPasswordChangeDateTime with")}
	}
	u, resp, err := c.getUser(ctx, op, o.ID, "id", "userPrincipalName", "lastPasswordChangeDateTime")
	if gone(err) {
		return goneObservation(o, resp), nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	current, err := currentVersion(ctx, op, o, p)
	if err != nil {
		return control.Observation{}, err
	}
	changed := u.GetLastPasswordChangeDateTime()
	detail := "lastPasswordChangeDateTime not set"
	if changed != nil {
		detail = "lastPasswordChangeDateTime=" + changed.UTC().Format(time.RFC3339)
	}
	detail += ", since=" + p.Since.UTC().Format(time.RFC3339) + "; secret " + o.Secret + ": " + sayCurrent(current, p.Token)
	// Graph keeps the timestamp to the second.
	holds := changed != nil && !changed.Before(p.Since.Truncate(time.Second)) && current == p.Token
	return control.Observation{Holds: holds, Readable: true, Call: resp, Detail: detail}, nil
}

// rotatePassword follows the store's protocol: a new password as the
// pending version first (or the pending one a crashed attempt left), then
// set on the account, then promoted.
func (c *Client) rotatePassword(ctx context.Context, op string, o control.Owned, p control.OwnedParams) (control.Response, error) {
	if err := checkStore(op, o, p); err != nil {
		return control.Response{}, err
	}
	value, ok, err := p.Store.Pending(ctx, o.Secret, p.Token)
	if err != nil {
		return control.Response{}, storeError(op+": read the pending version", err)
	}
	var bg breakGlass
	if ok {
		if err := json.Unmarshal(value, &bg); err != nil || bg.Password == "" {
			return control.Response{}, &control.Error{Kind: control.ErrPermanent, Op: op, Err: fmt.Errorf("the pending version of %s is not a password this connector wrote", o.Secret)}
		}
	} else {
		if bg.Password, err = newPassword(); err != nil {
			return control.Response{}, &control.Error{Kind: control.ErrTransient, Op: op, Err: err}
		}
		bg.Username = o.ID
		value, err = json.Marshal(bg)
		if err == nil {
			err = p.Store.PutPending(ctx, o.Secret, p.Token, value)
		}
		if err != nil {
			return control.Response{}, storeError(op+": store the new password as pending", err)
		}
	}
	patch := models.NewUser()
	profile := models.NewPasswordProfile()
	force := false // the vaulted password must work as it is
	profile.SetPassword(&bg.Password)
	profile.SetForceChangePasswordNextSignIn(&force)
	patch.SetPasswordProfile(profile)
	resp, err := c.call(ctx, op, permPassword, func(ctx context.Context) error {
		_, err := c.graph.Users().ByUserId(o.ID).Patch(ctx, patch, nil)
		return err
	})
	if err != nil {
		return resp, err
	}
	if err := p.Store.Promote(ctx, o.Secret, p.Token); err != nil {
		return resp, storeError(op+": promote the new password", err)
	}
	return resp, nil
}

// passwordClasses are drawn from in turn, so every password has all four.
var passwordClasses = []string{"abcdefghijkmnopqrstuvwxyz", "ABCDEFGHJKLMNPQRSTUVWXYZ", "23456789", "!#%+-.:=?@_~"}

// newPassword is 32 random characters from crypto/rand, in all four classes.
func newPassword() (string, error) {
	const n = 32
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	out := make([]byte, n)
	for i := range out {
		class := passwordClasses[i%len(passwordClasses)]
		out[i] = class[int(b[i])%len(class)]
	}
	// Spread the classes: a fixed pattern would tell a guesser where digits are.
	perm := make([]byte, n)
	if _, err := rand.Read(perm); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	for i := n - 1; i > 0; i-- {
		j := int(perm[i]) % (i + 1)
		out[i], out[j] = out[j], out[i]
	}
	return string(out), nil
}

// --- helpers ---

func checkStore(op string, o control.Owned, p control.OwnedParams) error {
	if why := p.RotationMissing(o); why != "" {
		return &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New(why)}
	}
	return nil
}

// currentVersion is the store's current version of o.Secret; "" when it has none yet.
func currentVersion(ctx context.Context, op string, o control.Owned, p control.OwnedParams) (string, error) {
	v, err := p.Store.Current(ctx, o.Secret)
	if errors.Is(err, control.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", storeError(op+": read the current version of "+o.Secret, err)
	}
	return v, nil
}

func sayCurrent(current, token string) string {
	switch {
	case current == "":
		return "no current version"
	case current == token:
		return "version " + short(token) + "… (this rotation) is current"
	}
	return "version " + short(current) + "… is current, not this rotation's " + short(token) + "…"
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func last4(id string) string {
	if len(id) > 4 {
		return id[len(id)-4:]
	}
	return id
}

// storeError classifies a secret store failure, keeping its kind when it
// has one. The store's not-found is about the secret, never the identity, so
// it must not read as "gone": it is permanent (a secret to create or name).
func storeError(op string, err error) error {
	kind := control.ErrTransient
	if errors.Is(err, control.ErrNotFound) {
		return &control.Error{Kind: control.ErrPermanent, Op: op, Err: fmt.Errorf("the secret store has no such secret: %v", err)}
	}
	for _, k := range []error{control.ErrPermanent, control.ErrUnauthorized, control.ErrRateLimited, control.ErrUnexpected} {
		if errors.Is(err, k) {
			kind = k
			break
		}
	}
	return &control.Error{Kind: kind, Op: op, Err: err}
}

func certificatesNote(o control.Owned) string {
	var certs []string
	for _, cr := range o.Credentials {
		if cr.Kind == credCertificate {
			certs = append(certs, "…"+last4(cr.ID))
		}
	}
	if len(certs) == 0 {
		return ""
	}
	return "; certificates are not rotated here: " + strings.Join(certs, ", ")
}

func goneObservation(o control.Owned, resp control.Response) control.Observation {
	return control.Observation{Holds: true, Readable: true, Gone: true, Call: resp, Detail: o.Kind + " " + o.ID + ": Request_ResourceNotFound"}
}
