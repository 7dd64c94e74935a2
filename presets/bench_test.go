package presets_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kfake"
)

// The preset benchmarks run each preset against the same in-process kfake
// broker (6 partitions, 100-byte values, 10,000 keys). Compare presets
// within one run: `make bench` or
//
//	go test -run '^$' -bench . -benchtime 200000x ./presets/

func benchCluster(b *testing.B) *kfake.Cluster {
	return testkit.Cluster(b, nil, kfake.SeedTopics(6, "bench"))
}

func benchProducer(b *testing.B, name string, c *kfake.Cluster) *kafkaproducer.Producer {
	cfg, err := presets.ByName(name)
	if err != nil {
		b.Fatal(err)
	}
	return testkit.Producer(b, c, cfg)
}

func benchRecords(n int) []kafkaproducer.Record {
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	recs := make([]kafkaproducer.Record, n)
	for i := range recs {
		recs[i] = kafkaproducer.Record{Topic: "bench", Key: fmt.Appendf(nil, "key-%05d", i%10_000), Value: value}
	}
	return recs
}

// BenchmarkThroughput: asynchronous sends, as fast as the preset allows.
// records/s is the figure to compare.
func BenchmarkThroughput(b *testing.B) {
	for _, name := range presets.Names() {
		b.Run(name, func(b *testing.B) {
			c := benchCluster(b)
			p := benchProducer(b, name, c)
			recs := benchRecords(10_000)
			var wg sync.WaitGroup
			wg.Add(b.N)
			cb := func(r kafkaproducer.Result) {
				if r.Err != nil {
					b.Error(r.Err)
				}
				wg.Done()
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(100)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if err := p.SendAsync(ctx, recs[i%len(recs)], cb); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkSequentialLatency: one Send at a time, as a request handler
// would. p50 and p99 are the figures to compare.
func BenchmarkSequentialLatency(b *testing.B) {
	for _, name := range presets.Names() {
		b.Run(name, func(b *testing.B) {
			c := benchCluster(b)
			p := benchProducer(b, name, c)
			recs := benchRecords(1000)
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				res, err := p.Send(ctx, recs[i%len(recs)])
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, res.Latency)
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
