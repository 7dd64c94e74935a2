package txn_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// An order and its payment commit together; a failed transaction leaves
// nothing for read_committed consumers.
func ExampleProducer_Run() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "payments"))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg := presets.Reliable()
	cfg.Brokers = c.ListenAddrs()
	p, err := txn.New(cfg, txn.Config{ID: "orders-svc-0"})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	place := func(id string, fail bool) error {
		return p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
			if _, err := tx.Send(ctx, kafkaproducer.Record{Topic: "orders", Key: []byte(id), Value: []byte("placed")}); err != nil {
				return err
			}
			if fail {
				return errors.New("card declined")
			}
			_, err := tx.Send(ctx, kafkaproducer.Record{Topic: "payments", Key: []byte(id), Value: []byte("charged")})
			return err
		})
	}
	fmt.Println("order-1:", place("order-1", false))
	fmt.Println("order-2 failed:", place("order-2", true) != nil)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("orders", "payments"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	var seen []string
	for len(seen) < 2 {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			seen = append(seen, fmt.Sprintf("%s %s %s", r.Topic, r.Key, r.Value))
		})
	}
	for _, s := range seen {
		if s[0] == 'o' {
			fmt.Println(s)
		}
	}
	for _, s := range seen {
		if s[0] == 'p' {
			fmt.Println(s)
		}
	}
	// Output:
	// order-1: <nil>
	// order-2 failed: true
	// orders order-1 placed
	// payments order-1 charged
}
