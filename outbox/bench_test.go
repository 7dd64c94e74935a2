package outbox_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/outbox"
)

// latencies records, per row index, when its transaction began to commit
// and how long after that Kafka acknowledged it (a producer Hook).
type latencies struct {
	commit []atomic.Int64 // unix ns just before Commit
	lat    []atomic.Int64 // ns from commit to ack; 0 = not yet
	acked  atomic.Int64
	last   atomic.Int64 // unix ns of the latest ack
}

func newLatencies(n int) *latencies {
	return &latencies{commit: make([]atomic.Int64, n), lat: make([]atomic.Int64, n)}
}

func (l *latencies) OnRecordDone(r kafkaproducer.Result) {
	if r.Err != nil || len(r.Record.Value) < 8 {
		return
	}
	i := binary.BigEndian.Uint64(r.Record.Value)
	if i >= uint64(len(l.lat)) {
		return
	}
	now := time.Now().UnixNano()
	if l.lat[i].CompareAndSwap(0, max(1, now-l.commit[i].Load())) {
		l.acked.Add(1)
		l.last.Store(now)
	}
}

func (l *latencies) percentiles() (p50, p99 time.Duration) {
	all := make([]int64, 0, len(l.lat))
	for i := range l.lat {
		if v := l.lat[i].Load(); v > 0 {
			all = append(all, v)
		}
	}
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	return time.Duration(all[len(all)/2]), time.Duration(all[len(all)*99/100])
}

// BenchmarkRelay measures the relay on each database with the Reliable
// preset against in-process kfake (3 partitions, 100-byte values, 1,000
// keys):
//
//   - drain: rows/s relayed from a full outbox (100,000 rows PostgreSQL,
//     50,000 SQLite) with no writers: the relay's own ceiling.
//   - rate1000: one-row transactions committed at 1,000/s for 10 s while
//     the relay runs; p50/p99 from the start of each Commit to Kafka's
//     acknowledgement of its row.
//   - saturation: 8 writers committing 10-row transactions as fast as they
//     can (100,000 rows PostgreSQL, 50,000 SQLite) while the relay runs;
//     rows/s from the first commit to the last ack, and latency as above.
//   - saturation-100: the same with 100-row transactions, so the writers
//     commit ten times fewer transactions for the same rows.
//
// "postgres-poll" is PostgreSQL with Table.NoNotify and a relay polling
// every 10ms, which spares the writers NOTIFY's commit lock.
//
// Run with scripts/outbox-test.sh bench (a throwaway PostgreSQL), or with
// OUTBOX_PG_DSN set: go test -run '^$' -bench BenchmarkRelay -benchtime 1x
func BenchmarkRelay(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres", "postgres-poll"} {
		b.Run(name, func(b *testing.B) {
			rows := 100_000
			if name == "sqlite" {
				rows = 50_000
			}
			b.Run("drain", func(b *testing.B) { benchDrain(b, name, rows) })
			b.Run("rate1000", func(b *testing.B) { benchWriters(b, name, 10_000, 1, 1, 1000) })
			b.Run("saturation", func(b *testing.B) { benchWriters(b, name, rows, 8, 10, 0) })
			b.Run("saturation-100", func(b *testing.B) { benchWriters(b, name, rows, 8, 100, 0) })
		})
	}
}

// benchDB opens a database for one benchmark: "postgres-poll" is
// PostgreSQL without the NOTIFY trigger (Table.NoNotify).
func benchDB(b *testing.B, name string) *testDB {
	switch name {
	case "sqlite":
		return openSQLite(b)
	case "postgres-poll":
		d := openPG(b)
		d.table.NoNotify = true
		if err := d.table.Migrate(context.Background(), d.db); err != nil {
			b.Fatal(err)
		}
		return d
	}
	return openPG(b)
}

// benchRelay is the relay config for name: "postgres-poll" polls every
// 10ms instead of waiting for notifications.
func benchRelay(name string) func(*outbox.RelayConfig) {
	return func(c *outbox.RelayConfig) {
		if name == "postgres-poll" {
			c.Wakeup = nil
			c.PollInterval = 10 * time.Millisecond
		}
	}
}

func value(i int) []byte {
	v := make([]byte, 100)
	binary.BigEndian.PutUint64(v, uint64(i))
	return v
}

func key(i int) []byte { return fmt.Appendf(nil, "key-%d", i%1000) }

func benchDrain(b *testing.B, name string, rows int) {
	b.ReportAllocs()
	for range b.N {
		d := benchDB(b, name)
		c := testkit.Cluster(b, []string{"bench"})
		ctx := testkit.Ctx(b, 5*time.Minute)
		recs := make([]kafkaproducer.Record, 0, 1000)
		for i := 0; i < rows; i++ {
			recs = append(recs, kafkaproducer.Record{Topic: "bench", Key: key(i), Value: value(i)})
			if len(recs) == cap(recs) || i == rows-1 {
				if err := d.table.Add(ctx, d.db, recs...); err != nil {
					b.Fatal(err)
				}
				recs = recs[:0]
			}
		}
		p := producer(b, c.ListenAddrs(), nil)
		b.ResetTimer()
		start := time.Now()
		r, stop := runRelay(b, d, p, benchRelay(name))
		for r.Stats().Published < uint64(rows) {
			if ctx.Err() != nil {
				b.Fatalf("published %d of %d", r.Stats().Published, rows)
			}
			time.Sleep(time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		stop()
		b.ReportMetric(float64(rows)/el.Seconds(), "rows/s")
	}
}

// benchWriters runs writers goroutines adding perTxn rows per transaction,
// rows in all, at rate rows/s in all (0: as fast as they can), with a
// relay running, and reports the relayed rate and commit-to-ack latency.
func benchWriters(b *testing.B, name string, rows, writers, perTxn, rate int) {
	b.ReportAllocs()
	for range b.N {
		d := benchDB(b, name)
		c := testkit.Cluster(b, []string{"bench"})
		ctx := testkit.Ctx(b, 5*time.Minute)
		lat := newLatencies(rows)
		p := producer(b, c.ListenAddrs(), func(cfg *kafkaproducer.Config) { cfg.Hooks = []kafkaproducer.Hook{lat} })
		r, stop := runRelay(b, d, p, benchRelay(name))
		testkit.WaitFor(b, 10*time.Second, "the relay to lead", r.Leader)
		var next atomic.Int64
		var first atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for w := range writers {
			wg.Go(func() {
				for {
					i0 := int(next.Add(int64(perTxn))) - perTxn
					if i0 >= rows {
						return
					}
					if rate > 0 { // pace: row i0 is due at start + i0/rate
						if d := time.Until(start.Add(time.Duration(i0) * time.Second / time.Duration(rate))); d > 0 {
							time.Sleep(d)
						}
					}
					n := min(perTxn, rows-i0)
					recs := make([]kafkaproducer.Record, n)
					for j := range recs {
						recs[j] = kafkaproducer.Record{Topic: "bench", Key: key(i0 + j), Value: value(i0 + j)}
					}
					tx, err := d.db.BeginTx(ctx, nil)
					if err != nil {
						b.Error(err)
						return
					}
					if err := d.table.Add(ctx, tx, recs...); err != nil {
						b.Error(err)
						_ = tx.Rollback()
						return
					}
					now := time.Now().UnixNano()
					first.CompareAndSwap(0, now)
					for j := range n {
						lat.commit[i0+j].Store(now)
					}
					if err := tx.Commit(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			_ = w
		}
		wg.Wait()
		for lat.acked.Load() < int64(rows) {
			if ctx.Err() != nil {
				b.Fatalf("acked %d of %d", lat.acked.Load(), rows)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		stop()
		el := time.Duration(lat.last.Load() - first.Load())
		p50, p99 := lat.percentiles()
		b.ReportMetric(float64(rows)/el.Seconds(), "rows/s")
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	}
}
