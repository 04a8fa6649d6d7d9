// Command stackconfig is scripts/stack.sh's helper: it reads the files users
// deploy with (docker-compose.yml, deploy/offboard.yaml) so that the stack
// runs them, not a copy.
//
//	stackconfig config -dir D -temporal A -metrics A -starter A -codec A -ui A -sandbox-host H [-overrides YAML]
//	    writes D/offboard.yaml (derived from deploy/offboard.yaml) and every
//	    secret file it names that is missing in D/secrets
//	stackconfig env SERVICE [NAME=VALUE ...]
//	    prints the compose service's environment with those overrides, one
//	    NAME=VALUE a line (for env(1))
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/offboard/offboard/evidence"
	"github.com/offboard/offboard/internal/testenv/stack"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: stackconfig config|env ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "config":
		err = writeConfig(os.Args[2:])
	case "env":
		err = printEnv(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stackconfig:", err)
		os.Exit(1)
	}
}

func writeConfig(args []string) error {
	var a stack.Options
	var overrides string
	fl := flag.NewFlagSet("config", flag.ContinueOnError)
	fl.StringVar(&a.Dir, "dir", "", "state directory")
	fl.StringVar(&a.Temporal, "temporal", "", "Temporal frontend host:port")
	fl.StringVar(&a.Metrics, "metrics", "", "worker metrics host:port")
	fl.StringVar(&a.Starter, "starter", "", "starter host:port")
	fl.StringVar(&a.Codec, "codec", "", "codec server host:port")
	fl.StringVar(&a.UI, "ui", "", "Web UI host:port")
	fl.StringVar(&a.SandboxHost, "sandbox-host", "", "the simulators' loopback address")
	fl.StringVar(&overrides, "overrides", "", "a YAML mapping merged over the derived configuration")
	if err := fl.Parse(args); err != nil {
		return err
	}
	a.Overrides = []byte(overrides)
	secrets := filepath.Join(a.Dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return err
	}
	pub, err := decisionKey(filepath.Join(secrets, "decision_key"))
	if err != nil {
		return err
	}
	a.DecisionKey = pub
	src, err := os.ReadFile("deploy/offboard.yaml")
	if err != nil {
		return err
	}
	out, names, err := stack.Derive(src, a)
	if err != nil {
		return err
	}
	for _, name := range names {
		path := filepath.Join(secrets, name)
		if _, err := os.Stat(path); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if name == "evidence_signing_key" {
			if _, err := evidence.GenerateKey(path); err != nil {
				return err
			}
			continue
		}
		v, ok := stack.SandboxSecret(name)
		if !ok {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			v = base64.StdEncoding.EncodeToString(b)
		}
		if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(a.Dir, "offboard.yaml"), out, 0o600)
}

// decisionKey makes the operator API's signing key once (a base64 Ed25519
// seed, as starter decision-keygen writes it) and returns its public half.
func decisionKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		_, _ = rand.Read(seed)
		b = []byte(base64.StdEncoding.EncodeToString(seed) + "\n")
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		return "", err
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return "", fmt.Errorf("%s: not a base64 Ed25519 seed", path)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return base64.StdEncoding.EncodeToString(pub), nil
}

func printEnv(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: stackconfig env SERVICE [NAME=VALUE ...]")
	}
	overrides := map[string]string{}
	for _, kv := range args[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q is not NAME=VALUE", kv)
		}
		overrides[k] = v
	}
	src, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		return err
	}
	env, err := stack.ComposeEnv(src, args[0], overrides)
	if err != nil {
		return err
	}
	for _, kv := range env {
		if strings.Contains(kv, "\n") {
			return fmt.Errorf("%s: a value over several lines", kv)
		}
		fmt.Println(kv)
	}
	return nil
}
