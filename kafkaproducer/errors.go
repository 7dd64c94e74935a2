package kafkaproducer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Class sorts an error by what the caller can do about it. Every kprod
// package (retries, the dead-letter path, the circuit breaker, metrics
// labels) uses this one classification.
type Class uint8

// The error classes.
const (
	// ClassNone is the class of a nil error.
	ClassNone Class = iota
	// ClassRetriable: a transient condition (leader election, broker
	// unreachable, buffer full). Sending the record again later may
	// succeed.
	ClassRetriable
	// ClassTimeout: the record ran out of time (delivery timeout, the
	// caller's deadline). Its outcome is ambiguous: it may have been
	// written. Sending it again may duplicate it.
	ClassTimeout
	// ClassCanceled: the caller canceled the send before it finished.
	// Like ClassTimeout, the record may have been written.
	ClassCanceled
	// ClassBadInput: the record itself is at fault (too large, invalid
	// or unknown topic, bad partition, serialization failure). Sending
	// it again fails the same way.
	ClassBadInput
	// ClassAuthorization: authentication failed or an ACL denies the
	// write. Not retriable until an operator acts.
	ClassAuthorization
	// ClassAbortable: the current transaction must be aborted; the
	// producer stays usable.
	ClassAbortable
	// ClassFatal: the producer cannot continue (fenced by a newer
	// instance, sequence corruption, unsupported broker). Close it.
	ClassFatal
	// ClassClosed: the producer was closed before the record was
	// delivered.
	ClassClosed
)

var classNames = [...]string{
	ClassNone:          "none",
	ClassRetriable:     "retriable",
	ClassTimeout:       "timeout",
	ClassCanceled:      "canceled",
	ClassBadInput:      "bad_input",
	ClassAuthorization: "authorization",
	ClassAbortable:     "abortable",
	ClassFatal:         "fatal",
	ClassClosed:        "closed",
}

// String returns the class's name as used in logs, headers and metric
// labels ("retriable", "bad_input", ...).
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Classes lists every class, for building metric label sets and docs.
func Classes() []Class {
	return []Class{ClassNone, ClassRetriable, ClassTimeout, ClassCanceled, ClassBadInput, ClassAuthorization, ClassAbortable, ClassFatal, ClassClosed}
}

// Sentinel errors. Match them with errors.Is.
var (
	// ErrClosed is returned for sends after Close has begun, and wraps
	// the error of every record Close could not deliver.
	ErrClosed = errors.New("kprod: producer closed")
	// ErrBufferFull is returned by TrySend when MaxBufferedRecords or
	// MaxBufferedBytes is reached.
	ErrBufferFull = errors.New("kprod: producer buffer full")
	// ErrDeliveryTimeout wraps a record that was not acknowledged within
	// Config.DeliveryTimeout or its retries.
	ErrDeliveryTimeout = errors.New("kprod: delivery timed out")
	// ErrStaleTimestamp refuses a record whose Timestamp is already
	// older than Config.DeliveryTimeout (franz-go measures the timeout
	// from the timestamp, so it could never be sent).
	ErrStaleTimestamp = errors.New("kprod: record timestamp older than the delivery timeout")
	// ErrNoTopic is returned for a record without a topic.
	ErrNoTopic = errors.New("kprod: record has no topic")
	// ErrPartitionRequired is returned when the manual partitioner gets
	// a record without Record.PartitionSet.
	ErrPartitionRequired = errors.New(`kprod: partitioner "manual" needs Record.PartitionSet`)
	// ErrBadPartition is returned for an explicit partition that is
	// negative or not in the topic.
	ErrBadPartition = errors.New("kprod: partition out of range")
	// ErrAuthFailed reports that the brokers refused this producer's
	// credentials (ClassAuthorization).
	ErrAuthFailed = errors.New("kprod: authentication failed")
	// ErrFenced reports that a newer producer with the same
	// transactional ID took over; this producer must be closed.
	ErrFenced = errors.New("kprod: producer fenced")
	// ErrOutcomeUnknown is returned by Send and SendBatch when the
	// caller's context ended while the record was already buffered or in
	// flight: the caller stopped waiting, the record did not. Its real
	// outcome still reaches the hooks (metrics) and Close's accounting;
	// it may yet be written. The error also wraps the context's error,
	// so it classifies as ClassCanceled or ClassTimeout.
	ErrOutcomeUnknown = errors.New("kprod: caller stopped waiting; the record's outcome is not known yet")
)

// SendError is the error of one record: where it was going and why it
// failed. Err is the cause (a kerr error, a franz-go error or a kprod
// sentinel); match it with errors.Is/As through SendError.
type SendError struct {
	Topic     string
	Partition int32 // -1 when the record was never assigned a partition
	Key       []byte
	Class     Class
	Err       error
}

const maxKeyInError = 64

func (e *SendError) Error() string {
	key := e.Key
	more := ""
	if len(key) > maxKeyInError {
		key, more = key[:maxKeyInError], "..."
	}
	where := fmt.Sprintf("topic %q", e.Topic)
	if e.Partition >= 0 {
		where += fmt.Sprintf(" partition %d", e.Partition)
	}
	if e.Key != nil {
		where += fmt.Sprintf(" key %q%s", key, more)
	}
	return fmt.Sprintf("kprod: send to %s (%s): %v", where, e.Class, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// ClassError gives an error an explicit Class, for code outside kprod
// whose errors the classifier cannot know (a schema registry answering
// 503 is retriable, say). Classify honours the outermost ClassError.
type ClassError struct {
	Class Class
	Err   error
}

func (e *ClassError) Error() string { return e.Err.Error() }
func (e *ClassError) Unwrap() error { return e.Err }

// WithClass wraps err so that Classify returns c for it.
func WithClass(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &ClassError{Class: c, Err: err}
}

// Classify sorts err into a Class. It understands kprod's own errors,
// franz-go's (kgo and kerr), context errors and network errors; anything
// else is ClassFatal, because an error nobody anticipated should stop a
// retry loop rather than feed it.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	var se *SendError
	if errors.As(err, &se) {
		return se.Class
	}
	return classify(err)
}

func classify(err error) Class {
	if ce, ok := errors.AsType[*ClassError](err); ok {
		return ce.Class
	}
	return classifyCause(err)
}

// IsRetriable reports whether sending again may succeed: ClassRetriable,
// ClassTimeout and ClassCanceled. For the latter two the first attempt may
// also have been written, so a resend can duplicate.
func IsRetriable(err error) bool {
	switch Classify(err) {
	case ClassRetriable, ClassTimeout, ClassCanceled:
		return true
	default:
		return false
	}
}

func classifyCause(err error) Class {
	switch {
	case errors.Is(err, ErrClosed), errors.Is(err, kgo.ErrClientClosed):
		return ClassClosed
	case errors.Is(err, ErrFenced):
		return ClassFatal
	case errors.Is(err, ErrAuthFailed):
		return ClassAuthorization
	case errors.Is(err, ErrBufferFull), errors.Is(err, kgo.ErrMaxBuffered):
		return ClassRetriable
	case errors.Is(err, ErrDeliveryTimeout), errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries):
		return ClassTimeout
	case errors.Is(err, ErrNoTopic), errors.Is(err, ErrPartitionRequired), errors.Is(err, ErrBadPartition), errors.Is(err, ErrStaleTimestamp):
		return ClassBadInput
	case errors.Is(err, kgo.ErrAborting):
		return ClassAbortable
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return classifyKerr(ke)
	}
	if _, ok := errors.AsType[*kgo.ErrFirstReadEOF](err); ok {
		// The broker hung up on the first read: usually a TLS or
		// SASL mismatch, which no retry fixes.
		return ClassAuthorization
	}
	if _, ok := errors.AsType[*BadInputError](err); ok {
		return ClassBadInput
	}
	if isTLSError(err) { // before net.Error: TLS failures are net errors too
		return ClassAuthorization
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return ClassRetriable
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return ClassRetriable
	}
	if kgo.IsRetryableBrokerErr(err) {
		return ClassRetriable
	}
	return ClassFatal
}

func classifyKerr(ke *kerr.Error) Class {
	switch ke {
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidTopicException,
		kerr.UnknownTopicOrPartition, kerr.UnknownTopicID, kerr.InvalidRecord,
		kerr.InvalidTimestamp, kerr.PolicyViolation, kerr.CorruptMessage,
		kerr.InvalidRequiredAcks, kerr.UnsupportedForMessageFormat:
		return ClassBadInput
	case kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed,
		kerr.TransactionalIDAuthorizationFailed, kerr.GroupAuthorizationFailed,
		kerr.SaslAuthenticationFailed, kerr.UnsupportedSaslMechanism,
		kerr.IllegalSaslState, kerr.DelegationTokenAuthorizationFailed:
		return ClassAuthorization
	case kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.TransactionCoordinatorFenced,
		kerr.OutOfOrderSequenceNumber, kerr.InvalidProducerIDMapping,
		kerr.UnsupportedVersion, kerr.InvalidTxnState:
		return ClassFatal
	case kerr.TransactionAbortable, kerr.OperationNotAttempted, kerr.UnknownProducerID:
		return ClassAbortable
	case kerr.RequestTimedOut:
		return ClassTimeout
	}
	if ke.Retriable {
		return ClassRetriable
	}
	return ClassFatal
}

// BadInputError reports a record kprod refused before it reached Kafka,
// for example because it could not be serialized. Side is "key" or
// "value" where that applies.
type BadInputError struct {
	Topic string
	Side  string
	Err   error
}

func (e *BadInputError) Error() string {
	if e.Side != "" {
		return fmt.Sprintf("kprod: bad %s for topic %q: %v", e.Side, e.Topic, e.Err)
	}
	return fmt.Sprintf("kprod: bad record for topic %q: %v", e.Topic, e.Err)
}

func (e *BadInputError) Unwrap() error { return e.Err }

// isTLSError reports a TLS failure that retrying cannot fix: an untrusted
// or mismatched certificate, a rejected client certificate, or a peer that
// does not speak TLS.
func isTLSError(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return true
	}
	// An alert from the peer (a broker refusing our client certificate,
	// or demanding one) arrives as a "remote error".
	oe, ok := errors.AsType[*net.OpError](err)
	return ok && oe.Op == "remote error"
}

// defaultBatchMaxBytes is franz-go's BatchMaxBytes when it is zero.
const defaultBatchMaxBytes = 1_000_012

// batchOverhead bounds what a batch of one record adds to the record's
// key, value and headers: the batch header (61 bytes) and the record's
// own framing (a few varints and the header keys' lengths).
const batchOverhead = 1024

// explain says what to do about a missing topic, and names the limit
// behind a MESSAGE_TOO_LARGE. franz-go refuses a record that cannot fit in
// one batch of BatchMaxBytes before sending it, with the same error a
// broker gives for a batch over the topic's max.message.bytes; a record
// within a batchOverhead of BatchMaxBytes or over it hit the producer's
// own limit.
func (c *Config) explain(r *kgo.Record, err error) error {
	if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
		if c.AutoCreateTopics {
			return fmt.Errorf("topic %q does not exist and the brokers did not create it (is auto.create.topics.enable off?): create it (package topics: topics.Ensure) or ask an operator to: %w", r.Topic, err)
		}
		return fmt.Errorf("topic %q does not exist: create it (package topics: topics.Ensure) or set Config.AutoCreateTopics (KPROD_AUTO_CREATE_TOPICS=true) for brokers that allow auto-creation: %w", r.Topic, err)
	}
	if !errors.Is(err, kerr.MessageTooLarge) {
		return err
	}
	size := userSize(r.Key, r.Value, r.Headers)
	limit := c.BatchMaxBytes
	if limit == 0 {
		limit = defaultBatchMaxBytes
	}
	if size+batchOverhead < int64(limit) {
		return fmt.Errorf("the broker refused the batch holding this record (%d bytes of key, value and headers) as larger than the topic's max.message.bytes: raise the topic's max.message.bytes or send smaller records: %w", size, err)
	}
	return fmt.Errorf("the record (%d bytes of key, value and headers) does not fit in one batch of BatchMaxBytes (%d), the producer's own limit; raise Config.BatchMaxBytes (and the topic's max.message.bytes, which the broker enforces) or send a smaller record: %w", size, limit, err)
}
