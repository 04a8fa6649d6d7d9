package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/sandbox/demo"
)

func TestNonHumanDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), "offboard.yaml")
	require.NoError(t, err)
	n := cfg.NonHuman
	require.True(t, n.RequireApproval, "non-human changes can break production: approval by default")
	require.Equal(t, 24*time.Hour, n.Grace.D())
	require.Equal(t, 7*24*time.Hour, n.Purge.D())
	for kind, want := range map[string]control.Action{
		control.KindAPIToken: control.Decommission, control.KindApplication: control.Reown, control.KindServicePrincipal: control.Reown,
		control.KindServiceUser: control.Rotate, control.KindSecret: control.Reown, control.KindManagedAccount: control.Reown,
		control.KindBreakGlass: control.Rotate,
	} {
		require.Equal(t, want, n.Action(kind), kind)
	}
	require.Equal(t, "offboard/aws/service-user/deploy-bot", n.Secret("aws", control.KindServiceUser, "deploy-bot"))
	// An Entra app and its service principal share a display name: the kind keeps their secrets apart.
	require.NotEqual(t, n.Secret("entra", control.KindApplication, "billing-sync"), n.Secret("entra", control.KindServicePrincipal, "billing-sync"))
	require.False(t, n.SecretStore.IsSet())
}

func TestNonHumanConfigured(t *testing.T) {
	cfg, err := Parse([]byte(minimal+`nonHuman:
  actions: {"api token": decommission, "service user": decommission}
  requireApproval: false
  team: platform-team
  grace: 2s
  purge: 1h
  secretName: "vault/{target}-{name}"
  secretStore: {region: us-east-1, endpoint: "http://127.0.0.1:8109", accessKeyID: {env: A}, secretAccessKey: {env: B}}
breakGlass:
  - {name: okta-emergency, target: okta, account: breakglass@acme.test, secret: breakglass/okta, knownBy: {groups: [admins], roles: [SUPER_ADMIN]}}
`), "offboard.yaml")
	require.NoError(t, err)
	n := cfg.NonHuman
	require.False(t, n.RequireApproval)
	require.Equal(t, control.Decommission, n.Action(control.KindServiceUser))
	require.Equal(t, control.Reown, n.Action(control.KindApplication), "a kind left out keeps its default")
	require.Equal(t, 2*time.Second, n.Grace.D())
	require.Equal(t, "vault/okta-ci", n.Secret("okta", control.KindAPIToken, "ci"))
	require.Equal(t, []BreakGlass{{Name: "okta-emergency", Target: "okta", Account: "breakglass@acme.test", Secret: "breakglass/okta",
		KnownBy: KnownBy{Groups: []string{"admins"}, Roles: []string{"SUPER_ADMIN"}}}}, cfg.BreakGlass)
}

func TestBadNonHumanConfigNamesTheField(t *testing.T) {
	store := "  secretStore: {region: us-east-1}\n"
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown action":      {"nonHuman:\n  actions: {\"service user\": delete}\n", `nonHuman.actions.service user: "delete" is not reown, rotate or decommission`},
		"unknown kind":        {"nonHuman:\n  actions: {robot: reown}\n", `nonHuman.actions.robot: "robot" is not a kind`},
		"break-glass by rule": {"nonHuman:\n  actions: {\"break-glass account\": reown}\n", `nonHuman.actions.break-glass account`},
		"zero grace":          {"nonHuman:\n  grace: 0s\n", "nonHuman.grace: must be a positive duration"},
		"bad purge":           {"nonHuman:\n  purge: -1h\n", "nonHuman.purge: must be a positive duration"},
		"one secret for all":  {"nonHuman:\n  secretName: offboard/shared\n", "nonHuman.secretName"},
		"store without region": {"nonHuman:\n  secretStore: {endpoint: \"http://127.0.0.1:8109\"}\n",
			"nonHuman.secretStore.region: is required"},
		"half the store keys": {"nonHuman:\n  secretStore: {region: us-east-1, accessKeyID: {env: A}}\n", "nonHuman.secretStore.accessKeyID: and secretAccessKey"},
		"inline store key":    {"nonHuman:\n  secretStore: {region: us-east-1, accessKeyID: sandbox:AKIA, secretAccessKey: sandbox:x}\n", "nonHuman.secretStore.accessKeyID: a sandbox: value"},
		"unknown target": {"nonHuman:\n" + store + "breakGlass:\n  - {name: x, target: entra, account: bg, secret: s, knownBy: {groups: [admins]}}\n",
			`breakGlass.0.target: "entra" names no configured target`},
		"nobody knows it": {"nonHuman:\n" + store + "breakGlass:\n  - {name: x, target: okta, account: bg, secret: s}\n", "breakGlass.0.knownBy: names no group or role"},
		"no secret":       {"nonHuman:\n" + store + "breakGlass:\n  - {name: x, target: okta, account: bg, knownBy: {roles: [r]}}\n", "breakGlass.0.secret: is required"},
		"twice": {"nonHuman:\n" + store + "breakGlass:\n  - {name: x, target: okta, account: a, secret: s, knownBy: {roles: [r]}}\n  - {name: x, target: okta, account: b, secret: t, knownBy: {roles: [r]}}\n",
			`breakGlass.1.name: "x" is used twice`},
		"one secret, two entries": {"nonHuman:\n" + store + "breakGlass:\n  - {name: x, target: okta, account: a, secret: bg/shared, knownBy: {roles: [r]}}\n  - {name: y, target: okta, account: b, secret: bg/shared, knownBy: {roles: [r]}}\n",
			`breakGlass.1.secret: "bg/shared" is also "x"'s secret`},
		"aws path":               {"  - {name: aws, kind: awsiam, aws: {accountID: \"1\", servicePathPrefix: service}}\n", `targets.1.aws.servicePathPrefix: "service" must begin and end with /`},
		"aws secrets endpoint":   {"  - {name: aws, kind: awsiam, aws: {accountID: \"1\", secretsEndpoint: \"127.0.0.1:8109\"}}\n", `targets.1.aws.secretsEndpoint: "127.0.0.1:8109" is not an http(s) URL`},
		"registry without store": {"breakGlass:\n  - {name: x, target: okta, account: bg, secret: s, knownBy: {roles: [r]}}\n", "nonHuman.secretStore: is required with a breakGlass registry"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+tc.yaml), "offboard.yaml")
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "offboard.yaml:", "the error names the file and line")
		})
	}
}

func TestSandboxNamesTheDemoBreakGlassAccounts(t *testing.T) {
	cfg, err := Default()
	require.NoError(t, err)
	require.Len(t, cfg.BreakGlass, 4)
	require.Equal(t, "http://127.0.0.1:8109", cfg.NonHuman.SecretStore.Endpoint)
	for _, tg := range cfg.Targets {
		if tg.AWS != nil {
			require.Equal(t, "owner", tg.AWS.OwnerTag)
			require.Equal(t, cfg.NonHuman.SecretStore.Endpoint, tg.AWS.SecretsEndpoint)
		}
	}
	for _, b := range cfg.BreakGlass {
		require.Equal(t, []string{"admins"}, b.KnownBy.Groups, b.Name)
	}
}

// Nightly reconciliation of the sandbox: every seeded non-human account is
// owned (serviceOwners) or declared (the break-glass registry), never an orphan.
func TestSandboxReconcileKnowsTheDemoNonHumanAccounts(t *testing.T) {
	cfg, err := Default()
	require.NoError(t, err)
	owner := demo.ServiceOwner(demo.People(demo.Size)).Email
	for _, login := range []string{demo.ServiceUserName, demo.ManagedAccountSAM} {
		require.True(t, cfg.Reconcile.IsService(login), login)
		require.Equal(t, owner, cfg.Reconcile.ServiceOwner(login), login)
	}
	for target, login := range map[string]string{"okta": demo.BreakGlassOkta, "entra": demo.BreakGlassEntra, "ad": demo.BreakGlassAD, "aws": demo.BreakGlassAWS} {
		_, ok := cfg.BreakGlassAccount(target, "some-id", strings.ToUpper(login))
		require.True(t, ok, "%s in %s is declared by the registry", login, target)
	}
	_, ok := cfg.BreakGlassAccount("okta", demo.BreakGlassAD)
	require.False(t, ok, "a registry account is known in its own target only")
}
