package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kprod/kprod/kafkatest"
)

func TestMain(m *testing.M) {
	// No registry is reachable here, so testcontainers' reaper image
	// cannot be pulled; kafkatest removes its containers itself.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	goleak.VerifyTestMain(m)
}

// clearEnv makes Start choose by its options only.
func clearEnv(t *testing.T) {
	for _, k := range []string{kafkatest.EnvBootstrap, kafkatest.EnvBackend, kafkatest.EnvImage, "KAFKA_BOOTSTRAP_SERVERS"} {
		t.Setenv(k, "")
	}
}

func produce(t *testing.T, c *kafkatest.Cluster, topic string, n int) {
	t.Helper()
	cl := c.Client(t, kgo.DefaultProduceTopic(topic))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func values(recs []*kgo.Record) map[string]bool {
	out := make(map[string]bool)
	for _, r := range recs {
		out[string(r.Value)] = true
	}
	return out
}

// TestFaultCycle runs every fault helper on each local backend: data
// written before a stop is there after the restart, a stopped broker
// refuses, a paused one does not answer, and both come back.
func TestFaultCycle(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		backend kafkatest.Backend
	}{
		{kafkatest.BackendInProcess},
		{kafkatest.BackendKfakeContainer},
	}
	for _, tt := range tests {
		t.Run(string(tt.backend), func(t *testing.T) {
			c := kafkatest.Start(t, kafkatest.WithBackend(tt.backend), kafkatest.WithTopics(3, "faults"))
			if c.Backend() != tt.backend {
				t.Fatalf("backend %s, want %s", c.Backend(), tt.backend)
			}
			produce(t, c, "faults", 30)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			if err := c.Stop(ctx); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if err := c.Stop(ctx); err == nil {
				t.Fatal("second stop: want an error, the broker is already stopped")
			}
			probe := c.Client(t)
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			err := probe.Ping(pctx)
			pcancel()
			if err == nil {
				t.Fatal("ping a stopped broker: want an error")
			}
			if err := c.Restart(ctx); err != nil {
				t.Fatalf("restart: %v", err)
			}
			got := c.ReadAll(t, "faults", kafkatest.ReadUncommitted, 20*time.Second)
			if len(got) != 30 || len(values(got)) != 30 {
				t.Fatalf("after restart read %d records (%d distinct), want the 30 written before the stop", len(got), len(values(got)))
			}

			if err := c.Pause(ctx); err != nil {
				t.Fatalf("pause: %v", err)
			}
			pctx, pcancel = context.WithTimeout(ctx, 500*time.Millisecond)
			start := time.Now()
			err = c.Client(t).Ping(pctx)
			pcancel()
			if err == nil {
				t.Fatal("ping a paused broker: want a timeout")
			}
			if waited := time.Since(start); waited < 400*time.Millisecond {
				t.Fatalf("ping a paused broker failed after %v (%v): want it to hang until its deadline", waited, err)
			}
			if err := c.Unpause(ctx); err != nil {
				t.Fatalf("unpause: %v", err)
			}
			produce(t, c, "faults", 5)
			if got := c.ReadAll(t, "faults", kafkatest.ReadUncommitted, 20*time.Second); len(got) != 35 {
				t.Fatalf("after unpause read %d records, want 35", len(got))
			}
		})
	}
}

// TestReadAllIsolation checks ReadAll against committed, aborted and
// plain records.
func TestReadAllIsolation(t *testing.T) {
	clearEnv(t)
	c := kafkatest.Start(t, kafkatest.WithBackend(kafkatest.BackendInProcess), kafkatest.WithTopics(2, "iso"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx := c.Client(t, kgo.TransactionalID("kafkatest-iso"), kgo.DefaultProduceTopic("iso"))
	for _, commit := range []bool{true, false, true} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := tx.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%v-%d", commit, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	produce(t, c, "iso", 2)
	tests := []struct {
		iso  kafkatest.Isolation
		want int
	}{
		{kafkatest.ReadCommitted, 6 + 2},
		{kafkatest.ReadUncommitted, 9 + 2},
	}
	for _, tt := range tests {
		t.Run(tt.iso.String(), func(t *testing.T) {
			got := c.ReadAll(t, "iso", tt.iso, 10*time.Second)
			if len(got) != tt.want {
				t.Fatalf("read %d records, want %d", len(got), tt.want)
			}
			for _, r := range got {
				if tt.iso == kafkatest.ReadCommitted && strings.HasPrefix(string(r.Value), "false") {
					t.Fatalf("read_committed returned aborted record %q", r.Value)
				}
			}
		})
	}
}

// TestExternal uses a cluster named by KAFKATEST_BOOTSTRAP_SERVERS and
// leaves it running, without the topics the test made; a cluster named by
// KAFKA_BOOTSTRAP_SERVERS is never touched.
func TestExternal(t *testing.T) {
	clearEnv(t)
	ext := newKfake(t)
	bystander := newKfake(t)
	t.Setenv(kafkatest.EnvBootstrap, strings.Join(ext.ListenAddrs(), ","))
	t.Setenv("KAFKA_BOOTSTRAP_SERVERS", strings.Join(bystander.ListenAddrs(), ","))
	var topics []string
	t.Run("use", func(t *testing.T) {
		c := kafkatest.Start(t, kafkatest.WithTopics(2, "orders"))
		if c.Backend() != kafkatest.BackendExternal {
			t.Fatalf("backend %s, want external", c.Backend())
		}
		if c.Brokers()[0] != ext.ListenAddrs()[0] {
			t.Fatalf("brokers %v, want the KAFKATEST_BOOTSTRAP_SERVERS cluster %v", c.Brokers(), ext.ListenAddrs())
		}
		orders := c.Topic("orders")
		if orders == "orders" || !strings.HasSuffix(orders, "-orders") {
			t.Fatalf("Topic(orders) = %q, want a prefix unique to the test", orders)
		}
		topic := c.NewTopic(t, 1)
		topics = []string{orders, topic}
		produce(t, c, topic, 3)
		produce(t, c, orders, 2)
		if got := c.ReadAll(t, topic, kafkatest.ReadCommitted, 10*time.Second); len(got) != 3 {
			t.Fatalf("read %d, want 3", len(got))
		}
		if err := c.Restart(context.Background()); !errors.Is(err, kafkatest.ErrUnsupported) || strings.Count(err.Error(), "kafkatest:") != 1 {
			t.Fatalf("restart external: %v, want ErrUnsupported with one prefix", err)
		}
		if err := c.Unpause(context.Background()); !errors.Is(err, kafkatest.ErrUnsupported) {
			t.Fatalf("unpause external: %v, want ErrUnsupported", err)
		}
		for _, op := range []string{"stop", "pause"} {
			var skipped bool
			t.Run(op, func(t *testing.T) {
				defer func() { skipped = t.Skipped() }()
				sub := kafkatest.Start(t) // the skip is the test's that started it
				if op == "stop" {
					_ = sub.Stop(context.Background())
				} else {
					_ = sub.Pause(context.Background())
				}
				t.Errorf("%s on an external cluster returned instead of skipping", op)
			})
			if !skipped {
				t.Fatalf("%s on an external cluster did not skip", op)
			}
		}
	})
	t.Run("require-faults", func(t *testing.T) {
		var skipped bool
		t.Run("inner", func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			kafkatest.Start(t, kafkatest.RequireFaults())
			t.Error("RequireFaults on an external cluster did not skip")
		})
		if !skipped {
			t.Fatal("want a skip")
		}
	})
	// The topics the test created are gone; the cluster is not; the
	// bystander has no topic at all.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, cl := range []*kfake.Cluster{ext, bystander} {
		adm := kadm.NewClient(kgoClient(t, cl))
		listed, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatalf("external cluster down after the test: %v", err)
		}
		for _, topic := range topics {
			if listed.Has(topic) {
				t.Fatalf("topic %q still exists after the test", topic)
			}
		}
		if cl == bystander && len(listed) != 0 {
			t.Fatalf("the KAFKA_BOOTSTRAP_SERVERS cluster has topics %v: kafkatest must never use it", listed.Names())
		}
	}
}

func newKfake(t *testing.T) *kfake.Cluster {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func kgoClient(t *testing.T, c *kfake.Cluster) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestFallback checks the automatic order: with no external cluster and
// an image that cannot be had (no registry here), Start says why and uses
// the next backend; with no Docker engine it uses kfake in-process, fast.
func TestFallback(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		opts      []kafkatest.Option
		passedFor []string // backends the log must explain
		maxTime   time.Duration
	}{
		{
			name:      "no-registry",
			opts:      []kafkatest.Option{kafkatest.WithImage("apache/kafka:3.9.0")},
			passedFor: []string{"external:", "image:"},
			maxTime:   60 * time.Second,
		},
		{
			name:      "no-docker",
			env:       map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
			opts:      []kafkatest.Option{kafkatest.WithImage("apache/kafka:3.9.0")},
			passedFor: []string{"external:", "image:", "kfake-container:"},
			maxTime:   10 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(kafkatest.EnvRequire, "") // these fallbacks are on purpose
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			start := time.Now()
			c := kafkatest.Start(t, tt.opts...)
			if took := time.Since(start); took > tt.maxTime {
				t.Fatalf("Start took %v, want under %v", took, tt.maxTime)
			}
			if c.Backend() == kafkatest.BackendImage {
				t.Skip("a registry is reachable: the image ran, nothing fell back")
			}
			for _, b := range tt.passedFor {
				if !strings.Contains(c.FellBack(), b) {
					t.Errorf("FellBack() = %q, want it to explain %q", c.FellBack(), b)
				}
			}
			produce(t, c, c.NewTopic(t, 1), 1)
		})
	}
}

func ExampleBackends() {
	fmt.Println(kafkatest.Backends())
	// Output: [external image kfake-container kfake]
}
