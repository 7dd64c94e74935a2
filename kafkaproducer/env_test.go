package kafkaproducer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestFromEnv(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(secretPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"APP_BROKERS":            "k1:9092, k2:9092",
		"APP_ACKS":               "-1",
		"APP_LINGER":             "15ms",
		"APP_COMPRESSION":        "ZSTD",
		"APP_MAX_IN_FLIGHT":      "5",
		"APP_TLS_CA_FILE":        "/etc/ca.pem",
		"APP_SASL_MECHANISM":     "scram-sha-512",
		"APP_SASL_USERNAME":      "svc",
		"APP_SASL_PASSWORD_FILE": pwFile,
	}
	base := presets.Reliable()
	cfg, err := kafkaproducer.FromLookup("APP_", base, lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Brokers, ",") != "k1:9092,k2:9092" || cfg.Linger != 15*time.Millisecond ||
		cfg.Compression != kafkaproducer.CompressionZstd || cfg.MaxInFlight != 5 || cfg.Acks != kafkaproducer.AcksAll {
		t.Fatalf("overlay wrong:\n%s", cfg)
	}
	if cfg.TLS == nil || cfg.TLS.CAFile != "/etc/ca.pem" || cfg.SASL.Mechanism != kafkaproducer.SASLScramSHA512 || cfg.SASL.Password.Reveal() != secretPass {
		t.Fatalf("security overlay wrong: %v %v", cfg.TLS, cfg.SASL)
	}
	if cfg.DeliveryTimeout != base.DeliveryTimeout {
		t.Fatal("unset variables must leave the base alone")
	}
	if strings.Contains(cfg.String(), secretPass) {
		t.Fatal("printed config shows the password")
	}

	bad := []struct {
		k, v, want string
	}{
		{"APP_LINGER", "soon", `APP_LINGER="soon"`},
		{"APP_ACKS", "2", "use all, leader or none"},
		{"APP_BROKERS", " , ", "no broker"},
		{"APP_SASL_PASSWORD_FILE", "/no/such/file", "APP_SASL_PASSWORD_FILE: invalid value"},
	}
	for _, b := range bad {
		_, err := kafkaproducer.FromLookup("APP_", base, lookup(map[string]string{b.k: b.v}))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s=%q: %v, want %q", b.k, b.v, err, b.want)
		}
	}
}

// FuzzFromLookup: no value of any variable panics, and a config that
// loads either validates or gives a ConfigError.
func FuzzFromLookup(f *testing.F) {
	f.Add("BROKERS", "a:1,b:2")
	f.Add("LINGER", "-5ms")
	f.Add("BATCH_MAX_BYTES", "99999999999")
	f.Add("COMPRESSION_LEVEL", "x")
	f.Add("ACKS", "leader")
	f.Fuzz(func(t *testing.T, name, value string) {
		base := presets.LowLatency()
		base.Brokers = []string{"127.0.0.1:9092"}
		cfg, err := kafkaproducer.FromLookup("F_", base, lookup(map[string]string{"F_" + name: value}))
		if err != nil {
			return
		}
		_ = cfg.Validate()
		_ = cfg.String()
	})
}
