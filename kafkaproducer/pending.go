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
	// The fields the promise reads for every record come first, next
	// to the head of kr (its key and value), which franz-go has just
	// read: 100,000 records can be in flight, and the promise
	// goroutine's first touch of each cache line of a record is a
	// miss. 208 bytes in all, a size class below 224.

	// recv receives the outcome: a resultFunc (SendAsync, TrySend), an
	// errFunc (SendAsyncErr), a typed send's typedPending, a SendBatch
	// record's resultSlot, or nil (Send reads the Result itself, and a
	// nil callback takes none).
	recv  receiver
	start int64 // when the record was sent: monotonic ns since the producer's epoch
	// size is what the record holds in the buffer: its userSize when
	// it was sent (hooks, kotel's among them, may add headers later).
	size int32
	// explicit is 0 for a record the partitioner places. For one sent
	// to an explicit partition (Record.PartitionSet) it is -1, or the
	// topic's partition count when the topic does not have that
	// partition (the partitioner notes it; franz-go then fails the
	// record).
	explicit int32

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

// resultSlot receives a SendBatch record's Result in its place in the
// batch's Results.
type resultSlot Result

func (s *resultSlot) receive(r Result) { *s = resultSlot(r) }

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

// userSize is the size a record takes in the buffer, as franz-go counts
// it: key, value and headers.
func userSize(key, value []byte, headers []Header) int64 {
	n := int64(len(key) + len(value))
	for _, h := range headers {
		n += int64(len(h.Key) + len(h.Value))
	}
	return n
}
