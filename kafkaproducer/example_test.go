package kafkaproducer_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kfake"
)

// A config that contradicts itself is refused with an error that names
// both settings and the fix.
func ExampleNew_validation() {
	cfg := presets.Reliable()
	cfg.Brokers = []string{"localhost:9092"}
	cfg.Acks = kafkaproducer.AcksLeader // idempotence needs acks=all
	_, err := kafkaproducer.New(cfg)
	var ce *kafkaproducer.ConfigError
	fmt.Println(errors.As(err, &ce), ce.Field)
	fmt.Println(err)
	// Output:
	// true Acks/DisableIdempotence
	// kprod: config Acks/DisableIdempotence: idempotence requires acks "all" but Acks is "leader": set Acks to "all" or DisableIdempotence to true
}

func ExampleProducer_Send() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	defer cluster.Close()

	cfg := presets.Reliable()
	cfg.Brokers = cluster.ListenAddrs()
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		panic(err)
	}
	defer p.Close(context.Background())

	for _, id := range []string{"order-1", "order-2"} {
		res, err := p.Send(context.Background(), kafkaproducer.Record{Topic: "orders", Key: []byte(id), Value: []byte(`{"amount":100}`)})
		if err != nil {
			fmt.Println(kafkaproducer.Classify(err), err)
			continue
		}
		fmt.Printf("%s -> %s/%d@%d\n", id, res.Record.Topic, res.Partition, res.Offset)
	}
	_, err = p.Send(context.Background(), kafkaproducer.Record{Value: []byte("no topic")})
	fmt.Println(kafkaproducer.Classify(err), errors.Is(err, kafkaproducer.ErrNoTopic))
	// Output:
	// order-1 -> orders/0@0
	// order-2 -> orders/0@1
	// bad_input true
}

// SendAsyncErr suits bulk sends where only failures matter: the callback
// gets each record's error, nil once it is written, and no Result is
// built.
func ExampleProducer_SendAsyncErr() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	defer cluster.Close()

	cfg := presets.HighThroughput()
	cfg.Brokers = cluster.ListenAddrs()
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		panic(err)
	}
	var written, failed atomic.Int64
	for i := range 1000 {
		rec := kafkaproducer.Record{Topic: "events", Value: fmt.Appendf(nil, "event-%d", i)}
		if err := p.SendAsyncErr(context.Background(), rec, func(err error) {
			if err != nil {
				failed.Add(1) // a *SendError: log it, count it by Classify(err)
				return
			}
			written.Add(1)
		}); err != nil {
			fmt.Println("refused:", err)
		}
	}
	if err := p.Close(context.Background()); err != nil { // waits for every callback
		fmt.Println(err)
	}
	fmt.Println(written.Load(), "written,", failed.Load(), "failed")
	// Output:
	// 1000 written, 0 failed
}

func ExampleClassify() {
	for _, err := range []error{kafkaproducer.ErrBufferFull, kafkaproducer.ErrDeliveryTimeout, kafkaproducer.ErrFenced, nil} {
		fmt.Println(kafkaproducer.Classify(err), kafkaproducer.IsRetriable(err))
	}
	// Output:
	// retriable true
	// timeout true
	// fatal false
	// none false
}
