package kafkaproducer_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const secretPass = "s3cr3t-hunter2-pw"

// pki writes a CA and a server certificate for 127.0.0.1 / localhost into
// dir, and returns the server's tls.Config and the CA file path.
func pki(t *testing.T, dir, name string) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, name+"-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	// A client certificate from the same CA, for mutual TLS.
	cliKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cliTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "orders-api"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	cliDER, err := x509.CreateCertificate(rand.Reader, cliTmpl, ca, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(cliKey)
	for file, block := range map[string]*pem.Block{
		name + "-client.pem":     {Type: "CERTIFICATE", Bytes: cliDER},
		name + "-client-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}, ClientCAs: pool, MinVersion: tls.VersionTLS12}, caFile
}

// TestMutualTLS: a broker that requires client certificates takes ours
// and refuses a client without one, clearly and fast.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	srvTLS, caFile := pki(t, dir, "m")
	srvTLS.ClientAuth = tls.RequireAndVerifyClientCert
	c := testkit.Cluster(t, []string{"orders"}, kfake.TLS(srvTLS))

	cfg := presets.LowLatency()
	cfg.TLS = &kafkaproducer.TLSConfig{CAFile: caFile, CertFile: filepath.Join(dir, "m-client.pem"), KeyFile: filepath.Join(dir, "m-client-key.pem")}
	if _, err := testkit.Producer(t, c, cfg).Send(testkit.Ctx(t, 10*time.Second), rec("orders", 1)); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}

	cfg.TLS = &kafkaproducer.TLSConfig{CAFile: caFile}
	start := time.Now()
	_, err := testkit.Producer(t, c, cfg).Send(testkit.Ctx(t, 20*time.Second), rec("orders", 2))
	if kafkaproducer.Classify(err) != kafkaproducer.ClassAuthorization {
		t.Fatalf("without a client certificate: want authorization, got %v", err)
	}
	t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err)

	if strings.Contains(cfg.String()+fmt.Sprint(err), "PRIVATE KEY") {
		t.Fatal("key material printed")
	}
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// captured returns a logger writing everything (debug and up) to buf.
func captured(buf *lockedBuffer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(buf), zap.DebugLevel))
}

func TestSASLAndACLs(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "audit"},
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-pw"),
		kfake.User("SCRAM-SHA-512", "writer", secretPass,
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "orders", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationWrite, Allow: true},
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true},
			kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationIdempotentWrite, Allow: true},
		),
	)
	user := func(pass string, log *zap.Logger) kafkaproducer.Config {
		cfg := presets.Reliable()
		cfg.SASL = &kafkaproducer.SASLConfig{Mechanism: kafkaproducer.SASLScramSHA512, Username: "writer", Password: kafkaproducer.Secret(pass)}
		cfg.Logger = log
		return cfg
	}
	t.Run("right credentials produce", func(t *testing.T) {
		p := testkit.Producer(t, c, user(secretPass, nil))
		if _, err := p.Send(testkit.Ctx(t, 10*time.Second), rec("orders", 1)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no WRITE on the topic", func(t *testing.T) {
		p := testkit.Producer(t, c, user(secretPass, nil))
		start := time.Now()
		_, err := p.Send(testkit.Ctx(t, 20*time.Second), rec("audit", 1))
		if kafkaproducer.Classify(err) != kafkaproducer.ClassAuthorization || kafkaproducer.IsRetriable(err) {
			t.Fatalf("want a non-retriable authorization error, got %v", err)
		}
		t.Logf("denied in %v: %v", time.Since(start).Round(time.Millisecond), err)
	})
	t.Run("wrong password fails fast and never leaks", func(t *testing.T) {
		var logs lockedBuffer
		const wrong = "wr0ng-pa55-zebra"
		cfg := user(wrong, captured(&logs))
		p := testkit.Producer(t, c, cfg)
		start := time.Now()
		_, err := p.Send(testkit.Ctx(t, 20*time.Second), rec("orders", 1))
		el := time.Since(start)
		if kafkaproducer.Classify(err) != kafkaproducer.ClassAuthorization {
			t.Fatalf("want an authorization error, got %v", err)
		}
		if el > 5*time.Second {
			t.Errorf("authentication failure took %v", el)
		}
		pingErr := p.Ping(testkit.Ctx(t, 5*time.Second))
		_ = p.Close(context.Background())
		all := strings.Join([]string{err.Error(), fmt.Sprint(pingErr), logs.String(), cfg.String(), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg.SASL)}, "\n")
		for _, secret := range []string{wrong, secretPass} {
			if strings.Contains(all, secret) {
				t.Fatalf("a password appears in errors, logs or the printed config")
			}
		}
		if !strings.Contains(cfg.String(), `SCRAM-SHA-512 as "writer"`) || logs.String() == "" {
			t.Errorf("the config and logs should still say who tried: %s", cfg.SASL)
		}
		t.Logf("failed in %v: %v", el.Round(time.Millisecond), err)
	})
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	srvTLS, caFile := pki(t, dir, "good")
	_, otherCA := pki(t, dir, "other")
	c := testkit.Cluster(t, []string{"orders"}, kfake.TLS(srvTLS))
	port := c.ListenAddrs()[0][strings.LastIndexByte(c.ListenAddrs()[0], ':')+1:]

	tests := []struct {
		name    string
		brokers []string
		tls     *kafkaproducer.TLSConfig
		ok      bool
	}{
		{"right CA", c.ListenAddrs(), &kafkaproducer.TLSConfig{CAFile: caFile}, true},
		{"right CA by host name", []string{"localhost:" + port}, &kafkaproducer.TLSConfig{CAFile: caFile}, true},
		{"wrong CA", c.ListenAddrs(), &kafkaproducer.TLSConfig{CAFile: otherCA}, false},
		{"wrong host name", c.ListenAddrs(), &kafkaproducer.TLSConfig{CAFile: caFile, ServerName: "kafka.example.com"}, false},
		{"system roots", c.ListenAddrs(), &kafkaproducer.TLSConfig{}, false},
		{"plaintext against TLS", c.ListenAddrs(), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := presets.LowLatency()
			cfg.TLS = tt.tls
			cfg.Brokers = tt.brokers
			p, err := kafkaproducer.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			start := time.Now()
			_, err = p.Send(testkit.Ctx(t, 20*time.Second), rec("orders", 1))
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("send succeeded")
			}
			var ce *kafkaproducer.ConnError
			if c := kafkaproducer.Classify(err); c != kafkaproducer.ClassAuthorization || !errors.As(err, &ce) {
				t.Fatalf("class %v after %v: %v", c, time.Since(start), err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v to fail", time.Since(start))
			}
			t.Logf("%v after %v: %v", kafkaproducer.Classify(err), time.Since(start).Round(time.Millisecond), err)
		})
	}
}

func TestSecurityConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	tests := []struct {
		name  string
		mod   func(*kafkaproducer.Config)
		field string
	}{
		{"unknown mechanism", func(c *kafkaproducer.Config) { c.SASL = &kafkaproducer.SASLConfig{Mechanism: "GSSAPI"} }, "SASL.Mechanism"},
		{"scram without password", func(c *kafkaproducer.Config) {
			c.SASL = &kafkaproducer.SASLConfig{Mechanism: kafkaproducer.SASLScramSHA256, Username: "u"}
		}, "SASL.Username/SASL.Password"},
		{"oauth without token", func(c *kafkaproducer.Config) {
			c.SASL = &kafkaproducer.SASLConfig{Mechanism: kafkaproducer.SASLOAuthBearer}
		}, "SASL.Token"},
		{"msk iam without credentials", func(c *kafkaproducer.Config) {
			c.SASL = &kafkaproducer.SASLConfig{Mechanism: kafkaproducer.SASLAWSMSKIAM}
		}, "SASL.AWS"},
		{"cert without key", func(c *kafkaproducer.Config) { c.TLS = &kafkaproducer.TLSConfig{CertFile: notPEM} }, "TLS.CertFile/TLS.KeyFile"},
		{"missing CA file", func(c *kafkaproducer.Config) {
			c.TLS = &kafkaproducer.TLSConfig{CAFile: filepath.Join(dir, "nope.pem")}
		}, "TLS.CAFile"},
		{"CA file without PEM", func(c *kafkaproducer.Config) { c.TLS = &kafkaproducer.TLSConfig{CAFile: notPEM} }, "TLS.CAFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := kafkaproducer.Config{Brokers: []string{"127.0.0.1:1"}}
			tt.mod(&cfg)
			var ce *kafkaproducer.ConfigError
			if err := cfg.Validate(); !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("got %v, want a ConfigError on %s", err, tt.field)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := kafkaproducer.Secret(secretPass)
	b, _ := s.MarshalText()
	for _, out := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), string(b)} {
		if strings.Contains(out, secretPass) {
			t.Fatalf("secret printed: %q", out)
		}
	}
	if s.Reveal() != secretPass {
		t.Fatal("Reveal lost the value")
	}
}
