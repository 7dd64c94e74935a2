package txn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kgo"
)

// franz-go decides whether EndTransaction commits from the client's own
// partition list; awaitLoaded waits until that list shows every topic the
// transaction wrote to.
func TestAwaitLoaded(t *testing.T) {
	c := testkit.Cluster(t, []string{"listed"})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testkit.Ctx(t, 10*time.Second)
	r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: "listed", Value: []byte("v")}).First()
	if err != nil {
		t.Fatal(err)
	}
	// A topic produced to through this client is listed: at once, or
	// after the moment franz-go takes to store its partitions.
	if err := awaitLoaded(ctx, cl, map[string]int32{"listed": r.Partition}, 10*time.Second); err != nil {
		t.Fatalf("listed topic: %v", err)
	}
	if err := awaitLoaded(ctx, cl, nil, 10*time.Second); err != nil {
		t.Fatalf("nothing written: %v", err)
	}

	// A topic the client never loaded stays missing: the client's
	// transaction state cannot be trusted. A canceled caller does not
	// cut the wait short (its abort needs the list too).
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	err = awaitLoaded(canceled, cl, map[string]int32{"listed": r.Partition, "unlisted": 2}, 100*time.Millisecond)
	if !errors.Is(err, ErrBroken) || errors.Is(err, context.Canceled) {
		t.Fatalf("unlisted topic: %v, want ErrBroken after the wait", err)
	}
	if !strings.Contains(err.Error(), `partition 2 of topic "unlisted"`) {
		t.Errorf("error does not name the partition: %v", err)
	}
}

// unlisted marks, from inside a transaction, a record as written to a
// topic the client has not listed: as if its records had been acknowledged
// before franz-go stored the topic's partitions.
func unlisted(tx *Tx) {
	tx.done(&kafkaproducer.Result{Record: kafkaproducer.Record{Topic: "unlisted"}, Partition: 0})
}

// Run does not commit while a topic written to is missing from the
// client's partition list (franz-go would end the commit as an abort and
// return nil): it aborts, and the producer reports ErrBroken from then on.
// A new producer with the same ID carries on.
func TestRunDoesNotCommitUnlisted(t *testing.T) {
	c := testkit.Cluster(t, []string{"shown"})
	cfg := presets.LowLatency()
	cfg.Brokers = c.ListenAddrs()
	newP := func() *Producer {
		p, err := New(cfg, Config{ID: "await-loaded", InitTimeout: 10 * time.Second, EndTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	closeP := func(p *Producer) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}
	p := newP()
	ctx := testkit.Ctx(t, 20*time.Second)
	runs := 0
	err := p.Run(ctx, func(ctx context.Context, tx *Tx) error {
		runs++
		if _, err := tx.Send(ctx, kafkaproducer.Record{Topic: "shown", Value: []byte("v")}); err != nil {
			return err
		}
		unlisted(tx)
		return nil
	})
	if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), `"unlisted"`) || runs != 1 {
		closeP(p)
		t.Fatalf("Run: %v after %d runs; want ErrBroken naming the topic, no retry", err, runs)
	}
	if err := p.Run(ctx, func(context.Context, *Tx) error { t.Error("a broken producer ran a function"); return nil }); !errors.Is(err, ErrBroken) {
		t.Errorf("next Run: %v, want ErrBroken", err)
	}
	closeP(p)
	if recs := testkit.ConsumeUpTo(t, c.ListenAddrs(), "shown", 1, false, 5*time.Second); len(recs) != 1 {
		t.Fatalf("read_uncommitted sees %d records, want the 1 written", len(recs))
	}

	p = newP()
	defer closeP(p)
	if err := p.Run(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.Send(ctx, kafkaproducer.Record{Topic: "shown", Value: []byte("w")})
		return err
	}); err != nil {
		t.Fatalf("Run on a new producer: %v", err)
	}
	if recs := testkit.ConsumeUpTo(t, c.ListenAddrs(), "shown", 2, true, 2*time.Second); len(recs) != 1 || string(recs[0].Value) != "w" {
		t.Fatalf("read_committed: %d records, want just w", len(recs))
	}
}

// A Pipeline stops the same way, with ErrBroken, leaving its input
// uncommitted; its outputs never become visible.
func TestPipelineDoesNotCommitUnlisted(t *testing.T) {
	c := testkit.Cluster(t, []string{"in", "out"})
	cfg := presets.LowLatency()
	cfg.Brokers = c.ListenAddrs()
	ctx := testkit.Ctx(t, 20*time.Second)
	in := testkit.Producer(t, c, cfg)
	if _, err := in.Send(ctx, kafkaproducer.Record{Topic: "in", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	pl, err := NewPipeline(cfg, PipelineConfig{Config: Config{ID: "await-loaded-etl", InitTimeout: 10 * time.Second, EndTimeout: 200 * time.Millisecond}, Group: "etl", Topics: []string{"in"}},
		func(ctx context.Context, r *kgo.Record, tx *Tx) error {
			if _, err := tx.Send(ctx, kafkaproducer.Record{Topic: "out", Value: r.Value}); err != nil {
				return err
			}
			unlisted(tx)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pl.Close(context.Background()) }()
	err = pl.Run(ctx)
	if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), `"unlisted"`) {
		t.Fatalf("Run: %v; want ErrBroken naming the topic", err)
	}
	if recs := testkit.ConsumeUpTo(t, c.ListenAddrs(), "out", 1, true, time.Second); len(recs) != 0 {
		t.Fatalf("read_committed sees %d outputs of an aborted transaction", len(recs))
	}
}
