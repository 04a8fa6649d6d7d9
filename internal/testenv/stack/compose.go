package stack

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// ComposeEnv is a service's environment as docker-compose.yml sets it, with
// the values that only make sense inside Compose's network (service names,
// /run/secrets paths) replaced by overrides. A value still holding a
// ${VAR} substitution or a container path must be overridden: it is an error,
// so a setting the compose file adds later cannot silently go missing here.
func ComposeEnv(composeYAML []byte, service string, overrides map[string]string) ([]string, error) {
	var c struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(composeYAML, &c); err != nil {
		return nil, fmt.Errorf("docker-compose.yml: %w", err)
	}
	svc, ok := c.Services[service]
	if !ok {
		return nil, fmt.Errorf("docker-compose.yml has no service %q", service)
	}
	env := map[string]string{}
	for k, v := range svc.Environment {
		env[k] = v
	}
	for k, v := range overrides {
		env[k] = v
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		host, port, hasPort := strings.Cut(v, ":")
		_, isService := c.Services[host]
		// A service name as a host: "temporal:7233", POSTGRES_SEEDS=postgresql.
		isService = isService && (hasPort && port != "" || strings.HasSuffix(k, "_SEEDS") || strings.HasSuffix(k, "_HOST"))
		if _, over := overrides[k]; !over && (isService || strings.Contains(v, "${") || strings.HasPrefix(v, "/run/") || strings.HasPrefix(v, "/etc/")) {
			return nil, fmt.Errorf("docker-compose.yml: %s.environment.%s = %q needs a value for this machine", service, k, v)
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}
