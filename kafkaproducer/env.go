package kafkaproducer

import (
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
// (SASL_PASSWORD_FILE) so they stay out of the process environment. A bad
// value gives an error naming the variable (never echoing a secret). The
// result is not validated: New does that.
func FromEnv(prefix string, base Config) (Config, error) {
	return FromLookup(prefix, base, os.LookupEnv)
}

// FromLookup is FromEnv with the variables looked up by lookup.
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
	for _, s := range envSetters {
		v, ok := lookup(prefix + s.name)
		if !ok {
			continue
		}
		if err := s.set(&c, strings.TrimSpace(v)); err != nil {
			if s.secret {
				return base, fmt.Errorf("kprod: env %s%s: invalid value", prefix, s.name)
			}
			return base, fmt.Errorf("kprod: env %s%s=%q: %w", prefix, s.name, v, err)
		}
	}
	return c, nil
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
		c.DisableIdempotence = !b
		return err
	}},
	{name: "COMPRESSION", set: func(c *Config, v string) error { c.Compression = Compression(strings.ToLower(v)); return nil }},
	{name: "COMPRESSION_LEVEL", set: integer(func(c *Config) *int { return &c.CompressionLevel })},
	{name: "LINGER", set: dur(func(c *Config) *time.Duration { return &c.Linger })},
	{name: "BATCH_MAX_BYTES", set: func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		c.BatchMaxBytes = int32(n)
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
	{name: "PARTITIONER", set: func(c *Config, v string) error { c.Partitioner = Partitioner(strings.ToLower(v)); return nil }},
	{name: "METADATA_MAX_AGE", set: dur(func(c *Config) *time.Duration { return &c.MetadataMaxAge })},
	{name: "METADATA_MIN_AGE", set: dur(func(c *Config) *time.Duration { return &c.MetadataMinAge })},
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
	{name: "SASL_MECHANISM", set: func(c *Config, v string) error { saslOf(c).Mechanism = SASLMechanism(strings.ToUpper(v)); return nil }},
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
