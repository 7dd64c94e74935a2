package dlq

import (
	"errors"
	"fmt"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
)

// Sentinel errors. Match them with errors.Is. Calls after Close began
// fail with kafkaproducer.ErrClosed (the same error the wrapped producer
// uses); match that. A Send or SendBatch whose ctx ended after the
// record was handed to Kafka's client returns an error wrapping
// kafkaproducer.ErrOutcomeUnknown (Disposition Pending).
var (
	// ErrCircuitOpen is the cause of a record refused (OpenFailFast) or
	// spooled because the circuit breaker was open. Its class is
	// ClassRetriable.
	ErrCircuitOpen = errors.New("kprod: circuit breaker open")
	// ErrNoSpool is wrapped by the error of a record that had to be
	// spooled when no spool is configured.
	ErrNoSpool = errors.New("kprod: no spool configured")
	// ErrSetAside is wrapped by the error Replay returns when it set
	// records aside: rejected for good (moved to the spool's rejected/
	// directory) or found damaged (moved to quarantine/). The rest of the
	// spool was replayed; those records need an operator. They are also
	// counted in Stats and reported to Observer.OnSetAside.
	ErrSetAside = errors.New("kprod: spooled records set aside")
)

// Disposition is where a record ended.
type Disposition uint8

// The dispositions. Every record handed to the Producer ends in exactly
// one of Failed, Delivered, DeadLettered and Spooled; Pending only says
// that the caller stopped waiting before it did.
const (
	// Failed: the record is nowhere; Result.Err says why. The caller
	// learns it from the call (or its callback) and owns the record.
	Failed Disposition = iota
	// Delivered: acknowledged on its topic.
	Delivered
	// DeadLettered: acknowledged on its dead-letter topic.
	DeadLettered
	// Spooled: persisted (fsync'd) in the spool, to be replayed.
	Spooled
	// Pending: Send, SendBatch or DeadLetter returned because its ctx
	// ended after the record was handed over. The record is not the
	// caller's: it still ends in one of the four places above, counted
	// in Stats and reported to Observer and Config.OnRecord, and Close
	// waits for it. Result.Err wraps kafkaproducer.ErrOutcomeUnknown and
	// ctx's error.
	Pending
)

func (d Disposition) String() string {
	switch d {
	case Failed:
		return "failed"
	case Delivered:
		return "delivered"
	case DeadLettered:
		return "dead_lettered"
	case Spooled:
		return "spooled"
	case Pending:
		return "pending"
	}
	return fmt.Sprintf("disposition(%d)", uint8(d))
}

// Result is the outcome of one record.
type Result struct {
	// Attempt is the send to the record's own topic. Attempt.Err is why
	// it did not land there (nil when Delivered). Attempt.Record is the
	// record as sent, record-ID header included.
	Attempt kafkaproducer.Result
	// Disposition is where the record ended.
	Disposition Disposition
	// RecordID is the record's ID (32 hex digits), also in its
	// record-ID header when it carries one.
	RecordID string
	// DeadLetter is the dead-letter send when Disposition is DeadLettered.
	DeadLetter *kafkaproducer.Result
	// Ambiguous is set when the record may have been written although
	// it failed: it failed after Kafka's client had it on its way to a
	// partition, with anything but an explicit refusal (see
	// docs/deadletter.md). Its topic may then hold it twice once
	// replayed, with the same record ID. A record refused at the call,
	// sent to the spool by an open breaker, withdrawn because its ctx
	// ended before it was buffered, or failed while it still waited for
	// its topic's metadata, was never written and is not ambiguous.
	Ambiguous bool
	// Err is non-nil only when Disposition is Failed or Pending.
	Err error
}

// Event describes a record that was dead-lettered or spooled, for
// Config.OnRecord.
type Event struct {
	Record      kafkaproducer.Record // as sent to its topic, record-ID header included
	RecordID    string
	Disposition Disposition // DeadLettered or Spooled
	Class       kafkaproducer.Class
	Err         error // why it left its topic's path
	// Destination is the dead-letter topic, or for spooled records the
	// topic replay will send them to.
	Destination string
	Ambiguous   bool
}

// Stats are the Producer's running totals since New.
type Stats struct {
	// Where records ended. Failed counts every record returned to the
	// caller as an error, refusals at the call included.
	Delivered, DeadLettered, Spooled, Failed int64
	// Replayed counts spooled records acknowledged on replay.
	Replayed int64
	// Ambiguous counts records that may be on their topic twice.
	Ambiguous int64
	// Pending counts accepted records not yet reported.
	Pending int64
	// Rejected counts spooled records replay set aside for good (moved
	// to the spool's rejected/ directory): neither their destination nor
	// their dead-letter topic takes them. Quarantined counts the damaged
	// ranges of the spool (each at least part of one record) recovery
	// moved to quarantine/ at New or replay met later. Both are the
	// spool's counts since New (spool.Stats); each record also reached
	// Observer.OnSetAside, and both need an operator. What earlier runs
	// set aside is in Spool().SetAside().
	Rejected, Quarantined int64
	// Breaker is the breaker's state (StateClosed when it is disabled).
	Breaker gobreaker.State
	// SpoolRecords and SpoolBytes are what the spool holds now.
	SpoolRecords, SpoolBytes int64
}

// failedResult is the Result of a record that was not written: err
// becomes a *kafkaproducer.SendError with its class, unless it is one.
func failedResult(rec kafkaproducer.Record, err error) kafkaproducer.Result {
	if _, ok := errors.AsType[*kafkaproducer.SendError](err); !ok {
		err = &kafkaproducer.SendError{Topic: rec.Topic, Partition: -1, Key: rec.Key, Class: kafkaproducer.Classify(err), Err: err}
	}
	return kafkaproducer.Result{Record: rec, Partition: -1, Offset: -1, Err: err}
}
