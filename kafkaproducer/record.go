package kafkaproducer

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header is a record header. It is franz-go's type, so headers pass
// through without a copy.
type Header = kgo.RecordHeader

// Record is one message to send. Only Topic is required. The producer
// keeps references to Key, Value and Headers until the record's result is
// reported: do not modify them before then.
type Record struct {
	Topic   string
	Key     []byte // nil means no key; an empty non-nil key is a key
	Value   []byte // nil is a tombstone on compacted topics
	Headers []Header
	// Timestamp is the record's time; zero means the time of the send.
	// Kafka stores milliseconds. franz-go measures Config.DeliveryTimeout
	// from it, so a record stamped earlier than that is refused with
	// ErrStaleTimestamp (ClassBadInput) rather than timing out unsent.
	Timestamp time.Time
	// Partition is used only when PartitionSet is true: the record then
	// goes to exactly this partition, whatever the partitioner.
	Partition    int32
	PartitionSet bool
}

// AtPartition returns a copy of r that goes to partition p.
func (r Record) AtPartition(p int32) Record {
	r.Partition, r.PartitionSet = p, true
	return r
}

// Result is the outcome of one record.
type Result struct {
	// Record is the record as it was sent (its Timestamp filled in).
	Record Record
	// Partition and Offset are where the record was written; -1 when it
	// was not.
	Partition int32
	Offset    int64
	// Timestamp is the timestamp the record was written with (as
	// Record.Timestamp). For a topic with LogAppendTime the broker
	// stores its own time instead, which franz-go does not report.
	Timestamp time.Time
	// Latency is the time from the send call to the acknowledgement
	// (when kprod read the broker's produce response; for SendAsync the
	// latest one read before the callback ran, so it never exceeds the
	// time to the callback) or to the failure.
	Latency time.Duration
	// Err is nil on success, otherwise a *SendError naming the record
	// and the cause.
	Err error
}

// Class is Classify(r.Err).
func (r Result) Class() Class { return Classify(r.Err) }

// Results holds one Result per record of a batch, in the order given.
type Results []Result

// FirstErr returns the first record error, or nil if all succeeded.
func (rs Results) FirstErr() error {
	for i := range rs {
		if rs[i].Err != nil {
			return rs[i].Err
		}
	}
	return nil
}

// Failed returns the results that carry an error.
func (rs Results) Failed() Results {
	var out Results
	for _, r := range rs {
		if r.Err != nil {
			out = append(out, r)
		}
	}
	return out
}

// Err joins every record error (nil if none), for callers that want one
// error value; the per-record results remain the source of truth.
func (rs Results) Err() error {
	var errs []error
	for _, r := range rs {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}

// Hook observes the outcome of every record a Producer handles, including
// records refused before they reached franz-go (an AckHook hears of
// successes through OnRecordAcked instead). OnRecordDone runs before
// the record's callback and before Send or SendBatch returns: on franz-go's
// promise goroutine for SendAsync and TrySend, on the caller's goroutine
// for Send, SendBatch and refusals. It may therefore run concurrently
// with itself; it must be fast, safe for concurrent use, and must not
// block or call back into the producer.
type Hook interface {
	OnRecordDone(Result)
}

// AckHook is a Hook with a cheaper path for successes, as franz-go's
// optional hook interfaces are: for a record the brokers acknowledged,
// the Producer calls OnRecordAcked instead of OnRecordDone. Failures and
// refusals still reach OnRecordDone. When every hook is an AckHook, a
// success that no callback takes a Result of (SendAsyncErr, or a send
// with a nil callback) builds no Result at all (the metrics package's
// hook is one: a success needs only its topic and latency). OnRecordAcked
// runs where OnRecordDone would, under the same rules. A type that embeds
// an AckHook (*metrics.Metrics, say) to override OnRecordDone inherits
// OnRecordAcked too: its OnRecordDone then no longer sees successes.
type AckHook interface {
	Hook
	OnRecordAcked(AckedRecord)
}

// AckedRecord is a record the brokers acknowledged, as an AckHook sees
// it: the same values as its Result's.
type AckedRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Latency   time.Duration
}
