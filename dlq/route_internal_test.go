package dlq

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sendErr is a failed record's error as the wrapped producer reports it.
func sendErr(cause error) error {
	return &kafkaproducer.SendError{Topic: "orders", Partition: 0, Class: kafkaproducer.Classify(cause), Err: cause}
}

// TestDefaultRouteByCause is the routing table: a missing or denied topic
// waits in the spool for that topic whatever its class; a ctx that ended
// before buffering returns the record; the record's own faults go to the
// dead-letter topic; the cluster's go to the spool.
func TestDefaultRouteByCause(t *testing.T) {
	tests := []struct {
		name  string
		cause error
		want  Route
	}{
		{"unknown topic (after franz-go's retries)", kerr.UnknownTopicOrPartition, RouteSpool},
		{"unknown topic ID", kerr.UnknownTopicID, RouteSpool},
		{"topic not authorised", kerr.TopicAuthorizationFailed, RouteSpool},
		{"cluster not authorised", kerr.ClusterAuthorizationFailed, RouteSpool},
		{"credentials refused", kafkaproducer.ErrAuthFailed, RouteSpool},
		{"too large", kerr.MessageTooLarge, RouteDeadLetter},
		{"invalid record", kerr.InvalidRecord, RouteDeadLetter},
		{"invalid topic name", kerr.InvalidTopicException, RouteDeadLetter},
		{"serialization", &kafkaproducer.BadInputError{Topic: "orders", Side: "value", Err: errors.New("bad")}, RouteDeadLetter},
		{"fenced", kafkaproducer.ErrFenced, RouteDeadLetter},
		{"abortable", kerr.TransactionAbortable, RouteDeadLetter},
		{"delivery timeout", fmt.Errorf("%w: %w", kafkaproducer.ErrDeliveryTimeout, kgo.ErrRecordTimeout), RouteSpool},
		{"request timed out", kerr.RequestTimedOut, RouteSpool},
		{"leader moving", kerr.NotLeaderForPartition, RouteSpool},
		{"closing", fmt.Errorf("%w: %w", kafkaproducer.ErrClosed, kgo.ErrClientClosed), RouteSpool},
		{"breaker open", kafkaproducer.WithClass(kafkaproducer.ClassRetriable, ErrCircuitOpen), RouteSpool},
		{"ctx canceled before buffering", context.Canceled, RouteFail},
		{"ctx deadline before buffering", context.DeadlineExceeded, RouteFail},
		{"timed out waiting for its topic", fmt.Errorf("%w: %w, last err: %w", kafkaproducer.ErrDeliveryTimeout, kgo.ErrRecordTimeout, kerr.UnknownTopicOrPartition), RouteSpool},
		{"canceled by class", kafkaproducer.WithClass(kafkaproducer.ClassCanceled, errors.New("stop")), RouteFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultRoute(sendErr(tt.cause)); got != tt.want {
				t.Errorf("DefaultRoute(%v) = %v, want %v", tt.cause, got, tt.want)
			}
		})
	}
}

// TestDestination: refusals of the call never reach Route; DeadLetter
// always goes to the dead-letter topic; the rest is Route's.
func TestDestination(t *testing.T) {
	d := &Producer{cfg: Config{Route: func(error) Route { return RouteSpool }}}
	tests := []struct {
		name     string
		cause    error
		forceDLT bool
		want     Route
	}{
		{"no topic", kafkaproducer.ErrNoTopic, false, RouteFail},
		{"bad partition", kafkaproducer.ErrBadPartition, false, RouteFail},
		{"partition required", kafkaproducer.ErrPartitionRequired, false, RouteFail},
		{"stale timestamp", kafkaproducer.ErrStaleTimestamp, false, RouteFail},
		{"DeadLetter", kafkaproducer.ErrClosed, true, RouteDeadLetter},
		{"anything else: Route", kerr.MessageTooLarge, false, RouteSpool},
	}
	for _, tt := range tests {
		it := newItem(failedResult(kafkaproducer.Record{Topic: "orders"}, tt.cause), [16]byte{}, 1)
		it.forceDLT = tt.forceDLT
		if got := d.destination(it); got != tt.want {
			t.Errorf("%s: destination %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestMayBeWritten: only a failure after the record was on its way, and
// not an explicit refusal, makes it ambiguous.
func TestMayBeWritten(t *testing.T) {
	tests := []struct {
		name      string
		cause     error
		partition int32
		want      bool
	}{
		{"delivery timeout", fmt.Errorf("%w: %w", kafkaproducer.ErrDeliveryTimeout, kgo.ErrRecordTimeout), 0, true},
		{"request timed out", kerr.RequestTimedOut, 0, true},
		{"outcome unknown", fmt.Errorf("%w: %w", kafkaproducer.ErrOutcomeUnknown, context.DeadlineExceeded), 0, true},
		{"connection error after the timeout", fmt.Errorf("%w: %w", kafkaproducer.ErrDeliveryTimeout, kerr.NotLeaderForPartition), 2, true},
		{"closed while headed for a partition", fmt.Errorf("%w: %w", kafkaproducer.ErrClosed, kgo.ErrClientClosed), 1, true},
		{"closed while waiting for metadata", fmt.Errorf("%w: %w", kafkaproducer.ErrClosed, kgo.ErrClientClosed), -1, false},
		{"ctx ended before buffering", context.DeadlineExceeded, -1, false},
		{"buffer full", kafkaproducer.ErrBufferFull, -1, false},
		{"too large", kerr.MessageTooLarge, 0, false},
		{"unknown topic", kerr.UnknownTopicOrPartition, -1, false},
		{"timed out waiting for its topic", fmt.Errorf("%w: %w, last err: %w", kafkaproducer.ErrDeliveryTimeout, kgo.ErrRecordTimeout, kerr.UnknownTopicOrPartition), -1, false},
		{"explicit partition, never answered", fmt.Errorf("%w: %w", kafkaproducer.ErrDeliveryTimeout, kgo.ErrRecordTimeout), 2, true},
		{"denied", kerr.TopicAuthorizationFailed, 0, false},
	}
	for _, tt := range tests {
		if got := mayBeWritten(sendErr(tt.cause), tt.partition); got != tt.want {
			t.Errorf("%s: mayBeWritten = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestReadyToTrip: BreakerConfig's rules on gobreaker's own counts.
func TestReadyToTrip(t *testing.T) {
	b := BreakerConfig{ConsecutiveFailures: 3, MinRequests: 10}
	tests := []struct {
		name            string
		req, fail, cons uint32
		ratio           float64
		want            bool
	}{
		{"two in a row", 2, 2, 2, 0.5, false},
		{"three in a row", 3, 3, 3, 0.5, true},
		{"half of nine: too few sends", 9, 5, 1, 0.5, false},
		{"half of ten", 10, 5, 1, 0.5, true},
		{"under half of ten", 10, 4, 1, 0.5, false},
		{"ratio rule off", 100, 90, 1, 1.5, false},
		{"every send, ratio 1", 10, 10, 2, 1, true},
	}
	for _, tt := range tests {
		b.FailureRatio = tt.ratio
		c := gobreaker.Counts{Requests: tt.req, TotalFailures: tt.fail, ConsecutiveFailures: tt.cons}
		if got := readyToTrip(b, c); got != tt.want {
			t.Errorf("%s: readyToTrip = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestForNow: which dead-letter refusals send the dead letter to the
// spool (for now) rather than back to the caller.
func TestForNow(t *testing.T) {
	tests := []struct {
		cause error
		want  bool
	}{
		{kerr.NotLeaderForPartition, true},
		{fmt.Errorf("%w: %w", kafkaproducer.ErrDeliveryTimeout, kgo.ErrRecordTimeout), true},
		{fmt.Errorf("%w: %w", kafkaproducer.ErrClosed, kgo.ErrClientClosed), true},
		{kerr.MessageTooLarge, false},
		{kerr.UnknownTopicOrPartition, false},
		{kerr.TopicAuthorizationFailed, false},
		{fmt.Errorf("%w: %w, last err: %w", kafkaproducer.ErrDeliveryTimeout, kgo.ErrRecordTimeout, kerr.UnknownTopicOrPartition), false},
	}
	for _, tt := range tests {
		if got := forNow(sendErr(tt.cause)); got != tt.want {
			t.Errorf("forNow(%v) = %v, want %v", tt.cause, got, tt.want)
		}
	}
}
