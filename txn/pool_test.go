package txn_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/txn"
)

func newPool(t *testing.T, cfgC func() kafkaproducer.Config, prefix string, size int, opts ...txn.Option) *txn.Pool {
	t.Helper()
	pool, err := txn.NewPool(cfgC(), prefix, size, opts...)
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
	obs := txn.ObserverFunc(func(a txn.Attempt) { ids.Store(a.TransactionalID, true) })
	pool := newPool(t, func() kafkaproducer.Config { return baseCfg(c) }, "checkout", size, txn.WithObserver(obs))
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
	pool := newPool(t, func() kafkaproducer.Config { return baseCfg(c) }, "refund", 1)
	if err := pool.Warm(testkit.Ctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	err := pool.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		if _, err := tx.Send(ctx, rec("orders", "fenced", 0)); err != nil {
			return err
		}
		newTxnProducer(t, c, pool.ID(0)) // fences the member
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
	pool, err := txn.NewPool(baseCfg(c), "closing", 2)
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
			_, err := txn.NewPool(tt.cfg, tt.prefix, tt.size)
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
	pool, err := txn.NewPool(baseCfg(c), "stubborn", 2, txn.WithEndTimeout(300*time.Millisecond))
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
	newTxnProducer(t, c, id)
	expectValues(t, c, "orders", true, nil)
}
