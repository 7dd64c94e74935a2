package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// security is a cluster's TLS and SASL settings; nil for a plaintext
// cluster without authentication.
type security struct {
	server *tls.Config // the broker's
	client *tls.Config // trusts the cluster's CA
	caFile string
	// certPEM and keyPEM are the broker's certificate and key, for a
	// broker in a container, which reads them from files.
	certPEM, keyPEM []byte
	sasl            *SASL
}

func newSecurity(t testing.TB, cfg *config) (*security, error) {
	if !cfg.tls && cfg.sasl == nil {
		return nil, nil
	}
	s := &security{}
	if cfg.tls {
		ca, err := newCertificates()
		if err != nil {
			return nil, fmt.Errorf("WithTLS: %w", err)
		}
		s.server, s.client = ca.server, ca.client
		s.certPEM, s.keyPEM = ca.certPEM, ca.keyPEM
		s.caFile = filepath.Join(t.TempDir(), "kafkatest-ca.pem")
		if err := os.WriteFile(s.caFile, ca.caPEM, 0o600); err != nil {
			return nil, fmt.Errorf("WithTLS: %w", err)
		}
	}
	if cfg.sasl != nil {
		creds := *cfg.sasl
		if creds.Username == "" {
			creds.Username, creds.Password = "kafkatest", randHex(12)
		}
		s.sasl = &creds
	}
	return s, nil
}

// kfakeOpts are the broker's side.
func (s *security) kfakeOpts() []kfake.Opt {
	if s == nil {
		return nil
	}
	var opts []kfake.Opt
	if s.server != nil {
		opts = append(opts, kfake.TLS(s.server))
	}
	if s.sasl != nil {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(string(s.sasl.Mechanism), s.sasl.Username, s.sasl.Password))
	}
	return opts
}

func (s *security) clientOpts() []kgo.Opt {
	if s == nil {
		return nil
	}
	var opts []kgo.Opt
	if s.client != nil {
		opts = append(opts, kgo.DialTLSConfig(s.client.Clone()))
	}
	if s.sasl != nil {
		opts = append(opts, kgo.SASL(s.sasl.mechanism()))
	}
	return opts
}

func (s *SASL) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case kafkaproducer.SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case kafkaproducer.SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	default:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	}
}

func (s *security) producerConfig(cfg *kafkaproducer.Config) {
	if s == nil {
		return
	}
	if s.caFile != "" {
		cfg.TLS = &kafkaproducer.TLSConfig{CAFile: s.caFile}
	}
	if s.sasl != nil {
		cfg.SASL = &kafkaproducer.SASLConfig{Mechanism: s.sasl.Mechanism, Username: s.sasl.Username, Password: kafkaproducer.Secret(s.sasl.Password)}
	}
}

// TLSConfig returns a client TLS configuration that trusts the cluster's
// certificate authority, or nil if the cluster was not started WithTLS.
func (c *Cluster) TLSConfig() *tls.Config {
	if c.sec == nil || c.sec.client == nil {
		return nil
	}
	return c.sec.client.Clone()
}

// CAFile returns the path of the cluster's CA certificate (PEM), for
// clients configured with files (kafkaproducer.TLSConfig.CAFile, kcat's
// ssl.ca.location), or "" if the cluster was not started WithTLS. It is
// removed when the test ends.
func (c *Cluster) CAFile() string {
	if c.sec == nil {
		return ""
	}
	return c.sec.caFile
}

// SASL returns the mechanism and credentials the cluster requires, or
// nil if it was not started WithSASL.
func (c *Cluster) SASL() *SASL {
	if c.sec == nil || c.sec.sasl == nil {
		return nil
	}
	s := *c.sec.sasl
	return &s
}

type certificates struct {
	server, client         *tls.Config
	caPEM, certPEM, keyPEM []byte
}

// newCertificates makes a CA and a broker certificate signed by it for
// 127.0.0.1, ::1 and localhost, valid for a day, in memory.
func newCertificates() (*certificates, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kafkatest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kafkatest broker"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &certificates{
		server: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
			MinVersion:   tls.VersionTLS12,
		},
		client:  &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}
