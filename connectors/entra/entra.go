// Package entra removes a leaver's access in Microsoft Entra ID through
// Microsoft Graph (msgraph-sdk-go): disable the account, revoke its sign-in
// sessions, take away group memberships, directory roles and directly
// assigned licences, and delete it after retention.
package entra

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/uuid"
	absauth "github.com/microsoft/kiota-abstractions-go/authentication"
	kauth "github.com/microsoft/kiota-authentication-azure-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/offboard/offboard/internal/control"
)

// Config says which tenant to act on and how.
type Config struct {
	Name         string // target name, e.g. "entra"
	TenantID     string
	ClientID     string
	ClientSecret string // app-only client credentials; never logged
	// BaseURL points at a Graph simulator root (e.g. http://127.0.0.1:8102);
	// requests then go to BaseURL+"/v1.0" without authentication.
	BaseURL    string
	HTTPClient *http.Client
}

// Client is the Entra ID target. It implements control.Target.
type Client struct {
	name     string
	tenantID string
	baseURL  string // for people: where the probe looked
	graph    *msgraphsdk.GraphServiceClient
}

var _ control.Target = (*Client)(nil)

// The Graph application permissions each call needs, named in unauthorized errors.
const (
	permRead        = "User.Read.All"
	permReadGroups  = "GroupMember.Read.All (or GroupMember.ReadWrite.All)"
	permEnable      = "User.EnableDisableAccount.All"
	permRevoke      = "User.RevokeSessions.All"
	permGroups      = "GroupMember.ReadWrite.All"
	permReadRoles   = "GroupMember.Read.All and RoleManagement.Read.Directory (or RoleManagement.ReadWrite.Directory)"
	permRoles       = "RoleManagement.ReadWrite.Directory"
	permLicenses    = "LicenseAssignment.ReadWrite.All"
	permDeleteUsers = "User.ReadWrite.All"
)

// graphHosts are the Graph endpoints of the public and national clouds.
var graphHosts = []string{"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}

// New builds a client. With cfg.BaseURL empty it authenticates to the real
// Graph with the app's client secret.
func New(cfg Config) (*Client, error) {
	if cfg.Name == "" {
		cfg.Name = "entra"
	}
	hc := httpClient(cfg.HTTPClient)
	var auth absauth.AuthenticationProvider
	if cfg.BaseURL != "" {
		auth = &absauth.AnonymousAuthenticationProvider{}
	} else {
		if cfg.TenantID == "" || cfg.ClientID == "" || cfg.ClientSecret == "" {
			return nil, errors.New("entra: tenant id, client id and client secret are required")
		}
		opts := azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}} // Temporal owns retries
		if cfg.HTTPClient != nil {
			opts.Transport = cfg.HTTPClient
		}
		cred, err := azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
		if err != nil {
			return nil, fmt.Errorf("entra: client secret credential: %w", err)
		}
		// Tokens go only to Graph hosts, even if a nextLink pointed elsewhere.
		if auth, err = kauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred,
			[]string{"https://graph.microsoft.com/.default"}, graphHosts); err != nil {
			return nil, fmt.Errorf("entra: authentication provider: %w", err)
		}
	}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		return nil, fmt.Errorf("entra: request adapter: %w", err)
	}
	if cfg.BaseURL != "" {
		adapter.SetBaseUrl(strings.TrimRight(cfg.BaseURL, "/") + "/v1.0")
	}
	return &Client{name: cfg.Name, tenantID: cfg.TenantID, baseURL: adapter.GetBaseUrl(),
		graph: msgraphsdk.NewGraphServiceClient(adapter)}, nil
}

// Name is the configured target name.
func (c *Client) Name() string { return c.name }

// Kind is "entra".
func (c *Client) Kind() string { return "entra" }

// Controls lists the controls applied in each phase, in order.
func (c *Client) Controls(phase control.Phase) []string {
	switch phase {
	case control.Containment:
		return []string{"disable", "revoke_sessions"}
	case control.Removal:
		return []string{"remove_groups", "remove_directory_roles", "remove_licenses"}
	case control.Deletion:
		return []string{"delete"}
	case control.RoleChange:
		return []string{"remove_groups"}
	case control.Restore:
		return []string{"enable"}
	}
	return nil
}

// call runs one logical Graph call and returns the receipt of its last HTTP
// response, or a classified error.
func (c *Client) call(ctx context.Context, op, permission string, fn func(context.Context) error) (control.Response, error) {
	ctx, rec := withRecord(ctx)
	if err := fn(ctx); err != nil {
		return rec.response(), classify(ctx, op, permission, rec, err)
	}
	return rec.response(), nil
}

func (c *Client) account(ctx context.Context, op string, u models.Userable) (control.Account, error) {
	if u == nil || deref(u.GetId()) == "" {
		return control.Account{}, &control.Error{Kind: control.ErrPermanent, Op: op, Err: errors.New("user without an id")}
	}
	id := deref(u.GetId())
	// A read that asking again may cure fails the resolve: Temporal retries it.
	// Rights and holdings are independent reads: both at once.
	var againP, againH error
	var holds []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		holds = c.holds(ctx, op, id, &againH)
	}()
	privileges := c.privileges(ctx, op, id, &againP)
	<-done
	if again := cmp.Or(againP, againH); again != nil {
		return control.Account{}, again
	}
	return control.Account{Target: c.name, ID: id, Login: deref(u.GetUserPrincipalName()), Privileges: privileges, Holds: holds}, nil
}

// Observe reads whether a control holds. A user that no longer exists holds every control.
func (c *Client) Observe(ctx context.Context, name string, acct control.Account, params control.Params) (control.Observation, error) {
	id := userID(acct)
	op := fmt.Sprintf("entra: observe %s %s", name, id)
	switch name {
	case "disable", "enable", "revoke_sessions", "remove_licenses", "delete":
		u, resp, err := c.getUser(ctx, op, id, "id", "accountEnabled", "signInSessionsValidFromDateTime", "assignedLicenses", "licenseAssignmentStates")
		if gone(err) {
			// Graph's own Request_ResourceNotFound for /users/{id} itself.
			return control.Observation{Holds: true, Readable: true, Gone: true, Detail: "GET /users/" + id + ": Request_ResourceNotFound", Call: resp}, nil
		}
		if err != nil {
			return control.Observation{}, err
		}
		obs := observeUser(name, u, params)
		obs.Call = resp
		return obs, nil
	case "remove_groups":
		m, resp, err := c.memberOf(ctx, op, permReadGroups, id)
		if gone(err) {
			return c.goneOrUnexpected(ctx, op, id, "GET /users/"+id+"/memberOf", err)
		}
		if err != nil {
			return control.Observation{}, err
		}
		remove, skipped := plan(m.groups, params.KeepGroups)
		obs := control.Observation{Holds: len(remove) == 0, Readable: true, Call: resp}
		if len(remove) == 0 {
			obs.Detail = "no removable groups left"
		} else {
			obs.Detail = fmt.Sprintf("%d groups left: %s", len(remove), strings.Join(names(remove), ", "))
		}
		if len(skipped) > 0 {
			obs.Detail += "; not removable or kept: " + strings.Join(skipped, ", ")
		}
		return obs, nil
	case "remove_directory_roles":
		m, resp, err := c.memberOf(ctx, op, permReadRoles, id)
		if gone(err) {
			return c.goneOrUnexpected(ctx, op, id, "GET /users/"+id+"/memberOf", err)
		}
		if err != nil {
			return control.Observation{}, err
		}
		obs := control.Observation{Holds: len(m.roles) == 0, Readable: true, Call: resp, Detail: "no directory roles left"}
		if len(m.roles) > 0 {
			obs.Detail = fmt.Sprintf("%d directory roles left: %s", len(m.roles), strings.Join(roleNames(m.roles), ", "))
		}
		return obs, nil
	}
	return control.Observation{}, control.Unknown(c.name, name)
}

func observeUser(name string, u models.Userable, params control.Params) control.Observation {
	enabled := deref(u.GetAccountEnabled())
	switch name {
	case "disable":
		return control.Observation{Holds: !enabled, Readable: true, Detail: fmt.Sprintf("accountEnabled=%t", enabled)}
	case "enable":
		return control.Observation{Holds: enabled, Readable: true, Detail: fmt.Sprintf("accountEnabled=%t", enabled)}
	case "revoke_sessions":
		from := u.GetSignInSessionsValidFromDateTime()
		detail := "signInSessionsValidFromDateTime not set"
		if from != nil {
			detail = "signInSessionsValidFromDateTime=" + from.UTC().Format(time.RFC3339)
		}
		if params.Since.IsZero() {
			return control.Observation{Readable: false, Detail: detail + "; no effective time to compare with"}
		}
		// Graph keeps the timestamp to the second, so compare at that precision.
		holds := from != nil && !from.Before(params.Since.Truncate(time.Second))
		return control.Observation{Holds: holds, Readable: true, Detail: detail + ", since=" + params.Since.UTC().Format(time.RFC3339)}
	case "remove_licenses":
		direct, inherited := licenses(u)
		detail := fmt.Sprintf("%d direct licences", len(direct))
		if len(direct) > 0 {
			detail += ": " + strings.Join(skuStrings(direct), ", ")
		}
		if inherited > 0 {
			detail += fmt.Sprintf("; %d from group-based licensing (go with the groups)", inherited)
		}
		return control.Observation{Holds: len(direct) == 0, Readable: true, Detail: detail}
	default: // delete
		return control.Observation{Holds: false, Readable: true, Detail: "user still exists"}
	}
}

// Enforce makes a control hold. Repeating it is harmless.
func (c *Client) Enforce(ctx context.Context, name string, acct control.Account, params control.Params) (control.Response, error) {
	id := userID(acct)
	op := fmt.Sprintf("entra: %s %s", name, id)
	switch name {
	case "disable", "enable":
		patch := models.NewUser()
		enabled := name == "enable"
		patch.SetAccountEnabled(&enabled)
		return c.call(ctx, op, permEnable, func(ctx context.Context) error {
			_, err := c.graph.Users().ByUserId(id).Patch(ctx, patch, nil)
			return err
		})
	case "revoke_sessions":
		resp, err := c.call(ctx, op, permRevoke, func(ctx context.Context) error {
			_, err := c.graph.Users().ByUserId(id).RevokeSignInSessions().PostAsRevokeSignInSessionsPostResponse(ctx, nil)
			return err
		})
		return resp, c.subResource(ctx, op, id, "POST /users/"+id+"/revokeSignInSessions", err)
	case "remove_groups":
		return c.removeGroups(ctx, op, id, params.KeepGroups)
	case "remove_directory_roles":
		return c.removeDirectoryRoles(ctx, op, id)
	case "remove_licenses":
		u, resp, err := c.getUser(ctx, op, id, "id", "assignedLicenses", "licenseAssignmentStates")
		if err != nil {
			return resp, err
		}
		direct, _ := licenses(u)
		if len(direct) == 0 {
			return resp, nil
		}
		body := users.NewItemAssignLicensePostRequestBody()
		body.SetAddLicenses([]models.AssignedLicenseable{})
		body.SetRemoveLicenses(direct)
		resp, err = c.call(ctx, op, permLicenses, func(ctx context.Context) error {
			_, err := c.graph.Users().ByUserId(id).AssignLicense().Post(ctx, body, nil)
			return err
		})
		return resp, c.subResource(ctx, op, id, "POST /users/"+id+"/assignLicense", err)
	case "delete":
		return c.call(ctx, op, permDeleteUsers, func(ctx context.Context) error {
			return c.graph.Users().ByUserId(id).Delete(ctx, nil)
		})
	}
	return control.Response{}, control.Unknown(c.name, name)
}

func (c *Client) removeGroups(ctx context.Context, op, id string, keep []string) (control.Response, error) {
	m, resp, err := c.memberOf(ctx, op, permReadGroups, id)
	if err != nil {
		return resp, c.subResource(ctx, op, id, "GET /users/"+id+"/memberOf", err)
	}
	remove, _ := plan(m.groups, keep)
	for _, g := range remove {
		gid := deref(g.GetId())
		resp, err = c.call(ctx, fmt.Sprintf("%s: group %s (%s)", op, deref(g.GetDisplayName()), gid), permGroups, func(ctx context.Context) error {
			return c.graph.Groups().ByGroupId(gid).Members().ByDirectoryObjectId(id).Ref().Delete(ctx, nil)
		})
		// Graph's own not-found for the membership: already not a member (a
		// concurrent or earlier removal), what we wanted; the read-back proves it.
		if errors.Is(err, control.ErrNotFound) {
			err = nil
		}
		if err != nil {
			return resp, err
		}
	}
	return resp, nil
}

// removeDirectoryRoles takes the user out of every directory role it holds
// directly; with none left it makes no change.
func (c *Client) removeDirectoryRoles(ctx context.Context, op, id string) (control.Response, error) {
	m, resp, err := c.memberOf(ctx, op, permReadRoles, id)
	if err != nil {
		return resp, c.subResource(ctx, op, id, "GET /users/"+id+"/memberOf", err)
	}
	for _, r := range m.roles {
		rid := deref(r.GetId())
		resp, err = c.call(ctx, fmt.Sprintf("%s: role %s (%s)", op, roleName(r), rid), permRoles, func(ctx context.Context) error {
			return c.graph.DirectoryRoles().ByDirectoryRoleId(rid).Members().ByDirectoryObjectId(id).Ref().Delete(ctx, nil)
		})
		// Graph's own not-found for the membership: already not a member (a
		// concurrent or earlier removal), what we wanted; the read-back proves it.
		if errors.Is(err, control.ErrNotFound) {
			err = nil
		}
		if err != nil {
			return resp, err
		}
	}
	return resp, nil
}

func (c *Client) getUser(ctx context.Context, op, id string, fields ...string) (models.Userable, control.Response, error) {
	var u models.Userable
	resp, err := c.call(ctx, op, permRead, func(ctx context.Context) (err error) {
		u, err = c.graph.Users().ByUserId(id).Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: fields},
		})
		return err
	})
	if err == nil && u == nil {
		err = &control.Error{Kind: control.ErrPermanent, Op: op, HTTPStatus: resp.HTTPStatus, RequestID: resp.RequestID, Digest: resp.Digest, Err: errors.New("empty user")}
	}
	return u, resp, err
}

// maxPages stops a server that keeps sending nextLinks from looping us forever.
const maxPages = 1000

// errNoPage: a 200 with no body or no "value" list. The SDK reads either as
// an empty page, which would claim "no groups" or "no such user"; Graph sends
// "value": [] for an empty one.
var errNoPage = errors.New("the answer has no page: no body, or no value list")

// memberships are the groups and directory roles a user is a direct member of.
type memberships struct {
	groups []models.Groupable
	roles  []models.DirectoryRoleable
}

// memberOf lists the user's direct memberships, following @odata.nextLink.
// It reads memberOf whole rather than casting to a type: Graph answers a cast
// only from an eventually consistent index, which a read-back cannot trust.
func (c *Client) memberOf(ctx context.Context, op, permission, id string) (memberships, control.Response, error) {
	var m memberships
	resp, err := c.call(ctx, op, permission, func(ctx context.Context) error {
		builder := c.graph.Users().ByUserId(id).MemberOf()
		page, err := builder.Get(ctx, &users.ItemMemberOfRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.ItemMemberOfRequestBuilderGetQueryParameters{
				Select: []string{"id", "displayName", "groupTypes", "onPremisesSyncEnabled"},
			},
		})
		links := map[string]bool{}
		ids := map[string]bool{}
		for n := 0; err == nil; n++ {
			if page == nil || page.GetValue() == nil {
				return errNoPage
			}
			for _, obj := range page.GetValue() {
				oid := deref(obj.GetId())
				if ids[oid] {
					return &pagingError{what: "memberOf", msg: oid + " listed twice"}
				}
				ids[oid] = true
				// Administrative units are neither; they grant nothing by membership.
				switch o := obj.(type) {
				case models.Groupable:
					m.groups = append(m.groups, o)
				case models.DirectoryRoleable:
					m.roles = append(m.roles, o)
				}
			}
			next := deref(page.GetOdataNextLink())
			if next == "" {
				return nil
			}
			if links[next] {
				return &pagingError{what: "memberOf", msg: "@odata.nextLink repeated"}
			}
			links[next] = true
			if n == maxPages {
				return fmt.Errorf("more than %d pages of memberOf", maxPages)
			}
			page, err = builder.WithUrl(next).Get(ctx, nil)
		}
		return err
	})
	return m, resp, err
}

// plan splits groups into those to remove and the names of those left alone:
// kept by the new role, dynamic (Graph refuses to edit their members) or
// synced from on-premises AD (edited there, not in the cloud).
func plan(groups []models.Groupable, keep []string) (remove []models.Groupable, skipped []string) {
	for _, g := range groups {
		name := deref(g.GetDisplayName())
		switch {
		case slices.ContainsFunc(keep, func(k string) bool { return strings.EqualFold(k, name) }):
			skipped = append(skipped, name+" (kept)")
		case slices.Contains(g.GetGroupTypes(), "DynamicMembership"):
			skipped = append(skipped, name+" (dynamic)")
		case deref(g.GetOnPremisesSyncEnabled()):
			skipped = append(skipped, name+" (synced from on-premises)")
		default:
			remove = append(remove, g)
		}
	}
	return remove, skipped
}

// licenses returns the directly assigned SKUs and how many come from groups.
// assignLicense can only remove direct ones; group-based ones go with the group.
func licenses(u models.Userable) (direct []uuid.UUID, inherited int) {
	states := u.GetLicenseAssignmentStates()
	if len(states) == 0 {
		// No assignment states to tell direct from inherited: treat every licence as direct.
		for _, l := range u.GetAssignedLicenses() {
			if sku := l.GetSkuId(); sku != nil {
				direct = append(direct, *sku)
			}
		}
		return direct, 0
	}
	for _, s := range states {
		sku := s.GetSkuId()
		switch {
		case sku == nil:
		case s.GetAssignedByGroup() != nil && *s.GetAssignedByGroup() != "":
			inherited++
		case !slices.Contains(direct, *sku):
			direct = append(direct, *sku)
		}
	}
	return direct, inherited
}

func skuStrings(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

func names(groups []models.Groupable) []string {
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = deref(g.GetDisplayName())
	}
	return out
}

func roleNames(roles []models.DirectoryRoleable) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = roleName(r)
	}
	return out
}

// roleName is the role's display name, or its id when the app may not read
// roles and Graph sent only the id.
func roleName(r models.DirectoryRoleable) string {
	if name := deref(r.GetDisplayName()); name != "" {
		return name
	}
	return deref(r.GetId())
}

func userID(acct control.Account) string {
	if acct.ID != "" {
		return acct.ID
	}
	return acct.Login
}

func gone(err error) bool { return errors.Is(err, control.ErrNotFound) }
