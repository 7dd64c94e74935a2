package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Route is where a record that did not reach its topic goes.
type Route uint8

// The routes.
const (
	// RouteSpool writes the record to the spool, to be replayed to its
	// own topic later. For failures that are not the record's fault: an
	// unreachable cluster, timeouts, an open breaker, closing, and a
	// topic that does not exist yet or denies the write.
	RouteSpool Route = iota + 1
	// RouteDeadLetter sends the record to its dead-letter topic (or to
	// the spool, for that topic, if the dead-letter topic refuses it for
	// now). For failures that are the record's fault.
	RouteDeadLetter
	// RouteFail returns the error to the caller and keeps nothing.
	RouteFail
)

func (r Route) String() string {
	switch r {
	case RouteSpool:
		return "spool"
	case RouteDeadLetter:
		return "dead_letter"
	case RouteFail:
		return "fail"
	}
	return fmt.Sprintf("route(%d)", uint8(r))
}

// DefaultRoute is the policy used when Config.Route is nil. It routes by
// the failure's cause first and its class second:
//
//	the topic does not exist (UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID)
//	or denies the write (TOPIC_AUTHORIZATION_FAILED, any authorization
//	or authentication failure)                  -> RouteSpool (waits for its own topic)
//	the caller's ctx ended before the record
//	was buffered (context.Canceled, DeadlineExceeded) -> RouteFail
//	bad_input (too large, invalid record), fatal, abortable -> RouteDeadLetter
//	canceled                                    -> RouteFail
//	timeout, retriable, closed (and anything else) -> RouteSpool
//
// A missing or denied topic is an operator's to fix, for that topic: its
// records wait in the spool and replay to it once the topic exists or
// the ACL is granted; they never become dead letters. Refusals of the
// call itself (kafkaproducer.ErrNoTopic, ErrBadPartition,
// ErrPartitionRequired, ErrStaleTimestamp) are returned to the caller
// before Route is asked.
func DefaultRoute(err error) Route {
	switch {
	case waitsForOperator(err):
		return RouteSpool
	case callerGaveUp(err):
		return RouteFail
	}
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassBadInput, kafkaproducer.ClassFatal, kafkaproducer.ClassAbortable:
		return RouteDeadLetter
	case kafkaproducer.ClassCanceled:
		return RouteFail
	default:
		return RouteSpool
	}
}

// waitsForOperator reports a topic refusing a record for a reason an
// operator fixes, not the record: the topic does not exist (yet), or an
// ACL or the credentials deny the write.
func waitsForOperator(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) ||
		kafkaproducer.Classify(err) == kafkaproducer.ClassAuthorization
}

// callerGaveUp reports a record withdrawn because its ctx ended before it
// was buffered: it was never sent. (Once buffered a record is never
// failed by its ctx; a caller that stops waiting then gets
// ErrOutcomeUnknown, and the record's real outcome is routed.)
func callerGaveUp(err error) bool {
	return !errors.Is(err, kafkaproducer.ErrOutcomeUnknown) &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// badCall reports the refusals that are the caller's mistake in the call
// itself: no topic, a bad or missing partition, a stale timestamp. They
// are returned to the caller, never dead-lettered or spooled: the record
// has no topic to dead-letter it for, or would fail the same way again.
func badCall(err error) bool {
	return errors.Is(err, kafkaproducer.ErrNoTopic) || errors.Is(err, kafkaproducer.ErrBadPartition) ||
		errors.Is(err, kafkaproducer.ErrPartitionRequired) || errors.Is(err, kafkaproducer.ErrStaleTimestamp)
}

// forNow reports a refusal that says nothing about the record: the
// cluster or the topic's leader was unavailable, a timeout, closing.
// Sending again later may succeed.
func forNow(err error) bool {
	if waitsForOperator(err) {
		return false
	}
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassRetriable, kafkaproducer.ClassTimeout, kafkaproducer.ClassClosed:
		return true
	}
	return false
}

// mayBeWritten reports whether a record that Kafka's client failed after
// taking it (partition is where it was headed, -1 if it never got one)
// may have been written anyway. Only what proves otherwise says no: it
// never got a partition (it waited for its topic's metadata until it
// failed, so it was never sent), an explicit refusal by the broker (bad
// input, authorization, a missing topic), a full buffer, a ctx that ended
// before buffering. franz-go fails a closing client's records, sent or
// not, with one error and reports a record that ran out of
// DeliveryTimeout with its last error, so a record with a partition that
// failed by Close or with a connection error is counted: the count is an
// upper bound.
func mayBeWritten(err error, partition int32) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, kafkaproducer.ErrOutcomeUnknown):
		return true
	case partition < 0, callerGaveUp(err),
		errors.Is(err, kafkaproducer.ErrBufferFull), errors.Is(err, kgo.ErrMaxBuffered):
		return false
	}
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassBadInput, kafkaproducer.ClassAuthorization:
		return false
	}
	return true
}

// item is one record that did not reach its topic, on its way to the
// router.
type item struct {
	rec       kafkaproducer.Record // as sent, record-ID header included
	id        [16]byte
	attempt   kafkaproducer.Result
	cause     error
	class     kafkaproducer.Class
	partition int32  // where it was headed; -1 if it never got a partition
	attempts  uint32 // 0: it never reached Kafka's client
	forceDLT  bool   // DeadLetter: straight to the dead-letter topic
	cb        func(Result)
}

// newItem is the item of a record whose attempt failed; attempts is 1 if
// Kafka's client had taken it, 0 if not.
func newItem(res kafkaproducer.Result, id [16]byte, attempts uint32) *item {
	partition := res.Partition
	if se, ok := errors.AsType[*kafkaproducer.SendError](res.Err); ok {
		partition = se.Partition // where it was headed; Result.Partition is where it was written
	}
	if attempts == 0 {
		partition = -1
		if res.Record.PartitionSet {
			partition = res.Record.Partition
		}
	}
	return &item{
		rec:       res.Record,
		id:        id,
		attempt:   res,
		cause:     res.Err,
		class:     kafkaproducer.Classify(res.Err),
		partition: partition,
		attempts:  attempts,
	}
}

// destination is where the routing decision sends it.
func (d *Producer) destination(it *item) Route {
	switch {
	case it.forceDLT:
		return RouteDeadLetter
	case badCall(it.cause):
		return RouteFail // the call's mistake: no topic to keep it for
	}
	return d.cfg.Route(it.cause)
}

// enqueue hands it to the router. It counts in toSpool until the router
// decides it goes elsewhere or its spool Append returned: its route is
// not known yet, and a record that may be spooled must hold back later
// ones under StrictOrder from the moment it failed.
func (d *Producer) enqueue(it *item) {
	d.toSpool.Add(1)
	d.qmu.Lock()
	d.queue = append(d.queue, it)
	d.qmu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// route is the router goroutine: it routes failed records in batches
// (one dead-letter batch, one spool commit per round) and runs their
// callbacks. Close stops it once every accepted record was reported.
func (d *Producer) route() {
	defer close(d.rtDone)
	var items []*item
	for {
		select {
		case <-d.wake:
		case <-d.stopRt:
			return
		}
		for {
			d.qmu.Lock()
			items, d.queue = d.queue, items[:0]
			d.qmu.Unlock()
			if len(items) == 0 {
				break
			}
			results := d.routeItems(items)
			for i, it := range items {
				it.cb(results[i])
				d.finish()
				items[i] = nil
			}
		}
	}
}

// routeItems sends failed records where the policy says and returns one
// Result per item. Dead-letter sends are bounded by DeadLetterTimeout,
// spool commits take milliseconds.
func (d *Producer) routeItems(items []*item) []Result {
	ctx := context.Background()
	now := d.cfg.Now()
	out := make([]Result, len(items))
	type spoolIt struct {
		i     int
		entry spool.Entry
	}
	var toDLT []int
	var toSpool []spoolIt
	routes := make([]Route, len(items))
	for i, it := range items {
		amb := it.attempts > 0 && mayBeWritten(it.cause, it.partition)
		out[i] = Result{Attempt: it.attempt, RecordID: hexID(it.id), Ambiguous: amb}
		routes[i] = d.destination(it)
		switch routes[i] {
		case RouteFail:
			out[i].Disposition, out[i].Err = Failed, it.cause
		case RouteDeadLetter:
			toDLT = append(toDLT, i)
		default:
			toSpool = append(toSpool, spoolIt{i, d.entry(it, it.rec, now)})
		}
	}
	// Records routed away from the spool no longer hold later ones back;
	// those routed to it do until their Append returned (then the spool's
	// Len counts them, or they failed to the caller).
	spoolBound := int64(len(toSpool))
	d.toSpool.Add(spoolBound - int64(len(items)))
	if len(toDLT) > 0 {
		recs := make([]kafkaproducer.Record, len(toDLT))
		for j, i := range toDLT {
			if items[i].id == ([16]byte{}) {
				items[i].rec, items[i].id = d.withID(items[i].rec, [16]byte{})
				out[i].RecordID = hexID(items[i].id)
			}
			recs[j] = d.deadLetterRecord(items[i], now)
		}
		var rs kafkaproducer.Results
		if d.dlt != d.p || d.cb == nil || d.cb.State() != gobreaker.StateOpen {
			dctx, cancel := context.WithTimeout(ctx, d.cfg.DeadLetterTimeout)
			rs = d.dlt.SendBatch(dctx, recs)
			cancel()
		}
		for j, i := range toDLT {
			if rs != nil && rs[j].Err == nil {
				r := rs[j]
				out[i].Disposition, out[i].DeadLetter = DeadLettered, &r
				continue
			}
			if rs != nil && !forNow(rs[j].Err) {
				// The dead-letter topic refused it for a reason that
				// is not the cluster's: too large for it too, the
				// topic missing or denied. The spool holds no record
				// whose every destination may refuse it, so the caller
				// gets it back with both causes.
				out[i].Disposition = Failed
				out[i].Err = fmt.Errorf("kprod: record %s not kept: dead-letter topic refused it: %w (it failed with: %w)", out[i].RecordID, rs[j].Err, items[i].cause)
				continue
			}
			if rs != nil {
				d.log.Warn("dead-letter send failed for now; spooling for the dead-letter topic", zap.String("topic", recs[j].Topic), zap.Error(rs[j].Err))
				if mayBeWritten(rs[j].Err, rs[j].Partition) {
					out[i].Ambiguous = true // the dead letter may land twice
				}
			}
			toSpool = append(toSpool, spoolIt{i, d.entry(items[i], recs[j], now)})
		}
	}
	if len(toSpool) > 0 {
		var err error
		if d.sp == nil {
			err = ErrNoSpool
		} else {
			entries := make([]spool.Entry, len(toSpool))
			for j := range toSpool {
				entries[j] = toSpool[j].entry
			}
			err = d.sp.Append(ctx, entries...)
		}
		d.toSpool.Add(-spoolBound)
		for _, s := range toSpool {
			if err != nil {
				out[s.i].Disposition = Failed
				out[s.i].Err = fmt.Errorf("kprod: record %s not kept: %w (it failed with: %w)", out[s.i].RecordID, err, items[s.i].cause)
				continue
			}
			out[s.i].Disposition = Spooled
			out[s.i].RecordID = hexID(s.entry.ID)
		}
	}
	// Counters, observer and OnRecord, outside any lock.
	for i, it := range items {
		r := &out[i]
		switch r.Disposition {
		case Failed:
			r.Ambiguous = false // returned to the caller: its to judge
			d.failed.Add(1)
			if routes[i] != RouteFail {
				d.log.Error("record returned to the caller: no topic or spool could keep it", zap.String("topic", it.rec.Topic), zap.Error(r.Err))
			}
			continue
		case DeadLettered:
			d.deadLettered.Add(1)
			d.cfg.Observer.OnDeadLettered(it.rec.Topic)
		case Spooled:
			d.spooled.Add(1)
			d.cfg.Observer.OnSpooled(it.rec.Topic)
		}
		if r.Ambiguous {
			d.ambiguous.Add(1)
			d.cfg.Observer.OnAmbiguous(it.rec.Topic)
		}
		if d.cfg.OnRecord != nil {
			dest := it.rec.Topic
			if r.DeadLetter != nil {
				dest = r.DeadLetter.Record.Topic
			} else if routes[i] == RouteDeadLetter {
				dest = deadLetterTopic(d.cfg.DeadLetterTopic, it.rec.Topic)
			}
			d.cfg.OnRecord(Event{Record: it.rec, RecordID: r.RecordID, Disposition: r.Disposition, Class: it.class, Err: it.cause, Destination: dest, Ambiguous: r.Ambiguous})
		}
	}
	if len(toSpool) > 0 && d.sp != nil {
		st := d.sp.Stats()
		d.cfg.Observer.OnSpoolSize(st.Records, st.Bytes)
	}
	return out
}

// entry makes the spool entry for it, sending rec (the original record, or
// its dead-letter copy) on replay.
func (d *Producer) entry(it *item, rec kafkaproducer.Record, now time.Time) spool.Entry {
	rec, id := d.withID(rec, it.id)
	it.id = id
	ts := rec.Timestamp
	if ts.IsZero() {
		ts = it.attempt.Record.Timestamp
	}
	if ts.IsZero() {
		ts = now // keep the time the application sent it, not the replay's
	}
	return spool.Entry{
		ID:            id,
		SpooledAt:     now,
		Topic:         rec.Topic,
		OriginalTopic: it.rec.Topic,
		Partition:     rec.Partition,
		PartitionSet:  rec.PartitionSet,
		Key:           rec.Key,
		Value:         rec.Value,
		Headers:       rec.Headers,
		Timestamp:     ts,
		Class:         it.class.String(),
		Err:           it.cause.Error(),
		Attempts:      it.attempts,
	}
}
