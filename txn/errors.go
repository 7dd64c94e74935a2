package txn

import (
	"errors"
	"fmt"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Sentinel errors. Match them with errors.Is. A fenced producer's errors
// match kafkaproducer.ErrFenced.
var (
	// ErrBroken reports a producer whose transactional state can no
	// longer be trusted (an abort could not finish, or Kafka answered
	// with a fatal error other than fencing). It refuses further work:
	// close it and build a new one (a Pool does this itself).
	ErrBroken = errors.New("kprod: transactional producer broken")
	// ErrCommitUnknown reports a commit whose outcome is not known: the
	// EndTxn request was sent but no definite answer came back (a
	// network error, REQUEST_TIMED_OUT, UNKNOWN_SERVER_ERROR, or the
	// commit timeout). The transaction may or may not be visible.
	// Run does not retry it, because a retry could commit the records
	// twice; the producer has been reset and stays usable.
	ErrCommitUnknown = errors.New("kprod: transaction commit outcome unknown")
	// ErrTxnDone is returned by sends on a Tx whose function has
	// already returned.
	ErrTxnDone = errors.New("kprod: transaction already ended")
	// ErrPoolClosed is returned by Pool.Run after Pool.Close began.
	ErrPoolClosed = errors.New("kprod: transaction pool closed")
	// ErrPipelineRunning is returned by Pipeline.Run when Run is
	// already running on another goroutine.
	ErrPipelineRunning = errors.New("kprod: pipeline Run called concurrently")
)

// PanicError is what Run reports to its Observer when the transaction
// function panicked; Run itself aborts the transaction and then panics
// again with the original value, so a bug is never swallowed.
type PanicError struct {
	Value any
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("kprod: transaction function panicked: %v", e.Value)
}

// TxnError is a transaction that did not commit. Attempts is how many
// times the function ran; Err is the last attempt's cause (a
// *kafkaproducer.SendError, the function's own error, ctx's error, a
// franz-go error from ending the transaction, or ErrFenced, ErrBroken or
// ErrCommitUnknown with the cause). Classify(TxnError) is Classify(Err).
type TxnError struct {
	TransactionalID string
	Attempts        int
	Err             error
}

func (e *TxnError) Error() string {
	return fmt.Sprintf("kprod: transaction %q (%d attempt(s)): %v", e.TransactionalID, e.Attempts, e.Err)
}

func (e *TxnError) Unwrap() error { return e.Err }

// isFenced reports whether err means a newer instance with the same
// transactional ID took over. franz-go reports fencing as PRODUCER_FENCED
// (coordinator requests), INVALID_PRODUCER_EPOCH (produce requests) or
// TRANSACTION_COORDINATOR_FENCED.
func isFenced(err error) bool {
	return errors.Is(err, kafkaproducer.ErrFenced) ||
		errors.Is(err, kerr.ProducerFenced) ||
		errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionCoordinatorFenced)
}

// fencedErr wraps err so it matches kafkaproducer.ErrFenced and still
// matches its cause.
func fencedErr(err error) error {
	if errors.Is(err, kafkaproducer.ErrFenced) {
		return err
	}
	return fmt.Errorf("%w: %w", kafkaproducer.ErrFenced, err)
}

// ambiguousEnd reports whether an EndTxn error leaves the outcome
// unknown: anything but a definite answer from the broker.
func ambiguousEnd(err error) bool {
	ke, ok := errors.AsType[*kerr.Error](err)
	if !ok {
		return true
	}
	return ke == kerr.RequestTimedOut || ke == kerr.UnknownServerError
}
