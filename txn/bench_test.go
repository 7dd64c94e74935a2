package txn_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
)

// BenchmarkRun measures one committed transaction of n records over three
// topics against in-process kfake: the cost of begin, sends, flush and
// EndTxn, not of a real cluster's replication.
func BenchmarkRun(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			c := testkit.Cluster(b, articleTopics)
			cfg := presets.LowLatency()
			cfg.Brokers = c.ListenAddrs()
			p, err := txn.New(cfg, txn.Config{ID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer closeP(p)
			recs := make([]kafkaproducer.Record, n)
			for i := range recs {
				recs[i] = rec(articleTopics[i%3], "b", i)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
					return tx.SendBatch(ctx, recs).FirstErr()
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
