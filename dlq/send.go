package dlq

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
)

// The three ways to send share one path: submit hands a record to the
// wrapped producer's SendAsync with a callback that routes its real
// outcome, so the outcome is routed whether or not the caller is still
// waiting. Send and SendBatch wait for it while their ctx allows.

// Send sends rec and waits until it has ended somewhere: on its topic, its
// dead-letter topic or the spool (error nil, Result.Disposition says
// which), or nowhere (Failed: the error, also in Result.Err; the record
// is the caller's). While the breaker is open the record goes straight to
// the spool (OpenSpool) or fails with ErrCircuitOpen (OpenFailFast).
//
// ctx bounds only the caller's wait. If it ends before the wrapped
// producer buffered the record (waiting for MaxPending or for buffer
// space), the record is withdrawn: Failed with ctx's error, never sent.
// If it ends later, Send returns at once with Disposition Pending and an
// error wrapping kafkaproducer.ErrOutcomeUnknown and ctx's error: the
// record is still on its way and its real outcome is routed as usual
// (delivered, dead-lettered or spooled, counted in Stats, reported to
// Observer and Config.OnRecord); Close waits for it. It is never spooled
// or dead-lettered because the caller stopped waiting.
//
// A record refused because of the call itself (kafkaproducer.ErrNoTopic,
// ErrBadPartition, ErrPartitionRequired, ErrStaleTimestamp) is returned
// Failed with that error and never dead-lettered or spooled; after Close
// began, Send returns kafkaproducer.ErrClosed. A nil ctx means
// context.Background().
//
// Send waits for the record's batch like SendAsync does, so the wrapped
// producer's Linger adds to its latency.
func (d *Producer) Send(ctx context.Context, rec kafkaproducer.Record) (Result, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	done := make(chan Result, 1)
	sub, err := d.submit(ctx, rec, func(r Result) { done <- r })
	if err != nil {
		return sub, err
	}
	return await(ctx, done, sub)
}

// await waits for an accepted record's final Result on done while ctx
// allows; once ctx ends it returns the Pending Result built from sub
// (what submit returned), unless the final one is already there.
func await(ctx context.Context, done <-chan Result, sub Result) (Result, error) {
	select {
	case r := <-done:
		return r, r.Err
	case <-ctx.Done():
		select {
		case r := <-done:
			return r, r.Err
		default:
		}
		r := stoppedWaiting(ctx, sub)
		return r, r.Err
	}
}

// stoppedWaiting is the Pending Result of an accepted record whose
// caller's ctx ended; sub is what submit returned for it.
func stoppedWaiting(ctx context.Context, sub Result) Result {
	err := fmt.Errorf("%w: %w", kafkaproducer.ErrOutcomeUnknown, context.Cause(ctx))
	sub.Attempt = failedResult(sub.Attempt.Record, err)
	sub.Disposition, sub.Err = Pending, sub.Attempt.Err
	return sub
}

// SendBatch sends recs and waits until each has ended somewhere, as Send
// does, returning one Result per record in order; ctx is as in Send
// (records not yet ended when it ends are Pending). Records that fail
// together are routed together: one dead-letter batch, one spool commit.
func (d *Producer) SendBatch(ctx context.Context, recs []kafkaproducer.Record) []Result {
	if ctx == nil {
		ctx = context.Background()
	}
	out := make([]Result, len(recs))
	var (
		mu       sync.Mutex
		left     = len(recs)
		returned bool
		all      = make(chan struct{})
	)
	if left == 0 {
		return out
	}
	got := make([]bool, len(recs))
	settle := func(i int, r Result) {
		mu.Lock()
		defer mu.Unlock()
		if returned {
			return // the caller stopped waiting; routed all the same
		}
		out[i], got[i] = r, true
		if left--; left == 0 {
			close(all)
		}
	}
	for i := range recs {
		sub, err := d.submit(ctx, recs[i], func(r Result) { settle(i, r) })
		if err != nil {
			settle(i, sub)
			continue
		}
		mu.Lock()
		if !got[i] {
			out[i] = sub // kept if the caller stops waiting
		}
		mu.Unlock()
	}
	select {
	case <-all:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	returned = true
	for i := range out {
		if !got[i] {
			out[i] = stoppedWaiting(ctx, out[i])
		}
	}
	return out
}

// SendAsync hands rec over and returns once it is accepted; cb receives
// its final Result (delivered, dead-lettered, spooled or failed) exactly
// once. It returns an error only when it refuses rec outright, and cb is
// then not called: closed (kafkaproducer.ErrClosed), a record refused for
// the call itself (kafkaproducer.ErrNoTopic, ErrBadPartition,
// ErrPartitionRequired, ErrStaleTimestamp), ctx ended before the record
// was buffered (waiting for MaxPending or buffer space; the record was
// not sent), or ErrCircuitOpen under OpenFailFast.
//
// ctx bounds only that wait: once SendAsync returned nil the record's
// outcome does not depend on ctx. A partition beyond the topic's count,
// found after acceptance, reaches cb as Failed with ErrBadPartition and
// is not routed. A nil ctx means context.Background().
//
// cb runs on franz-go's promise goroutine for delivered records (and
// those refused after acceptance) and on the Producer's router goroutine
// for the others; it must not block and must not call Send, Flush or
// Close. cb may be nil.
func (d *Producer) SendAsync(ctx context.Context, rec kafkaproducer.Record, cb func(Result)) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if cb == nil {
		cb = func(Result) {}
	}
	_, err := d.submit(ctx, rec, cb)
	return err
}

// DeadLetter sends rec to its dead-letter topic because of cause, for
// records that fail before the producer (a serialization error: pass a
// *kafkaproducer.BadInputError). If the dead-letter topic refuses it for
// now it is spooled for that topic; if it refuses it for good (too large,
// missing, denied) it is returned Failed. ctx is as in Send. A record
// without a topic is refused with kafkaproducer.ErrNoTopic: it has no
// dead-letter topic. A nil ctx means context.Background().
func (d *Producer) DeadLetter(ctx context.Context, rec kafkaproducer.Record, cause error) (Result, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if cause == nil {
		cause = errors.New("kprod: dead-lettered by the application")
	}
	if err := d.begin(); err != nil {
		return d.refused(rec, [16]byte{}, err), err
	}
	if err := d.acquire(ctx); err != nil {
		d.inflight.Done()
		return d.refused(rec, [16]byte{}, err), err
	}
	if rec.Topic == "" {
		d.finish()
		res := d.refused(rec, [16]byte{}, kafkaproducer.ErrNoTopic)
		return res, res.Err
	}
	rec, id := d.withID(rec, [16]byte{})
	it := newItem(failedResult(rec, cause), id, 0)
	it.forceDLT = true
	done := make(chan Result, 1)
	it.cb = func(r Result) { done <- r }
	sub := Result{Attempt: it.attempt, RecordID: hexID(id)} // before the router has it
	d.enqueue(it)
	return await(ctx, done, sub)
}

// submit is every send's path. On acceptance it returns a Result holding
// only the record as sent and its ID, and cb later receives the final
// Result exactly once. On refusal it returns the Failed Result and its
// error, and cb is never called.
func (d *Producer) submit(ctx context.Context, rec kafkaproducer.Record, cb func(Result)) (Result, error) {
	if err := d.begin(); err != nil {
		res := d.refused(rec, [16]byte{}, err)
		return res, res.Err
	}
	if err := d.acquire(ctx); err != nil {
		d.inflight.Done()
		res := d.refused(rec, [16]byte{}, err)
		return res, res.Err
	}
	rec, id := d.prepare(rec)
	if err := d.precheck(rec); err != nil {
		d.finish()
		res := d.refused(rec, id, err)
		return res, res.Err
	}
	accepted := Result{Attempt: kafkaproducer.Result{Record: rec, Partition: -1, Offset: -1}, RecordID: hexID(id)}
	t, why := d.admit()
	if why != nil {
		if why == ErrCircuitOpen && d.cfg.WhenOpen == OpenFailFast {
			d.finish()
			res := d.refused(rec, id, kafkaproducer.WithClass(kafkaproducer.ClassRetriable, ErrCircuitOpen))
			return res, res.Err
		}
		it := newItem(failedResult(rec, kafkaproducer.WithClass(kafkaproducer.ClassRetriable, why)), id, 0)
		it.cb = cb
		d.enqueue(it)
		return accepted, nil
	}
	err := d.p.SendAsync(ctx, rec, func(r kafkaproducer.Result) {
		t.report(r.Err)
		switch {
		case r.Err == nil:
			d.delivered.Add(1)
			cb(Result{Attempt: r, Disposition: Delivered, RecordID: hexID(id)})
			d.finish()
		case badCall(r.Err):
			d.failed.Add(1)
			cb(Result{Attempt: r, Disposition: Failed, RecordID: hexID(id), Err: r.Err})
			d.finish()
		default:
			it := newItem(r, id, 1)
			it.cb = cb
			d.enqueue(it)
		}
	})
	if err == nil {
		return accepted, nil
	}
	t.report(err)
	if badCall(err) || callerGaveUp(err) {
		// The call's mistake, or the caller gave up before the record
		// was buffered: it is the caller's, never sent.
		d.finish()
		res := d.refused(rec, id, err)
		return res, res.Err
	}
	// Refused by the wrapped producer for another reason (it is
	// closing): never sent, routed like any failure.
	it := newItem(failedResult(rec, err), id, 0)
	it.cb = cb
	d.enqueue(it)
	return accepted, nil
}

// begin counts a call in for Close, or refuses it once Close began.
func (d *Producer) begin() error {
	d.closeMu.RLock()
	defer d.closeMu.RUnlock()
	if d.closed {
		return kafkaproducer.ErrClosed
	}
	d.inflight.Add(1)
	return nil
}

// acquire takes one of MaxPending slots while ctx allows.
func (d *Producer) acquire(ctx context.Context) error {
	select {
	case d.sem <- struct{}{}:
	default:
		select {
		case d.sem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("waiting for MaxPending: %w", context.Cause(ctx))
		}
	}
	d.pending.Add(1)
	return nil
}

// finish ends an accepted record, after its callback ran.
func (d *Producer) finish() {
	d.pending.Add(-1)
	<-d.sem
	d.inflight.Done()
}

// refused is the Failed Result of a record refused at the call; it is
// counted in Stats.Failed and reported nowhere else.
func (d *Producer) refused(rec kafkaproducer.Record, id [16]byte, err error) Result {
	d.failed.Add(1)
	a := failedResult(rec, err)
	return Result{Attempt: a, Disposition: Failed, RecordID: hexID(id), Err: a.Err}
}

// admit decides whether a record may go to Kafka now. It returns the
// breaker's ticket, to report the outcome with, or the reason to bypass
// Kafka (ErrCircuitOpen, or errSpoolFirst under StrictOrder).
//
// Under StrictOrder a record waits behind the spool and behind every
// failed record still on its way there (in the router's queue or its
// spool Append), so it cannot overtake an earlier record of its key.
// toSpool is read before Len: a record leaves toSpool only after Append
// counted it in Len, so one of the two loads sees it.
func (d *Producer) admit() (ticket, error) {
	if d.cfg.StrictOrder && (d.toSpool.Load() > 0 || d.sp.Len() > 0) {
		return nil, errSpoolFirst
	}
	return d.admitBreaker()
}

var errSpoolFirst = errors.New("kprod: spool not empty and StrictOrder set: record queued behind it")

// precheck refuses what the wrapped producer would refuse at the call,
// so that a record that bypasses it (open breaker, StrictOrder) is
// refused alike: no topic, a negative partition, none with the manual
// partitioner, a timestamp older than DeliveryTimeout. A partition
// beyond the topic's count is found on replay instead.
func (d *Producer) precheck(rec kafkaproducer.Record) error {
	switch {
	case rec.Topic == "":
		return kafkaproducer.ErrNoTopic
	case rec.PartitionSet && rec.Partition < 0:
		return fmt.Errorf("%w: %d is negative", kafkaproducer.ErrBadPartition, rec.Partition)
	case !rec.PartitionSet && d.manual:
		return kafkaproducer.ErrPartitionRequired
	case d.deliveryTimeout > 0 && !rec.Timestamp.IsZero() && time.Since(rec.Timestamp) >= d.deliveryTimeout:
		return fmt.Errorf("%w: timestamp %s is older than DeliveryTimeout %v", kafkaproducer.ErrStaleTimestamp,
			rec.Timestamp.Format(time.RFC3339Nano), d.deliveryTimeout)
	}
	return nil
}

func (d *Producer) prepare(rec kafkaproducer.Record) (kafkaproducer.Record, [16]byte) {
	if d.cfg.RecordID == RecordIDAlways {
		return d.withID(rec, [16]byte{})
	}
	return rec, [16]byte{}
}

func hexID(id [16]byte) string {
	if id == ([16]byte{}) {
		return ""
	}
	return hex.EncodeToString(id[:])
}
