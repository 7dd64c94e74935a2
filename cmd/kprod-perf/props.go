package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kprod/kprod/kafkaproducer"
)

// javaAliases maps a few Java producer property names onto kprod's
// variable names, converting millisecond values to durations, so Kafka
// users can paste what they know.
var javaAliases = map[string]struct {
	name string
	ms   bool
}{
	"LINGER_MS":                             {"LINGER", true},
	"BATCH_SIZE":                            {"BATCH_MAX_BYTES", false},
	"COMPRESSION_TYPE":                      {"COMPRESSION", false},
	"ENABLE_IDEMPOTENCE":                    {"IDEMPOTENCE", false},
	"MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION": {"MAX_IN_FLIGHT", false},
	"DELIVERY_TIMEOUT_MS":                   {"DELIVERY_TIMEOUT", true},
	"REQUEST_TIMEOUT_MS":                    {"REQUEST_TIMEOUT", true},
	"RETRY_BACKOFF_MS":                      {"RETRY_BACKOFF_INITIAL", true},
	"RETRY_BACKOFF_MAX_MS":                  {"RETRY_BACKOFF_MAX", true},
	"METADATA_MAX_AGE_MS":                   {"METADATA_MAX_AGE", true},
	"TRANSACTION_TIMEOUT_MS":                {"TRANSACTION_TIMEOUT", true},
}

// props collects repeated --producer-prop k=v flags. Keys are the names
// kafkaproducer.FromEnv reads (LINGER, COMPRESSION, ...), in any case,
// with '.' or '-' for '_' (linger, max.in.flight), or one of the Java
// names in javaAliases (linger.ms=5).
type props map[string]string

func (p props) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + p[k]
	}
	return strings.Join(keys, ",")
}

func (p props) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	name := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(k))
	if a, ok := javaAliases[name]; ok {
		name = a.name
		if a.ms {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return fmt.Errorf("property %q: %q is not a number of milliseconds", k, v)
			}
			v = strconv.FormatInt(n, 10) + "ms"
		}
	}
	switch {
	case name == "BROKERS":
		return fmt.Errorf("property %q: use --bootstrap-server", k)
	case !slices.Contains(kafkaproducer.EnvVars(), name):
		names := slices.DeleteFunc(kafkaproducer.EnvVars(), func(n string) bool { return n == "BROKERS" })
		return fmt.Errorf("unknown producer property %q: use one of %s (any case, '.' for '_')",
			k, strings.Join(names, ", "))
	}
	p[name] = v
	return nil
}

// apply overlays the properties onto base through kafkaproducer.FromLookup,
// so they parse exactly as the KPROD_* environment variables do.
func (p props) apply(base kafkaproducer.Config) (kafkaproducer.Config, error) {
	return kafkaproducer.FromLookup("", base, func(name string) (string, bool) {
		v, ok := p[name]
		return v, ok
	})
}
