package control

import "context"

// Lister is implemented by targets that can page through their active
// accounts, for the nightly reconciliation against the HR roster. "Active"
// is each system's own sense of "can still sign in or call the API": Okta
// users not DEPROVISIONED, Entra users with accountEnabled, IAM users with an
// active credential, AD users without ACCOUNTDISABLE, SCIM users active.
//
// A page that repeats the cursor it was given, or whose accounts were already
// on an earlier page, is an ErrUnexpected: a server ignoring the cursor must
// not make a partial list read as the whole directory.
type Lister interface {
	// ListActive returns one page starting at cursor ("" for the first);
	// Page.Next is "" after the last page. limit is a hint.
	ListActive(ctx context.Context, cursor string, limit int) (Page, error)
}

// Page is one page of active accounts.
type Page struct {
	Accounts []ActiveAccount `json:"accounts"`
	Next     string          `json:"next,omitempty"`
	// Calls is how many API requests the page took (0 means one), so the
	// caller can pace pages to the target's request budget: IAM reads each
	// user's credentials, one page costing many calls.
	Calls int `json:"calls,omitempty"`
}

// ActiveAccount is one account that can still be used, with whatever the
// system says about who holds it; reconciliation matches it to HR by
// EmployeeID first, then Email, then Login.
type ActiveAccount struct {
	ID         string `json:"id"`
	Login      string `json:"login,omitempty"`
	Email      string `json:"email,omitempty"`
	EmployeeID string `json:"employeeId,omitempty"`
	Name       string `json:"name,omitempty"`
}
