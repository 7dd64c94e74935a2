package kafkaproducer_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
)

// What a team meets when it first points kprod at its own cluster.

// TestMissingTopic: on a broker with no topics, a record for a missing
// topic fails in about a second, naming the topic and both fixes; with
// AutoCreateTopics, a broker that allows auto-creation creates it.
func TestMissingTopic(t *testing.T) {
	t.Run("auto-creation off", func(t *testing.T) {
		c := testkit.Cluster(t, nil)
		p := testkit.Producer(t, c, presets.Reliable())
		start := time.Now()
		_, err := p.Send(testkit.Ctx(t, 30*time.Second), kafkaproducer.Record{Topic: "orders", Value: []byte("x")})
		took := time.Since(start)
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		for _, want := range []string{`topic "orders" does not exist`, "topics.Ensure", "AutoCreateTopics", "KPROD_AUTO_CREATE_TOPICS"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not say %q", err, want)
			}
		}
		if kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput {
			t.Errorf("class %v, want bad_input", kafkaproducer.Classify(err))
		}
		if took > 1500*time.Millisecond {
			t.Errorf("took %v, want about a second", took)
		}
	})
	t.Run("auto-creation on", func(t *testing.T) {
		c := testkit.Cluster(t, nil, kfake.AllowAutoTopicCreation())
		cfg := presets.Reliable()
		cfg.AutoCreateTopics = true
		p := testkit.Producer(t, c, cfg)
		res, err := p.Send(testkit.Ctx(t, 30*time.Second), kafkaproducer.Record{Topic: "orders", Value: []byte("x")})
		if err != nil || res.Offset != 0 {
			t.Fatalf("Send to a topic the broker creates: offset %d, %v", res.Offset, err)
		}
	})
}

// TestUnreachableBrokerIsNamed: a caller who stops waiting on a producer
// that cannot reach its brokers is told which broker and why, not just
// that its deadline passed.
func TestUnreachableBrokerIsNamed(t *testing.T) {
	cfg := presets.LowLatency()
	cfg.Brokers = []string{"127.0.0.1:1"}
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = p.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("x")})
	t.Logf("%v", err)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, kafkaproducer.ErrOutcomeUnknown) {
		t.Errorf("error %v, want the deadline and ErrOutcomeUnknown", err)
	}
	if ce, ok := errors.AsType[*kafkaproducer.ConnError](err); !ok || ce.Broker != "127.0.0.1:1" {
		t.Errorf("error %v does not name the broker it could not reach", err)
	}
	// The record Send stopped waiting for is still the producer's:
	// Close hands it back.
	cctx, ccancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer ccancel()
	cerr, _ := errors.AsType[*kafkaproducer.CloseError](p.Close(cctx))
	if cerr == nil || len(cerr.Undelivered) != 1 || !errors.Is(cerr.Undelivered[0].Err, kafkaproducer.ErrClosed) {
		t.Errorf("Close: %v, want the record back, failed with ErrClosed", cerr)
	}
}

// TestTooLargeNamesTheLimit: a record over the producer's own batch limit
// says so (the setting, its value and the record's size) rather than
// blaming the broker, and reports partition -1 since it was not written.
func TestTooLargeNamesTheLimit(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	p := testkit.Producer(t, c, presets.Reliable())
	res, err := p.Send(testkit.Ctx(t, 30*time.Second), kafkaproducer.Record{Topic: "orders", Value: bytes.Repeat([]byte("x"), 5_000_000)})
	t.Logf("%v", err)
	for _, want := range []string{"BatchMaxBytes (1000000)", "5000000 bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput || res.Partition != -1 || res.Offset != -1 {
		t.Errorf("class %v, partition %d, offset %d; want bad_input, -1, -1", kafkaproducer.Classify(err), res.Partition, res.Offset)
	}
}

// TestValidateReportsEveryProblem: a config with several mistakes names
// them all at once, each a *ConfigError.
func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := presets.Reliable()
	cfg.Brokers = nil
	cfg.Compression = "brotli"
	cfg.Retries = -1
	err := cfg.Validate()
	for _, want := range []string{"config Brokers", "config Compression", "config Retries"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
	if _, ok := errors.AsType[*kafkaproducer.ConfigError](err); !ok {
		t.Errorf("error %v is not a *ConfigError", err)
	}
}

// TestFromEnvNamesEveryBadVariable: every bad value is refused, each with
// its variable's name, and so is a variable kprod does not know.
func TestFromEnvNamesEveryBadVariable(t *testing.T) {
	t.Setenv("KPROD_BROKERS", "localhost:9092")
	t.Setenv("KPROD_COMPRESSION", "brotli")
	t.Setenv("KPROD_PARTITIONER", "random")
	t.Setenv("KPROD_LINGR", "5ms")
	_, err := kafkaproducer.FromEnv("KPROD_", presets.Reliable())
	t.Logf("%v", err)
	for _, want := range []string{"KPROD_COMPRESSION", "KPROD_PARTITIONER", "KPROD_LINGR: not a setting kprod reads (did you mean KPROD_LINGER?)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
	t.Setenv("KPROD_COMPRESSION", "zstd")
	t.Setenv("KPROD_PARTITIONER", "sarama")
	t.Setenv("KPROD_AUTO_CREATE_TOPICS", "true")
	if err := os.Unsetenv("KPROD_LINGR"); err != nil {
		t.Fatal(err)
	}
	cfg, err := kafkaproducer.FromEnv("KPROD_", presets.Reliable())
	if err != nil || !cfg.AutoCreateTopics || cfg.Compression != kafkaproducer.CompressionZstd {
		t.Errorf("FromEnv with good values: %v (AutoCreateTopics %v)", err, cfg.AutoCreateTopics)
	}
}
