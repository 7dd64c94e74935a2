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
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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
	ctx := ctxT(t, 60*time.Second)
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
		TransactionalID:  "etl-0",
		Group:            "etl",
		Topics:           []string{"in"},
		MaxRecordsPerTxn: 5000,
	}, fn, txn.WithObserver(obs), txn.WithInitTimeout(10*time.Second), txn.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
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
	obs := txn.ObserverFunc(func(a txn.Attempt) {
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
	first.Close()
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
		second.Close()
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
// fix stops Run with that error; nothing it produced is visible and the
// offsets are not committed.
func TestPipelineFatalTransformStops(t *testing.T) {
	c := testkit.Cluster(t, []string{"in", "out"})
	produceInput(t, c, "in", 100)
	errPoison := errors.New("poison record")
	pl := newPipeline(t, c, nil, func(ctx context.Context, r *kgo.Record, tx *txn.Tx) error {
		if string(r.Value) == "v-50" {
			return errPoison
		}
		return tx.SendAsync(ctx, kafkaproducer.Record{Topic: "out", Value: r.Value}, nil)
	})
	defer pl.Close()
	err := pl.Run(ctxT(t, 30*time.Second))
	if !errors.Is(err, errPoison) {
		t.Fatalf("Run = %v, want the poison error", err)
	}
	expectValues(t, c, "out", true, nil)
	offs := pl.Client().CommittedOffsets()
	for _, parts := range offs {
		for p, o := range parts {
			if o.Offset > 0 {
				t.Fatalf("partition %d committed at %d despite the abort", p, o.Offset)
			}
		}
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
		zombie.Close()
		err = <-done
	}
	zombie.Close()
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
		live.Close()
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
