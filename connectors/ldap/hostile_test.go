package ldap_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/activities"
	adldap "github.com/offboard/offboard/connectors/ldap"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/testenv/hostile"
	"github.com/offboard/offboard/internal/testenv/samba"
	"github.com/offboard/offboard/sandbox/ldapdir"
)

// hostileSubject is privileged (adminCount=1 in ldapdir) and in all-staff,
// engineering and admins. hostileGone is deleted by the cases that need a
// user that really is gone; hostileAdmin joins Domain Admins on Samba.
var (
	hostileSubject = people[9]
	hostileGone    = people[6]
	hostileAdmin   = people[7]
)

const partnerEmail = "dennis.lovelace1010@partner.test"

type hostileEnv struct {
	p      peer
	client *adldap.Client
	acts   *activities.Activities
	acct   control.Account // the subject, resolved against the honest directory
	ctx    context.Context
}

type ldapCase struct {
	name   string
	fault  func(h *hostileEnv) *ldapdir.Fault // ldapdir only: how the directory misbehaves
	config func(cfg *adldap.Config)           // a misconfigured target
	run    func(t *testing.T, h *hostileEnv) (hostile.Verdict, string)
}

// TestHostile runs the LDAP connector, and the activities that turn its
// answers into receipts, against directories that behave unlike AD: the
// sandbox directory answering wrong on purpose (referrals, partial results,
// noSuchObject where the entry exists, paging that ignores the cookie), and
// the real Samba DC under a wrong configuration. Every case must end in a
// true observation or a visible exception; make hostile sums the tally.
func TestHostile(t *testing.T) {
	tally := hostile.NewTally(t, "ldap")
	subjectDN := samba.UserDN(hostileSubject)
	misbehaving := []ldapCase{
		{name: "noSuchObject on a group while the user exists", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "modify", DN: samba.GroupDN("admins"), Code: 32, Message: "0000208D: NameErr: problem 2001 (NO_OBJECT)"}
		}, run: applyCase(adldap.RemoveGroups, groupsGone)},
		{name: "noSuchObject once on the user's read", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "search", DN: subjectDN, Code: 32, Count: 1}
		}, run: applyCase(adldap.Disable, disabled)},
		{name: "noSuchObject for everything: not our directory", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "search", Code: 32}
		}, run: verifyCase(adldap.Disable, disabled)},
		{name: "empty success on the user's read", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "search", DN: subjectDN, Empty: true}
		}, run: verifyCase(adldap.Disable, disabled)},
		{name: "noSuchObject on delete while the user exists", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "delete", Code: 32}
		}, run: applyCase(adldap.Delete, userGone)},
		{name: "referral to a child domain instead of entries", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "search", DN: ldapdir.DefaultBaseDN, Referral: "ldap://dc2.child.corp.example.test/DC=child,DC=corp,DC=example,DC=test"}
		}, run: resolveCase},
		{name: "referral for a person with no user", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "search", DN: ldapdir.DefaultBaseDN, Referral: "ldap://dc2.child.corp.example.test/DC=child,DC=corp,DC=example,DC=test"}
		}, run: resolveNobody},
		{name: "sizeLimitExceeded on the user search", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "search", DN: ldapdir.DefaultBaseDN, Code: 4, Message: "Size limit exceeded"}
		}, run: resolveCase},
		{name: "paged search ignores the cookie", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "search", DN: ldapdir.DefaultBaseDN, IgnoreCookie: true}
		}, config: func(cfg *adldap.Config) { cfg.PageSize = 1 }, run: resolvePartner},
		{name: "honest paging, one entry a page", config: func(cfg *adldap.Config) { cfg.PageSize = 1 }, run: resolvePartner},
		{name: "busy on modify", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "modify", Code: 51, Message: "busy"}
		}, run: applyCase(adldap.Disable, disabled)},
		{name: "the directory stops answering", fault: func(*hostileEnv) *ldapdir.Fault {
			return &ldapdir.Fault{Op: "search", Hang: true}
		}, config: func(cfg *adldap.Config) { cfg.Timeout = 300 * time.Millisecond }, run: applyCase(adldap.Disable, disabled)},
	}
	misconfigured := []ldapCase{
		{name: "wrong base DN: resolve", config: wrongBase, run: resolveCase},
		{name: "wrong base DN: a person with no user", config: wrongBase, run: resolveNobody},
		{name: "wrong base DN: verify an account under it", config: wrongBase, run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			h.acct.ID = strings.Replace(h.acct.ID, "DC=corp,DC=example,DC=test", "DC=wrong,DC=test", 1)
			return verifyCase(adldap.Disable, disabled)(t, h)
		}},
		{name: "honest: a person with no user", run: resolveNobody},
		{name: "honest: the subject resolves, with the rights the directory shows", run: resolveCase},
		{name: "honest: a deleted user is gone, twice", run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			gone := resolve(t, h.client, hostileGone)
			_, err := h.client.Enforce(h.ctx, adldap.Delete, gone, control.Params{})
			require.NoError(t, err)
			h.acct = gone
			return applyCase(adldap.Disable, disabled)(t, h)
		}},
	}
	run := func(t *testing.T, p peer, cases []ldapCase) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				honest := newClient(t, p.cfg)
				acct := resolve(t, honest, hostileSubject)
				cfg := p.cfg
				if tc.config != nil {
					tc.config(&cfg)
				}
				c := newClient(t, cfg)
				h := &hostileEnv{p: p, client: c, acts: activities.New(config.Config{}, []control.Target{c}), acct: acct, ctx: t.Context()}
				if tc.fault != nil {
					p.ldapdir.Fail(*tc.fault(h))
					t.Cleanup(p.ldapdir.ClearFaults)
				}
				v, why := tc.run(t, h)
				tally.Record(t, v, why)
			})
		}
	}
	t.Run("ldapdir", func(t *testing.T) {
		p := startLdapdir(t)
		addPartner(t, p)
		run(t, p, append(misbehaving, misconfigured...))
	})
	t.Run("samba", func(t *testing.T) {
		p := startSamba(t)
		admin := dial(t, p)
		require.NoError(t, admin.Bind(p.cfg.BindDN, p.cfg.Password))
		m := goldap.NewModifyRequest(samba.GroupDN("Domain Admins"), nil)
		m.Add("member", []string{samba.UserDN(hostileAdmin)})
		require.NoError(t, admin.Modify(m))
		run(t, p, append(misconfigured, ldapCase{name: "honest: a Domain Admin's rights are read", run: func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
			acct, err := h.client.Resolve(h.ctx, control.Person{Email: hostileAdmin.Email})
			if err != nil {
				return hostile.VisibleException, err.Error()
			}
			if !slices.Contains(acct.Privileges, "ad: member of Domain Admins") {
				return hostile.FalseClaim, fmt.Sprintf("a Domain Admin resolved with privileges %v", acct.Privileges)
			}
			return hostile.TrueObservation, fmt.Sprint(acct.Privileges)
		}}))
	})
}

func wrongBase(cfg *adldap.Config) { cfg.BaseDN = "DC=wrong,DC=test" }

// addPartner adds an entry that the subject's partner address names (its
// UPN), so a search for that address matches two entries: the subject by
// sAMAccountName (ignored: it has another mail) and the partner entry.
func addPartner(t *testing.T, p peer) {
	admin := dial(t, p)
	require.NoError(t, admin.Bind(p.cfg.BindDN, p.cfg.Password))
	add := goldap.NewAddRequest("CN=Dennis Partner,CN=Users,"+ldapdir.DefaultBaseDN, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{"dennis.partner"})
	add.Attribute("userPrincipalName", []string{partnerEmail})
	add.Attribute("userAccountControl", []string{"512"})
	require.NoError(t, admin.Add(add))
}

// --- the truth, read from the directory itself ---

type truth func(t *testing.T, h *hostileEnv) (holds, gone bool)

func entry(t *testing.T, h *hostileEnv) (*goldap.Entry, bool) {
	conn := dial(t, h.p)
	require.NoError(t, conn.Bind(h.p.cfg.BindDN, h.p.cfg.Password))
	dn := strings.Replace(h.acct.ID, "DC=wrong,DC=test", "DC=corp,DC=example,DC=test", 1)
	res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"userAccountControl", "memberOf"}, nil))
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return nil, false
	}
	require.NoError(t, err)
	return res.Entries[0], true
}

func disabled(t *testing.T, h *hostileEnv) (bool, bool) {
	e, ok := entry(t, h)
	return !ok || e.GetAttributeValue("userAccountControl") == "514", !ok
}

func groupsGone(t *testing.T, h *hostileEnv) (bool, bool) {
	e, ok := entry(t, h)
	return !ok || len(e.GetAttributeValues("memberOf")) == 0, !ok
}

func userGone(t *testing.T, h *hostileEnv) (bool, bool) {
	_, ok := entry(t, h)
	return !ok, !ok
}

// --- the questions asked, through the activities that make the claims ---

func input(h *hostileEnv, name string) activities.ControlInput {
	return activities.ControlInput{ControlID: "ad/" + name, Target: "ad", Control: name, Phase: control.Containment, Account: h.acct}
}

func judge(t *testing.T, h *hostileEnv, r control.Receipt, err error, real truth) (hostile.Verdict, string) {
	h.p.ldapdirClear()
	holds, gone := real(t, h)
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case r.Gone && !gone:
		return hostile.FalseClaim, "receipt says gone, but the user exists: " + r.Detail
	case r.Outcome == control.Observed && !holds:
		return hostile.FalseClaim, "receipt says observed, but it does not hold: " + r.Detail
	}
	return hostile.TrueObservation, string(r.Outcome) + ": " + r.Detail
}

func applyCase(name string, real truth) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		r, err := h.acts.ApplyControl(h.ctx, input(h, name))
		return judge(t, h, r, err, real)
	}
}

func verifyCase(name string, real truth) func(*testing.T, *hostileEnv) (hostile.Verdict, string) {
	return func(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
		r, err := h.acts.VerifyControl(h.ctx, input(h, name))
		return judge(t, h, r, err, real)
	}
}

// resolveCase: the subject has a user entry; "no account" is false, and a
// found account must be theirs, with their admin rights where the
// directory shows them (ldapdir: adminCount=1).
func resolveCase(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	res, err := h.acts.ResolveAccount(h.ctx, activities.ResolveInput{Target: "ad", Person: control.Person{EmployeeID: hostileSubject.EmployeeID, Email: hostileSubject.Email}})
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case res.NoAccount:
		return hostile.FalseClaim, fmt.Sprint("no account, but the user exists; searched ", res.Searched)
	case !strings.EqualFold(res.Account.ID, h.acct.ID):
		return hostile.FalseClaim, "resolved " + res.Account.ID + ", the user is " + h.acct.ID
	case h.p.ldapdir != nil && len(res.Account.Privileges) == 0:
		return hostile.FalseClaim, "resolved with no privileges, but the entry has adminCount=1"
	}
	return hostile.TrueObservation, fmt.Sprintf("resolved %s, privileges %v", res.Account.ID, res.Account.Privileges)
}

// resolvePartner: the partner address names the partner entry, which a
// paged search must reach whatever the page size.
func resolvePartner(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	res, err := h.acts.ResolveAccount(h.ctx, activities.ResolveInput{Target: "ad", Person: control.Person{EmployeeID: "E-partner", Email: partnerEmail}})
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case res.NoAccount:
		return hostile.FalseClaim, fmt.Sprint("no account, but the partner entry exists; searched ", res.Searched)
	case res.Account.Login != "dennis.partner":
		return hostile.FalseClaim, "resolved " + res.Account.ID + ", not the partner entry"
	}
	return hostile.TrueObservation, "resolved " + res.Account.ID
}

// resolveNobody: "no account" is true only with a record of what was searched.
func resolveNobody(t *testing.T, h *hostileEnv) (hostile.Verdict, string) {
	res, err := h.acts.ResolveAccount(h.ctx, activities.ResolveInput{Target: "ad", Person: control.Person{EmployeeID: "E0", Email: "nobody@example.test"}})
	switch {
	case err != nil:
		return hostile.VisibleException, err.Error()
	case res.NoAccount && len(res.Searched) > 0 && strings.Contains(res.Searched[0], "subtree, paged"):
		return hostile.TrueObservation, fmt.Sprint("no account; searched ", res.Searched)
	case res.NoAccount:
		return hostile.FalseClaim, fmt.Sprint("no account on too thin a search: ", res.Searched)
	}
	return hostile.FalseClaim, "found an account for a person who has none"
}

// ldapdirClear lifts the faults before the truth is read.
func (p peer) ldapdirClear() {
	if p.ldapdir != nil {
		p.ldapdir.ClearFaults()
	}
}
