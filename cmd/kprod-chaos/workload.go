package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
)

// The send paths the workload can drive.
const (
	pathDLQ  = "dlq"
	pathTxn  = "txn"
	pathPool = "pool"
)

type workload struct {
	brokers        []string
	path           string
	topic          string
	inc            string
	count          int
	rate           float64
	keys           int
	valueBytes     int
	deliveryTO     time.Duration
	requestTO      time.Duration
	sync           bool
	workers        int
	cancelFrac     float64
	cancelMax      time.Duration
	txnSize        int
	drainTimeout   time.Duration
	spoolDir       string
	txnTimeout     time.Duration
	log            *opLog
	sentN, okN     atomic.Int64
	failN, unknown atomic.Int64
}

func runWorkload(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("workload", flag.ContinueOnError)
	w := &workload{}
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap servers, comma-separated")
	fs.StringVar(&w.path, "path", presets.NameReliable, "send path: reliable, high-throughput, low-latency (plain Producer with that preset), dlq, txn, pool")
	fs.StringVar(&w.topic, "topic", "chaos", "topic (dlq dead-letters go to TOPIC.DLT)")
	logPath := fs.String("log", "", "the claims log (required; appended to)")
	spoolDir := fs.String("spool", "", "dlq: directory holding the spool (the spool is DIR/q)")
	fs.StringVar(&w.inc, "inc", "0", "this process's incarnation: IDs are INC.N")
	fs.IntVar(&w.count, "count", 3000, "records to send (transactional paths: rounded up to whole transactions); 0 with dlq: replay the spool only")
	fs.Float64Var(&w.rate, "rate", 400, "records a second")
	fs.IntVar(&w.keys, "keys", 16, "distinct keys (a multiple of -workers)")
	fs.IntVar(&w.valueBytes, "value-bytes", 100, "padding added to each value")
	fs.DurationVar(&w.deliveryTO, "delivery-timeout", 0, "override the preset's DeliveryTimeout (0: keep it)")
	fs.DurationVar(&w.requestTO, "request-timeout", 0, "override the preset's RequestTimeout (0: keep it)")
	fs.BoolVar(&w.sync, "sync", false, "send with Send from -workers goroutines (each owning its keys) instead of SendAsync from one")
	fs.IntVar(&w.workers, "workers", 4, "goroutines for -sync, members for pool")
	fs.Float64Var(&w.cancelFrac, "cancel-frac", 0, "fraction of sends (transactions) whose context ends after a random time up to -cancel-max")
	fs.DurationVar(&w.cancelMax, "cancel-max", 5*time.Millisecond, "see -cancel-frac")
	fs.IntVar(&w.txnSize, "txn-size", 4, "records a transaction")
	fs.DurationVar(&w.txnTimeout, "txn-timeout", 10*time.Second, "transactional paths: the producer's TransactionTimeout")
	fs.DurationVar(&w.drainTimeout, "drain-timeout", 45*time.Second, "how long to wait at the end for the dlq spool to drain")
	if err := fs.Parse(args); err != nil {
		return err
	}
	w.brokers = strings.Split(*brokers, ",")
	w.spoolDir = *spoolDir
	if *logPath == "" {
		return errors.New("-log is required")
	}
	if w.keys <= 0 || w.workers <= 0 || w.keys%w.workers != 0 {
		return fmt.Errorf("-keys %d must be a positive multiple of -workers %d (each worker owns its keys)", w.keys, w.workers)
	}
	if w.path == pathDLQ && w.spoolDir == "" {
		return errors.New("-path dlq needs -spool")
	}
	l, err := openOpLog(*logPath)
	if err != nil {
		return err
	}
	w.log = l
	w.log.logf("start %s path=%s count=%d at=%s", w.inc, w.path, w.count, time.Now().UTC().Format(time.RFC3339Nano))
	runErr := w.run(ctx)
	w.log.logf("summary %s sent=%d ok=%d failed=%d unknown=%d err=%q", w.inc, w.sentN.Load(), w.okN.Load(), w.failN.Load(), w.unknown.Load(), errString(runErr))
	if err := l.close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("claims log: %w", err)
	}
	fmt.Fprintf(stdout, "workload %s %s: sent %d ok %d failed %d unknown %d\n", w.inc, w.path, w.sentN.Load(), w.okN.Load(), w.failN.Load(), w.unknown.Load())
	return runErr
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (w *workload) config() (kafkaproducer.Config, error) {
	name := w.path
	switch w.path {
	case pathDLQ, pathTxn, pathPool:
		name = presets.NameReliable
	}
	cfg, err := presets.ByName(name)
	if err != nil {
		return cfg, fmt.Errorf("-path %q: %w", w.path, err)
	}
	cfg.Brokers = w.brokers
	cfg.ClientID = "kprod-chaos-" + w.inc
	if w.requestTO > 0 {
		cfg.RequestTimeout = w.requestTO
	}
	if w.deliveryTO > 0 {
		cfg.DeliveryTimeout = w.deliveryTO
	}
	return cfg, nil
}

func (w *workload) run(ctx context.Context) error {
	cfg, err := w.config()
	if err != nil {
		return err
	}
	switch w.path {
	case pathDLQ:
		return w.runDLQ(ctx, cfg)
	case pathTxn, pathPool:
		return w.runTxn(ctx, cfg)
	default:
		return w.runPlain(ctx, cfg)
	}
}

func (w *workload) id(n int) string { return w.inc + "." + strconv.Itoa(n) }

func (w *workload) key(idx int) []byte { return []byte("k" + strconv.Itoa(idx%w.keys)) }

func (w *workload) record(n int, key []byte) kafkaproducer.Record {
	v := make([]byte, 0, 32+w.valueBytes)
	v = append(v, w.id(n)...)
	v = append(v, ' ')
	for i := 0; i < w.valueBytes; i++ {
		v = append(v, 'x')
	}
	return kafkaproducer.Record{Topic: w.topic, Key: key, Value: v}
}

// pace sleeps until record n's time at -rate, from start.
func (w *workload) pace(ctx context.Context, start time.Time, n int) error {
	at := start.Add(time.Duration(float64(n) / w.rate * float64(time.Second)))
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// sendCtx is the context of one synchronous send: during a cancel storm a
// share of them end after a random moment.
func (w *workload) sendCtx(ctx context.Context, rng *rand.Rand) (context.Context, context.CancelFunc) {
	if w.cancelFrac > 0 && rng.Float64() < w.cancelFrac {
		return context.WithTimeout(ctx, time.Duration(rng.Int64N(int64(w.cancelMax)+1)))
	}
	return context.WithCancel(ctx)
}

// ambiguous says whether kprod reports err as "may have been written".
func ambiguous(err error) bool {
	if errors.Is(err, kafkaproducer.ErrOutcomeUnknown) {
		return true
	}
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassTimeout, kafkaproducer.ClassCanceled:
		return true
	}
	return false
}

func (w *workload) logResult(id string, r kafkaproducer.Result, err error) {
	if err == nil {
		err = r.Err
	}
	switch {
	case err == nil:
		w.okN.Add(1)
		w.log.logf("ack %s p=%d o=%d", id, r.Partition, r.Offset)
	case errors.Is(err, kafkaproducer.ErrOutcomeUnknown):
		w.unknown.Add(1)
		w.log.logf("unknown %s class=%s", id, kafkaproducer.Classify(err))
	default:
		w.failN.Add(1)
		w.log.logf("fail %s class=%s amb=%t err=%q", id, kafkaproducer.Classify(err), ambiguous(err), err.Error())
	}
}

// each runs fn for every record number of this incarnation: in order from
// one goroutine (SendAsync), or with -sync from -workers goroutines, worker
// i owning the keys whose index is i modulo -workers so that each key's
// records are sent in order.
func (w *workload) each(ctx context.Context, async func(n int) error, syncSend func(ctx context.Context, rng *rand.Rand, n int)) error {
	start := time.Now()
	if !w.sync {
		for n := 0; n < w.count; n++ {
			if err := w.pace(ctx, start, n); err != nil {
				return err
			}
			w.log.logf("intent %s k=%s", w.id(n), w.key(n))
			w.sentN.Add(1)
			if err := async(n); err != nil {
				w.logResult(w.id(n), kafkaproducer.Result{}, err)
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	for i := 0; i < w.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for n := i; n < w.count; n += w.workers {
				if w.pace(ctx, start, n) != nil {
					return
				}
				w.log.logf("intent %s k=%s", w.id(n), w.key(n))
				w.sentN.Add(1)
				syncSend(ctx, rng, n)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (w *workload) runPlain(ctx context.Context, cfg kafkaproducer.Config) error {
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	sendErr := w.each(ctx,
		func(n int) error {
			id := w.id(n)
			return p.SendAsync(ctx, w.record(n, w.key(n)), func(r kafkaproducer.Result) { w.logResult(id, r, nil) })
		},
		func(ctx context.Context, rng *rand.Rand, n int) {
			sctx, cancel := w.sendCtx(ctx, rng)
			defer cancel()
			r, err := p.Send(sctx, w.record(n, w.key(n)))
			w.logResult(w.id(n), r, err)
		})
	// Close flushes (bounded) and fails what is left through the callbacks.
	cctx, cancel := context.WithTimeout(context.Background(), 2*cfg.DeliveryTimeout+10*time.Second)
	defer cancel()
	closeErr := p.Close(cctx)
	w.log.logf("end %s", w.inc)
	if sendErr != nil {
		return sendErr
	}
	var ce *kafkaproducer.CloseError
	if errors.As(closeErr, &ce) {
		return nil // each undelivered record was logged through its callback
	}
	return closeErr
}

func (w *workload) runDLQ(ctx context.Context, cfg kafkaproducer.Config) error {
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	d, err := dlq.New(p, dlq.Config{
		SpoolDir:    filepath.Join(w.spoolDir, "q"),
		StrictOrder: true,
		OnRecord: func(ev dlq.Event) {
			id := valueID(ev.Record.Value)
			switch ev.Disposition {
			case dlq.Spooled:
				w.log.logf("spooled %s amb=%t", id, ev.Ambiguous)
			case dlq.DeadLettered:
				w.log.logf("dead %s amb=%t", id, ev.Ambiguous)
			}
		},
	})
	if err != nil {
		p.Close(context.Background())
		return err
	}
	logDLQ := func(id string, r dlq.Result, err error) {
		if err == nil {
			err = r.Err
		}
		switch r.Disposition {
		case dlq.Delivered:
			w.okN.Add(1)
			w.log.logf("ack %s p=%d o=%d", id, r.Attempt.Partition, r.Attempt.Offset)
		case dlq.Spooled, dlq.DeadLettered:
			w.okN.Add(1) // logged by OnRecord, before this result
		case dlq.Pending:
			w.unknown.Add(1)
			w.log.logf("unknown %s class=%s", id, kafkaproducer.Classify(err))
		default:
			w.failN.Add(1)
			w.log.logf("fail %s class=%s amb=%t err=%q", id, kafkaproducer.Classify(err), r.Ambiguous, errString(err))
		}
	}
	sendErr := w.each(ctx,
		func(n int) error {
			id := w.id(n)
			return d.SendAsync(ctx, w.record(n, w.key(n)), func(r dlq.Result) { logDLQ(id, r, nil) })
		},
		func(ctx context.Context, rng *rand.Rand, n int) {
			sctx, cancel := w.sendCtx(ctx, rng)
			defer cancel()
			r, err := d.Send(sctx, w.record(n, w.key(n)))
			logDLQ(w.id(n), r, err)
		})
	// Wait (bounded) until every accepted record ended and the spool
	// drained, replaying it ourselves too in case the breaker holds.
	deadline := time.Now().Add(w.drainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		st := d.Stats()
		if st.Pending == 0 && st.SpoolRecords == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 2*cfg.DeliveryTimeout+10*time.Second)
	defer cancel()
	closeErr := d.Close(cctx)
	st := d.Stats()
	w.log.logf("end %s spool=%d pending=%d replayed=%d ambiguous=%d rejected=%d quarantined=%d close=%q", w.inc, st.SpoolRecords, st.Pending, st.Replayed, st.Ambiguous, st.Rejected, st.Quarantined, errString(closeErr))
	if sendErr != nil {
		return sendErr
	}
	return nil // closeErr is in the log; the checker judges
}

func valueID(v []byte) string {
	if i := strings.IndexByte(string(v), ' '); i >= 0 {
		return string(v[:i])
	}
	return string(v)
}

// runner is what txn.Producer and txn.Pool have in common.
type runner interface {
	Run(ctx context.Context, fn txn.Func) error
	Close(ctx context.Context) error
}

func (w *workload) runTxn(ctx context.Context, cfg kafkaproducer.Config) error {
	cfg.TransactionTimeout = w.txnTimeout
	var r runner
	width := 1
	if w.path == pathPool {
		pl, err := txn.NewPool(cfg, txn.PoolConfig{Config: txn.Config{ID: "kprod-chaos-pool"}, Size: w.workers})
		if err != nil {
			return err
		}
		r, width = pl, w.workers
	} else {
		p, err := txn.New(cfg, txn.Config{ID: "kprod-chaos-txn"})
		if err != nil {
			return err
		}
		r = p
	}
	txns := (w.count + w.txnSize - 1) / w.txnSize
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < width; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for t := i; t < txns; t += width {
				if w.pace(ctx, start, t*w.txnSize) != nil {
					return
				}
				w.oneTxn(ctx, rng, r, i, width, t)
			}
		}()
	}
	wg.Wait()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closeErr := r.Close(cctx)
	w.log.logf("end %s close=%q", w.inc, errString(closeErr))
	return ctx.Err()
}

// oneTxn sends records t*size .. t*size+size-1 in one transaction; their
// keys belong to worker i (index i modulo width), so per-key order is the
// order of this worker's transactions.
func (w *workload) oneTxn(ctx context.Context, rng *rand.Rand, r runner, i, width, t int) {
	tid := w.inc + ".t" + strconv.Itoa(t)
	ids := make([]string, w.txnSize)
	recs := make([]kafkaproducer.Record, w.txnSize)
	for j := range recs {
		n := t*w.txnSize + j
		ids[j] = w.id(n)
		recs[j] = w.record(n, w.key(i+width*j))
	}
	w.log.logf("begin %s ids=%s", tid, strings.Join(ids, ","))
	w.sentN.Add(int64(len(recs)))
	tctx, cancel := w.sendCtx(ctx, rng)
	defer cancel()
	if w.cancelFrac == 0 {
		cancel()
		tctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	err := r.Run(tctx, func(ctx context.Context, tx *txn.Tx) error {
		for _, rec := range recs {
			if err := tx.SendAsync(ctx, rec, nil); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case err == nil:
		w.okN.Add(int64(len(recs)))
		w.log.logf("commit %s", tid)
	case errors.Is(err, txn.ErrCommitUnknown):
		w.unknown.Add(int64(len(recs)))
		w.log.logf("unknown-commit %s err=%q", tid, err.Error())
	default:
		w.failN.Add(int64(len(recs)))
		w.log.logf("abort %s class=%s err=%q", tid, kafkaproducer.Classify(err), err.Error())
	}
}
