package txn_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/txn"
)

func newPool(t *testing.T, cfg kafkaproducer.Config, tc txn.Config, size int) *txn.Pool {
	t.Helper()
	pool, err := txn.NewPool(cfg, txn.PoolConfig{Config: testCfg(tc), Size: size})
	if err != nil {
		t.Fatal(err)
	}
	testkit.CloseAtEnd(t, pool.Close)
	return pool
}

// TestPoolConcurrent: many goroutines run transactions through a bounded
// pool; at most size run at once, each member runs one at a time, and
// every committed record is visible exactly once.
func TestPoolConcurrent(t *testing.T) {
	c := cluster(t)
	const size, workers, perWorker = 4, 16, 5
	var active, maxActive atomic.Int32
	ids := sync.Map{}
	var perID sync.Map // id -> *atomic.Int32 of transactions open on it
	obs := observerFunc(func(a attempt) { ids.Store(a.ID, true) })
	pool := newPool(t, baseCfg(c), txn.Config{ID: "checkout", Observer: obs}, size)
	ctx := testkit.Ctx(t, 60*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				n := w*perWorker + i
				errs <- pool.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
					cnt, _ := perID.LoadOrStore(tx.TransactionalID(), new(atomic.Int32))
					if cnt.(*atomic.Int32).Add(1) != 1 {
						return fmt.Errorf("two transactions at once on %s", tx.TransactionalID())
					}
					defer cnt.(*atomic.Int32).Add(-1)
					now := active.Add(1)
					defer active.Add(-1)
					for {
						m := maxActive.Load()
						if now <= m || maxActive.CompareAndSwap(m, now) {
							break
						}
					}
					for _, topic := range articleTopics {
						if _, err := tx.Send(ctx, rec(topic, "t", n)); err != nil {
							return err
						}
					}
					return nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if maxActive.Load() > size || maxActive.Load() < 2 {
		t.Fatalf("max concurrent transactions %d, want 2..%d", maxActive.Load(), size)
	}
	var nIDs int
	ids.Range(func(k, _ any) bool {
		nIDs++
		return true
	})
	if nIDs > size {
		t.Fatalf("%d transactional ids used, pool size %d", nIDs, size)
	}
	for _, topic := range articleTopics {
		expectValues(t, c, topic, true, tags("t", workers*perWorker))
	}
}

// TestPoolReplacesFenced: a member fenced by an outside instance reports
// ErrFenced for that transaction, is replaced by a new instance of the
// same ID, and the next transaction commits.
func TestPoolReplacesFenced(t *testing.T) {
	c := cluster(t)
	pool := newPool(t, baseCfg(c), txn.Config{ID: "refund"}, 1)
	if err := pool.Warm(testkit.Ctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	err := pool.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		if _, err := tx.Send(ctx, rec("orders", "fenced", 0)); err != nil {
			return err
		}
		newTxnProducer(t, c, txn.Config{ID: pool.ID(0)}) // fences the member
		_, err := tx.Send(ctx, rec("orders", "fenced", 1))
		return err
	})
	if !errors.Is(err, kafkaproducer.ErrFenced) {
		t.Fatalf("Run = %v, want ErrFenced", err)
	}
	if err := pool.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		if tx.TransactionalID() != "refund-0" {
			return fmt.Errorf("replacement has id %q", tx.TransactionalID())
		}
		_, err := tx.Send(ctx, rec("orders", "replaced", 0))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	expectValues(t, c, "orders", true, []string{"replaced-0"})
}

// TestPoolClose: Close waits for running transactions while its context
// allows, then aborts them; later Runs fail with ErrPoolClosed, and
// nothing the aborted transaction sent is visible.
func TestPoolClose(t *testing.T) {
	c := cluster(t)
	pool, err := txn.NewPool(baseCfg(c), txn.PoolConfig{Config: txn.Config{ID: "closing"}, Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		runErr <- pool.Run(context.Background(), func(ctx context.Context, tx *txn.Tx) error {
			if _, err := tx.Send(ctx, rec("orders", "stuck", 0)); err != nil {
				return err
			}
			close(sent)
			<-ctx.Done() // a transaction that would never finish
			return ctx.Err()
		})
	}()
	<-sent
	closeCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := pool.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("running transaction ended with %v, want canceled", err)
	}
	if err := pool.Run(context.Background(), func(context.Context, *txn.Tx) error { return nil }); !errors.Is(err, txn.ErrPoolClosed) {
		t.Fatalf("Run after Close = %v", err)
	}
	if err := pool.Close(closeCtx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectValues(t, c, "orders", true, nil)
}

func TestNewPoolRejects(t *testing.T) {
	c := cluster(t)
	withID := baseCfg(c)
	withID.TransactionalID = "x"
	tests := []struct {
		name   string
		cfg    kafkaproducer.Config
		prefix string
		size   int
	}{
		{"empty prefix", baseCfg(c), "", 1},
		{"zero size", baseCfg(c), "p", 0},
		{"transactional id set", withID, "p", 1},
		{"invalid config", kafkaproducer.Config{}, "p", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := txn.NewPool(tt.cfg, txn.PoolConfig{Config: txn.Config{ID: tt.prefix}, Size: tt.size})
			var ce *kafkaproducer.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("NewPool = %v, want a ConfigError", err)
			}
		})
	}
}

// TestPoolCloseBoundedWhenFunctionIgnoresCtx: a transaction function that
// ignores its context does not keep Close waiting past ctx and the end
// timeout: Close closes the member under it and returns a
// *PoolCloseError naming the busy ID. The open transaction never
// commits, and the next producer with that ID aborts it.
func TestPoolCloseBoundedWhenFunctionIgnoresCtx(t *testing.T) {
	c := cluster(t)
	pool, err := txn.NewPool(baseCfg(c), txn.PoolConfig{Config: txn.Config{ID: "stubborn", EndTimeout: 300 * time.Millisecond}, Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan string)
	release := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		runErr <- pool.Run(context.Background(), func(ctx context.Context, tx *txn.Tx) error {
			if _, err := tx.Send(ctx, rec("orders", "stuck", 0)); err != nil {
				return err
			}
			sent <- tx.TransactionalID()
			<-release // ignores ctx
			_, err := tx.Send(ctx, rec("orders", "stuck", 1))
			return err
		})
	}()
	id := <-sent
	closeCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- pool.Close(closeCtx) }()
	select {
	case err = <-closed:
	case <-time.After(10 * time.Second):
		close(release)
		<-runErr
		<-closed
		t.Fatal("Close still waiting 10s after its context ended")
	}
	el := time.Since(start)
	close(release)
	var pce *txn.PoolCloseError
	if !errors.As(err, &pce) || fmt.Sprint(pce.Busy) != fmt.Sprint([]string{id}) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want a PoolCloseError naming [%s] and wrapping the deadline", err, id)
	}
	if el > 5*time.Second {
		t.Errorf("Close took %v", el)
	}
	if err := <-runErr; err == nil {
		t.Fatal("the stuck transaction's Run returned nil after its member was closed")
	}
	if again := pool.Close(context.Background()); again != err {
		t.Fatalf("second Close = %v, want the first result", again)
	}
	// A new instance of the ID aborts the transaction left open, so
	// read_committed consumers move on and never see its records.
	newTxnProducer(t, c, txn.Config{ID: id})
	expectValues(t, c, "orders", true, nil)
}

// TestPoolCanceledRunAbortsOnlyItself (#17): many transactions run at once
// on a pool, all of them part-way through (records written) when half of
// their contexts are canceled. The canceled ones abort, even though their
// functions go on sending with the canceled context and return nil; the
// others send the rest of their records and commit. A read_committed
// reader sees exactly the committed transactions' records.
func TestPoolCanceledRunAbortsOnlyItself(t *testing.T) {
	for _, v := range txVersions {
		t.Run(v.name, func(t *testing.T) {
			c := cluster(t, v.opts...)
			const n, perTopic = 8, 3 // transactions; records per topic each, half before the cancel
			obs := &attempts{}
			pool := newPool(t, baseCfg(c), txn.Config{ID: "cancel", Observer: obs}, n)
			ctx := testkit.Ctx(t, 60*time.Second)
			if err := pool.Warm(ctx); err != nil {
				t.Fatal(err)
			}

			var midway sync.WaitGroup // every transaction has written records
			midway.Add(n)
			release := make(chan struct{}) // the cancels are done
			errs := make([]error, n)
			cancels := make([]context.CancelFunc, n)
			var wg sync.WaitGroup
			for i := range n {
				rctx, cancel := context.WithCancel(ctx)
				cancels[i] = cancel
				wg.Go(func() {
					defer cancel()
					tag := fmt.Sprintf("run%d", i)
					errs[i] = pool.Run(rctx, func(ctx context.Context, tx *txn.Tx) error {
						for _, topic := range articleTopics {
							if _, err := tx.Send(ctx, rec(topic, tag, 0)); err != nil {
								return err
							}
						}
						midway.Done()
						<-release
						// Canceled or not, send the rest and ignore
						// every error: Run alone decides.
						for j := 1; j < perTopic; j++ {
							for _, topic := range articleTopics {
								_ = tx.SendAsync(ctx, rec(topic, tag, j), nil)
							}
						}
						return nil
					})
				})
			}
			midway.Wait()
			for i := 1; i < n; i += 2 {
				cancels[i]()
			}
			close(release)
			wg.Wait()

			var want []string
			for i, err := range errs {
				if i%2 == 1 {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("canceled run %d: %v, want an error matching context.Canceled", i, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("run %d (not canceled): %v, want a commit", i, err)
				}
				for j := range perTopic {
					want = append(want, fmt.Sprintf("run%d-%d", i, j))
				}
			}
			sort.Strings(want)
			for _, topic := range articleTopics {
				recs := testkit.ConsumeExactly(t, c.ListenAddrs(), topic, len(want), true, 20*time.Second, 500*time.Millisecond)
				got := make([]string, len(recs))
				for k, r := range recs {
					got[k] = string(r.Value)
				}
				sort.Strings(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s read_committed: %v, want %v", topic, got, want)
				}
			}
			var committed, aborted int
			for _, a := range obs.get() {
				switch {
				case a.Outcome == txn.OutcomeCommitted:
					committed++
				case a.Outcome == txn.OutcomeAborted && !a.Retrying:
					aborted++
				default:
					t.Errorf("unexpected attempt %+v", a)
				}
			}
			if committed != n/2 || aborted != n/2 {
				t.Errorf("observer: %d committed, %d aborted; want %d each", committed, aborted, n/2)
			}
			// The pool is still whole: every member commits again.
			for i := range n {
				if err := pool.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
					_, err := tx.Send(ctx, rec("orders", "after", i))
					return err
				}); err != nil {
					t.Fatalf("run after the cancels: %v", err)
				}
			}
		})
	}
}
