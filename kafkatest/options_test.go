package kafkatest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/kafkatest"
)

// TestBrokerSettings checks the settings that work on both local
// backends: auto-creation off by default and on by option, and a broker
// config applied through kadm.
func TestBrokerSettings(t *testing.T) {
	clearEnv(t)
	for _, b := range []kafkatest.Backend{kafkatest.BackendInProcess, kafkatest.BackendKfakeContainer} {
		t.Run(string(b), func(t *testing.T) {
			t.Run("auto-create-off", func(t *testing.T) {
				c := kafkatest.Start(t, kafkatest.WithBackend(b))
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				err := c.Client(t, kgo.AllowAutoTopicCreation()).ProduceSync(ctx, &kgo.Record{Topic: "nowhere", Value: []byte("x")}).FirstErr()
				if err == nil {
					t.Fatal("produce to a missing topic succeeded: auto-creation should be off by default")
				}
			})
			t.Run("auto-create-on", func(t *testing.T) {
				c := kafkatest.Start(t, kafkatest.WithBackend(b), kafkatest.WithAutoCreateTopics())
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := c.Client(t, kgo.AllowAutoTopicCreation()).ProduceSync(ctx, &kgo.Record{Topic: "made-on-use", Value: []byte("x")}).FirstErr(); err != nil {
					t.Fatalf("produce with auto-creation: %v", err)
				}
			})
			t.Run("message-max-bytes", func(t *testing.T) {
				c := kafkatest.Start(t, kafkatest.WithBackend(b), kafkatest.WithTopics(1, "small"),
					kafkatest.WithBrokerConfig(map[string]string{"message.max.bytes": "2000"}))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				cl := c.Client(t, kgo.ProducerBatchCompression(kgo.NoCompression()))
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: c.Topic("small"), Value: make([]byte, 100)}).FirstErr(); err != nil {
					t.Fatalf("small record: %v", err)
				}
				err := cl.ProduceSync(ctx, &kgo.Record{Topic: c.Topic("small"), Value: make([]byte, 5000)}).FirstErr()
				if !errors.Is(err, kerr.MessageTooLarge) {
					t.Fatalf("5000-byte record with message.max.bytes=2000: %v, want MESSAGE_TOO_LARGE", err)
				}
			})
		})
	}
}

// TestSecuredCluster runs several brokers with TLS and SCRAM: the
// producer and clients kafkatest hands out connect, a plaintext client
// does not.
func TestSecuredCluster(t *testing.T) {
	clearEnv(t)
	c := kafkatest.Start(t, kafkatest.WithBackend(kafkatest.BackendInProcess), kafkatest.WithBrokers(3), kafkatest.WithTLS(),
		kafkatest.WithSASL(kafkatest.SASL{Mechanism: kafkaproducer.SASLScramSHA512}), kafkatest.WithTopics(6, "secure"))
	if n := len(c.Brokers()); n != 3 {
		t.Fatalf("%d brokers, want 3", n)
	}
	if c.SASL() == nil || c.SASL().Username != "kafkatest" || c.SASL().Password == "" || c.TLSConfig() == nil || c.CAFile() == "" {
		t.Fatalf("SASL %+v, TLS %v, CA file %q: want generated credentials and a CA", c.SASL(), c.TLSConfig() != nil, c.CAFile())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := c.Producer(t, kafkaproducer.Config{})
	if _, err := p.Send(ctx, kafkaproducer.Record{Topic: c.Topic("secure"), Value: []byte("s")}); err != nil {
		t.Fatalf("send over TLS and SCRAM: %v", err)
	}
	if got := c.ReadAll(t, c.Topic("secure"), kafkatest.ReadCommitted, 10*time.Second); len(got) != 1 {
		t.Fatalf("read %d records, want 1", len(got))
	}
	plain, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	if err := plain.Ping(pctx); err == nil {
		t.Fatal("a plaintext client without credentials reached the cluster")
	}
}

// TestUnsupportedOptions: an option a backend cannot honour makes the
// automatic choice pass over it (saying why), and skips a test that chose
// that backend.
func TestUnsupportedOptions(t *testing.T) {
	clearEnv(t)
	t.Setenv(kafkatest.EnvRequire, "")
	c := kafkatest.Start(t, kafkatest.WithTLS())
	if c.Backend() != kafkatest.BackendInProcess || !strings.Contains(c.FellBack(), "kfake-container: cannot WithTLS") {
		t.Fatalf("backend %s, passed over %q: want kfake, passing over kfake-container for WithTLS", c.Backend(), c.FellBack())
	}
	var skipped bool
	t.Run("chosen", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		kafkatest.Start(t, kafkatest.WithBackend(kafkatest.BackendKfakeContainer), kafkatest.WithBrokers(2))
		t.Error("WithBrokers(2) on kfake-container neither skipped nor failed")
	})
	if !skipped {
		t.Fatal("want a skip")
	}
}

// TestSchemaRegistry registers a schema with franz-go's sr client.
func TestSchemaRegistry(t *testing.T) {
	clearEnv(t)
	c := kafkatest.Start(t, kafkatest.WithBackend(kafkatest.BackendInProcess), kafkatest.WithSchemaRegistry())
	if !strings.HasPrefix(c.SchemaRegistryURL(), "http://127.0.0.1:") {
		t.Fatalf("SchemaRegistryURL() = %q", c.SchemaRegistryURL())
	}
	rcl, err := sr.NewClient(sr.URLs(c.SchemaRegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ss, err := rcl.CreateSchema(ctx, "orders-value", sr.Schema{Schema: `{"type":"string"}`, Type: sr.TypeAvro})
	if err != nil || ss.ID == 0 {
		t.Fatalf("register a schema: %+v, %v", ss, err)
	}
}
