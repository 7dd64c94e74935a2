package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// kafkaGoWriter builds a kafka-go Writer for one of its cases and says how
// many messages each WriteMessages call carries. kafka-go has no
// idempotent producer: every case runs with RequiredAcks=all only.
//
//   - best: Async with large batches (20ms timeout), no compression, 1,000
//     messages per call;
//   - reliable: kprod's reliable preset where comparable (snappy, 5ms
//     batch timeout, 1 MB batches, murmur2), same call size;
//   - latency: synchronous, one message per batch, written at once.
func kafkaGoWriter(w *workload, name string) (*kafka.Writer, int, error) {
	kw := &kafka.Writer{
		Addr:         kafka.TCP(w.Brokers...),
		Topic:        w.Topic,
		Balancer:     &kafka.Murmur2Balancer{}, // Java's placement, as kprod's default
		RequiredAcks: kafka.RequireAll,
		MaxAttempts:  10,
	}
	perCall := 1000
	switch name {
	case "best":
		kw.Async = true
		kw.BatchSize = 10_000
		kw.BatchBytes = 1_000_000
		kw.BatchTimeout = 20 * time.Millisecond
	case "reliable":
		kw.Async = true
		kw.BatchSize = 10_000
		kw.BatchBytes = 1_000_000
		kw.BatchTimeout = 5 * time.Millisecond
		kw.Compression = kafka.Snappy
	case "latency":
		kw.BatchSize = 1
		kw.BatchTimeout = time.Millisecond
		perCall = 1
	default:
		return nil, 0, fmt.Errorf("kafka-go config %q", name)
	}
	// Probing overrides.
	for k, v := range w.Tune {
		var err error
		switch k {
		case "per_call":
			perCall, err = strconv.Atoi(v)
		case "batch_timeout":
			kw.BatchTimeout, err = time.ParseDuration(v)
		case "batch_size":
			kw.BatchSize, err = strconv.Atoi(v)
		case "compression":
			err = kw.Compression.UnmarshalText([]byte(v))
		default:
			err = fmt.Errorf("unknown override %q", k)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("kafka-go %s: %w", k, err)
		}
	}
	return kw, max(perCall, 1), nil
}

func runKafkaGo(ctx context.Context, w *workload, name string, r *Result) error {
	kw, perCall, err := kafkaGoWriter(w, name)
	if err != nil {
		return err
	}
	defer kw.Close()
	switch w.Mode {
	case modeThroughput:
		var ec errCount
		var seen atomic.Int64
		var warm, wg sync.WaitGroup
		warm.Add(1)
		wg.Add(w.Records)
		kw.Completion = func(msgs []kafka.Message, err error) {
			n := len(msgs)
			if seen.Add(int64(n)) == int64(n) && n > 0 { // the warm-up message, alone in its batch
				warm.Done()
				n--
			}
			for range n {
				ec.add(err)
				wg.Done()
			}
		}
		if err := kw.WriteMessages(ctx, kafka.Message{Key: w.key(0), Value: w.value}); err != nil {
			return err
		}
		warm.Wait()
		chunk := make([]kafka.Message, 0, perCall)
		m := startMeter()
		for i := range w.Records {
			chunk = append(chunk, kafka.Message{Key: w.key(i), Value: w.value})
			if len(chunk) == perCall || i == w.Records-1 {
				if err := kw.WriteMessages(ctx, chunk...); err != nil {
					return err
				}
				chunk = chunk[:0]
			}
		}
		wg.Wait()
		m.stop(r, w.Records, w.ValueSize)
		ec.fill(r)
	case modeLatency:
		if err := kw.WriteMessages(ctx, kafka.Message{Key: w.key(0), Value: w.value}); err != nil {
			return fmt.Errorf("warm-up send: %w", err)
		}
		sequential(ctx, w, r, func(ctx context.Context, i int) error {
			return kw.WriteMessages(ctx, kafka.Message{Key: w.key(i), Value: w.value})
		})
	default:
		return fmt.Errorf("mode %q", w.Mode)
	}
	return nil
}
