package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/kafkatest"
)

func TestMain(m *testing.M) {
	// No registry is reachable on kprod's machines, so testcontainers'
	// reaper image cannot be pulled; kafkatest removes what it starts.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	goleak.VerifyTestMain(m)
}

// onEachBackend runs fn as one subtest per kafkatest backend, each on a
// cluster of its own. A backend this machine lacks is a skip saying why
// (a failure if KAFKATEST_REQUIRE names it).
func onEachBackend(t *testing.T, fn func(t *testing.T, c *kafkatest.Cluster), opts ...kafkatest.Option) {
	t.Helper()
	for _, b := range kafkatest.Backends() {
		t.Run(string(b), func(t *testing.T) {
			c := kafkatest.Start(t, append([]kafkatest.Option{kafkatest.WithBackend(b)}, opts...)...)
			t.Logf("backend: %s (%v)", c.Backend(), c.Brokers())
			fn(t, c)
		})
	}
}

// onRestartableBackends is onEachBackend for tests that stop the broker:
// backends that cannot (an external cluster) are skipped with the reason.
func onRestartableBackends(t *testing.T, fn func(t *testing.T, c *kafkatest.Cluster)) {
	t.Helper()
	onEachBackend(t, func(t *testing.T, c *kafkatest.Cluster) {
		if c.Backend() == kafkatest.BackendExternal {
			t.Skip("an external cluster is not ours to stop")
		}
		fn(t, c)
	})
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testRecord builds record i of a test: a key from a small set (so keys
// repeat and per-key order matters), a compressible value and two
// headers.
func testRecord(topic string, i int) kafkaproducer.Record {
	return kafkaproducer.Record{
		Topic: topic,
		Key:   fmt.Appendf(nil, "key-%d", i%7),
		Value: fmt.Appendf(nil, "value %04d: %s", i, bytes.Repeat([]byte("kprod "), 8)),
		Headers: []kafkaproducer.Header{
			{Key: "seq", Value: fmt.Appendf(nil, "%d", i)},
			{Key: "origin", Value: []byte("integration")},
		},
	}
}

// checkRecords verifies that got holds exactly the records of want (by
// value), with their keys and headers, and that each key's records are in
// send order.
func checkRecords(t *testing.T, got []*kgo.Record, want []kafkaproducer.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	byValue := make(map[string]kafkaproducer.Record, len(want))
	order := make(map[string]int, len(want))
	for i, w := range want {
		byValue[string(w.Value)] = w
		order[string(w.Value)] = i
	}
	lastByKey := make(map[string]int)
	for _, r := range got {
		w, ok := byValue[string(r.Value)]
		if !ok {
			t.Fatalf("read unexpected or duplicate record %q", r.Value)
		}
		delete(byValue, string(r.Value))
		if !bytes.Equal(r.Key, w.Key) {
			t.Fatalf("record %q: key %q, want %q", r.Value, r.Key, w.Key)
		}
		if len(r.Headers) != len(w.Headers) {
			t.Fatalf("record %q: %d headers, want %d", r.Value, len(r.Headers), len(w.Headers))
		}
		for i, h := range w.Headers {
			if r.Headers[i].Key != h.Key || !bytes.Equal(r.Headers[i].Value, h.Value) {
				t.Fatalf("record %q: header %d is %s=%q, want %s=%q", r.Value, i, r.Headers[i].Key, r.Headers[i].Value, h.Key, h.Value)
			}
		}
		seq := order[string(r.Value)]
		if last, ok := lastByKey[string(r.Key)]; ok && seq < last {
			t.Fatalf("key %q: record %d read after record %d (per-key order broken)", r.Key, seq, last)
		}
		lastByKey[string(r.Key)] = seq
	}
}
