package demo

// The demo company's non-human identities (issue 15): one leaver owns one of
// each kind, and the admins may know the break-glass accounts. Every
// simulator seeds its part from these names, so `make run` shows the plan.

// ServiceOwner is the person who owns one non-human identity of each kind:
// an Okta API token, an Entra app registration (with a client secret and a
// certificate) and its service principal, an AWS service user tagged with
// their e-mail (one access key), a Secrets Manager secret tagged the same
// way, and an AD account they manage.
func ServiceOwner(people []Person) Person { return people[1] }

// OwnerTag is the tag key that names an AWS resource's owner (by e-mail).
const OwnerTag = "owner"

// Names of the seeded non-human identities.
const (
	APITokenName      = "ci-deploy"      // Okta API token created by ServiceOwner
	ApplicationName   = "billing-sync"   // Entra app registration owned by ServiceOwner
	ServiceUserName   = "deploy-bot"     // IAM user, tag owner=<ServiceOwner's e-mail>
	OwnedSecretName   = "deploy-bot/api" // Secrets Manager secret, tag owner=<ServiceOwner's e-mail>
	ManagedAccountSAM = "svc-backup"     // AD account, managedBy=<ServiceOwner's DN>
	BreakGlassGroup   = "admins"         // who may know the break-glass accounts
	BreakGlassOkta    = "breakglass.okta@example.test"
	BreakGlassEntra   = "breakglass.entra@example.test"
	BreakGlassAD      = "breakglass-ad"  // sAMAccountName
	BreakGlassAWS     = "breakglass-aws" // IAM user with a console password
)

// BreakGlassSecrets are the Secrets Manager secrets holding each break-glass
// password, by target kind; the Secrets Manager simulator seeds them.
var BreakGlassSecrets = map[string]string{
	"okta":   "breakglass/okta",
	"entra":  "breakglass/entra",
	"ldap":   "breakglass/ad",
	"awsiam": "breakglass/aws",
}

// RotationSecret is where a rotation of an identity the registry does not
// name writes its new value: "offboard/<target>/<name>".
func RotationSecret(target, name string) string { return "offboard/" + target + "/" + name }
