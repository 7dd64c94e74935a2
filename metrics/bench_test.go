package metrics_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
)

// BenchmarkProduce measures a producer's throughput against in-process
// kfake with metrics off and on (hook, franz-go hooks, kprom), so the two
// sub-benchmarks' ns/op compare directly. Run with -count and compare the
// medians (benchstat).
func BenchmarkProduce(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "metrics=off"
		if on {
			name = "metrics=on"
		}
		b.Run(name, func(b *testing.B) {
			c := testkit.Cluster(b, []string{"bench"})
			cfg := presets.HighThroughput()
			reg := prometheus.NewRegistry()
			if on {
				m, err := metrics.New(reg)
				if err != nil {
					b.Fatal(err)
				}
				cfg = m.Instrument(cfg)
			}
			p := testkit.Producer(b, c, cfg)
			ctx := context.Background()
			r := kafkaproducer.Record{Topic: "bench", Value: make([]byte, 100)}
			if _, err := p.Send(ctx, r); err != nil { // connect, load metadata
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(r.Value)))
			b.ResetTimer()
			for b.Loop() {
				if err := p.SendAsync(ctx, r, nil); err != nil {
					b.Fatal(err)
				}
			}
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := p.Flush(fctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if on {
				if got := scrape(b, reg, "kprod_records_sent_total").value; got < float64(b.N) {
					b.Fatalf("sent %v < %d", got, b.N)
				}
			}
		})
	}
}

// BenchmarkMetricsOverhead interleaves the two producers of
// BenchmarkProduce (metrics off and on, same kfake cluster, own topics) in
// chunks of 2000 records, alternating which goes first, so load on a
// shared machine hits both alike. It reports each side's ns per record
// on/off, the throughput with metrics on as a fraction of the throughput
// with metrics off over the whole run (1.00 means no cost), and
// on/off-median, the same over the median pair of chunks.
func BenchmarkMetricsOverhead(b *testing.B) {
	c := testkit.Cluster(b, []string{"off", "on"})
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		b.Fatal(err)
	}
	off := testkit.Producer(b, c, presets.HighThroughput())
	on := testkit.Producer(b, c, m.Instrument(presets.HighThroughput()))
	ctx := context.Background()
	value := make([]byte, 100)
	const chunk = 2000
	run := func(p *kafkaproducer.Producer, topic string) time.Duration {
		start := time.Now()
		for range chunk {
			if err := p.SendAsync(ctx, kafkaproducer.Record{Topic: topic, Value: value}, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	run(off, "off") // connect, load metadata
	run(on, "on")
	var tOff, tOn time.Duration
	var ratios []float64 // per pair of chunks: off time / on time
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		var dOff, dOn time.Duration
		if i%2 == 0 {
			dOff = run(off, "off")
			dOn = run(on, "on")
		} else {
			dOn = run(on, "on")
			dOff = run(off, "off")
		}
		tOff += dOff
		tOn += dOn
		ratios = append(ratios, float64(dOff)/float64(dOn))
		i++
	}
	b.StopTimer()
	recs := float64(i * chunk)
	slices.Sort(ratios)
	b.ReportMetric(float64(tOff.Nanoseconds())/recs, "ns/rec-off")
	b.ReportMetric(float64(tOn.Nanoseconds())/recs, "ns/rec-on")
	b.ReportMetric(float64(tOff)/float64(tOn), "on/off")
	// The median pair resists another process's burst landing on one
	// side of a pair.
	b.ReportMetric(ratios[len(ratios)/2], "on/off-median")
	if got := scrape(b, reg, "kprod_records_sent_total", "topic", "on").value; got != recs+chunk {
		b.Fatalf("metrics counted %v records, %v were sent", got, recs+chunk)
	}
}

// BenchmarkOnRecordDone is the hook's own cost per record, from many
// goroutines (franz-go completes partitions concurrently).
func BenchmarkOnRecordDone(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	res := kafkaproducer.Result{Record: kafkaproducer.Record{Topic: "orders"}, Latency: 3 * time.Millisecond}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.OnRecordDone(res)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.OnRecordDone(res)
			}
		})
	})
}

// BenchmarkOnRecordAcked is the cost per record of the hook's success
// path when the Producer hands it an Ack rather than a Result.
func BenchmarkOnRecordAcked(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	ack := kafkaproducer.AckedRecord{Topic: "orders", Latency: 3 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		m.OnRecordAcked(ack)
	}
}
