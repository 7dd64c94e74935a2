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
	if err := awaitLoaded(ctx, cl, map[string]int32{"listed": r.Partition}); err != nil {
		t.Fatalf("listed topic: %v", err)
	}
	if err := awaitLoaded(ctx, cl, nil); err != nil {
		t.Fatalf("nothing written: %v", err)
	}

	// A topic the client never loaded stays missing until ctx ends.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = awaitLoaded(short, cl, map[string]int32{"listed": r.Partition, "unlisted": 2})
	if err == nil {
		t.Fatal("unlisted topic: no error")
	}
	if got := kafkaproducer.Classify(err); got != kafkaproducer.ClassRetriable {
		t.Errorf("class %v, want retriable: %v", got, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `partition 2 of topic "unlisted"`) {
		t.Errorf("error does not name the partition and the deadline: %v", err)
	}
}

// Run refuses to commit while a topic written to is not in the client's
// partition list: it aborts with a retriable error naming the topic, so
// none of the transaction's records become visible, instead of sending a
// commit that franz-go would turn into an abort and report as success.
func TestRunDoesNotCommitUnlisted(t *testing.T) {
	c := testkit.Cluster(t, []string{"shown"})
	cfg := presets.LowLatency()
	cfg.Brokers = c.ListenAddrs()
	p, err := New(cfg, "await-loaded", WithInitTimeout(10*time.Second), WithEndTimeout(200*time.Millisecond), WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}()
	ctx := testkit.Ctx(t, 20*time.Second)
	err = p.Run(ctx, func(ctx context.Context, tx *Tx) error {
		if _, err := tx.Send(ctx, kafkaproducer.Record{Topic: "shown", Value: []byte("v")}); err != nil {
			return err
		}
		// As if a record to a topic whose metadata the client has not
		// stored yet had just been acknowledged.
		tx.done(&kafkaproducer.Result{Record: kafkaproducer.Record{Topic: "unlisted"}, Partition: 0})
		return nil
	})
	var te *TxnError
	if !errors.As(err, &te) || te.Attempts != 1 {
		t.Fatalf("Run: %v, want a TxnError after one attempt", err)
	}
	if got := kafkaproducer.Classify(err); got != kafkaproducer.ClassRetriable || !strings.Contains(err.Error(), `"unlisted"`) {
		t.Fatalf("Run: class %v, %v; want a retriable error naming the topic", got, err)
	}
	if recs := testkit.ConsumeUpTo(t, c.ListenAddrs(), "shown", 1, false, 5*time.Second); len(recs) != 1 {
		t.Fatalf("read_uncommitted sees %d records, want the 1 written", len(recs))
	}
	if recs := testkit.ConsumeUpTo(t, c.ListenAddrs(), "shown", 1, true, time.Second); len(recs) != 0 {
		t.Fatalf("read_committed sees %d records of an aborted transaction", len(recs))
	}
	// The producer is still usable: the next transaction commits.
	if err := p.Run(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.Send(ctx, kafkaproducer.Record{Topic: "shown", Value: []byte("w")})
		return err
	}); err != nil {
		t.Fatalf("next Run: %v", err)
	}
	if recs := testkit.ConsumeUpTo(t, c.ListenAddrs(), "shown", 2, true, 2*time.Second); len(recs) != 1 || string(recs[0].Value) != "w" {
		t.Fatalf("read_committed after the second Run: %d records, want just w", len(recs))
	}
}
