package kafkaproducer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Secret is a string that never prints: String, GoString, Format and
// MarshalText all give "[redacted]" (or "" when empty), so a Secret in a
// Config, a log field or an error stays hidden. Reveal returns the value.
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `kafkaproducer.Secret("` + s.String() + `")` }

// MarshalText keeps encoders (JSON, YAML, zap.Any) from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs to trust. Empty means the system
	// roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and key (PEM) for
	// mutual TLS. Both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name the broker certificate must carry.
	// Empty means the host of each broker address.
	ServerName string
	// InsecureSkipVerify accepts any broker certificate. Only for tests:
	// it removes TLS's protection against impostors.
	InsecureSkipVerify bool
}

// SASLMechanism names a SASL mechanism.
type SASLMechanism string

// The SASL mechanisms kprod supports.
const (
	SASLPlain       SASLMechanism = "PLAIN"
	SASLScramSHA256 SASLMechanism = "SCRAM-SHA-256"
	SASLScramSHA512 SASLMechanism = "SCRAM-SHA-512"
	SASLOAuthBearer SASLMechanism = "OAUTHBEARER"
	SASLAWSMSKIAM   SASLMechanism = "AWS_MSK_IAM"
)

// SASLConfig authenticates to the brokers.
type SASLConfig struct {
	Mechanism SASLMechanism
	// Username and Password, for PLAIN and SCRAM.
	Username string
	Password Secret
	// Token returns an OAuth bearer token, for OAUTHBEARER. It is called
	// on every new connection; cache and refresh tokens in it.
	Token func(ctx context.Context) (string, error) `kprod:"-"`
	// AWS returns credentials, for AWS_MSK_IAM (through franz-go's
	// sasl/aws). It is called on every new connection.
	AWS func(ctx context.Context) (aws.Auth, error) `kprod:"-"`
}

func (s *SASLConfig) validate() error {
	switch s.Mechanism {
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" || s.Password == "" {
			return cfgErr("SASL.Username/SASL.Password", "mechanism %s needs both a username and a password", s.Mechanism)
		}
		if s.Token != nil || s.AWS != nil {
			return cfgErr("SASL.Token/SASL.AWS", "mechanism %s uses a username and password; unset Token and AWS", s.Mechanism)
		}
	case SASLOAuthBearer:
		if s.Token == nil {
			return cfgErr("SASL.Token", "mechanism OAUTHBEARER needs a Token function")
		}
	case SASLAWSMSKIAM:
		if s.AWS == nil {
			return cfgErr("SASL.AWS", "mechanism AWS_MSK_IAM needs an AWS credentials function")
		}
	default:
		return cfgErr("SASL.Mechanism", "unknown mechanism %q: use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM", s.Mechanism)
	}
	return nil
}

func (s *SASLConfig) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha512Mechanism()
	case SASLOAuthBearer:
		tok := s.Token
		return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
			t, err := tok(ctx)
			return oauth.Auth{Token: t}, err
		})
	default:
		return aws.ManagedStreamingIAM(s.AWS)
	}
}

func (t *TLSConfig) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return cfgErr("TLS.CertFile/TLS.KeyFile", "mutual TLS needs both a certificate and a key file")
	}
	_, err := t.build()
	return err
}

// build loads the files and returns a crypto/tls config.
func (t *TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // only when asked for by name
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, cfgErr("TLS.CAFile", "read %s: %v", t.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, cfgErr("TLS.CAFile", "%s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// The error names the files, never their contents.
			return nil, cfgErr("TLS.CertFile/TLS.KeyFile", "load %s and %s: %v", t.CertFile, t.KeyFile, scrubPEM(err))
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// scrubPEM keeps only the first line of a crypto error, which is where the
// standard library puts its reason; nothing of the key follows it.
func scrubPEM(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// securityOpts returns the franz-go options for TLS and SASL.
func (c Config) securityOpts() []kgo.Opt {
	var opts []kgo.Opt
	if c.TLS != nil {
		tc, _ := c.TLS.build()
		dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}
		opts = append(opts, kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			// Each broker is verified against its own host name
			// unless ServerName pins one.
			cfg := tc
			if cfg.ServerName == "" {
				if h, _, err := net.SplitHostPort(host); err == nil {
					cfg = tc.Clone()
					cfg.ServerName = h
				}
			}
			d := *dialer
			d.Config = cfg
			return d.DialContext(ctx, network, host)
		}))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL.mechanism()))
	}
	return opts
}

// String names the mechanism and user, never the password, token or
// credentials function.
func (s *SASLConfig) String() string {
	if s == nil {
		return "none"
	}
	if s.Username != "" {
		return fmt.Sprintf("%s as %q", s.Mechanism, s.Username)
	}
	return string(s.Mechanism)
}

// String summarises the TLS settings (file names, not contents).
func (t *TLSConfig) String() string {
	if t == nil {
		return "off"
	}
	parts := []string{"on"}
	if t.CAFile != "" {
		parts = append(parts, "ca="+t.CAFile)
	}
	if t.CertFile != "" {
		parts = append(parts, "cert="+t.CertFile, "key="+t.KeyFile)
	}
	if t.ServerName != "" {
		parts = append(parts, "server-name="+t.ServerName)
	}
	if t.InsecureSkipVerify {
		parts = append(parts, "INSECURE-skip-verify")
	}
	return strings.Join(parts, " ")
}
