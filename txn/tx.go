package txn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/kprod/kprod/kafkaproducer"
)

// sendFunc hands one record to a producer: it returns an error when the
// record is refused outright (cb is then not called), otherwise cb gets
// the record's outcome exactly once.
type sendFunc func(ctx context.Context, rec kafkaproducer.Record, cb func(kafkaproducer.Result)) error

// batchFunc sends records and waits for all of them, one Result per
// record in order: a Producer's SendBatch.
type batchFunc func(ctx context.Context, recs []kafkaproducer.Record) kafkaproducer.Results

// Tx is one open transaction, handed to the function given to Run. Every
// record sent through it, to any topics and partitions, becomes visible
// to read_committed consumers together when the transaction commits, or
// never. A Tx is valid only until that function returns; later sends fail
// with ErrTxnDone. It is safe for concurrent use by goroutines the
// function starts, as long as they finish before it returns.
//
// Tx has the same Send, SendAsync and SendBatch as
// *kafkaproducer.Producer (it satisfies kafkaproducer.RecordSender), so
// kafkaproducer.NewTyped(tx, keys, values) gives typed sends inside the
// transaction, and code written against that interface works both inside
// and outside one. A record a typed wrapper refuses (a serialization
// failure) never reaches the Tx: return that error from the function so
// the transaction aborts.
type Tx struct {
	id    string
	send  sendFunc
	batch batchFunc // nil: SendBatch sends record by record

	mu     sync.Mutex // guards sealed and the Add side of wg
	sealed bool
	wg     sync.WaitGroup

	records  atomic.Int64
	firstErr atomic.Pointer[error]

	// written holds, per topic, one partition a record was written to
	// in this transaction: what awaitLoaded waits for before the commit.
	writtenMu sync.Mutex
	written   map[string]int32
}

func newTx(id string, send sendFunc, batch batchFunc) *Tx {
	return &Tx{id: id, send: send, batch: batch}
}

// failedResult is the Result of a record that was not written: err as a
// *kafkaproducer.SendError (kept if it already is one).
func failedResult(rec kafkaproducer.Record, err error) kafkaproducer.Result {
	se, ok := errors.AsType[*kafkaproducer.SendError](err)
	if !ok {
		se = &kafkaproducer.SendError{Topic: rec.Topic, Partition: -1, Key: rec.Key, Class: kafkaproducer.Classify(err), Err: err}
	}
	return kafkaproducer.Result{Record: rec, Partition: -1, Offset: -1, Err: se}
}

// doneResult is the Result of a record sent after the transaction ended.
func doneResult(rec kafkaproducer.Record) kafkaproducer.Result {
	return failedResult(rec, kafkaproducer.WithClass(kafkaproducer.ClassClosed, ErrTxnDone))
}

// enter registers n records about to be sent, unless the transaction
// has ended.
func (t *Tx) enter(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sealed {
		return false
	}
	t.wg.Add(1)
	t.records.Add(int64(n))
	return true
}

// TransactionalID returns the producer's transactional ID.
func (t *Tx) TransactionalID() string { return t.id }

// Records returns how many records were handed to the transaction so far.
func (t *Tx) Records() int64 { return t.records.Load() }

// Err returns the first record failure in this transaction, or nil. Any
// failure dooms the transaction: Run aborts it even if the function
// ignores the error.
func (t *Tx) Err() error {
	if p := t.firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (t *Tx) fail(err error) {
	t.firstErr.CompareAndSwap(nil, &err)
}

// done notes a record's outcome: a failure dooms the transaction, a
// written record's topic is remembered for awaitLoaded.
func (t *Tx) done(r *kafkaproducer.Result) {
	if r.Err != nil {
		t.fail(r.Err)
		return
	}
	t.writtenMu.Lock()
	if _, ok := t.written[r.Record.Topic]; !ok {
		if t.written == nil {
			t.written = make(map[string]int32)
		}
		t.written[r.Record.Topic] = r.Partition
	}
	t.writtenMu.Unlock()
}

// writtenTo returns, per topic written to, one partition written to.
// Call it after wait.
func (t *Tx) writtenTo() map[string]int32 {
	t.writtenMu.Lock()
	defer t.writtenMu.Unlock()
	return maps.Clone(t.written)
}

// Send sends one record in the transaction and waits until the broker has
// it (written, but invisible to read_committed consumers until commit).
// The error, if any, is a *kafkaproducer.SendError; a record that fails
// dooms the transaction.
//
// ctx bounds only this call's wait. If ctx ends first, Send returns an
// error wrapping kafkaproducer.ErrOutcomeUnknown and ctx's cause, without
// the record's outcome; the record still counts for the transaction: Run
// commits only if it was written, and aborts otherwise. Return the error
// from the function to abort in any case.
func (t *Tx) Send(ctx context.Context, rec kafkaproducer.Record) (kafkaproducer.Result, error) {
	done := make(chan kafkaproducer.Result, 1)
	if err := t.SendAsync(ctx, rec, func(r kafkaproducer.Result) { done <- r }); err != nil {
		r := failedResult(rec, err)
		return r, r.Err
	}
	select {
	case r := <-done:
		return r, r.Err
	case <-ctx.Done():
		select {
		case r := <-done: // both ready: the outcome is the better answer
			return r, r.Err
		default:
		}
		r := failedResult(rec, fmt.Errorf("%w: %w", kafkaproducer.ErrOutcomeUnknown, context.Cause(ctx)))
		return r, r.Err
	}
}

// SendAsync sends one record in the transaction without waiting; cb (which
// may be nil) gets its outcome on franz-go's promise goroutine and must not
// block. Run waits for every outstanding record before it commits, so the
// function may return without waiting for callbacks. A refused record
// returns an error (cb is not called) and dooms the transaction.
func (t *Tx) SendAsync(ctx context.Context, rec kafkaproducer.Record, cb func(kafkaproducer.Result)) error {
	if !t.enter(1) {
		return doneResult(rec).Err
	}
	err := t.send(ctx, rec, func(r kafkaproducer.Result) {
		t.done(&r)
		if cb != nil {
			cb(r)
		}
		t.wg.Done()
	})
	if err != nil {
		t.fail(err)
		t.wg.Done()
	}
	return err
}

// SendBatch sends records in the transaction and waits for all of them,
// returning one Result per record in order (a refused record carries its
// error too). Any failure dooms the transaction. In a Producer's
// transaction the batch goes through the underlying
// kafkaproducer.Producer's SendBatch: the transaction is the client's
// state, so every record of the batch is in it.
func (t *Tx) SendBatch(ctx context.Context, recs []kafkaproducer.Record) kafkaproducer.Results {
	if t.batch == nil {
		return t.sendEach(ctx, recs)
	}
	if !t.enter(len(recs)) {
		out := make(kafkaproducer.Results, len(recs))
		for i := range recs {
			out[i] = doneResult(recs[i])
		}
		return out
	}
	defer t.wg.Done()
	out := t.batch(ctx, recs)
	for i := range out {
		t.done(&out[i])
	}
	return out
}

// sendEach is SendBatch through SendAsync, for a Tx with no batch path
// (a Pipeline's).
func (t *Tx) sendEach(ctx context.Context, recs []kafkaproducer.Record) kafkaproducer.Results {
	out := make(kafkaproducer.Results, len(recs))
	var wg sync.WaitGroup
	for i := range recs {
		wg.Add(1)
		if err := t.SendAsync(ctx, recs[i], func(r kafkaproducer.Result) {
			out[i] = r
			wg.Done()
		}); err != nil {
			out[i] = failedResult(recs[i], err)
			wg.Done()
		}
	}
	wg.Wait()
	return out
}

// seal refuses further sends.
func (t *Tx) seal() {
	t.mu.Lock()
	t.sealed = true
	t.mu.Unlock()
}

// wait blocks until every record handed to the transaction has its
// outcome. Call it after seal, once the records are flushed or aborted.
func (t *Tx) wait() { t.wg.Wait() }
