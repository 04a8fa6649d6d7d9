package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/sandbox/demo"
)

// Options are where the stack's parts listen (host:port, loopback), and
// what a test changes in the configuration.
type Options struct {
	Dir         string // the stack's state directory (absolute)
	Temporal    string // the Temporal frontend
	Metrics     string // worker /healthz and /metrics
	Starter     string // starter serve
	Codec       string // the codec server
	UI          string // the Web UI, for the codec server's allowed origins
	SandboxHost string // the simulators' loopback address (bin/sandbox -host)
	// DecisionKey is the public half (base64) of the stack's relay.decisionKey:
	// it replaces the placeholder of people.decisionKeys' non-break-glass key.
	DecisionKey string
	// Overrides is a YAML mapping merged over the result, e.g. a test's
	// {policy: {retention: 2s}} so that runs close while it watches.
	Overrides []byte
}

// Sandbox tokens (sandbox/main.go): the simulators accept these.
var sandboxSecrets = map[string]string{
	"okta_token":            "sandbox-okta-token",
	"scim_crm_token":        "sandbox-scim-token",
	"aws_access_key_id":     "AKIASANDBOXOFFBOARD1",
	"aws_secret_access_key": "sandbox-aws-secret",
	"ad_password":           "sandbox-ldap-password",
}

// SandboxSecret is the value the stack writes to secrets/<name> for a
// simulator, and whether name is one.
func SandboxSecret(name string) (string, bool) {
	v, ok := sandboxSecrets[name]
	return v, ok
}

// Token is the operator API token of a person in the derived configuration:
// deploy/offboard.yaml lists only digests of placeholders, so the stack
// replaces each with the digest of this one.
func Token(name string) string { return "stack-" + name + "-token" }

// Derive turns deploy/offboard.yaml into the stack's configuration: the
// same policy, people, relay and target list, with every address moved to
// loopback, every /run/secrets/ file to <dir>/secrets/, each target pointed at
// its simulator, evidence under <dir>, and payload encryption on. It returns
// the YAML and the secret files the configuration names (without the
// simulators' ad_ca_crt, which the sandbox writes).
func Derive(deployYAML []byte, a Options) ([]byte, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(deployYAML, &doc); err != nil {
		return nil, nil, fmt.Errorf("deploy/offboard.yaml: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("deploy/offboard.yaml: not a mapping")
	}
	root := doc.Content[0]
	secrets := filepath.Join(a.Dir, "secrets")
	var names []string
	walkScalars(root, func(n *yaml.Node) {
		if name, ok := strings.CutPrefix(n.Value, "/run/secrets/"); ok {
			n.Value = filepath.Join(secrets, name)
			names = append(names, name)
		}
	})

	set(root, a.Temporal, "temporal", "address")
	set(root, a.Metrics, "worker", "metricsAddr")
	set(root, a.Starter, "starter", "listen")
	set(root, filepath.Join(a.Dir, "evidence"), "evidence", "dir")
	// No chat webhook to notify here: SLA breaches are in the evidence and the metrics.
	del(root, "notify")
	names = without(names, "notify_webhook_url")

	targets := get(root, "targets")
	if targets == nil || targets.Kind != yaml.SequenceNode {
		return nil, nil, fmt.Errorf("deploy/offboard.yaml: no targets list")
	}
	h := a.SandboxHost
	kinds := map[string]string{} // target name → kind
	for _, t := range targets.Content {
		kind, name := value(get(t, "kind")), value(get(t, "name"))
		kinds[name] = kind
		switch kind {
		case "okta":
			set(t, "http://"+h+":8101", "okta", "orgURL")
		case "entra":
			// The simulator takes no OAuth client: only the Graph base URL.
			replace(t, "entra", mapping("baseURL", "http://"+h+":8102"))
			names = without(names, "entra_client_secret")
		case "awsiam":
			set(t, "http://"+h+":8103", "aws", "endpoint")
			set(t, "http://"+h+":8109", "aws", "secretsEndpoint") // the sandbox's Secrets Manager
			del(get(t, "aws"), "roleARN")
		case "ldap":
			set(t, "ldaps://"+h+":8636", "ldap", "url")
			set(t, filepath.Join(a.Dir, "sandbox", "ldap", "ca.crt"), "ldap", "caFile")
			set(t, "CN=Administrator,CN=Users,DC=corp,DC=example,DC=test", "ldap", "bindDN")
			set(t, "DC=corp,DC=example,DC=test", "ldap", "baseDN")
			names = without(names, "ad_ca_crt")
		case "scim":
			if name != "scim-crm" {
				return nil, nil, fmt.Errorf("target %s: the sandbox has the SCIM app scim-crm only", name)
			}
			set(t, "http://"+h+":8104/scim/v2", "scim", "baseURL")
		default:
			return nil, nil, fmt.Errorf("target %s: kind %q has no simulator", name, kind)
		}
	}

	// Non-human identities (issue 15): rotations write to the sandbox's
	// Secrets Manager, and the break-glass registry names the sandbox's own
	// break-glass accounts and secrets.
	if store := get(root, "nonHuman", "secretStore"); store != nil {
		set(store, "http://"+h+":8109", "endpoint")
	}
	for _, b := range contentOf(get(root, "breakGlass")) {
		kind := kinds[value(get(b, "target"))]
		if account, ok := map[string]string{"okta": demo.BreakGlassOkta, "entra": demo.BreakGlassEntra, "ldap": demo.BreakGlassAD, "awsiam": demo.BreakGlassAWS}[kind]; ok {
			set(b, account, "account")
			set(b, demo.BreakGlassSecrets[kind], "secret")
		}
	}

	if a.DecisionKey != "" {
		keys := get(root, "people", "decisionKeys")
		replaced := false
		for _, k := range contentOf(keys) {
			if value(get(k, "breakGlass")) != "true" && !replaced {
				set(k, a.DecisionKey, "publicKey")
				replaced = true
			}
		}
		if !replaced {
			return nil, nil, fmt.Errorf("deploy/offboard.yaml: people.decisionKeys lists no key for the operator API")
		}
	}

	if tokens := get(root, "relay", "tokens"); tokens != nil {
		for _, tok := range tokens.Content {
			sum := sha256.Sum256([]byte(Token(value(get(tok, "name")))))
			set(tok, hex.EncodeToString(sum[:]), "sha256")
		}
	}

	// Payloads encrypted, the codec server on loopback for the Web UI.
	ui := strings.Replace(a.UI, "127.0.0.1", "localhost", 1)
	codec := mapping()
	codec.Content = append(codec.Content,
		scalar("keys"), &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle, Content: []*yaml.Node{
			mapping("id", "stack-1", "file", filepath.Join(secrets, "codec_key"))}},
		scalar("primary"), scalar("stack-1"),
		scalar("server"), mapping("listen", a.Codec, "anonymous", "true"),
	)
	origins := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle, Content: []*yaml.Node{scalar("http://" + ui), scalar("http://" + a.UI)}}
	srv := get(codec, "server")
	srv.Content = append(srv.Content, scalar("allowedOrigins"), origins)
	replace(root, "codec", codec)
	names = append(names, "codec_key")

	if len(a.Overrides) > 0 {
		var over yaml.Node
		if err := yaml.Unmarshal(a.Overrides, &over); err != nil {
			return nil, nil, fmt.Errorf("overrides: %w", err)
		}
		if len(over.Content) != 1 || over.Content[0].Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("overrides: not a mapping")
		}
		merge(root, over.Content[0])
	}

	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, nil, err
	}
	out = append([]byte("# Derived from deploy/offboard.yaml by scripts/stack.sh (internal/testenv/stack): do not edit.\n"), out...)
	if _, err := config.Parse(out, "stack offboard.yaml"); err != nil {
		return nil, nil, err
	}
	return out, dedupe(names), nil
}

// merge writes over's keys into n, mappings key by key, anything else whole.
func merge(n, over *yaml.Node) {
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i].Value, over.Content[i+1]
		if cur := get(n, k); cur != nil && cur.Kind == yaml.MappingNode && v.Kind == yaml.MappingNode {
			merge(cur, v)
			continue
		}
		replace(n, k, v)
	}
}

func contentOf(n *yaml.Node) []*yaml.Node {
	if n == nil {
		return nil
	}
	return n.Content
}

func walkScalars(n *yaml.Node, f func(*yaml.Node)) {
	if n.Kind == yaml.ScalarNode {
		f(n)
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue // keys
		}
		walkScalars(c, f)
	}
}

// get follows a path of mapping keys; nil when a key is missing.
func get(n *yaml.Node, path ...string) *yaml.Node {
	for _, k := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// set writes a scalar at path, making the mappings on the way.
func set(n *yaml.Node, v string, path ...string) {
	for _, k := range path[:len(path)-1] {
		next := get(n, k)
		if next == nil {
			next = mapping()
			n.Content = append(n.Content, scalar(k), next)
		}
		n = next
	}
	replace(n, path[len(path)-1], scalar(v))
}

func replace(n *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v.LineComment = n.Content[i+1].LineComment
			n.Content[i+1] = v
			return
		}
	}
	n.Content = append(n.Content, scalar(key), v)
}

func del(n *yaml.Node, key string) {
	if n == nil {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
}

func value(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	return n.Value
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func mapping(kv ...string) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Content = append(m.Content, scalar(kv[i]), scalar(kv[i+1]))
	}
	return m
}

func without(names []string, drop string) []string {
	out := names[:0]
	for _, n := range names {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
