package deploy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"gopkg.in/yaml.v3"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/workflows"
)

// compose is the part of a Compose file these tests read.
type compose struct {
	Services map[string]service `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type service struct {
	Image       string            `yaml:"image"`
	Build       *build            `yaml:"build"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Secrets     []string          `yaml:"secrets"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Restart     string            `yaml:"restart"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

const root = ".."

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	require.NoError(t, err)
	return b
}

func loadCompose(t *testing.T) (compose, yaml.Node) {
	t.Helper()
	b := read(t, "docker-compose.yml")
	var c compose
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(false)
	require.NoError(t, dec.Decode(&c), "docker-compose.yml")
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal(b, &n))
	return c, n
}

func loadConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join(root, "deploy", "offboard.yaml"))
	require.NoError(t, err)
	return cfg
}

// The example configuration is valid as the worker and the starter load it,
// and agrees with the compose file on addresses and ports.
func TestConfigLoads(t *testing.T) {
	cfg := loadConfig(t)
	c, _ := loadCompose(t)

	assert.False(t, cfg.Sandbox, "a production example runs no simulator")
	require.NoError(t, cfg.Relay.WithDefaults().Validate(), "the relay section starter serve validates")
	assert.Len(t, cfg.Targets, 5)
	kinds := map[string]bool{}
	for _, tg := range cfg.Targets {
		kinds[tg.Kind] = true
	}
	assert.Len(t, kinds, len(config.Kinds), "one target of every kind")

	host, port, err := net.SplitHostPort(cfg.Temporal.Address)
	require.NoError(t, err)
	require.Contains(t, c.Services, host, "temporal.address names the compose service")
	assert.Contains(t, c.Services[host].Ports, "127.0.0.1:"+port+":"+port)
	assert.Equal(t, cfg.Temporal.Namespace, c.Services["temporal-namespace"].Environment["TEMPORAL_NAMESPACE"], "the namespace the one-shot registers")
	assert.Equal(t, cfg.Temporal.Namespace, c.Services["temporal-ui"].Environment["TEMPORAL_DEFAULT_NAMESPACE"])

	for _, s := range []struct{ service, addr string }{{"worker", cfg.Worker.MetricsAddr}, {"starter", cfg.Starter.Listen}} {
		_, port, err := net.SplitHostPort(s.addr)
		require.NoError(t, err)
		svc := c.Services[s.service]
		require.NotNil(t, svc.Healthcheck, s.service)
		assert.Contains(t, strings.Join(svc.Healthcheck.Test, " "), "http://127.0.0.1:"+port+"/healthz", "%s health check on its configured port", s.service)
		assert.True(t, slices.ContainsFunc(svc.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }), "%s publishes %s", s.service, port)
		assert.Equal(t, "/etc/offboard/offboard.yaml", svc.Environment["OFFBOARD_CONFIG"])
		assert.Contains(t, svc.Volumes, "./deploy/offboard.yaml:/etc/offboard/offboard.yaml:ro", "configuration mounted read-only")
	}
	// A DN in a flow sequence must be quoted, or YAML splits it at its commas.
	for role, byTarget := range cfg.Roles {
		for _, g := range byTarget["ad"] {
			assert.True(t, strings.HasPrefix(g, "CN="), "roles.%s.ad: %q is not a whole DN", role, g)
		}
	}
	assert.True(t, strings.HasPrefix(cfg.Evidence.Dir, "/var/lib/offboard/evidence"))
	assert.Contains(t, c.Services["worker"].Volumes, "evidence:"+cfg.Evidence.Dir)
}

// The S3 evidence section deploy/README.md shows is valid in the example
// configuration, in place of its evidence section.
func TestReadmeS3EvidenceParses(t *testing.T) {
	snippet := readmeYAML(t, "    evidence:\n      s3:\n", "    ")
	example := string(read(t, "deploy/offboard.yaml"))
	from := strings.Index(example, "\nevidence:\n")
	require.GreaterOrEqual(t, from, 0)
	rest := example[from+1:]
	to := strings.Index(rest, "\n\n")
	require.Greater(t, to, 0)
	cfg, err := config.Parse([]byte(example[:from+1]+snippet+"\n"+rest[to+1:]), "deploy/offboard.yaml with the README's evidence.s3")
	require.NoError(t, err)
	require.NotNil(t, cfg.Evidence.S3)
	assert.Equal(t, "acme-offboard-evidence", cfg.Evidence.S3.Bucket)
	assert.Equal(t, config.ObjectLockCompliance, cfg.Evidence.S3.Mode)
	assert.Equal(t, config.Duration(2555*24*time.Hour), cfg.Evidence.S3.Retention)
	assert.Equal(t, "/run/secrets/evidence_signing_key", cfg.Evidence.SigningKey.File)
}

// The codec server section deploy/README.md shows is valid.
func TestReadmeCodecOIDCParses(t *testing.T) {
	var doc struct {
		Codec config.Codec `yaml:"codec"`
	}
	snippet := readmeYAML(t, "      codec:\n        server:\n", "      ")
	dec := yaml.NewDecoder(strings.NewReader(snippet))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&doc))
	doc.Codec.Keys = []config.CodecKey{{ID: "k1", File: "/run/secrets/codec_key"}}
	doc.Codec.Primary = "k1"
	require.NoError(t, doc.Codec.Validate())
	o := doc.Codec.Server.OIDC
	require.NotNil(t, o)
	assert.Equal(t, "https://acme.okta.com/oauth2/default", o.Issuer)
	assert.Equal(t, []string{"offboard-auditors"}, o.AllowGroups)
}

// readmeYAML is the indented YAML block of deploy/README.md that starts with
// start, without its indent.
func readmeYAML(t *testing.T, start, indent string) string {
	t.Helper()
	readme := string(read(t, "deploy/README.md"))
	at := strings.Index(readme, "\n"+start)
	require.GreaterOrEqual(t, at, 0, "deploy/README.md shows %q", start)
	block, _, _ := strings.Cut(readme[at+1:], "\n\n")
	var out strings.Builder
	for line := range strings.Lines(block) {
		out.WriteString(strings.TrimPrefix(line, indent))
	}
	return out.String()
}

// secretRefs finds every /run/secrets path in the configuration with the
// dotted path of the field naming it.
func secretRefs(t *testing.T) map[string][]string {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(read(t, "deploy/offboard.yaml"), &doc))
	out := map[string][]string{}
	var walk func(n *yaml.Node, at []string)
	walk = func(n *yaml.Node, at []string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, append(slices.Clone(at), fmt.Sprint(i)))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], append(slices.Clone(at), n.Content[i].Value))
			}
		case yaml.ScalarNode:
			if name, ok := strings.CutPrefix(n.Value, "/run/secrets/"); ok {
				out[name] = append(out[name], strings.Join(at[1:], "."))
			}
		}
	}
	walk(&doc, nil)
	return out
}

// Every file the configuration names is a declared secret, mounted in the
// service that uses it and in no other Offboard service.
func TestSecretsMatchConfig(t *testing.T) {
	c, _ := loadCompose(t)
	refs := secretRefs(t)
	require.NotEmpty(t, refs)
	docs := string(read(t, "deploy/secrets/README.md"))

	want := map[string][]string{"worker": nil, "starter": nil}
	for name, paths := range refs {
		decl, ok := c.Secrets[name]
		require.True(t, ok, "secret %s (used by %v) is declared in docker-compose.yml", name, paths)
		assert.Equal(t, "./deploy/secrets/"+name, decl.File)
		assert.Contains(t, docs, "`"+name+"`", "deploy/secrets/README.md lists %s", name)
		for _, p := range paths {
			switch {
			case strings.HasPrefix(p, "relay."):
				want["starter"] = append(want["starter"], name)
			case strings.HasPrefix(p, "temporal."):
				want["starter"] = append(want["starter"], name)
				want["worker"] = append(want["worker"], name)
			default: // targets, notify, evidence
				want["worker"] = append(want["worker"], name)
			}
		}
	}
	for svc, names := range want {
		slices.Sort(names)
		got := slices.Sorted(slices.Values(c.Services[svc].Secrets))
		assert.Equal(t, slices.Compact(names), got, "%s gets exactly the secrets its part of the configuration names", svc)
	}
	for name, decl := range c.Secrets {
		assert.True(t, strings.HasPrefix(decl.File, "./deploy/secrets/"), "secret %s is a file in deploy/secrets", name)
	}
}

func TestComposeServices(t *testing.T) {
	c, _ := loadCompose(t)
	images := map[string]string{
		"postgresql":         "postgres:16",
		"temporal-schema":    "temporalio/admin-tools:",
		"temporal":           "temporalio/server:",
		"temporal-namespace": "temporalio/admin-tools:",
		"temporal-ui":        "temporalio/ui:",
	}
	for name, prefix := range images {
		require.Contains(t, c.Services, name)
		assert.True(t, strings.HasPrefix(c.Services[name].Image, prefix), "%s runs %s, got %s", name, prefix, c.Services[name].Image)
	}
	for _, name := range []string{"worker", "starter"} {
		require.Contains(t, c.Services, name)
	}

	// Health checks, and dependents wait for them.
	for _, name := range []string{"postgresql", "temporal", "worker", "starter"} {
		hc := c.Services[name].Healthcheck
		require.NotNil(t, hc, "%s has a health check", name)
		assert.NotEmpty(t, hc.Test, name)
	}
	assert.Equal(t, "service_healthy", c.Services["temporal-schema"].DependsOn["postgresql"].Condition)
	assert.Equal(t, "service_completed_successfully", c.Services["temporal"].DependsOn["temporal-schema"].Condition)
	assert.Equal(t, "service_healthy", c.Services["temporal-namespace"].DependsOn["temporal"].Condition)
	for _, name := range []string{"worker", "starter"} {
		assert.Equal(t, "service_completed_successfully", c.Services[name].DependsOn["temporal-namespace"].Condition, name)
	}

	// Long-running services restart; one-shots do not.
	for name, svc := range c.Services {
		if name == "temporal-schema" || name == "temporal-namespace" {
			assert.Equal(t, "no", svc.Restart, name)
		} else {
			assert.Equal(t, "unless-stopped", svc.Restart, name)
		}
	}

	// The ports of the design: Temporal 7233, Web UI 8233, starter 8080, worker 9090;
	// Temporal (no authorizer) and its UI (no login) on the host's loopback only.
	assert.Contains(t, c.Services["temporal"].Ports, "127.0.0.1:7233:7233")
	assert.Contains(t, c.Services["temporal-ui"].Ports, "127.0.0.1:8233:8080")
	assert.Contains(t, c.Services["starter"].Ports, "8080:8080")
	assert.Contains(t, c.Services["worker"].Ports, "9090-9099:9090", "a range, so scaled workers each get a port")
	assert.Contains(t, c.Services["temporal-ui"].Environment, "TEMPORAL_CODEC_ENDPOINT")

	// Files the services mount exist in the repository.
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				assert.Contains(t, c.Volumes, src, "%s mounts a declared volume", name)
				continue
			}
			_, err := os.Stat(filepath.Join(root, src))
			assert.NoError(t, err, "%s mounts %s", name, src)
		}
	}
}

// buildPackages returns the packages of each `go build -o /out/` in text.
func buildPackages(text string) [][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var out [][]string
	for _, line := range strings.Split(text, "\n") {
		for _, cmd := range strings.Split(line, "&&") {
			f := strings.Fields(cmd)
			i := slices.Index(f, "build")
			if i < 1 || f[i-1] != "$(GO)" && f[i-1] != "go" {
				continue
			}
			var pkgs []string
			for _, a := range f[i+1:] {
				if strings.HasPrefix(a, "./") {
					pkgs = append(pkgs, a)
				}
			}
			out = append(out, pkgs)
		}
	}
	return out
}

// The image builds what the Makefile's build target builds, and every
// command the compose file runs is a binary in it.
func TestImageHasTheCommands(t *testing.T) {
	dockerfile := string(read(t, "Dockerfile"))
	c, _ := loadCompose(t)

	var makeBuild [][]string
	sc := bufio.NewScanner(strings.NewReader(string(read(t, "Makefile"))))
	for inBuild := false; sc.Scan(); {
		line := sc.Text()
		if strings.HasPrefix(line, "build:") {
			inBuild = true
			continue
		}
		if inBuild && strings.HasPrefix(line, "\t") {
			makeBuild = append(makeBuild, buildPackages(line)...)
		} else if inBuild {
			break
		}
	}
	require.Len(t, makeBuild, 1, "the Makefile's build target has one go build")

	built := buildPackages(dockerfile)
	require.NotEmpty(t, built)
	assert.Equal(t, makeBuild[0], built[0], "the image's first go build is the Makefile's")
	assert.Contains(t, dockerfile, `-trimpath -ldflags "-s -w" -o /out/ `+strings.Join(makeBuild[0], " "))
	assert.Contains(t, dockerfile, "ENV CGO_ENABLED=0")
	assert.Contains(t, dockerfile, "COPY --from=build /out/ /usr/local/bin/")
	assert.Regexp(t, `(?m)^FROM golang:\$\{GO_VERSION\} AS build$`, dockerfile)
	assert.Regexp(t, `(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`, dockerfile)
	assert.Regexp(t, `(?m)^USER 65532:65532$`, dockerfile)

	binaries := map[string]bool{}
	for _, pkgs := range built {
		for _, p := range pkgs {
			src, err := os.ReadFile(filepath.Join(root, p, "main.go"))
			require.NoError(t, err, "%s is a command", p)
			assert.Contains(t, string(src), "package main", p)
			binaries["/usr/local/bin/"+path.Base(p)] = true
		}
	}
	for name, svc := range c.Services {
		if svc.Build == nil {
			continue
		}
		assert.Equal(t, build{Context: ".", Dockerfile: "Dockerfile"}, *svc.Build, "%s builds the Dockerfile", name)
		require.NotEmpty(t, svc.Command, name)
		assert.True(t, binaries[svc.Command[0]], "%s runs %s, which the image has (%v)", name, svc.Command[0], binaries)
		require.NotNil(t, svc.Healthcheck, name)
		assert.True(t, binaries[svc.Healthcheck.Test[1]], "%s health check runs %s from the image", name, svc.Healthcheck.Test[1])
	}
	assert.Equal(t, []string{"/usr/local/bin/worker"}, c.Services["worker"].Command)
	assert.Equal(t, []string{"/usr/local/bin/starter", "serve"}, c.Services["starter"].Command)
	for _, ignored := range []string{".git", ".offboard", "bin", "deploy/secrets"} {
		assert.Contains(t, strings.Fields(string(read(t, ".dockerignore"))), ignored, "the build context leaves out %s", ignored)
	}
}

// The namespace one-shot registers exactly the workflow's search attributes.
func TestNamespaceScriptRegistersSearchAttributes(t *testing.T) {
	script := string(read(t, "deploy/temporal/setup-namespace.sh"))
	keys := []temporal.SearchAttributeKey{workflows.SAEmployeeID, workflows.SAStatus, workflows.SAPrivileged, workflows.SALegalHold, workflows.SASLABreached}
	var names []string
	for _, sa := range keys {
		names = append(names, sa.GetName()+":"+sa.GetValueType().String())
	}
	// The design's names and types, as the workflow declares them.
	assert.Equal(t, []string{"EmployeeId:Keyword", "DeprovisionStatus:Keyword", "Privileged:Bool", "LegalHold:Bool", "SLABreached:Bool"}, names)
	assert.Contains(t, script, "for sa in "+strings.Join(names, " ")+";")
	assert.Contains(t, string(read(t, "deploy/temporal/setup-postgres.sh")), "postgres12")
}

var secretKey = regexp.MustCompile(`(?i)(password|passwd|pwd|token|secret|api_?key|private_?key)`)

// An assignment like PASSWORD=value inside a command or an environment list.
var secretAssign = regexp.MustCompile(`(?i)\b[a-z0-9_]*(password|passwd|pwd|token|secret|api_?key)[a-z0-9_]*=([^\s]*)`)

// inlineSecrets lists values that look like secrets written into a Compose
// document: a key named like a secret with a literal value, or NAME=value.
// References are fine: ${VAR} substitution, /run/secrets/ paths, and the
// file: of a declared secret.
func inlineSecrets(doc *yaml.Node) []string {
	isRef := func(v string) bool {
		return v == "" || strings.HasPrefix(v, "$") || strings.HasPrefix(v, "/run/secrets/") || strings.HasPrefix(v, "./deploy/secrets/")
	}
	var bad []string
	var walk func(n *yaml.Node, key string)
	walk = func(n *yaml.Node, key string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, key)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], n.Content[i].Value)
			}
		case yaml.ScalarNode:
			if secretKey.MatchString(key) && key != "secrets" && !isRef(n.Value) {
				bad = append(bad, fmt.Sprintf("line %d: %s: %s", n.Line, key, n.Value))
			}
			for _, m := range secretAssign.FindAllStringSubmatch(n.Value, -1) {
				if !isRef(strings.Trim(m[2], `"'`)) {
					bad = append(bad, fmt.Sprintf("line %d: %s", n.Line, m[0]))
				}
			}
		}
	}
	walk(doc, "")
	return bad
}

func TestNoSecretInCompose(t *testing.T) {
	_, doc := loadCompose(t)
	assert.Empty(t, inlineSecrets(&doc))

	// The check itself catches the usual ways a password ends up inline.
	for name, src := range map[string]string{
		"env map":        "services: {db: {environment: {POSTGRES_PASSWORD: temporal}}}",
		"env list":       "services: {db: {environment: [POSTGRES_PWD=temporal]}}",
		"in a command":   `services: {t: {entrypoint: ["/bin/sh", "-c", "SQL_PASSWORD=hunter2 exec tool"]}}`,
		"api key":        "services: {w: {environment: {TEMPORAL_API_KEY: abc123}}}",
		"nested setting": "x: {auth: {token: abc}}",
	} {
		t.Run(name, func(t *testing.T) {
			var n yaml.Node
			require.NoError(t, yaml.Unmarshal([]byte(src), &n))
			assert.NotEmpty(t, inlineSecrets(&n))
		})
	}
	for name, src := range map[string]string{
		"file variable":  "services: {db: {environment: {POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password}}}",
		"substitution":   "services: {db: {environment: {POSTGRES_PWD: '${POSTGRES_PWD:?}'}}}",
		"read from file": `services: {t: {entrypoint: ["/bin/sh", "-c", "POSTGRES_PWD=$$(cat /run/secrets/p) exec x"]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			var n yaml.Node
			require.NoError(t, yaml.Unmarshal([]byte(src), &n))
			assert.Empty(t, inlineSecrets(&n))
		})
	}
}
