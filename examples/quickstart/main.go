// Command quickstart produces the article's order, payment and inventory
// records with the reliable preset and prints a delivery report for each.
//
//	go run ./examples/quickstart                      # embedded kfake cluster
//	go run ./examples/quickstart --brokers host:9092  # a real cluster
//
// With no --brokers it starts a kfake cluster in-process, so it needs no
// Kafka installation. Either way it first makes sure its topics exist
// with topics.Ensure (creating any that are missing, 3 partitions each,
// the broker's replication factor; that needs CREATE where they do not
// exist yet), then checks topics.Ready, then sends.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
)

func main() {
	brokers := flag.String("brokers", "", "comma-separated bootstrap brokers; empty starts an in-process kfake cluster.\n"+
		"Topics orders, payments and inventory are created there if missing (3 partitions, the broker's replication factor)")
	preset := flag.String("preset", presets.NameReliable, "preset: "+strings.Join(presets.Names(), ", "))
	verbose := flag.Bool("v", false, "log client events to stderr")
	flag.Parse()
	if err := run(*brokers, *preset, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(brokers, preset string, verbose bool) error {
	want := []topics.Topic{{Name: "orders", Partitions: 3}, {Name: "payments", Partitions: 3}, {Name: "inventory", Partitions: 3}}
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("start embedded kfake: %w", err)
		}
		defer c.Close()
		addrs = c.ListenAddrs()
		fmt.Printf("embedded kfake cluster at %s\n", strings.Join(addrs, ","))
	}

	cfg, err := presets.ByName(preset)
	if err != nil {
		return err
	}
	cfg.Brokers = addrs
	cfg.ClientID = "order-service-producer"
	if verbose {
		log, _ := zap.NewDevelopment()
		cfg.Logger = log
	}
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "close:", err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		return err
	}
	// The service's topics: created if missing, drift reported, then
	// the readiness check a health endpoint would run.
	rep, err := topics.Ensure(ctx, p.Client(), want)
	if err != nil {
		return err
	}
	fmt.Println("topics:", rep)
	if err := topics.Ready(ctx, p.Client(), topics.Names(want...)...); err != nil {
		return err
	}

	fmt.Printf("%-10s %-9s %-6s %-10s %s\n", "TOPIC", "PARTITION", "OFFSET", "LATENCY", "KEY")
	report := func(r kafkaproducer.Result) {
		if r.Err != nil {
			fmt.Printf("%-10s FAILED: %v\n", r.Record.Topic, r.Err)
			return
		}
		fmt.Printf("%-10s %-9d %-6d %-10s %s\n", r.Record.Topic, r.Partition, r.Offset, r.Latency.Round(10*time.Microsecond), r.Record.Key)
	}

	// A synchronous send: the caller learns the outcome before going on.
	res, err := p.Send(ctx, kafkaproducer.Record{
		Topic:   "orders",
		Key:     []byte("order-123"),
		Value:   []byte(`{"amount":100}`),
		Headers: []kafkaproducer.Header{{Key: "source", Value: []byte("quickstart")}},
	})
	report(res)
	if err != nil {
		return err
	}

	// A batch: one result per record, in order.
	var batch []kafkaproducer.Record
	for i := range 3 {
		id := fmt.Sprintf("order-%d", 124+i)
		batch = append(batch,
			kafkaproducer.Record{Topic: "orders", Key: []byte(id), Value: fmt.Appendf(nil, `{"amount":%d}`, 50+i*10)},
			kafkaproducer.Record{Topic: "payments", Key: []byte(id), Value: []byte(`{"status":"pending"}`)},
			kafkaproducer.Record{Topic: "inventory", Key: fmt.Appendf(nil, "item-%d", 456+i), Value: []byte(`{"reserved":1}`)},
		)
	}
	results := p.SendBatch(ctx, batch)
	for _, r := range results {
		report(r)
	}

	// Asynchronous sends: the callback runs on the producer's delivery
	// goroutine and must not block.
	done := make(chan kafkaproducer.Result, 2)
	for _, r := range []kafkaproducer.Record{
		{Topic: "payments", Key: []byte("order-123"), Value: []byte(`{"status":"captured"}`)},
		{Topic: "inventory", Key: []byte("item-456"), Value: []byte(`{"reserved":0}`)},
	} {
		if err := p.SendAsync(ctx, r, func(r kafkaproducer.Result) { done <- r }); err != nil {
			return err
		}
	}
	for range 2 {
		report(<-done)
	}
	if err := results.FirstErr(); err != nil {
		return err
	}
	fmt.Println("all records delivered")
	return nil
}
