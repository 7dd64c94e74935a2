package kafkaproducer

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// EnvVars lists the variables FromEnv reads, without the prefix, in the
// order they are applied.
func EnvVars() []string {
	names := make([]string, len(envSetters))
	for i, s := range envSetters {
		names[i] = s.name
	}
	return names
}

// FromEnv overlays environment variables named prefix+NAME (for example
// KPROD_BROKERS with prefix "KPROD_") onto base, usually a preset:
//
//	cfg, err := kafkaproducer.FromEnv("KPROD_", presets.Reliable())
//
// Unset variables leave base alone. Durations use Go syntax ("250ms",
// "2m"); lists are comma-separated. Secrets can come from a file
// (SASL_PASSWORD_FILE) so they stay out of the process environment.
// Every bad value is reported, each naming its variable (never echoing a
// secret), and so is every variable with the prefix that FromEnv does not
// know (a misspelled KPROD_LINGR, say), with the name it may have meant:
// set nothing else under the prefix. The result is not validated as a
// whole: New does that.
func FromEnv(prefix string, base Config) (Config, error) {
	c, err := FromLookup(prefix, base, os.LookupEnv)
	var unknown []error
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || prefix == "" || knownEnv(rest) {
			continue
		}
		msg := fmt.Sprintf("kprod: env %s: not a setting kprod reads", name)
		if near := nearestEnv(rest); near != "" {
			msg += fmt.Sprintf(" (did you mean %s%s?)", prefix, near)
		}
		unknown = append(unknown, errors.New(msg))
	}
	if len(unknown) > 0 {
		return base, errors.Join(append([]error{err}, unknown...)...)
	}
	return c, err
}

// FromLookup is FromEnv with the variables looked up by lookup (which
// cannot list them, so unknown names go unnoticed).
func FromLookup(prefix string, base Config, lookup func(string) (string, bool)) (Config, error) {
	c := base
	c.Brokers = append([]string(nil), base.Brokers...)
	if base.TLS != nil {
		t := *base.TLS
		c.TLS = &t
	}
	if base.SASL != nil {
		s := *base.SASL
		c.SASL = &s
	}
	var errs []error
	for _, s := range envSetters {
		v, ok := lookup(prefix + s.name)
		if !ok {
			continue
		}
		if err := s.set(&c, strings.TrimSpace(v)); err != nil {
			if s.secret {
				errs = append(errs, fmt.Errorf("kprod: env %s%s: invalid value", prefix, s.name))
			} else {
				errs = append(errs, fmt.Errorf("kprod: env %s%s=%q: %w", prefix, s.name, v, err))
			}
		}
	}
	if len(errs) > 0 {
		return base, errors.Join(errs...)
	}
	return c, nil
}

func knownEnv(name string) bool {
	for _, s := range envSetters {
		if s.name == name {
			return true
		}
	}
	return false
}

// nearestEnv is the known name closest to name (at most two edits away),
// or "".
func nearestEnv(name string) string {
	best, bestD := "", 3
	for _, s := range envSetters {
		if d := editDistance(name, s.name); d < bestD {
			best, bestD = s.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

type envSetter struct {
	name   string
	secret bool
	set    func(c *Config, v string) error
}

func tlsOf(c *Config) *TLSConfig {
	if c.TLS == nil {
		c.TLS = &TLSConfig{}
	}
	return c.TLS
}

func saslOf(c *Config) *SASLConfig {
	if c.SASL == nil {
		c.SASL = &SASLConfig{}
	}
	return c.SASL
}

func str(f func(c *Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *f(c) = v; return nil }
}

func dur(f func(c *Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*f(c) = d
		return nil
	}
}

func integer(f func(c *Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		*f(c) = n
		return nil
	}
}

func boolean(f func(c *Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		*f(c) = b
		return nil
	}
}

var envSetters = [...]envSetter{
	{name: "BROKERS", set: func(c *Config, v string) error {
		c.Brokers = c.Brokers[:0]
		for b := range strings.SplitSeq(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
		if len(c.Brokers) == 0 {
			return fmt.Errorf("no broker in the list")
		}
		return nil
	}},
	{name: "CLIENT_ID", set: str(func(c *Config) *string { return &c.ClientID })},
	{name: "ACKS", set: func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "all", "-1":
			c.Acks = AcksAll
		case "leader", "1":
			c.Acks = AcksLeader
		case "none", "0":
			c.Acks = AcksNone
		default:
			return fmt.Errorf("use all, leader or none (or -1, 1, 0)")
		}
		return nil
	}},
	{name: "IDEMPOTENCE", set: func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err == nil {
			c.DisableIdempotence = !b
		}
		return err
	}},
	{name: "COMPRESSION", set: func(c *Config, v string) error {
		c.Compression = Compression(strings.ToLower(v))
		_, err := c.codec()
		return unwrapConfig(err)
	}},
	{name: "COMPRESSION_LEVEL", set: integer(func(c *Config) *int { return &c.CompressionLevel })},
	{name: "LINGER", set: dur(func(c *Config) *time.Duration { return &c.Linger })},
	{name: "BATCH_MAX_BYTES", set: func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		if err == nil {
			c.BatchMaxBytes = int32(n)
		}
		return err
	}},
	{name: "MAX_BUFFERED_RECORDS", set: integer(func(c *Config) *int { return &c.MaxBufferedRecords })},
	{name: "MAX_BUFFERED_BYTES", set: integer(func(c *Config) *int { return &c.MaxBufferedBytes })},
	{name: "DELIVERY_TIMEOUT", set: dur(func(c *Config) *time.Duration { return &c.DeliveryTimeout })},
	{name: "REQUEST_TIMEOUT", set: dur(func(c *Config) *time.Duration { return &c.RequestTimeout })},
	{name: "RETRIES", set: integer(func(c *Config) *int { return &c.Retries })},
	{name: "RETRY_BACKOFF_INITIAL", set: dur(func(c *Config) *time.Duration { return &c.RetryBackoff.Initial })},
	{name: "RETRY_BACKOFF_MAX", set: dur(func(c *Config) *time.Duration { return &c.RetryBackoff.Max })},
	{name: "MAX_IN_FLIGHT", set: integer(func(c *Config) *int { return &c.MaxInFlight })},
	{name: "PARTITIONER", set: func(c *Config, v string) error {
		c.Partitioner = Partitioner(strings.ToLower(v))
		_, err := c.Partitioner.build()
		return unwrapConfig(err)
	}},
	{name: "METADATA_MAX_AGE", set: dur(func(c *Config) *time.Duration { return &c.MetadataMaxAge })},
	{name: "METADATA_MIN_AGE", set: dur(func(c *Config) *time.Duration { return &c.MetadataMinAge })},
	{name: "AUTO_CREATE_TOPICS", set: boolean(func(c *Config) *bool { return &c.AutoCreateTopics })},
	{name: "TRANSACTIONAL_ID", set: str(func(c *Config) *string { return &c.TransactionalID })},
	{name: "TRANSACTION_TIMEOUT", set: dur(func(c *Config) *time.Duration { return &c.TransactionTimeout })},
	{name: "TLS_ENABLED", set: func(c *Config, v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		if on {
			tlsOf(c)
		} else {
			c.TLS = nil
		}
		return nil
	}},
	{name: "TLS_CA_FILE", set: str(func(c *Config) *string { return &tlsOf(c).CAFile })},
	{name: "TLS_CERT_FILE", set: str(func(c *Config) *string { return &tlsOf(c).CertFile })},
	{name: "TLS_KEY_FILE", set: str(func(c *Config) *string { return &tlsOf(c).KeyFile })},
	{name: "TLS_SERVER_NAME", set: str(func(c *Config) *string { return &tlsOf(c).ServerName })},
	{name: "TLS_INSECURE_SKIP_VERIFY", set: boolean(func(c *Config) *bool { return &tlsOf(c).InsecureSkipVerify })},
	{name: "SASL_MECHANISM", set: func(c *Config, v string) error {
		m := SASLMechanism(strings.ToUpper(v))
		switch m {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLOAuthBearer, SASLAWSMSKIAM:
			saslOf(c).Mechanism = m
			return nil
		}
		return fmt.Errorf("unknown mechanism: use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM")
	}},
	{name: "SASL_USERNAME", set: str(func(c *Config) *string { return &saslOf(c).Username })},
	{name: "SASL_PASSWORD", secret: true, set: func(c *Config, v string) error { saslOf(c).Password = Secret(v); return nil }},
	{name: "SASL_PASSWORD_FILE", secret: true, set: func(c *Config, v string) error {
		b, err := os.ReadFile(v)
		if err != nil {
			return err
		}
		saslOf(c).Password = Secret(strings.TrimRight(string(b), "\r\n"))
		return nil
	}},
}

// unwrapConfig turns a *ConfigError into its reason, for an error that
// already names the variable.
func unwrapConfig(err error) error {
	if ce, ok := errors.AsType[*ConfigError](err); ok {
		return errors.New(ce.Reason)
	}
	return err
}
