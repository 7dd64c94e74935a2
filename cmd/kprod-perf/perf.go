package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/txn"
)

// maxSamples bounds the latency slice (8 bytes a record): above it every
// k-th record is sampled, as Kafka's perf tool does.
const maxSamples = 5_000_000

// runOpts is one run's workload.
type runOpts struct {
	numRecords    int64
	recordSize    int
	throughput    float64 // records/s; <= 0 unthrottled
	topic         string
	keys          int
	transactional bool
	txnSize       int64
	reportEvery   time.Duration
	progress      io.Writer // nil: no progress lines
	label         string    // prefix of progress lines
}

// result is one run's outcome; it is also the --json schema. Rates and
// latencies count acknowledged records only; Records is how many were
// sent, Errors how many failed.
type result struct {
	Preset        string  `json:"preset"`
	Records       int64   `json:"records"`
	RecordSize    int     `json:"record_size"`
	Acked         int64   `json:"acked"`
	Errors        int64   `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	Transactions  int64   `json:"transactions,omitempty"`
	ElapsedSec    float64 `json:"elapsed_seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	AvgMs         float64 `json:"avg_latency_ms"`
	MaxMs         float64 `json:"max_latency_ms"`
	P50Ms         float64 `json:"p50_ms"`
	P95Ms         float64 `json:"p95_ms"`
	P99Ms         float64 `json:"p99_ms"`
	P999Ms        float64 `json:"p999_ms"`
}

// stats collects record outcomes from SendAsync callbacks. Callbacks only
// do atomic operations, so they never block; the reporter goroutine reads
// and resets the window counters concurrently.
type stats struct {
	lat    []int64 // latency in ns of sampled record i/stride; -1 if it failed
	stride int64

	acked    atomic.Int64
	errs     atomic.Int64
	firstErr atomic.Pointer[string]

	winCount  atomic.Int64
	winLatSum atomic.Int64
	winMax    atomic.Int64
}

func newStats(n int64) *stats {
	stride := (n + maxSamples - 1) / maxSamples
	return &stats{lat: make([]int64, (n+stride-1)/stride), stride: stride}
}

// done records record i's outcome.
func (s *stats) done(i int64, r kafkaproducer.Result) {
	if r.Err != nil {
		s.fail(i, r.Err)
		return
	}
	ns := int64(r.Latency)
	if i%s.stride == 0 {
		atomic.StoreInt64(&s.lat[i/s.stride], ns)
	}
	s.acked.Add(1)
	s.winCount.Add(1)
	s.winLatSum.Add(ns)
	for {
		cur := s.winMax.Load()
		if ns <= cur || s.winMax.CompareAndSwap(cur, ns) {
			break
		}
	}
}

func (s *stats) fail(i int64, err error) {
	if i%s.stride == 0 {
		atomic.StoreInt64(&s.lat[i/s.stride], -1)
	}
	if s.errs.Add(1) == 1 {
		msg := err.Error()
		s.firstErr.Store(&msg)
	}
}

// report prints a progress line every interval until stop is closed.
func (s *stats) report(w io.Writer, label string, recordSize int, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n, sum, mx := s.winCount.Swap(0), s.winLatSum.Swap(0), s.winMax.Swap(0)
			secs := now.Sub(last).Seconds()
			last = now
			avg := 0.0
			if n > 0 {
				avg = ms(sum / n)
			}
			fmt.Fprintf(w, "%s%d records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency.\n",
				label, n, float64(n)/secs, float64(n)*float64(recordSize)/secs/(1<<20), avg, ms(mx))
		}
	}
}

// summarize computes the final figures; every callback must have run.
// sent is how many records were handed to the producer.
func (s *stats) summarize(o runOpts, sent int64, elapsed time.Duration) result {
	ok := make([]int64, 0, len(s.lat))
	var sum int64
	for i := range s.lat {
		if v := atomic.LoadInt64(&s.lat[i]); v >= 0 {
			ok = append(ok, v)
			sum += v
		}
	}
	slices.Sort(ok)
	secs := elapsed.Seconds()
	r := result{
		Records:       sent,
		RecordSize:    o.recordSize,
		Acked:         s.acked.Load(),
		Errors:        s.errs.Load(),
		ElapsedSec:    secs,
		RecordsPerSec: float64(s.acked.Load()) / secs,
		MBPerSec:      float64(s.acked.Load()) * float64(o.recordSize) / secs / (1 << 20),
	}
	if p := s.firstErr.Load(); p != nil {
		r.FirstError = *p
	}
	if len(ok) > 0 {
		r.AvgMs = ms(sum / int64(len(ok)))
		r.MaxMs = ms(ok[len(ok)-1])
		r.P50Ms = ms(percentile(ok, 0.50))
		r.P95Ms = ms(percentile(ok, 0.95))
		r.P99Ms = ms(percentile(ok, 0.99))
		r.P999Ms = ms(percentile(ok, 0.999))
	}
	return r
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []int64, p float64) int64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// pacer throttles sending to a fixed rate, like Kafka's
// ThroughputThrottler: record i is not sent before start + i/rate.
type pacer struct {
	rate  float64 // records/s; <= 0 means unthrottled
	start time.Time
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

// wait blocks until record i may be sent, or ctx ends. It sleeps only
// when at least a millisecond ahead, so fast rates do not pay a timer
// per record.
func (p *pacer) wait(ctx context.Context, i int64) error {
	if p.rate <= 0 {
		return nil
	}
	due := p.start.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))
	if d := due.Sub(p.now()); d >= time.Millisecond {
		return p.sleep(ctx, d)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// payload is recordSize random upper-case letters, generated once and
// shared by every record (as Kafka's perf tool does; it compresses to
// about 60%, so compression figures are optimistic for real data).
func payload(size int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte('A' + rng.IntN(26))
	}
	return b
}

// runOne sends o.numRecords records with a producer built from cfg and
// reports the outcome. Progress lines go to o.progress every
// o.reportEvery. The returned error is about the run itself (the
// producer could not be built, a transaction failed to commit); failed
// records are counted in the result.
//
// With o.transactional, records go through package txn: one txn.Producer
// (cfg.TransactionalID) runs one transaction per o.txnSize records,
// sending with tx.SendAsync; Run waits for every record and commits. A
// transaction is not retried (txn.Config{MaxAttempts: 1}), so no record is
// counted twice; one that does not commit ends the run with its error.
func runOne(ctx context.Context, cfg kafkaproducer.Config, o runOpts) (result, error) {
	var (
		sender   kafkaproducer.RecordSender
		flush    func(context.Context) error
		closeP   func(context.Context) error
		runTxn   func(context.Context, txn.Func) error
		closeErr error
		closed   bool
	)
	if o.transactional {
		tp, err := txn.New(cfg, txn.Config{ID: cfg.TransactionalID, MaxAttempts: 1})
		if err != nil {
			return result{}, err
		}
		flush = func(context.Context) error { return nil } // Run flushes before each commit
		closeP, runTxn = tp.Close, tp.Run
	} else {
		p, err := kafkaproducer.New(cfg)
		if err != nil {
			return result{}, err
		}
		sender, flush, closeP = p, p.Flush, p.Close
	}
	defer func() {
		if !closed {
			_ = closeP(ctx)
		}
	}()
	value := payload(o.recordSize)
	keys := make([][]byte, o.keys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	st := newStats(o.numRecords)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	if o.progress != nil {
		wg.Go(func() { st.report(o.progress, o.label, o.recordSize, o.reportEvery, stop) })
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	start := time.Now()
	pace := pacer{rate: o.throughput, start: start, now: time.Now, sleep: sleepCtx}
	var sent int64
	// send sends records [from, to) through s.
	send := func(ctx context.Context, s kafkaproducer.RecordSender, from, to int64) error {
		for i := from; i < to; i++ {
			if err := pace.wait(ctx, i); err != nil {
				return err
			}
			rec := kafkaproducer.Record{Topic: o.topic, Value: value}
			if len(keys) > 0 {
				rec.Key = keys[i%int64(len(keys))]
			}
			if err := s.SendAsync(ctx, rec, func(r kafkaproducer.Result) { st.done(i, r) }); err != nil {
				st.fail(i, err)
			}
			sent++
		}
		return nil
	}
	var runErr error
	var txns int64
	if o.transactional {
		for from := int64(0); from < o.numRecords && runErr == nil; from += o.txnSize {
			to := min(from+o.txnSize, o.numRecords)
			runErr = runTxn(ctx, func(ctx context.Context, tx *txn.Tx) error { return send(ctx, tx, from, to) })
			if runErr == nil {
				txns++
			}
		}
	} else {
		runErr = send(ctx, sender, 0, o.numRecords)
	}
	if runErr == nil {
		runErr = flush(ctx)
	}
	elapsed := time.Since(start)
	// Close waits for every callback, so the stats are complete after it.
	closeErr = closeP(ctx)
	closed = true
	if _, ok := errors.AsType[*kafkaproducer.CloseError](closeErr); ok {
		closeErr = nil // its records reached their callbacks and are counted
	}
	res := st.summarize(o, sent, elapsed)
	res.Transactions = txns
	return res, errors.Join(runErr, closeErr)
}
