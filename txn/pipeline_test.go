package txn_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceInput writes n records "v-<i>" to topic with the high-throughput
// preset.
func produceInput(t *testing.T, c *kfake.Cluster, topic string, n int) {
	t.Helper()
	cfg := presets.HighThroughput()
	cfg.Brokers = c.ListenAddrs()
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Int64
	ctx := testkit.Ctx(t, 60*time.Second)
	for i := range n {
		r := kafkaproducer.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%1000), Value: fmt.Appendf(nil, "v-%d", i)}
		if err := p.SendAsync(ctx, r, func(r kafkaproducer.Result) {
			if r.Err != nil {
				failed.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil || failed.Load() != 0 {
		t.Fatalf("input: close %v, %d failed", err, failed.Load())
	}
}

func newPipeline(t *testing.T, c *kfake.Cluster, obs txn.Observer, fn txn.Transform) *txn.Pipeline {
	t.Helper()
	cfg := presets.HighThroughput()
	cfg.Brokers = c.ListenAddrs()
	pl, err := txn.NewPipeline(cfg, txn.PipelineConfig{
		Config:           testCfg(txn.Config{ID: "etl-0", Observer: obs}),
		Group:            "etl",
		Topics:           []string{"in"},
		MaxRecordsPerTxn: 5000,
	}, fn)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// TestPipelineExactlyOnce runs an exactly-once pipeline over 100,000
// records (20,000 with -short), stopping it partway through (in the middle
// of a transaction, which aborts) and starting a new instance with the
// same group and transactional ID. The read_committed output equals the
// input: no loss, no duplicate. An injected transform failure on one
// attempt shows an aborted transaction's outputs never appear.
func TestPipelineExactlyOnce(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	c := testkit.Cluster(t, []string{"in", "out"})
	produceInput(t, c, "in", n)

	var committed atomic.Int64
	obs := observerFunc(func(a attempt) {
		if a.Outcome == txn.OutcomeCommitted {
			committed.Add(1)
		}
	})
	var processed atomic.Int64
	var failedOnce atomic.Bool
	errTransient := fmt.Errorf("transient: %w", kafkaproducer.ErrBufferFull) // ClassRetriable
	transform := func(ctx context.Context, r *kgo.Record, tx *txn.Tx) error {
		processed.Add(1)
		if processed.Load() == int64(n/10) && failedOnce.CompareAndSwap(false, true) {
			return errTransient // aborts this transaction after it produced outputs
		}
		return tx.SendAsync(ctx, kafkaproducer.Record{Topic: "out", Key: r.Key, Value: append([]byte("out-"), r.Value...)}, nil)
	}

	// First instance: run until about a third is committed, then stop
	// it mid-transaction.
	first := newPipeline(t, c, obs, transform)
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- first.Run(ctx1) }()
	deadline := time.Now().Add(60 * time.Second)
	for (processed.Load() < int64(n/3) || committed.Load() == 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel1()
	if err := <-done1; err != nil {
		t.Fatalf("first instance: %v", err)
	}
	closePipeline(t, first)
	firstCommits := committed.Load()
	if firstCommits == 0 || !failedOnce.Load() {
		t.Fatalf("first instance committed %d transactions (transient failure injected: %v)", firstCommits, failedOnce.Load())
	}

	// Second instance: same group, same transactional ID.
	second := newPipeline(t, c, obs, transform)
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- second.Run(ctx2) }()
	defer func() {
		cancel2()
		if err := <-done2; err != nil {
			t.Errorf("second instance: %v", err)
		}
		closePipeline(t, second)
	}()

	// Read until n records arrive, then a second more for duplicates.
	out := values(t, c, "out", true, n, time.Second)
	seen := make(map[string]int, n)
	for _, v := range out {
		seen[v]++
	}
	var missing, dups int
	for i := range n {
		switch seen[fmt.Sprintf("out-v-%d", i)] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	if missing != 0 || dups != 0 || len(out) != n {
		t.Fatalf("output: %d records for %d inputs: %d missing, %d duplicated", len(out), n, missing, dups)
	}
	if processed.Load() <= int64(n) {
		t.Fatalf("processed %d records: the restart and the injected failure should have caused reprocessing", processed.Load())
	}
	t.Logf("%d inputs, %d transform calls, %d commits (%d before the restart)", n, processed.Load(), committed.Load(), firstCommits)
}

// TestPipelineFatalTransformStops: a transform error that retrying cannot
// fix stops Run with that error; nothing the failed transaction produced
// is visible and its offsets are not committed. (Transactions committed
// before it, over records polled earlier, stay committed.)
func TestPipelineFatalTransformStops(t *testing.T) {
	c := testkit.Cluster(t, []string{"in", "out"})
	produceInput(t, c, "in", 100)
	errPoison := errors.New("poison record")
	// The observer runs on the pipeline's goroutine after each
	// transaction, as the transform does: no lock needed.
	var current, committed []string
	obs := observerFunc(func(a attempt) {
		if a.Outcome == txn.OutcomeCommitted {
			committed = append(committed, current...)
		}
		current = nil
	})
	pl := newPipeline(t, c, obs, func(ctx context.Context, r *kgo.Record, tx *txn.Tx) error {
		if string(r.Value) == "v-50" {
			return errPoison
		}
		current = append(current, string(r.Value))
		return tx.SendAsync(ctx, kafkaproducer.Record{Topic: "out", Value: r.Value}, nil)
	})
	defer closePipeline(t, pl)
	err := pl.Run(testkit.Ctx(t, 30*time.Second))
	if !errors.Is(err, errPoison) {
		t.Fatalf("Run = %v, want the poison error", err)
	}
	expectValues(t, c, "out", true, committed)
	var offsets int64
	for _, parts := range pl.Client().CommittedOffsets() {
		for _, o := range parts {
			offsets += max(o.Offset, 0)
		}
	}
	if offsets != int64(len(committed)) {
		t.Fatalf("committed offsets cover %d input records, but %d were in committed transactions", offsets, len(committed))
	}
	if len(committed) >= 100 {
		t.Fatalf("%d outputs committed: the poisoned transaction committed", len(committed))
	}
}

// TestPipelineFencedByNewInstance: a new instance with the same
// transactional ID starting while the old one still runs (a zombie after a
// network partition, say) fences the old one, whose Run stops with
// ErrFenced; the new one finishes the work exactly once.
func TestPipelineFencedByNewInstance(t *testing.T) {
	const n = 20_000
	c := testkit.Cluster(t, []string{"in", "out"})
	produceInput(t, c, "in", n)
	var processed atomic.Int64
	transform := func(ctx context.Context, r *kgo.Record, tx *txn.Tx) error {
		processed.Add(1)
		return tx.SendAsync(ctx, kafkaproducer.Record{Topic: "out", Key: r.Key, Value: append([]byte("out-"), r.Value...)}, nil)
	}
	zombie := newPipeline(t, c, nil, transform)
	done := make(chan error, 1)
	go func() { done <- zombie.Run(context.Background()) }()
	for processed.Load() < 2000 {
		time.Sleep(time.Millisecond)
	}
	live := newPipeline(t, c, nil, transform) // initialising fences the zombie
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		closePipeline(t, zombie)
		err = <-done
	}
	closePipeline(t, zombie)
	if !errors.Is(err, kafkaproducer.ErrFenced) {
		t.Fatalf("zombie Run = %v, want ErrFenced", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	liveDone := make(chan error, 1)
	go func() { liveDone <- live.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-liveDone; err != nil {
			t.Errorf("live instance: %v", err)
		}
		closePipeline(t, live)
	}()
	out := values(t, c, "out", true, n, time.Second)
	seen := make(map[string]int, n)
	for _, v := range out {
		seen[v]++
	}
	if len(seen) != n || len(out) != n {
		t.Fatalf("output: %d records, %d distinct, for %d inputs", len(out), len(seen), n)
	}
}

type hookFunc func(kafkaproducer.Result)

func (f hookFunc) OnRecordDone(r kafkaproducer.Result) { f(r) }

// hourClock starts in 2000 and moves one hour per reading, so every
// duration it measures is a whole number of hours. Its waits are real.
type hourClock struct{ n atomic.Int64 }

func (c *hourClock) Now() time.Time {
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(c.n.Add(1)) * time.Hour)
}

func (c *hourClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func fakeClock() *hourClock { return &hourClock{} }

// closePipeline closes pl, failing the test on an error.
func closePipeline(t *testing.T, pl *txn.Pipeline) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pl.Close(ctx); err != nil {
		t.Errorf("close pipeline: %v", err)
	}
}

// pipelineCfg is the config for the single-shot pipeline tests: cfg
// tweaked by edit, a hook collecting every output's Result.
func pipelineCfg(c *kfake.Cluster, edit func(*kafkaproducer.Config), results chan<- kafkaproducer.Result) kafkaproducer.Config {
	cfg := presets.LowLatency()
	cfg.Brokers = c.ListenAddrs()
	cfg.Hooks = []kafkaproducer.Hook{hookFunc(func(r kafkaproducer.Result) {
		select {
		case results <- r:
		default:
		}
	})}
	if edit != nil {
		edit(&cfg)
	}
	return cfg
}

// runPipelineUntil runs a pipeline over "in" until it returns or stop
// says so (checked after each committed transaction, via the observer).
func runPipelineUntil(t *testing.T, cfg kafkaproducer.Config, fn txn.Transform, stop func(attempt) bool, tc txn.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs := observerFunc(func(a attempt) {
		if stop != nil && stop(a) {
			cancel()
		}
	})
	tc.ID, tc.Observer = "single-0", obs
	pl, err := txn.NewPipeline(cfg, txn.PipelineConfig{Config: testCfg(tc), Group: "single", Topics: []string{"in"}}, fn)
	if err != nil {
		t.Fatal(err)
	}
	defer closePipeline(t, pl)
	err = pl.Run(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("pipeline still running after 30s")
	}
	return err
}

// TestPipelineSendsLikeProducer: records a pipeline's transform sends are
// refused and reported as kafkaproducer.Producer reports them: the same
// checks (manual partitioner, stale timestamp, no topic), the same
// sentinels (a delivery timeout matches ErrDeliveryTimeout), a
// *SendError with its class, and hooks called. The failure aborts the
// transaction and, not being retriable here, stops Run with it.
func TestPipelineSendsLikeProducer(t *testing.T) {
	clock := fakeClock()
	tests := []struct {
		name  string
		edit  func(*kafkaproducer.Config)
		fault bool // fail every produce to "out" with NOT_LEADER_FOR_PARTITION
		out   kafkaproducer.Record
		want  error
		class kafkaproducer.Class
	}{
		{"no topic", nil, false, kafkaproducer.Record{Value: []byte("x")}, kafkaproducer.ErrNoTopic, kafkaproducer.ClassBadInput},
		{"manual partitioner without partition", func(c *kafkaproducer.Config) { c.Partitioner = kafkaproducer.PartitionerManual }, false,
			kafkaproducer.Record{Topic: "out", Value: []byte("x")}, kafkaproducer.ErrPartitionRequired, kafkaproducer.ClassBadInput},
		{"stale timestamp", nil, false,
			kafkaproducer.Record{Topic: "out", Value: []byte("x"), Timestamp: clock.Now().Add(-time.Hour)}, kafkaproducer.ErrStaleTimestamp, kafkaproducer.ClassBadInput},
		{"delivery timeout", func(c *kafkaproducer.Config) { c.DeliveryTimeout, c.RequestTimeout = time.Second, 500*time.Millisecond }, true,
			kafkaproducer.Record{Topic: "out", Value: []byte("x")}, kafkaproducer.ErrDeliveryTimeout, kafkaproducer.ClassTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testkit.Cluster(t, []string{"in", "out"})
			produceInput(t, c, "in", 1)
			var fault *kfake.FaultHandle
			if tt.fault {
				fault = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.NotLeaderForPartition, Count: -1})
			}
			results := make(chan kafkaproducer.Result, 10)
			cfg := pipelineCfg(c, tt.edit, results)
			var sendErr error
			err := runPipelineUntil(t, cfg, func(ctx context.Context, r *kgo.Record, tx *txn.Tx) error {
				_, sendErr = tx.Send(ctx, tt.out)
				return nil // the failed record dooms the transaction anyway
			}, nil, txn.Config{MaxAttempts: 1, Clock: clock})
			if !errors.Is(sendErr, tt.want) || kafkaproducer.Classify(sendErr) != tt.class {
				t.Fatalf("send = %v (class %v), want %v (%v)", sendErr, kafkaproducer.Classify(sendErr), tt.want, tt.class)
			}
			if se, ok := errors.AsType[*kafkaproducer.SendError](sendErr); !ok || se.Topic != tt.out.Topic {
				t.Fatalf("send error %v is not a SendError naming the topic", sendErr)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			select {
			case r := <-results:
				if !errors.Is(r.Err, tt.want) {
					t.Fatalf("hook saw %v, want %v", r.Err, tt.want)
				}
			default:
				t.Fatal("hook not called")
			}
			if fault != nil {
				fault.Remove()
			}
			expectValues(t, c, "out", true, nil)
		})
	}
}

// TestPipelineExplicitPartition: a record a transform sends with an
// explicit partition lands on that partition, as it would through a
// Producer, whatever its key hashes to (the session's client comes from
// ClientOpts, whose partitioner pins only records marked as explicit);
// a partition the topic does not have fails with ErrBadPartition.
func TestPipelineExplicitPartition(t *testing.T) {
	t.Run("pinned", func(t *testing.T) {
		c := testkit.Cluster(t, []string{"in", "out"})
		produceInput(t, c, "in", 20)
		results := make(chan kafkaproducer.Result, 100)
		err := runPipelineUntil(t, pipelineCfg(c, nil, results), func(ctx context.Context, r *kgo.Record, tx *txn.Tx) error {
			return tx.SendAsync(ctx, kafkaproducer.Record{Topic: "out", Key: r.Key, Value: r.Value, Partition: 2, PartitionSet: true}, nil)
		}, func(a attempt) bool { return a.Outcome == txn.OutcomeCommitted && len(results) >= 20 }, txn.Config{})
		if err != nil {
			t.Fatal(err)
		}
		close(results)
		for r := range results {
			if r.Err != nil || r.Partition != 2 || !r.Record.PartitionSet || r.Record.Partition != 2 {
				t.Fatalf("output went to partition %d (record says %d, set %v), err %v: want partition 2", r.Partition, r.Record.Partition, r.Record.PartitionSet, r.Err)
			}
		}
		for _, r := range testkit.Consume(t, c.ListenAddrs(), "out", 20, true, 10*time.Second) {
			if r.Partition != 2 {
				t.Fatalf("record %q read from partition %d, want 2", r.Value, r.Partition)
			}
		}
	})
	t.Run("beyond the topic", func(t *testing.T) {
		c := testkit.Cluster(t, []string{"in", "out"})
		produceInput(t, c, "in", 1)
		var sendErr error
		err := runPipelineUntil(t, pipelineCfg(c, nil, nil), func(ctx context.Context, r *kgo.Record, tx *txn.Tx) error {
			_, sendErr = tx.Send(ctx, kafkaproducer.Record{Topic: "out", Value: r.Value, Partition: 7, PartitionSet: true})
			return nil
		}, nil, txn.Config{MaxAttempts: 1})
		if !errors.Is(sendErr, kafkaproducer.ErrBadPartition) || !errors.Is(err, kafkaproducer.ErrBadPartition) {
			t.Fatalf("send = %v, Run = %v: want ErrBadPartition", sendErr, err)
		}
	})
}
