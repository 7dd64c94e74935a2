package kafkaproducer_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"go.uber.org/zap"
)

func TestValidateRejects(t *testing.T) {
	base := func() kafkaproducer.Config { return kafkaproducer.Config{Brokers: []string{"127.0.0.1:9092"}} }
	tests := []struct {
		name  string
		mod   func(*kafkaproducer.Config)
		field string // every field named must appear in the error
		hint  string
	}{
		{"no brokers", func(c *kafkaproducer.Config) { c.Brokers = nil }, "Brokers", "at least one"},
		{"comma broker list", func(c *kafkaproducer.Config) { c.Brokers = []string{"a:1,b:2"} }, "Brokers", "one broker per element"},
		{"unknown acks", func(c *kafkaproducer.Config) { c.Acks = "two" }, "Acks", `unknown acks "two"`},
		{"idempotence with acks leader", func(c *kafkaproducer.Config) { c.Acks = kafkaproducer.AcksLeader }, "Acks/DisableIdempotence", "set Acks to"},
		{"idempotence with acks none", func(c *kafkaproducer.Config) { c.Acks = kafkaproducer.AcksNone }, "Acks/DisableIdempotence", "DisableIdempotence to true"},
		{"transactional without idempotence", func(c *kafkaproducer.Config) {
			c.TransactionalID, c.DisableIdempotence = "tx", true
		}, "TransactionalID/DisableIdempotence", "require idempotence"},
		{"txn timeout without id", func(c *kafkaproducer.Config) { c.TransactionTimeout = time.Second }, "TransactionTimeout/TransactionalID", "set both"},
		{"unknown codec", func(c *kafkaproducer.Config) { c.Compression = "brotli" }, "Compression", `unknown codec "brotli"`},
		{"level on snappy", func(c *kafkaproducer.Config) { c.CompressionLevel = 3 }, "CompressionLevel/Compression", "takes no level"},
		{"gzip level", func(c *kafkaproducer.Config) { c.Compression, c.CompressionLevel = "gzip", 11 }, "CompressionLevel", "outside 1..9"},
		{"unknown partitioner", func(c *kafkaproducer.Config) { c.Partitioner = "crc" }, "Partitioner", "use one of java, librdkafka"},
		{"negative linger", func(c *kafkaproducer.Config) { c.Linger = -time.Second }, "Linger", "negative"},
		{"absurd linger", func(c *kafkaproducer.Config) { c.Linger = time.Hour }, "Linger", "limit"},
		{"negative delivery timeout", func(c *kafkaproducer.Config) { c.DeliveryTimeout = -1 }, "DeliveryTimeout", "negative"},
		{"delivery below a second", func(c *kafkaproducer.Config) {
			c.DeliveryTimeout, c.RequestTimeout, c.Linger = 500*time.Millisecond, 100*time.Millisecond, kafkaproducer.NoLinger
		}, "DeliveryTimeout", "1s minimum"},
		{"delivery below request", func(c *kafkaproducer.Config) {
			c.DeliveryTimeout, c.RequestTimeout = 5*time.Second, 30*time.Second
		}, "DeliveryTimeout/RequestTimeout", "raise DeliveryTimeout"},
		{"tiny batch", func(c *kafkaproducer.Config) { c.BatchMaxBytes = 100 }, "BatchMaxBytes", "outside 512"},
		{"negative buffered", func(c *kafkaproducer.Config) { c.MaxBufferedRecords = -1 }, "MaxBufferedRecords", "outside"},
		{"buffer below batch", func(c *kafkaproducer.Config) { c.MaxBufferedBytes, c.BatchMaxBytes = 1000, 4096 }, "MaxBufferedBytes/BatchMaxBytes", "smaller than one batch"},
		{"in flight with idempotence", func(c *kafkaproducer.Config) { c.MaxInFlight = 10 }, "MaxInFlight/DisableIdempotence", "exactly 5"},
		{"in flight below five with idempotence", func(c *kafkaproducer.Config) { c.MaxInFlight = 1 }, "MaxInFlight/DisableIdempotence", "set DisableIdempotence"},
		{"negative retries", func(c *kafkaproducer.Config) { c.Retries = -3 }, "Retries", "negative"},
		{"backoff inverted", func(c *kafkaproducer.Config) {
			c.RetryBackoff = kafkaproducer.Backoff{Initial: time.Second, Max: time.Millisecond}
		}, "RetryBackoff.Initial/RetryBackoff.Max", "exceeds"},
		{"metadata ages inverted", func(c *kafkaproducer.Config) { c.MetadataMinAge, c.MetadataMaxAge = time.Minute, time.Second }, "MetadataMinAge/MetadataMaxAge", "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			_, err := kafkaproducer.New(c)
			var ce *kafkaproducer.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("New: got %v, want *ConfigError", err)
			}
			if ce.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", ce.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.hint) {
				t.Errorf("error %q does not say %q", err, tt.hint)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, name := range presets.Names() {
		c, err := presets.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		c.Brokers = []string{"127.0.0.1:9092"}
		if err := c.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	ok := []kafkaproducer.Config{
		{Brokers: []string{"h:1"}, Acks: kafkaproducer.AcksNone, DisableIdempotence: true, MaxInFlight: 10},
		{Brokers: []string{"h:1"}, Compression: kafkaproducer.CompressionZstd, CompressionLevel: 3},
		{Brokers: []string{"h:1"}, Compression: kafkaproducer.CompressionGzip, CompressionLevel: 9},
		{Brokers: []string{"h:1"}, Linger: kafkaproducer.NoLinger, DeliveryTimeout: 10 * time.Second},
		{Brokers: []string{"h:1"}, TransactionalID: "t", TransactionTimeout: time.Minute},
	}
	for i, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("config %d: %v", i, err)
		}
	}
}

func TestConfigStringIsReadable(t *testing.T) {
	c := presets.Reliable()
	c.Brokers = []string{"127.0.0.1:9092"}
	c.Logger = zap.NewNop()
	s := c.String()
	for _, want := range []string{"Brokers: [127.0.0.1:9092]", "Acks: all", "DeliveryTimeout: 2m0s", "Logger: set", "Opts: 0 set", "Partitioner: java"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
}

func TestPresetsDiffer(t *testing.T) {
	r, h, l := presets.Reliable(), presets.HighThroughput(), presets.LowLatency()
	if h.MaxBufferedBytes <= r.MaxBufferedBytes || h.Compression != kafkaproducer.CompressionLZ4 {
		t.Errorf("high-throughput should buffer more bytes than reliable and use lz4: %v vs %v bytes, %v", h.MaxBufferedBytes, r.MaxBufferedBytes, h.Compression)
	}
	if l.Linger != kafkaproducer.NoLinger || l.Compression != kafkaproducer.CompressionNone {
		t.Errorf("low-latency should not linger or compress: %v %v", l.Linger, l.Compression)
	}
	if l.MetadataMinAge >= time.Second {
		t.Errorf("low-latency must notice leader changes fast, MetadataMinAge = %v", l.MetadataMinAge)
	}
	for _, c := range []kafkaproducer.Config{r, h, l} {
		if c.DisableIdempotence || c.Acks != kafkaproducer.AcksAll || c.DeliveryTimeout == 0 {
			t.Errorf("every preset must be idempotent, acks=all, with a delivery timeout:\n%s", c)
		}
	}
	if _, err := presets.ByName("fast"); err == nil || !strings.Contains(err.Error(), "high-throughput, low-latency, reliable") {
		t.Errorf("ByName(fast) = %v", err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want kafkaproducer.Class
	}{
		{nil, kafkaproducer.ClassNone},
		{kafkaproducer.ErrClosed, kafkaproducer.ClassClosed},
		{kafkaproducer.ErrBufferFull, kafkaproducer.ClassRetriable},
		{kafkaproducer.ErrDeliveryTimeout, kafkaproducer.ClassTimeout},
		{kafkaproducer.ErrNoTopic, kafkaproducer.ClassBadInput},
		{kafkaproducer.ErrFenced, kafkaproducer.ClassFatal},
		{&kafkaproducer.BadInputError{Topic: "t", Side: "value", Err: errors.New("x")}, kafkaproducer.ClassBadInput},
		{errors.New("who knows"), kafkaproducer.ClassFatal},
	}
	for _, tt := range tests {
		if got := kafkaproducer.Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if !kafkaproducer.IsRetriable(kafkaproducer.ErrBufferFull) || kafkaproducer.IsRetriable(kafkaproducer.ErrNoTopic) {
		t.Error("IsRetriable disagrees with Classify")
	}
	for _, c := range kafkaproducer.Classes() {
		if strings.HasPrefix(c.String(), "class(") {
			t.Errorf("class %d has no name", c)
		}
	}
}
