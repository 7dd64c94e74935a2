package kafkatest_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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

// TestSecuredCluster runs several brokers with TLS and SCRAM on both
// local backends: the producer and clients kafkatest hands out connect, a
// plaintext client does not.
func TestSecuredCluster(t *testing.T) {
	clearEnv(t)
	for _, b := range []kafkatest.Backend{kafkatest.BackendInProcess, kafkatest.BackendKfakeContainer} {
		t.Run(string(b), func(t *testing.T) {
			c := kafkatest.Start(t, kafkatest.WithBackend(b), kafkatest.WithBrokers(3), kafkatest.WithTLS(),
				kafkatest.WithSASL(kafkatest.SASL{Mechanism: kafkaproducer.SASLScramSHA512}), kafkatest.WithTopics(6, "secure"))
			if n := len(c.Brokers()); n != 3 {
				t.Fatalf("%d brokers, want 3", n)
			}
			if c.SASL() == nil || c.SASL().Username != "kafkatest" || c.SASL().Password == "" || c.TLSConfig() == nil || c.CAFile() == "" {
				t.Fatalf("SASL %+v, TLS %v, CA file %q: want generated credentials and a CA", c.SASL(), c.TLSConfig() != nil, c.CAFile())
			}
			sendAndRead(t, c, c.Topic("secure"))
			refused(t, c, "a plaintext client without credentials")
		})
	}
}

// TestKfakeContainerOptions checks, one at a time, the options the kfake
// container honours through cmd/kfake-broker's flags: -brokers, -tls-cert
// and -tls-key, -sasl. It skips without Docker.
func TestKfakeContainerOptions(t *testing.T) {
	clearEnv(t)
	start := func(t *testing.T, opts ...kafkatest.Option) *kafkatest.Cluster {
		t.Helper()
		c := kafkatest.Start(t, append(opts, kafkatest.WithBackend(kafkatest.BackendKfakeContainer))...)
		if c.Backend() != kafkatest.BackendKfakeContainer {
			t.Fatalf("backend %s, want kfake-container", c.Backend())
		}
		return c
	}
	t.Run("brokers", func(t *testing.T) {
		c := start(t, kafkatest.WithBrokers(3), kafkatest.WithTopics(6, "spread"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Every broker advertises the host port it is published on,
		// only those, and answers there.
		reachable := func() {
			t.Helper()
			adm := kadm.NewClient(c.Client(t))
			meta, err := adm.BrokerMetadata(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var advertised []string
			for _, b := range meta.Brokers {
				advertised = append(advertised, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
			}
			want := c.Brokers()
			slices.Sort(advertised)
			slices.Sort(want)
			if !slices.Equal(advertised, want) {
				t.Fatalf("metadata advertises %v, want the published addresses %v", advertised, want)
			}
			versions, err := adm.ApiVersions(ctx) // one request to each broker, at its advertised address
			if err != nil {
				t.Fatal(err)
			}
			if len(versions) != 3 {
				t.Fatalf("%d brokers answered ApiVersions, want 3", len(versions))
			}
			for _, v := range versions.Sorted() {
				if v.Err != nil {
					t.Fatalf("broker %d at its advertised address: %v", v.NodeID, v.Err)
				}
			}
		}
		reachable()
		// kfake picks partition leaders at random: a record per
		// partition, however they fall.
		cl := c.Client(t, kgo.DefaultProduceTopic(c.Topic("spread")), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		var recs []*kgo.Record
		for i := range 12 {
			recs = append(recs, &kgo.Record{Partition: int32(i % 6), Value: []byte(strconv.Itoa(i))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to every partition: %v", err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if err := c.Restart(ctx); err != nil {
			t.Fatalf("restart: %v", err)
		}
		if got := c.ReadAll(t, c.Topic("spread"), kafkatest.ReadCommitted, 20*time.Second); len(got) != 12 {
			t.Fatalf("after restart read %d records, want 12", len(got))
		}
		reachable()
	})
	t.Run("tls", func(t *testing.T) {
		c := start(t, kafkatest.WithTLS(), kafkatest.WithTopics(1, "tls"))
		if c.TLSConfig() == nil || c.CAFile() == "" || c.SASL() != nil {
			t.Fatalf("TLS %v, CA file %q, SASL %+v: want a CA and no SASL", c.TLSConfig() != nil, c.CAFile(), c.SASL())
		}
		sendAndRead(t, c, c.Topic("tls"))
		refused(t, c, "a plaintext client")
	})
	for _, mech := range []kafkaproducer.SASLMechanism{kafkaproducer.SASLPlain, kafkaproducer.SASLScramSHA256, kafkaproducer.SASLScramSHA512} {
		t.Run("sasl-"+string(mech), func(t *testing.T) {
			c := start(t, kafkatest.WithSASL(kafkatest.SASL{Mechanism: mech, Username: "svc", Password: "p:w=d"}), kafkatest.WithTopics(1, "sasl"))
			if s := c.SASL(); s == nil || s.Username != "svc" || s.Password != "p:w=d" || c.TLSConfig() != nil {
				t.Fatalf("SASL %+v, TLS %v: want the credentials given and no TLS", s, c.TLSConfig() != nil)
			}
			sendAndRead(t, c, c.Topic("sasl"))
			refused(t, c, "a client without credentials")
			wrong := kafkatest.SASL{Mechanism: mech, Username: "svc", Password: "wrong"}
			refused(t, c, "a client with a wrong password", kgo.SASL(kafkatest.SASLMechanism(wrong)))
		})
	}
}

// sendAndRead sends a record with the producer kafkatest builds and reads
// it back with its client.
func sendAndRead(t *testing.T, c *kafkatest.Cluster, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := c.Producer(t, kafkaproducer.Config{})
	if _, err := p.Send(ctx, kafkaproducer.Record{Topic: topic, Value: []byte("s")}); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := c.ReadAll(t, topic, kafkatest.ReadCommitted, 10*time.Second); len(got) != 1 {
		t.Fatalf("read %d records, want 1", len(got))
	}
}

// refused checks that a client with the seed brokers and opts only
// cannot use the cluster.
func refused(t *testing.T, c *kafkatest.Cluster, who string, opts ...kgo.Opt) {
	t.Helper()
	opts = append(opts, kgo.SeedBrokers(c.Brokers()...))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err == nil {
		t.Fatalf("%s reached the cluster", who)
	}
}

// TestUnsupportedOptions: an option a backend cannot honour skips a test
// that chose that backend (here the image backend, one plaintext broker;
// no image is pulled), saying why.
func TestUnsupportedOptions(t *testing.T) {
	clearEnv(t)
	t.Setenv(kafkatest.EnvRequire, "")
	tests := []struct {
		name string
		opt  kafkatest.Option
	}{
		{"WithBrokers", kafkatest.WithBrokers(2)},
		{"WithTLS", kafkatest.WithTLS()},
		{"WithSASL", kafkatest.WithSASL(kafkatest.SASL{Mechanism: kafkaproducer.SASLPlain})},
	}
	for _, tt := range tests {
		var skipped bool
		t.Run(tt.name, func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			kafkatest.Start(t, kafkatest.WithImage("apache/kafka:3.9.0"), tt.opt)
			t.Errorf("%s on the image backend neither skipped nor failed", tt.name)
		})
		if !skipped {
			t.Fatalf("%s: want a skip", tt.name)
		}
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
