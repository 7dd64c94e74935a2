package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// confluentConfig is librdkafka's configuration for one of its cases:
//
//   - best: tuned for throughput by probing on this broker;
//   - reliable: kprod's reliable preset where comparable;
//   - latency: linger.ms=0.
func confluentConfig(w *workload, name string) (*kafka.ConfigMap, error) {
	c := kafka.ConfigMap{
		"bootstrap.servers":                     strings.Join(w.Brokers, ","),
		"client.id":                             "kbench",
		"acks":                                  "all",
		"enable.idempotence":                    true,
		"max.in.flight.requests.per.connection": 5,
		"partitioner":                           "murmur2_random", // Java's placement, as kprod's default
		"go.delivery.report.fields":             "none",           // the Go side copies nothing back
		"queue.buffering.max.messages":          1_000_000,
		"queue.buffering.max.kbytes":            1 << 20,
		"log_level":                             3,
	}
	switch name {
	case "best":
		// Probed: a 100k-message queue beats 1M (less memory to
		// walk), lz4 edges out none and snappy, linger 1-20ms is
		// within noise.
		c["linger.ms"] = 5
		c["batch.size"] = 1_000_000
		c["compression.type"] = "lz4"
		c["queue.buffering.max.messages"] = 100_000
		c["queue.buffering.max.kbytes"] = 64 << 10
	case "reliable":
		c["linger.ms"] = 5
		c["batch.size"] = 1_000_000
		c["compression.type"] = "snappy"
		c["queue.buffering.max.messages"] = 100_000
		c["queue.buffering.max.kbytes"] = 64 << 10
	case "latency":
		c["linger.ms"] = 0
		c["compression.type"] = "none"
	default:
		return nil, fmt.Errorf("confluent config %q", name)
	}
	// Probing overrides: librdkafka property names.
	for k, v := range w.Tune {
		c[k] = v
	}
	return &c, nil
}

func runConfluent(ctx context.Context, w *workload, name string, r *Result) error {
	cfg, err := confluentConfig(w, name)
	if err != nil {
		return err
	}
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		return err
	}
	var closeOnce sync.Once
	closeP := func() { closeOnce.Do(p.Close) }
	defer closeP()
	topic := w.Topic
	msg := func(i int) *kafka.Message {
		return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}, Key: w.key(i), Value: w.value}
	}
	// produce retries while librdkafka's queue is full.
	produce := func(m *kafka.Message, ch chan kafka.Event) error {
		for {
			err := p.Produce(m, ch)
			var ke kafka.Error
			if errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull {
				p.Flush(1)
				continue
			}
			return err
		}
	}
	warm := make(chan kafka.Event, 1)
	if err := produce(msg(0), warm); err != nil {
		return err
	}
	if m := (<-warm).(*kafka.Message); m.TopicPartition.Error != nil {
		return fmt.Errorf("warm-up send: %w", m.TopicPartition.Error)
	}
	switch w.Mode {
	case modeThroughput:
		var ec errCount
		var wg sync.WaitGroup
		wg.Add(w.Records)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range p.Events() {
				if m, ok := ev.(*kafka.Message); ok {
					ec.add(m.TopicPartition.Error)
					wg.Done()
				}
			}
		}()
		m := startMeter()
		for i := range w.Records {
			if err := produce(msg(i), nil); err != nil {
				return err
			}
		}
		wg.Wait()
		m.stop(r, w.Records, w.ValueSize)
		ec.fill(r)
		closeP()
		<-done
	case modeLatency:
		ch := make(chan kafka.Event, 1)
		sequential(ctx, w, r, func(_ context.Context, i int) error {
			if err := produce(msg(i), ch); err != nil {
				return err
			}
			return (<-ch).(*kafka.Message).TopicPartition.Error
		})
	default:
		return fmt.Errorf("mode %q", w.Mode)
	}
	return nil
}
