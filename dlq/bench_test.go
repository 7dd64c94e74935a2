package dlq_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kfake"
)

// BenchmarkSendAsyncDuringOutage: the cluster is gone and the breaker
// open; SendAsync of 100-byte records goes through the router into the
// spool (group commit). This is the rate an outage absorbs before the
// application feels back-pressure.
func BenchmarkSendAsyncDuringOutage(b *testing.B) {
	br := newBroker(b, "orders")
	d := newDLQ(b, outageConfig(br.addrs()), dlq.Config{
		SpoolDir: b.TempDir() + "/spool",
		Spool:    spoolOpts(),
		Breaker:  fastBreaker(),
		Replay:   dlq.ReplayConfig{Disable: true},
	})
	br.stop()
	testkit.WaitFor(b, 10*time.Second, "breaker to open", func() bool { return d.BreakerState() == gobreaker.StateOpen })
	rec := kafkaproducer.Record{Topic: "orders", Key: []byte("customer-0042"), Value: make([]byte, 100)}
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		wg.Add(1)
		if err := d.SendAsync(context.Background(), rec, func(r dlq.Result) {
			if r.Disposition != dlq.Spooled {
				b.Errorf("disposition %v: %v", r.Disposition, r.Err)
			}
			wg.Done()
		}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSendAsyncHealthy: the wrapper's cost on healthy sends (record
// ID, breaker, pending bound) against a blackholing broker.
func BenchmarkSendAsyncHealthy(b *testing.B) {
	for _, wrapped := range []bool{false, true} {
		name := "kafkaproducer"
		if wrapped {
			name = "dlq"
		}
		b.Run(name, func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders"), kfake.BlackholeProduce())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cfg := presets.HighThroughput()
			cfg.Brokers = c.ListenAddrs()
			p, err := kafkaproducer.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			rec := kafkaproducer.Record{Topic: "orders", Key: []byte("customer-0042"), Value: make([]byte, 100)}
			var wg sync.WaitGroup
			var send func() error
			if wrapped {
				d, err := dlq.New(p, dlq.Config{SpoolDir: b.TempDir() + "/spool"})
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close(context.Background())
				send = func() error { return d.SendAsync(context.Background(), rec, func(dlq.Result) { wg.Done() }) }
			} else {
				defer p.Close(context.Background())
				send = func() error { return p.SendAsync(context.Background(), rec, func(kafkaproducer.Result) { wg.Done() }) }
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				wg.Add(1)
				if err := send(); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
