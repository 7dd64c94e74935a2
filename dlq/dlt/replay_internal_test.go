package dlt

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBackToDLT: only a refusal that is the record's own fault sends it
// back to the dead-letter topic; a denied write, a producer-level error,
// a missing topic and anything transient stop the replay instead.
func TestBackToDLT(t *testing.T) {
	tests := []struct {
		name string
		err  error
		back bool
	}{
		{"too large", kerr.MessageTooLarge, true},
		{"record list too large", kerr.RecordListTooLarge, true},
		{"invalid record", kerr.InvalidRecord, true},
		{"invalid timestamp", kerr.InvalidTimestamp, true},
		{"corrupt", kerr.CorruptMessage, true},
		{"policy", kerr.PolicyViolation, true},
		{"bad input, wrapped", fmt.Errorf("produce to %q: %w", "orders", kerr.MessageTooLarge), true},
		{"topic ACL", kerr.TopicAuthorizationFailed, false},
		{"cluster ACL", kerr.ClusterAuthorizationFailed, false},
		{"SASL", kerr.SaslAuthenticationFailed, false},
		{"invalid producer epoch", kerr.InvalidProducerEpoch, false},
		{"out of order sequence", kerr.OutOfOrderSequenceNumber, false},
		{"unsupported version", kerr.UnsupportedVersion, false},
		{"unknown producer ID", kerr.UnknownProducerID, false},
		{"unknown error", errors.New("something else"), false},
		{"missing topic", kerr.UnknownTopicOrPartition, false},
		{"unknown topic ID", kerr.UnknownTopicID, false},
		{"invalid topic", kerr.InvalidTopicException, false},
		{"acks refused", kerr.InvalidRequiredAcks, false},
		{"message format", kerr.UnsupportedForMessageFormat, false},
		{"no topic", kafkaproducer.ErrNoTopic, false},
		{"stale timestamp", kafkaproducer.ErrStaleTimestamp, false},
		{"closed", kafkaproducer.ErrClosed, false},
		{"timeout", kafkaproducer.ErrDeliveryTimeout, false},
		{"record timeout", kgo.ErrRecordTimeout, false},
		{"not leader", kerr.NotLeaderForPartition, false},
		{"request timed out", kerr.RequestTimedOut, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backToDLT(tt.err); got != tt.back {
				t.Errorf("backToDLT(%v) = %v, want %v (class %s)", tt.err, got, tt.back, kafkaproducer.Classify(tt.err))
			}
			if !tt.back && stopCause(tt.err, "orders") == "" {
				t.Errorf("no cause named for %v", tt.err)
			}
		})
	}
}
