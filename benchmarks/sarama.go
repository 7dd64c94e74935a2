package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	metrics "github.com/rcrowley/go-metrics"
)

// saramaConfig builds sarama's config for one of its cases:
//
//   - best: the async producer tuned for throughput;
//   - reliable: kprod's reliable preset where sarama has the setting;
//   - latency: the sync producer, nothing batched.
func saramaConfig(w *workload, name string) (*sarama.Config, error) {
	c := sarama.NewConfig()
	c.ClientID = "kbench"
	c.Version = sarama.V3_6_0_0
	c.Producer.RequiredAcks = sarama.WaitForAll
	// Idempotence needs one request in flight per connection and
	// Version >= 0.11.
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 10
	c.Producer.Return.Successes = true // per-record delivery, as every client here reports
	c.Producer.Return.Errors = true
	c.Producer.MaxMessageBytes = 1_000_000
	switch name {
	case "best":
		// Probed: 1ms frequency or a 10,000-message trigger make
		// smaller requests and lose; lz4 and snappy cost more CPU.
		c.Producer.Compression = sarama.CompressionNone
		c.Producer.Flush.Bytes = 1_000_000
		c.Producer.Flush.Frequency = 5 * time.Millisecond
		c.ChannelBufferSize = 65_536
	case "reliable":
		c.Producer.Compression = sarama.CompressionSnappy
		c.Producer.Flush.Bytes = 1_000_000
		c.Producer.Flush.Frequency = 5 * time.Millisecond
		c.ChannelBufferSize = 65_536
	case "latency":
		c.Producer.Compression = sarama.CompressionNone
	default:
		return nil, fmt.Errorf("sarama config %q", name)
	}
	// Probing overrides.
	for k, v := range w.Tune {
		var err error
		switch k {
		case "compression":
			err = c.Producer.Compression.UnmarshalText([]byte(v))
		case "flush.frequency":
			c.Producer.Flush.Frequency, err = time.ParseDuration(v)
		case "flush.messages":
			c.Producer.Flush.Messages, err = strconv.Atoi(v)
		case "flush.bytes":
			c.Producer.Flush.Bytes, err = strconv.Atoi(v)
		default:
			err = fmt.Errorf("unknown override %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("sarama %s: %w", k, err)
		}
	}
	return c, c.Validate()
}

func runSarama(ctx context.Context, w *workload, name string, r *Result) error {
	// go-metrics' meters cost sarama a lot of CPU per record; sarama's
	// own benchmarks turn them off this way.
	metrics.UseNilMetrics = true
	cfg, err := saramaConfig(w, name)
	if err != nil {
		return err
	}
	msg := func(i int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: w.Topic, Key: sarama.ByteEncoder(w.key(i)), Value: sarama.ByteEncoder(w.value)}
	}
	switch w.Mode {
	case modeThroughput:
		ap, err := sarama.NewAsyncProducer(w.Brokers, cfg)
		if err != nil {
			return err
		}
		// AsyncClose below; the drain goroutine ends when it has.
		var ec errCount
		done := make(chan struct{})
		var wg sync.WaitGroup
		var warm sync.WaitGroup
		warm.Add(1)
		wg.Add(w.Records)
		var seen atomic.Int64
		finish := func(err error) {
			if seen.Add(1) == 1 { // the warm-up record
				warm.Done()
				return
			}
			ec.add(err)
			wg.Done()
		}
		go func() {
			defer close(done)
			succ, errs := ap.Successes(), ap.Errors()
			for succ != nil || errs != nil {
				select {
				case _, ok := <-succ:
					if !ok {
						succ = nil
						continue
					}
					finish(nil)
				case e, ok := <-errs:
					if !ok {
						errs = nil
						continue
					}
					finish(e.Err)
				}
			}
		}()
		ap.Input() <- msg(0)
		warm.Wait()
		m := startMeter()
		in := ap.Input()
		for i := range w.Records {
			in <- msg(i)
		}
		wg.Wait()
		m.stop(r, w.Records, w.ValueSize)
		ec.fill(r)
		ap.AsyncClose()
		<-done
	case modeLatency:
		sp, err := sarama.NewSyncProducer(w.Brokers, cfg)
		if err != nil {
			return err
		}
		defer sp.Close()
		if _, _, err := sp.SendMessage(msg(0)); err != nil {
			return fmt.Errorf("warm-up send: %w", err)
		}
		sequential(ctx, w, r, func(_ context.Context, i int) error {
			_, _, err := sp.SendMessage(msg(i))
			return err
		})
	default:
		return fmt.Errorf("mode %q", w.Mode)
	}
	return nil
}
