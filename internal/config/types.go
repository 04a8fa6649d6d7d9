package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "15m" in YAML and JSON.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts Go durations and a day suffix ("30d").
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalJSON writes "15m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "15m0s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return err
		}
		*d = Duration(n)
		return nil
	}
	v, err := parseDuration(s)
	*d = v
	return err
}

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscan(days, &n); err == nil && fmt.Sprint(n) == days {
			return Duration(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (like 15m, 24h or 30d)", s)
	}
	return Duration(v), nil
}

// Secret names where a secret lives: an environment variable or a file.
// The value itself is never in the configuration file.
type Secret struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
	// value is set only by the embedded default, for the sandbox's well-known tokens.
	value string
}

func (s Secret) empty() bool { return s.Env == "" && s.File == "" && s.value == "" }

func (s Secret) check() error {
	if s.Env != "" && s.File != "" {
		return errors.New("name either env or file, not both")
	}
	return nil
}

// UnmarshalYAML refuses an inline secret, so one cannot end up in the file.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if strings.HasPrefix(n.Value, "sandbox:") {
			s.value = strings.TrimPrefix(n.Value, "sandbox:")
			return nil
		}
		return fmt.Errorf("line %d: secrets are not written in the file: use {env: NAME} or {file: PATH}", n.Line)
	}
	type plain Secret
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Secret(p)
	return nil
}

// IsSet reports whether the secret names a source.
func (s Secret) IsSet() bool { return !s.empty() }

// Value reads the secret. An unset Secret yields "".
func (s Secret) Value() (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	default:
		return s.value, nil
	}
}

// String never shows the value.
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "env:" + s.Env
	case s.File != "":
		return "file:" + s.File
	case s.value != "":
		return "sandbox"
	}
	return ""
}
