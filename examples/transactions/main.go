// Command transactions is the orders/payments/inventory example: each
// checkout writes an order, a payment and an inventory reservation in one
// Kafka transaction, so consumers see all three or none. Declined payments
// abort their transaction; a second instance with the same transactional
// ID fences the first.
//
// With no arguments it runs against an in-process kfake cluster. With
// --brokers host:port,... it uses that cluster instead. Either way it
// first makes sure the topics orders, payments and inventory exist with
// topics.Ensure (3 partitions each, the broker's replication factor,
// created only where missing, which needs CREATE on them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/topics"
	"github.com/kprod/kprod/txn"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var want = []topics.Topic{{Name: "orders", Partitions: 3}, {Name: "payments", Partitions: 3}, {Name: "inventory", Partitions: 3}}

func main() {
	brokers := flag.String("brokers", "", "comma-separated host:port list of a real cluster (default: in-process kfake).\n"+
		"Topics orders, payments and inventory are created there if missing (3 partitions, the broker's replication factor)")
	orders := flag.Int("orders", 60, "checkouts to run")
	flag.Parse()
	if err := run(*brokers, *orders); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}

func run(brokers string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	var addrs []string
	if brokers == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return err
		}
		defer c.Close()
		addrs = c.ListenAddrs()
		fmt.Println("cluster: in-process kfake at", addrs[0])
	} else {
		addrs = strings.Split(brokers, ",")
		fmt.Println("cluster:", brokers)
	}
	if err := ensureTopics(ctx, addrs); err != nil {
		return err
	}
	runID := fmt.Sprintf("run%d", time.Now().UnixNano())

	cfg := presets.Reliable()
	cfg.Brokers = addrs
	cfg.ClientID = "checkout"

	// Concurrent checkouts through a pool of 4 transactional producers
	// (IDs checkout-<run>-0 .. -3).
	var mu sync.Mutex
	outcomes := map[string]int{}
	obs := txn.ObserverFunc(func(_, outcome, _ string, _ bool, _ time.Duration) {
		mu.Lock()
		outcomes[outcome]++
		mu.Unlock()
	})
	pool, err := txn.NewPool(cfg, txn.PoolConfig{Config: txn.Config{ID: "checkout-" + runID, Observer: obs}, Size: 4})
	if err != nil {
		return err
	}
	defer func() {
		// Close waits for running transactions up to its deadline;
		// past it, a *txn.PoolCloseError names any whose function
		// ignored its context.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pool.Close(cctx); err != nil {
			fmt.Printf("pool close: %v\n", err)
		}
	}()

	errDeclined := errors.New("payment declined")
	var wg sync.WaitGroup
	var declined, failed sync.Map
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("%s-order-%d", runID, i)
			err := pool.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
				return checkout(ctx, tx, id, i%10 == 7, errDeclined)
			})
			switch {
			case errors.Is(err, errDeclined):
				declined.Store(id, true)
			case err != nil:
				failed.Store(id, err)
			}
		})
	}
	wg.Wait()
	var nDeclined, nFailed int
	declined.Range(func(any, any) bool { nDeclined++; return true })
	failed.Range(func(k, v any) bool {
		nFailed++
		fmt.Printf("  checkout %v failed: %v\n", k, v)
		return true
	})
	committed := n - nDeclined - nFailed
	fmt.Printf("checkouts: %d run, %d committed, %d declined (aborted), %d failed\n", n, committed, nDeclined, nFailed)
	fmt.Printf("observer: %d committed, %d aborted attempts\n", outcomes[txn.OutcomeCommitted], outcomes[txn.OutcomeAborted])

	// Fencing: a second instance with the same transactional ID takes
	// over; the first one's open transaction is aborted and it refuses
	// further work.
	fenceID := "fence-demo-" + runID
	first, err := txn.New(cfg, txn.Config{ID: fenceID})
	if err != nil {
		return err
	}
	defer first.Close(context.Background())
	var second *txn.Producer
	zombieErr := first.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		if err := checkout(ctx, tx, runID+"-zombie", false, nil); err != nil {
			return err
		}
		var err error
		if second, err = txn.New(cfg, txn.Config{ID: fenceID}); err != nil { // a restarted instance
			return err
		}
		return nil
	})
	if second != nil {
		defer second.Close(context.Background())
	}
	fmt.Printf("fencing: first instance's commit -> fenced=%v (%v)\n", errors.Is(zombieErr, kafkaproducer.ErrFenced), zombieErr)
	if !errors.Is(zombieErr, kafkaproducer.ErrFenced) {
		return fmt.Errorf("expected the first instance to be fenced, got %v", zombieErr)
	}
	if err := first.Run(ctx, func(context.Context, *txn.Tx) error { return nil }); !errors.Is(err, kafkaproducer.ErrFenced) {
		return fmt.Errorf("fenced producer accepted work: %v", err)
	}
	fmt.Println("fencing: first instance now refuses work; second instance commits:")
	if err := second.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		return checkout(ctx, tx, runID+"-after-fence", false, nil)
	}); err != nil {
		return err
	}
	committed++

	// What a read_committed consumer sees.
	for _, topic := range topics.Names(want...) {
		got, err := readRun(ctx, addrs, topic, runID, committed)
		if err != nil {
			return err
		}
		status := "ok"
		if got != committed {
			status = "MISMATCH"
		}
		fmt.Printf("read_committed %-9s: %3d records for this run, want %d (one per committed checkout) %s\n", topic, got, committed, status)
		if got != committed {
			return fmt.Errorf("%s: %d records visible, want %d", topic, got, committed)
		}
	}
	fmt.Println("OK: every committed checkout is visible in all three topics; no declined or fenced one is.")
	return nil
}

// ensureTopics creates the example's topics where they are missing and
// waits until they can take records. It uses a plain franz-go client: the
// transactional producers come later, from the pool.
func ensureTopics(ctx context.Context, addrs []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	rep, err := topics.Ensure(ctx, cl, want)
	if err != nil {
		return err
	}
	fmt.Println("topics:", rep)
	return topics.Ready(ctx, cl, topics.Names(want...)...)
}

// checkout writes the three records of one order in tx.
func checkout(ctx context.Context, tx *txn.Tx, id string, decline bool, errDeclined error) error {
	if _, err := tx.Send(ctx, kafkaproducer.Record{Topic: "orders", Key: []byte(id), Value: []byte(`{"status":"placed"}`)}); err != nil {
		return err
	}
	if _, err := tx.Send(ctx, kafkaproducer.Record{Topic: "inventory", Key: []byte(id), Value: []byte(`{"reserved":1}`)}); err != nil {
		return err
	}
	if decline {
		return errDeclined // aborts: the order and the reservation vanish too
	}
	_, err := tx.Send(ctx, kafkaproducer.Record{Topic: "payments", Key: []byte(id), Value: []byte(`{"status":"charged"}`)})
	return err
}

// readRun counts this run's records on topic with read_committed, reading
// until want arrive and then a little longer to catch extras.
func readRun(ctx context.Context, addrs []string, topic, runID string, want int) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	got := 0
	pollCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	graced := false
	for pollCtx.Err() == nil {
		if got >= want && !graced {
			graced = true
			var gcancel context.CancelFunc
			pollCtx, gcancel = context.WithTimeout(pollCtx, 500*time.Millisecond)
			defer gcancel()
		}
		cl.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			if strings.HasPrefix(string(r.Key), runID+"-") {
				got++
			}
		})
	}
	return got, nil
}
