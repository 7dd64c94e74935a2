package dlq_test

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// broker is a one-broker kfake cluster with a data directory that can be
// stopped and started again on the same port, keeping its records.
type broker struct {
	t      testing.TB
	dir    string
	port   int
	topics []string
	c      *kfake.Cluster
}

func newBroker(t testing.TB, topics ...string) *broker {
	b := &broker{t: t, dir: t.TempDir(), topics: topics}
	b.start()
	_, p, _ := net.SplitHostPort(b.c.ListenAddrs()[0])
	b.port, _ = strconv.Atoi(p)
	t.Cleanup(b.stop)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(b.dir), kfake.SeedTopics(3, b.topics...)}
	if b.port != 0 {
		opts = append(opts, kfake.Ports(b.port))
	}
	var err error
	for range 50 { // the port may take a moment to be free again
		if b.c, err = kfake.NewCluster(opts...); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("start kfake: %v", err)
}

func (b *broker) stop() {
	if b.c != nil {
		b.c.Close()
	}
}

func (b *broker) addrs() []string {
	return []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))}
}

// outageConfig is a Reliable producer that gives up on records fast.
func outageConfig(addrs []string) kafkaproducer.Config {
	cfg := presets.Reliable()
	cfg.Brokers = addrs
	cfg.ClientID = "dlq-test"
	cfg.RequestTimeout = time.Second
	cfg.DeliveryTimeout = 1500 * time.Millisecond
	cfg.RetryBackoff = kafkaproducer.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	return cfg
}

// fastBreaker trips within a few pings and probes again quickly.
func fastBreaker() dlq.BreakerConfig {
	return dlq.BreakerConfig{
		ConsecutiveFailures: 3,
		OpenTimeout:         300 * time.Millisecond,
		HalfOpenProbes:      2,
		PingInterval:        50 * time.Millisecond,
		PingTimeout:         500 * time.Millisecond,
	}
}

func newDLQ(t testing.TB, pcfg kafkaproducer.Config, cfg dlq.Config) *dlq.Producer {
	t.Helper()
	p, err := kafkaproducer.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dlq.New(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	testkit.CloseAtEnd(t, d.Close)
	return d
}

func header(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// recorder is an Observer that counts, for assertions.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int
	states []string
	size   [2]int64
}

func newRecorder() *recorder { return &recorder{counts: map[string]int{}} }

func (r *recorder) add(k string) { r.mu.Lock(); r.counts[k]++; r.mu.Unlock() }
func (r *recorder) get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[k]
}
func (r *recorder) OnDeadLettered(topic string) { r.add("dead:" + topic) }
func (r *recorder) OnSpooled(topic string)      { r.add("spooled:" + topic) }
func (r *recorder) OnReplayed(topic string)     { r.add("replayed:" + topic) }
func (r *recorder) OnAmbiguous(topic string)    { r.add("ambiguous:" + topic) }
func (r *recorder) OnSetAside(topic, reason string) {
	r.add(reason + ":" + topic)
}
func (r *recorder) OnBreakerState(s string) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
}
func (r *recorder) OnSpoolSize(records, bytes int64) {
	r.mu.Lock()
	r.size = [2]int64{records, bytes}
	r.mu.Unlock()
}
func (r *recorder) stateList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.states...)
}

// consumeAll reads topic from the start until it has at least want
// records, then reads it once more to catch extra copies (duplicates).
// testkit.ConsumeUpTo stops at its count, so asking it for more than want
// at once would always wait its whole timeout; a second, short read
// (kfake serves a re-read at once) is cheaper.
func consumeAll(t testing.TB, addrs []string, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	got := testkit.ConsumeUpTo(t, addrs, topic, want, false, timeout)
	if len(got) < want {
		return got
	}
	if again := testkit.ConsumeUpTo(t, addrs, topic, 2*want+100, false, time.Second); len(again) > len(got) {
		return again
	}
	return got
}

func spoolOpts() spool.Options { return spool.Options{MaxBytes: 8 << 30, SegmentBytes: 64 << 20} }
