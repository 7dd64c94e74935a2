package kafkaproducer

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// pending is one record in flight: franz-go's record plus what kprod needs
// to report it, in one allocation.
//
// A pending is also the record's context (kgo.Record.Context) and the
// context its Produce call gets. It never ends (Done is nil) and answers
// Value from the caller's context, so trace spans and other values travel
// with the record while the caller's cancellation does not: franz-go
// fails a whole batch when the context of its first record ends, and one
// caller giving up must not fail other callers' records. The promise finds
// the pending record again from r.Context (pendingOf), without a map, a
// closure per record or pointer arithmetic.
type pending struct {
	// The fields the promise reads for every record come first, on the
	// cache line that also holds the head of kr (its key and value),
	// which franz-go has just read: after kr they cost a cache miss per
	// record on franz-go's one promise goroutine.

	// recv receives the outcome: a resultFunc (SendAsync, TrySend), an
	// errFunc (SendAsyncErr), a typed send's typedPending, or nil
	// (Send and SendBatch read the Result themselves).
	recv       receiver
	start      int64 // when the record was sent: monotonic ns since the producer's epoch
	size       int64 // bytes counted against MaxBufferedBytes
	partitions int32 // set by the partitioner when an explicit partition is not in the topic
	idx        int32 // position in a SendBatch
	explicit   bool  // Record.PartitionSet

	kr kgo.Record

	parent context.Context // the caller's ctx, for Value only
}

// receiver is what a record's outcome goes to.
type receiver interface {
	receive(Result)
}

// resultFunc is a SendAsync or TrySend callback.
type resultFunc func(Result)

func (f resultFunc) receive(r Result) { f(r) }

// errFunc is a SendAsyncErr callback.
type errFunc func(error)

func (f errFunc) receive(r Result) { f(r.Err) }

type pendingKey struct{}

// Deadline, Done and Err make a pending a context that never ends.
func (*pending) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*pending) Done() <-chan struct{}       { return nil }
func (*pending) Err() error                  { return nil }

// Value returns the caller's context values; pendingKey finds the pending
// record itself even when a franz-go hook (kotel, say) has wrapped the
// record's context.
func (pd *pending) Value(k any) any {
	if k == (pendingKey{}) {
		return pd
	}
	return pd.parent.Value(k)
}

// pendingOf finds the pending record behind a franz-go record: nil for a
// record kprod did not send (one a user produced on Producer.Client).
func pendingOf(r *kgo.Record) *pending {
	switch c := r.Context.(type) {
	case nil:
		return nil
	case *pending:
		return c
	default:
		pd, _ := c.Value(pendingKey{}).(*pending)
		return pd
	}
}

// userSize is the size franz-go counts against its buffer limit.
func userSize(rec *Record) int64 {
	n := int64(len(rec.Key) + len(rec.Value))
	for _, h := range rec.Headers {
		n += int64(len(h.Key) + len(h.Value))
	}
	return n
}
