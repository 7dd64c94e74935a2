package testkit

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster starts a one-broker kfake cluster with the given topics (3
// partitions each) and closes it when the test ends.
func Cluster(t testing.TB, topics []string, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	all := []kfake.Opt{kfake.NumBrokers(1)}
	if len(topics) > 0 {
		all = append(all, kfake.SeedTopics(3, topics...))
	}
	all = append(all, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Consume reads topic from the start until it has n records or timeout
// passes, then fails the test if it got a different count. With committed
// set it reads with read_committed isolation.
func Consume(t testing.TB, addrs []string, topic string, n int, committed bool, timeout time.Duration) []*kgo.Record {
	t.Helper()
	recs := ConsumeUpTo(t, addrs, topic, n, committed, timeout)
	if len(recs) != n {
		t.Fatalf("consume %q: got %d records, want %d", topic, len(recs), n)
	}
	return recs
}

// ConsumeUpTo reads topic from the start until it has n records or timeout
// passes, returning what it read. Asking for more than exist and a short
// timeout proves that nothing more is there.
func ConsumeUpTo(t testing.TB, addrs []string, topic string, n int, committed bool, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := consumer(t, addrs, topic, committed)
	defer cl.Close()
	return readUpTo(cl, nil, n, timeout)
}

// consumer is a client reading topic from the start, with read_committed
// isolation if committed is set.
func consumer(t testing.TB, addrs []string, topic string, committed bool) *kgo.Client {
	t.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(addrs...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	return cl
}

// readUpTo polls cl, appending to out, until out has n records or
// timeout passes.
func readUpTo(cl *kgo.Client, out []*kgo.Record, n int, timeout time.Duration) []*kgo.Record {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// ConsumeExactly reads topic from the start until it has n records,
// failing the test if they have not all arrived within timeout, then
// reads on for grace and fails if any more arrive. Unlike asking
// ConsumeUpTo for n+1 with a short timeout, a consumer slowed down by a
// busy machine cannot read short. With committed set it reads with
// read_committed isolation (a transactional topic's end offsets count its
// markers, so ConsumeAll does not serve there).
func ConsumeExactly(t testing.TB, addrs []string, topic string, n int, committed bool, timeout, grace time.Duration) []*kgo.Record {
	t.Helper()
	cl := consumer(t, addrs, topic, committed)
	defer cl.Close()
	out := readUpTo(cl, nil, n, timeout)
	if len(out) < n {
		t.Fatalf("consume %q: %d records within %v, want %d", topic, len(out), timeout, n)
	}
	if out = readUpTo(cl, out, math.MaxInt, grace); len(out) != n {
		t.Fatalf("consume %q: %d records, want exactly %d", topic, len(out), n)
	}
	return out
}

// ConsumeAll reads every record a topic without transactions holds now:
// it asks the cluster for the topic's end offsets, then reads until it
// has that many records, failing the test after timeout. It proves how
// many records were written without waiting out a timeout, and a consumer
// slow to connect cannot read short. (A transactional topic's markers
// take offsets too: use Consume or ConsumeUpTo there.)
func ConsumeAll(t testing.TB, addrs []string, topic string, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	if n == 0 {
		return nil
	}
	return Consume(t, addrs, topic, int(n), false, timeout)
}

// Producer builds a kprod producer from cfg for cluster c (Brokers filled
// in) and closes it, with a 10s deadline, when the test ends.
func Producer(t testing.TB, c *kfake.Cluster, cfg kafkaproducer.Config) *kafkaproducer.Producer {
	t.Helper()
	cfg.Brokers = c.ListenAddrs()
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatalf("kafkaproducer.New: %v", err)
	}
	CloseAtEnd(t, p.Close)
	return p
}

// CloseAtEnd calls close, with a 10s deadline, when the test ends: for
// producers, pools and wrappers whose Close takes a context.
func CloseAtEnd(t testing.TB, close func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = close(ctx)
	})
}

// Encoding is one sub-benchmark of BenchEncodings: a name and a call that
// encodes one value.
type Encoding struct {
	Name string                 // the sub-benchmark's name
	Fn   func() ([]byte, error) // encodes the value once
}

// BenchEncodings runs each encoding as a sub-benchmark of b, reporting
// allocations.
func BenchEncodings(b *testing.B, encs ...Encoding) {
	for _, e := range encs {
		b.Run(e.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// HangProduce makes the broker read produce requests and never answer,
// until the returned release function is called.
func HangProduce(c *kfake.Cluster) (release func()) {
	var released atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if released.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		return nil, nil, true
	})
	return func() { released.Store(true) }
}

// Ctx returns a context that ends after d, or when the test ends.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond every 10ms until it holds, failing the test with what
// after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
