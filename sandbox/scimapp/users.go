package scimapp

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	parser "github.com/scim2/filter-parser/v2"
)

// userHandler is the elimity ResourceHandler for /Users, backed by the App's store.
type userHandler struct{ a *App }

var userSchema = schema.CoreUserSchema()

func (h userHandler) Create(_ *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.userNameTaken(str(attrs["userName"]), "") {
		return scim.Resource{}, scimerrors.ScimErrorUniqueness
	}
	if _, ok := attrs["active"]; !ok {
		attrs["active"] = true
	}
	now := time.Now().UTC()
	id := newID()
	rec := &record{created: now, modified: now, version: 1}
	rec.set(attrs)
	a.users[id] = rec
	a.order = append(a.order, id)
	return rec.resource(id), nil
}

func (h userHandler) Get(_ *http.Request, id string) (scim.Resource, error) {
	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.users[id]
	if !ok {
		return scim.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	return rec.resource(id), nil
}

func (h userHandler) GetAll(_ *http.Request, params scim.ListRequestParams) (scim.Page, error) {
	var match func(map[string]any) bool
	if params.FilterValidator != nil {
		expr, err := normalize(params.FilterValidator.GetFilter())
		if err != nil {
			return scim.Page{}, scimerrors.ScimErrorInvalidFilter
		}
		v := scimfilter.NewFilterValidator(expr, filterSchema())
		match = func(m map[string]any) bool { return v.PassesFilter(m) == nil }
	}

	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	page := scim.Page{Resources: []scim.Resource{}}
	for _, id := range a.order {
		rec := a.users[id]
		if match != nil && !match(rec.filterable(id)) {
			continue
		}
		page.TotalResults++
		if page.TotalResults >= params.StartIndex && len(page.Resources) < params.Count {
			page.Resources = append(page.Resources, rec.resource(id))
		}
	}
	return page, nil
}

func (h userHandler) Replace(_ *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.users[id]
	if !ok {
		return scim.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	if a.userNameTaken(str(attrs["userName"]), id) {
		return scim.Resource{}, scimerrors.ScimErrorUniqueness
	}
	before := rec.attrs["active"]
	rec.external = optional.String{}
	rec.set(attrs)
	now := rec.touch()
	a.record(id, "replace", now)
	a.recordActive(id, before, rec.attrs["active"], now)
	return rec.resource(id), nil
}

func (h userHandler) Delete(_ *http.Request, id string) error {
	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.users[id]; !ok {
		return scimerrors.ScimErrorResourceNotFound(id)
	}
	delete(a.users, id)
	a.order = slices.DeleteFunc(a.order, func(s string) bool { return s == id })
	a.record(id, "delete", time.Now().UTC())
	return nil
}

func (h userHandler) Patch(_ *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.users[id]
	if !ok {
		return scim.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	// Work on a copy so a failing operation leaves the user untouched (RFC 7644 §3.5.2: all or nothing).
	attrs := deepCopy(rec.attrs).(map[string]any)
	if rec.external.Present() {
		attrs["externalId"] = rec.external.Value()
	}
	for _, op := range ops {
		if err := applyPatch(attrs, op); err != nil {
			return scim.Resource{}, err
		}
	}
	if a.userNameTaken(str(attrs["userName"]), id) {
		return scim.Resource{}, scimerrors.ScimErrorUniqueness
	}
	before := rec.attrs["active"]
	rec.external = optional.String{}
	rec.set(attrs)
	now := rec.touch()
	a.recordActive(id, before, rec.attrs["active"], now)
	return rec.resource(id), nil
}

// userNameTaken reports whether another user (not except) has that userName; the caller holds a.mu.
func (a *App) userNameTaken(userName, except string) bool {
	for id, rec := range a.users {
		if id != except && strings.EqualFold(str(rec.attrs["userName"]), userName) {
			return true
		}
	}
	return false
}

// recordActive records a deactivate or reactivate when active flipped; the caller holds a.mu.
func (a *App) recordActive(id string, before, after any, at time.Time) {
	wasActive, _ := before.(bool)
	isActive, _ := after.(bool)
	switch {
	case wasActive && !isActive:
		a.record(id, "deactivate", at)
	case !wasActive && isActive:
		a.record(id, "reactivate", at)
	}
}

// set stores validated attributes, moving externalId to its own field as the library expects.
func (rec *record) set(attrs map[string]any) {
	attrs = maps.Clone(attrs)
	if ext, ok := attrs["externalId"].(string); ok {
		rec.external = optional.NewString(ext)
	}
	delete(attrs, "externalId")
	delete(attrs, "id")
	delete(attrs, "meta")
	delete(attrs, "schemas")
	rec.attrs = attrs
}

func (rec *record) touch() time.Time {
	rec.modified = time.Now().UTC()
	rec.version++
	return rec.modified
}

func (rec *record) resource(id string) scim.Resource {
	created, modified := rec.created, rec.modified
	return scim.Resource{
		ID:         id,
		ExternalID: rec.external,
		Attributes: deepCopy(rec.attrs).(map[string]any),
		Meta: scim.Meta{
			Created:      &created,
			LastModified: &modified,
			Version:      `W/"` + strconv.Itoa(rec.version) + `"`,
		},
	}
}

// filterable is the user as filters see it, with the common attributes.
func (rec *record) filterable(id string) map[string]any {
	m := maps.Clone(rec.attrs)
	m["id"] = id
	if rec.external.Present() {
		m["externalId"] = rec.external.Value()
	}
	return m
}

func filterSchema() schema.Schema {
	s := userSchema
	s.Attributes = append(slices.Clone(s.Attributes), schema.CommonAttributes()...)
	return s
}

// normalize prepares a parsed filter for the library's matcher, fixing two
// gaps in it: string literals arrive with their JSON escapes still in place
// (`"o\"brien"`), and `emails.value eq x` on a multi-valued attribute is not
// matched element by element, so it is rewritten to the equivalent
// `emails[value eq x]` (RFC 7644 §3.4.2.2).
func normalize(e parser.Expression) (parser.Expression, error) {
	switch e := e.(type) {
	case *parser.AttributeExpression:
		out := *e
		if s, ok := e.CompareValue.(string); ok {
			var unq string
			if err := json.Unmarshal([]byte(`"`+s+`"`), &unq); err != nil {
				return nil, fmt.Errorf("string literal %q: %w", s, err)
			}
			out.CompareValue = unq
		}
		attr, ok := userSchema.Attributes.ContainsAttribute(e.AttributePath.AttributeName)
		if ok && attr.MultiValued() && e.AttributePath.SubAttribute != nil {
			inner := out
			inner.AttributePath = parser.AttributePath{AttributeName: *e.AttributePath.SubAttribute}
			return &parser.ValuePath{
				AttributePath: parser.AttributePath{URIPrefix: e.AttributePath.URIPrefix, AttributeName: e.AttributePath.AttributeName},
				ValueFilter:   &inner,
			}, nil
		}
		return &out, nil
	case *parser.ValuePath:
		inner, err := normalize(e.ValueFilter)
		if err != nil {
			return nil, err
		}
		return &parser.ValuePath{AttributePath: e.AttributePath, ValueFilter: inner}, nil
	case *parser.LogicalExpression:
		l, err := normalize(e.Left)
		if err != nil {
			return nil, err
		}
		r, err := normalize(e.Right)
		if err != nil {
			return nil, err
		}
		return &parser.LogicalExpression{Left: l, Right: r, Operator: e.Operator}, nil
	case *parser.NotExpression:
		inner, err := normalize(e.Expression)
		if err != nil {
			return nil, err
		}
		return &parser.NotExpression{Expression: inner}, nil
	default:
		return nil, fmt.Errorf("unsupported filter expression %T", e)
	}
}

// applyPatch applies one operation the library has already validated against
// the schema. Values arrive in canonical form; only the targeting is ours.
func applyPatch(attrs map[string]any, op scim.PatchOperation) error {
	if op.Path == nil {
		// Okta's and Entra's form: {"op":"replace","value":{"active":false,"name.givenName":"x"}}.
		values, ok := op.Value.(map[string]any)
		if !ok {
			return scimerrors.ScimErrorInvalidValue
		}
		for raw, v := range values {
			p, err := parser.ParsePath([]byte(raw))
			if err != nil {
				return scimerrors.ScimErrorInvalidPath
			}
			if err := applyPath(attrs, op.Op, p, v); err != nil {
				return err
			}
		}
		return nil
	}
	return applyPath(attrs, op.Op, *op.Path, op.Value)
}

func applyPath(attrs map[string]any, op string, p parser.Path, value any) error {
	name := canonical(p.AttributePath.AttributeName)
	sub := p.AttributePath.SubAttributeName()
	if sub == "" {
		sub = p.SubAttributeName()
	}

	if p.ValueExpression != nil {
		// emails[type eq "work"].value: act on the matching elements of a multi-valued attribute.
		list, _ := attrs[name].([]any)
		attr, _ := userSchema.Attributes.ContainsAttribute(name)
		v := scimfilter.NewFilterValidator(p.ValueExpression, schema.Schema{ID: userSchema.ID, Attributes: attr.SubAttributes()})
		var kept []any
		matched := false
		for _, el := range list {
			m, ok := el.(map[string]any)
			if !ok || v.PassesFilter(m) != nil {
				kept = append(kept, el)
				continue
			}
			matched = true
			switch {
			case op == scim.PatchOperationRemove && sub == "":
				continue
			case op == scim.PatchOperationRemove:
				delete(m, sub)
			case sub == "":
				if nm, ok := value.(map[string]any); ok {
					m = nm
				}
			default:
				m[sub] = value
			}
			kept = append(kept, m)
		}
		if !matched && op != scim.PatchOperationRemove {
			return scimerrors.ScimErrorNoTarget
		}
		attrs[name] = kept
		return nil
	}

	if sub != "" {
		m, _ := attrs[name].(map[string]any)
		if op == scim.PatchOperationRemove {
			delete(m, sub)
			return nil
		}
		if m == nil {
			m = map[string]any{}
		}
		m[sub] = value
		attrs[name] = m
		return nil
	}

	switch op {
	case scim.PatchOperationRemove:
		delete(attrs, name)
	case scim.PatchOperationAdd:
		if list, ok := value.([]any); ok {
			old, _ := attrs[name].([]any)
			attrs[name] = append(old, list...)
		} else if m, ok := value.(map[string]any); ok {
			old, _ := attrs[name].(map[string]any)
			if old == nil {
				old = map[string]any{}
			}
			maps.Copy(old, m)
			attrs[name] = old
		} else {
			attrs[name] = value
		}
	default:
		attrs[name] = value
	}
	return nil
}

// canonical spells an attribute name the way the schema does (names are case-insensitive).
func canonical(name string) string {
	if attr, ok := userSchema.Attributes.ContainsAttribute(name); ok {
		return attr.Name()
	}
	if strings.EqualFold(name, "externalId") {
		return "externalId"
	}
	return name
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case scim.ResourceAttributes:
		return deepCopy(map[string]any(v))
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	default:
		return v
	}
}
