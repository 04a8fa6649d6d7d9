// Package config loads Offboard's one YAML file: the target systems, the
// role→group map, the policy, the approvers, notifications and evidence.
// Secrets are never in the file: it names environment variables or files.
package config

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole file, validated.
type Config struct {
	Temporal  Temporal              `yaml:"temporal"`
	Worker    Worker                `yaml:"worker"`
	Starter   Starter               `yaml:"starter"`
	Policy    Policy                `yaml:"policy"`
	People    People                `yaml:"people"`
	Roles     map[string]RoleGroups `yaml:"roles"`
	Notify    Notify                `yaml:"notify"`
	Evidence  Evidence              `yaml:"evidence"`
	Targets   []Target              `yaml:"targets"`
	Relay     Relay                 `yaml:"relay"`     // the HRIS webhook relay and operator API (starter serve)
	Codec     Codec                 `yaml:"codec"`     // payload encryption; keys are read when dialling, not here
	Sandbox   bool                  `yaml:"sandbox"`   // every target is a local simulator (the embedded default)
	Reconcile Reconcile             `yaml:"reconcile"` // nightly accounts-vs-HR reconciliation (reconcile.go)
	Drill     Drill                 `yaml:"drill"`     // quarterly canary termination drill (reconcile.go)
	SIEM      SIEM                  `yaml:"siem"`      // OCSF events to Splunk HEC, syslog-TLS, a file (siem.go)
	NonHuman  NonHuman              `yaml:"nonHuman"`  // what happens to the identities a leaver owns (nonhuman.go)
	// BreakGlass lists shared and emergency accounts, rotated when a person who could know one leaves.
	BreakGlass []BreakGlass `yaml:"breakGlass"`
	source     string
}

// Temporal says how to reach the Temporal service.
type Temporal struct {
	Address   string `yaml:"address"`
	Namespace string `yaml:"namespace"`
	TLS       *TLS   `yaml:"tls"`
	APIKey    Secret `yaml:"apiKey"`
}

// TLS holds mTLS files for Temporal Cloud or a secured cluster.
type TLS struct {
	CertFile   string `yaml:"certFile"`
	KeyFile    string `yaml:"keyFile"`
	CAFile     string `yaml:"caFile"`
	ServerName string `yaml:"serverName"`
}

// Worker tunes the worker process.
type Worker struct {
	MetricsAddr             string `yaml:"metricsAddr"`
	MaxConcurrentActivities int    `yaml:"maxConcurrentActivities"`
	MaxConcurrentWorkflows  int    `yaml:"maxConcurrentWorkflows"`
	// Pollers per task type. A task queue has several partitions (4 by default):
	// with fewer pollers than partitions a task can wait for forwarding.
	WorkflowTaskPollers int `yaml:"workflowTaskPollers"`
	ActivityTaskPollers int `yaml:"activityTaskPollers"`
	// MemoryLimitMB is a soft limit for the Go runtime (like GOMEMLIMIT): the
	// garbage collector works harder near it instead of letting the heap double.
	// 0 leaves the runtime's default.
	MemoryLimitMB int `yaml:"memoryLimitMB"`
	// WorkflowCacheSize is how many runs the worker keeps in memory between
	// tasks. Runs waiting on people (approvals, holds, retention) are evicted
	// and replayed on their next task; measured here, 200 keeps a 500-run
	// burst at about 130 MB instead of over 200 MB, at no loss of throughput.
	WorkflowCacheSize int `yaml:"workflowCacheSize"`
	// StartWithFailedTargets starts the worker even when a target answers its
	// self-check and refuses it (credentials, URL, permissions); that target's
	// controls then fail as exceptions until a probe passes. false: the worker
	// stops at start, naming the target and what is wrong.
	StartWithFailedTargets bool `yaml:"startWithFailedTargets"`
}

// Starter tunes the webhook relay and operator API.
type Starter struct {
	Listen string `yaml:"listen"`
}

// Policy is how a deprovisioning is run. It is read by the workflow through
// an activity, so a run keeps the policy it started with.
type Policy struct {
	ContainmentSLA Duration `yaml:"containmentSLA" json:"containmentSLA"`
	// PrivilegedContainmentSLA, when set, is the containment SLA for a person
	// HR flagged privileged or a target showed admin rights for.
	PrivilegedContainmentSLA Duration   `yaml:"privilegedContainmentSLA" json:"privilegedContainmentSLA,omitempty"`
	CredentialsSLA           Duration   `yaml:"credentialsSLA" json:"credentialsSLA"`
	Approval                 Approval   `yaml:"approval" json:"approval"`
	Retention                Duration   `yaml:"retention" json:"retention"`
	Reverify                 []Duration `yaml:"reverify" json:"reverify"`
	ControlAttempts          int32      `yaml:"controlAttempts" json:"controlAttempts"` // tries before a control becomes an exception
	MaxWaiver                Duration   `yaml:"maxWaiver" json:"maxWaiver"`             // longest waiver a security approver may grant
	Retry                    Retry      `yaml:"retry" json:"retry"`                     // backoff between tries of a control
}

// Retry is the backoff between a control's tries (a system's Retry-After wins).
type Retry struct {
	InitialInterval Duration `yaml:"initialInterval" json:"initialInterval"`
	MaximumInterval Duration `yaml:"maximumInterval" json:"maximumInterval"`
}

// Approval says when removal waits for a person's approval.
type Approval struct {
	Always     bool     `yaml:"always" json:"always"`
	Privileged bool     `yaml:"privileged" json:"privileged"`
	ForCause   bool     `yaml:"forCause" json:"forCause"`
	Timeout    Duration `yaml:"timeout" json:"timeout"`
}

// People lists who holds which role. Identities are e-mail addresses or the
// names the starter API authenticates.
type People struct {
	Approvers []string `yaml:"approvers" json:"approvers"` // may approve removal plans
	Security  []string `yaml:"security" json:"security"`   // may waive exceptions and release quarantines
	// DecisionKeys are the public keys a run accepts signed decisions from:
	// the operator API's (relay.decisionKey) and any break-glass key. A run
	// keeps the keys it started with.
	DecisionKeys []DecisionKey `yaml:"decisionKeys" json:"decisionKeys,omitempty"`
}

// DecisionKey is one Ed25519 public key (base64 of 32 bytes); it is not a secret.
type DecisionKey struct {
	Name       string `yaml:"name" json:"name,omitempty"`
	PublicKey  string `yaml:"publicKey" json:"publicKey"`
	BreakGlass bool   `yaml:"breakGlass" json:"breakGlass,omitempty"` // held outside the API; its decisions are marked
}

// RoleGroups maps target name → group names a role grants.
type RoleGroups map[string][]string

// Notify is where SLA breaches and exceptions are announced.
type Notify struct {
	WebhookURL Secret `yaml:"webhookURL"` // Slack-compatible incoming webhook
}

// Evidence is where closed runs are archived: a local directory, or an S3
// bucket with Object Lock when S3 is set (Dir is then not used).
type Evidence struct {
	Dir        string      `yaml:"dir"`
	S3         *EvidenceS3 `yaml:"s3"`
	SigningKey Secret      `yaml:"signingKey"`
}

// EvidenceS3 is an S3 bucket created with Object Lock enabled. Every object
// is written with a retention mode and a retain-until date, so nobody can
// delete or overwrite the evidence before Retention has passed.
type EvidenceS3 struct {
	Bucket string `yaml:"bucket"`
	Prefix string `yaml:"prefix"` // keys are <prefix>/<workflow-id>/<run-id>/<file>
	Region string `yaml:"region"`
	// Endpoint is for S3-compatible stores (MinIO, Ceph …); "" is AWS.
	Endpoint  string `yaml:"endpoint"`
	PathStyle bool   `yaml:"pathStyle"` // bucket in the path, not the host name (most S3-compatible stores)
	// Mode is COMPLIANCE (nobody, the root user included, can shorten the
	// retention) or GOVERNANCE (users with s3:BypassGovernanceRetention can).
	Mode      string   `yaml:"mode"`
	Retention Duration `yaml:"retention"` // e.g. 2555d, seven years
	// Without keys, the AWS SDK's default chain (the worker's IAM role,
	// AWS_* variables, a profile) supplies credentials.
	AccessKeyID     Secret `yaml:"accessKeyID"`
	SecretAccessKey Secret `yaml:"secretAccessKey"`
}

// S3 Object Lock retention modes.
const (
	ObjectLockCompliance = "COMPLIANCE"
	ObjectLockGovernance = "GOVERNANCE"
)

// Target is one system to remove access from; exactly one kind section is set.
type Target struct {
	Name  string       `yaml:"name"`
	Kind  string       `yaml:"kind"`
	Okta  *OktaTarget  `yaml:"okta"`
	Entra *EntraTarget `yaml:"entra"`
	AWS   *AWSTarget   `yaml:"aws"`
	LDAP  *LDAPTarget  `yaml:"ldap"`
	SCIM  *SCIMTarget  `yaml:"scim"`
	// Limits keeps a mass termination under the system's API limits. A target
	// with limits gets a task queue of its own (TaskQueue), polled by every
	// worker; without, its activities share the deprovision queue.
	Limits *Limits `yaml:"limits"`
}

// Limits throttles one target's activities.
type Limits struct {
	// ActivitiesPerSecond is enforced by the Temporal server on the target's
	// task queue, so it holds across all worker processes together. One
	// activity makes one to four API calls (read, change, read back): set it
	// to about a quarter of the API's requests-per-second budget for Offboard.
	ActivitiesPerSecond float64 `yaml:"activitiesPerSecond"`
	// MaxConcurrent caps the target's activities running at once in each
	// worker process (0: the worker's maxConcurrentActivities).
	MaxConcurrent int `yaml:"maxConcurrent"`
}

// TargetQueuePrefix starts the name of every target's own task queue; it is
// the deprovision task queue's name and a dash.
const TargetQueuePrefix = "deprovision-"

// TaskQueue is the task queue of the target's activities: its own when it
// has limits, "" (the workflow's queue) when not.
func (t Target) TaskQueue() string {
	if t.Limits == nil {
		return ""
	}
	return TargetQueuePrefix + t.Name
}

// OktaTarget is an Okta org.
type OktaTarget struct {
	OrgURL string `yaml:"orgURL"`
	Token  Secret `yaml:"token"`
}

// EntraTarget is a Microsoft Entra ID tenant, reached through Microsoft Graph.
type EntraTarget struct {
	TenantID     string `yaml:"tenantID"`
	ClientID     string `yaml:"clientID"`
	ClientSecret Secret `yaml:"clientSecret"`
	BaseURL      string `yaml:"baseURL"` // only for the sandbox
}

// AWSTarget is one AWS account's IAM.
type AWSTarget struct {
	AccountID       string `yaml:"accountID"`
	Region          string `yaml:"region"`
	RoleARN         string `yaml:"roleARN"`
	Endpoint        string `yaml:"endpoint"` // only for the sandbox
	AccessKeyID     Secret `yaml:"accessKeyID"`
	SecretAccessKey Secret `yaml:"secretAccessKey"`
	// Non-human identities (issue 15): the tag key naming an owner (default
	// "owner"), the IAM path service users live under (default "/"), and
	// Secrets Manager's endpoint beside a sandbox's IAM endpoint.
	OwnerTag          string `yaml:"ownerTag"`
	ServicePathPrefix string `yaml:"servicePathPrefix"`
	SecretsEndpoint   string `yaml:"secretsEndpoint"` // only for the sandbox
}

// LDAPTarget is an Active Directory domain.
type LDAPTarget struct {
	URL              string   `yaml:"url"`
	StartTLS         bool     `yaml:"startTLS"`
	CAFile           string   `yaml:"caFile"`
	ServerName       string   `yaml:"serverName"`
	BindDN           string   `yaml:"bindDN"`
	Password         Secret   `yaml:"password"`
	BaseDN           string   `yaml:"baseDN"`
	ScramblePassword bool     `yaml:"scramblePassword"`
	Timeout          Duration `yaml:"timeout"`
}

// SCIMTarget is a SCIM 2.0 application.
type SCIMTarget struct {
	BaseURL  string `yaml:"baseURL"`
	Bearer   Secret `yaml:"bearer"`
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// Kinds of target this build knows.
var Kinds = []string{"okta", "entra", "awsiam", "ldap", "scim"}

//go:embed default.yaml
var defaultYAML []byte

// Default is the embedded configuration: every system is a local simulator.
func Default() (Config, error) { return Parse(defaultYAML, "embedded default") }

// Load reads the file at path, or the embedded default when path is "".
func Load(path string) (Config, error) {
	if path == "" {
		return Default()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b, path)
}

// Parse decodes and validates a YAML document; source names it in errors.
func Parse(b []byte, source string) (Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", source, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	cfg := defaults()
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config %s: %w", source, err)
	}
	cfg.source = source
	if err := cfg.validate(&root); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func defaults() Config {
	return Config{
		Temporal: Temporal{Address: "localhost:7233", Namespace: "default"},
		Worker:   Worker{MetricsAddr: "127.0.0.1:9090", MaxConcurrentActivities: 500, MaxConcurrentWorkflows: 500, WorkflowTaskPollers: 8, ActivityTaskPollers: 8, WorkflowCacheSize: 200},
		Starter:  Starter{Listen: "127.0.0.1:8080"}, // loopback unless configured: deploy/offboard.yaml opens them
		Policy: Policy{
			ContainmentSLA:  Duration(15 * time.Minute),
			CredentialsSLA:  Duration(24 * time.Hour),
			Approval:        Approval{Privileged: true, ForCause: true, Timeout: Duration(72 * time.Hour)},
			Retention:       Duration(30 * 24 * time.Hour),
			Reverify:        []Duration{Duration(time.Hour), Duration(12 * time.Hour)},
			ControlAttempts: 5,
			MaxWaiver:       Duration(90 * 24 * time.Hour),
			Retry:           Retry{InitialInterval: Duration(time.Second), MaximumInterval: Duration(time.Minute)},
		},
		Evidence: Evidence{Dir: ".offboard/evidence"},
		NonHuman: defaultNonHuman(),
	}
}

// fieldError names the field, the file and the line.
func (c *Config) fieldError(root *yaml.Node, path []string, format string, args ...any) error {
	where := c.source
	if line := lineOf(root, path); line > 0 {
		where = fmt.Sprintf("%s:%d", c.source, line)
	}
	return fmt.Errorf("config %s: %s: %s", where, strings.Join(path, "."), fmt.Sprintf(format, args...))
}

func (c *Config) validate(root *yaml.Node) error {
	if err := c.Reconcile.Check(); err != nil {
		return fmt.Errorf("config %s: %w", c.source, err)
	}
	if err := c.SIEM.Check(); err != nil {
		return fmt.Errorf("config %s: %w", c.source, err)
	}
	p := c.Policy
	for _, d := range []struct {
		field string
		v     Duration
	}{{"containmentSLA", p.ContainmentSLA}, {"credentialsSLA", p.CredentialsSLA}, {"retention", p.Retention}, {"maxWaiver", p.MaxWaiver}} {
		if d.v <= 0 {
			return c.fieldError(root, []string{"policy", d.field}, "must be a positive duration like 15m")
		}
	}
	if p.PrivilegedContainmentSLA < 0 {
		return c.fieldError(root, []string{"policy", "privilegedContainmentSLA"}, "must be a positive duration like 5m, or left out")
	}
	if p.Approval.Timeout <= 0 {
		return c.fieldError(root, []string{"policy", "approval", "timeout"}, "must be a positive duration like 72h")
	}
	for i, d := range p.Reverify {
		if d <= 0 {
			return c.fieldError(root, []string{"policy", "reverify", fmt.Sprint(i)}, "must be a positive duration like 1h")
		}
	}
	if p.Retry.InitialInterval <= 0 || p.Retry.MaximumInterval < p.Retry.InitialInterval {
		return c.fieldError(root, []string{"policy", "retry"}, "initialInterval must be positive and at most maximumInterval")
	}
	if p.ControlAttempts < 1 {
		return c.fieldError(root, []string{"policy", "controlAttempts"}, "must be at least 1")
	}
	if c.Temporal.Address == "" {
		return c.fieldError(root, []string{"temporal", "address"}, "is required")
	}
	if err := c.Codec.Validate(); err != nil {
		// The error names the field (codec.keys.0.file …); the key files
		// themselves are only read when a client or the replayer needs them.
		where := c.source
		if line := lineOf(root, []string{"codec"}); line > 0 {
			where = fmt.Sprintf("%s:%d", c.source, line)
		}
		return fmt.Errorf("config %s: %w", where, err)
	}
	if err := c.validateEvidenceS3(root); err != nil {
		return err
	}
	for i, k := range c.People.DecisionKeys {
		if b, err := base64.StdEncoding.DecodeString(k.PublicKey); err != nil || len(b) != 32 {
			return c.fieldError(root, []string{"people", "decisionKeys", fmt.Sprint(i), "publicKey"}, "must be the base64 of an Ed25519 public key (32 bytes)")
		}
	}
	if !c.Sandbox {
		for _, s := range c.outsideTargetSecrets() {
			if s.secret.value != "" {
				return c.fieldError(root, s.path, "a sandbox: value is only for the embedded sandbox; name an env variable or a file")
			}
		}
	}
	if len(c.Targets) == 0 {
		return c.fieldError(root, []string{"targets"}, "lists no target system")
	}
	seen := map[string]bool{}
	for i := range c.Targets {
		t := &c.Targets[i]
		at := []string{"targets", fmt.Sprint(i)}
		if t.Name == "" {
			return c.fieldError(root, append(at, "name"), "is required")
		}
		if strings.ContainsAny(t.Name, "/ ") {
			return c.fieldError(root, append(at, "name"), "%q may not contain '/' or spaces", t.Name)
		}
		if seen[t.Name] {
			return c.fieldError(root, append(at, "name"), "%q is used twice", t.Name)
		}
		seen[t.Name] = true
		if !slices.Contains(Kinds, t.Kind) {
			return c.fieldError(root, append(at, "kind"), "%q is not one of %s", t.Kind, strings.Join(Kinds, ", "))
		}
		if err := c.validateTarget(root, at, t); err != nil {
			return err
		}
		if l := t.Limits; l != nil {
			switch {
			case l.ActivitiesPerSecond < 0 || math.IsNaN(l.ActivitiesPerSecond) || math.IsInf(l.ActivitiesPerSecond, 0):
				return c.fieldError(root, append(at, "limits", "activitiesPerSecond"), "must be a positive number (activities per second across all workers)")
			case l.MaxConcurrent < 0:
				return c.fieldError(root, append(at, "limits", "maxConcurrent"), "may not be negative")
			case l.ActivitiesPerSecond == 0 && l.MaxConcurrent == 0:
				return c.fieldError(root, append(at, "limits"), "sets neither activitiesPerSecond nor maxConcurrent")
			}
		}
	}
	if err := c.validateNonHuman(root, seen); err != nil {
		return err
	}
	for role, byTarget := range c.Roles {
		for target := range byTarget {
			if !seen[target] {
				return c.fieldError(root, []string{"roles", role, target}, "names no configured target")
			}
		}
	}
	return nil
}

func (c *Config) validateTarget(root *yaml.Node, at []string, t *Target) error {
	sections := 0
	for _, set := range []bool{t.Okta != nil, t.Entra != nil, t.AWS != nil, t.LDAP != nil, t.SCIM != nil} {
		if set {
			sections++
		}
	}
	section := map[string]string{"okta": "okta", "entra": "entra", "awsiam": "aws", "ldap": "ldap", "scim": "scim"}[t.Kind]
	if sections != 1 {
		return c.fieldError(root, at, "needs exactly one settings section, %q for kind %s", section, t.Kind)
	}
	req := func(field, v string) error {
		if strings.TrimSpace(v) == "" {
			return c.fieldError(root, append(at, section, field), "is required for a %s target", t.Kind)
		}
		return nil
	}
	sec := func(field string, s Secret, required bool) error {
		if err := s.check(); err != nil {
			return c.fieldError(root, append(at, section, field), "%v", err)
		}
		if s.value != "" && !c.Sandbox {
			return c.fieldError(root, append(at, section, field), "a sandbox: value is only for the embedded sandbox; name an env variable or a file")
		}
		if required && s.empty() {
			return c.fieldError(root, append(at, section, field), "is required: name an env variable or a file")
		}
		return nil
	}
	var errs []error
	switch t.Kind {
	case "okta":
		if t.Okta == nil {
			break
		}
		errs = append(errs, req("orgURL", t.Okta.OrgURL), sec("token", t.Okta.Token, true))
	case "entra":
		if t.Entra == nil {
			break
		}
		if t.Entra.BaseURL == "" {
			errs = append(errs, req("tenantID", t.Entra.TenantID), req("clientID", t.Entra.ClientID), sec("clientSecret", t.Entra.ClientSecret, true))
		}
	case "awsiam":
		if t.AWS == nil {
			break
		}
		errs = append(errs, req("accountID", t.AWS.AccountID), sec("accessKeyID", t.AWS.AccessKeyID, false), sec("secretAccessKey", t.AWS.SecretAccessKey, false))
		if p := t.AWS.ServicePathPrefix; p != "" && (!strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/")) {
			errs = append(errs, c.fieldError(root, append(at, section, "servicePathPrefix"), "%q must begin and end with / (an IAM path, e.g. /service/)", p))
		}
		if e := t.AWS.SecretsEndpoint; e != "" && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			errs = append(errs, c.fieldError(root, append(at, section, "secretsEndpoint"), "%q is not an http(s) URL", e))
		}
	case "ldap":
		if t.LDAP == nil {
			break
		}
		errs = append(errs, req("url", t.LDAP.URL), req("bindDN", t.LDAP.BindDN), req("baseDN", t.LDAP.BaseDN), sec("password", t.LDAP.Password, true))
		if strings.HasPrefix(t.LDAP.URL, "ldap://") && !t.LDAP.StartTLS {
			errs = append(errs, c.fieldError(root, append(at, section, "startTLS"), "must be true with an ldap:// URL: Active Directory refuses plain binds"))
		}
	case "scim":
		if t.SCIM == nil {
			break
		}
		errs = append(errs, req("baseURL", t.SCIM.BaseURL), sec("bearer", t.SCIM.Bearer, false), sec("password", t.SCIM.Password, false))
		if t.SCIM.Bearer.empty() && t.SCIM.Password.empty() {
			errs = append(errs, c.fieldError(root, append(at, section, "bearer"), "is required (or username and password)"))
		}
	}
	if (section == "okta" && t.Okta == nil) || (section == "entra" && t.Entra == nil) || (section == "aws" && t.AWS == nil) ||
		(section == "ldap" && t.LDAP == nil) || (section == "scim" && t.SCIM == nil) {
		return c.fieldError(root, at, "kind %s needs a %q section", t.Kind, section)
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// validateEvidenceS3 checks evidence.s3 and fills in its default mode.
func (c *Config) validateEvidenceS3(root *yaml.Node) error {
	e := c.Evidence.S3
	if e == nil {
		return nil
	}
	at := []string{"evidence", "s3"}
	field := func(name string) []string { return append(slices.Clone(at), name) }
	if e.Mode == "" {
		e.Mode = ObjectLockCompliance
	}
	switch {
	case strings.TrimSpace(e.Bucket) == "":
		return c.fieldError(root, field("bucket"), "is required (a bucket created with Object Lock enabled)")
	case e.Region == "":
		return c.fieldError(root, field("region"), "is required (the bucket's region, e.g. eu-central-1)")
	case e.Mode != ObjectLockCompliance && e.Mode != ObjectLockGovernance:
		return c.fieldError(root, field("mode"), "%q is not %s or %s", e.Mode, ObjectLockCompliance, ObjectLockGovernance)
	case e.Retention <= 0:
		return c.fieldError(root, field("retention"), "is required: how long evidence is locked, e.g. 2555d")
	case e.Endpoint != "" && !strings.HasPrefix(e.Endpoint, "https://") && !strings.HasPrefix(e.Endpoint, "http://"):
		return c.fieldError(root, field("endpoint"), "%q is not an http(s) URL", e.Endpoint)
	}
	for _, k := range []struct {
		name   string
		secret Secret
	}{{"accessKeyID", e.AccessKeyID}, {"secretAccessKey", e.SecretAccessKey}} {
		if err := k.secret.check(); err != nil {
			return c.fieldError(root, field(k.name), "%v", err)
		}
	}
	if e.AccessKeyID.empty() != e.SecretAccessKey.empty() {
		return c.fieldError(root, field("accessKeyID"), "and secretAccessKey are set together, or neither (the AWS default credential chain)")
	}
	return nil
}

type namedSecret struct {
	path   []string
	secret Secret
}

// outsideTargetSecrets lists the secrets that are not in a target section.
func (c *Config) outsideTargetSecrets() []namedSecret {
	out := []namedSecret{
		{[]string{"temporal", "apiKey"}, c.Temporal.APIKey},
		{[]string{"notify", "webhookURL"}, c.Notify.WebhookURL},
		{[]string{"evidence", "signingKey"}, c.Evidence.SigningKey},
		{[]string{"relay", "decisionKey"}, c.Relay.DecisionKey},
	}
	if h := c.SIEM.HEC; h != nil {
		out = append(out, namedSecret{[]string{"siem", "hec", "token"}, h.Token})
	}
	if e := c.Evidence.S3; e != nil {
		out = append(out, namedSecret{[]string{"evidence", "s3", "accessKeyID"}, e.AccessKeyID},
			namedSecret{[]string{"evidence", "s3", "secretAccessKey"}, e.SecretAccessKey})
	}
	out = append(out, namedSecret{[]string{"reconcile", "roster", "password"}, c.Reconcile.Roster.Password})
	src := c.Relay.Sources
	if b := src.BambooHR; b != nil {
		for i, s := range b.Secrets {
			out = append(out, namedSecret{[]string{"relay", "sources", "bamboohr", "secrets", fmt.Sprint(i)}, s})
		}
		out = append(out, namedSecret{[]string{"relay", "sources", "bamboohr", "apiKey"}, b.APIKey})
	}
	if w := src.Workday; w != nil {
		for i, u := range w.Users {
			out = append(out, namedSecret{[]string{"relay", "sources", "workday", "users", fmt.Sprint(i)}, u.Password})
		}
	}
	if g := src.Generic; g != nil {
		for i, s := range g.Secrets {
			out = append(out, namedSecret{[]string{"relay", "sources", "generic", "secrets", fmt.Sprint(i)}, s})
		}
	}
	if o := src.Okta; o != nil {
		for i, s := range o.Secrets {
			out = append(out, namedSecret{[]string{"relay", "sources", "okta", "secrets", fmt.Sprint(i)}, s})
		}
		out = append(out, namedSecret{[]string{"relay", "sources", "okta", "apiToken"}, o.APIToken})
	}
	return append(out, c.ssfSecrets()...) // ssf.go
}

// lineOf finds the line of a dotted path in a decoded YAML document (0 if absent);
// when the leaf is missing it returns the line of the deepest parent found.
func lineOf(root *yaml.Node, path []string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, key := range path {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next = n.Content[i+1]
					line = n.Content[i].Line
					break
				}
			}
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscan(key, &idx); err == nil && idx >= 0 && idx < len(n.Content) {
				next = n.Content[idx]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// Source names where the configuration came from.
func (c Config) Source() string { return c.source }

// GroupsFor returns the groups a role grants on a target, and whether the role is known.
func (c Config) GroupsFor(role, target string) ([]string, bool) {
	byTarget, ok := c.Roles[role]
	if !ok {
		return nil, false
	}
	return byTarget[target], true
}

// TaskQueue is the task queue of the named target's activities ("" for the
// workflow's own queue, also for a name the configuration does not know).
func (c Config) TaskQueue(target string) string {
	for _, t := range c.Targets {
		if t.Name == target {
			return t.TaskQueue()
		}
	}
	return ""
}
