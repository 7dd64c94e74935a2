package dlq_test

import (
	"context"
	"fmt"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kerr"
)

// The default policy routes by cause first: a topic that does not exist
// yet or denies the write waits in the spool for that topic; the
// record's own faults go to the dead-letter topic, the cluster's to the
// spool, and a caller that gave up before the record was buffered gets
// it back.
func ExampleDefaultRoute() {
	for _, cause := range []error{
		kerr.UnknownTopicOrPartition,
		kerr.TopicAuthorizationFailed,
		kerr.MessageTooLarge,
		kafkaproducer.ErrDeliveryTimeout,
		kerr.NotLeaderForPartition,
		kafkaproducer.ErrClosed,
		context.Canceled,
	} {
		err := &kafkaproducer.SendError{Topic: "orders", Partition: -1, Class: kafkaproducer.Classify(cause), Err: cause}
		fmt.Printf("%-13s %-35.35s -> %s\n", err.Class, cause, dlq.DefaultRoute(err))
	}
	// Output:
	// bad_input     UNKNOWN_TOPIC_OR_PARTITION: This se -> spool
	// authorization TOPIC_AUTHORIZATION_FAILED: Not aut -> spool
	// bad_input     MESSAGE_TOO_LARGE: The request incl -> dead_letter
	// timeout       kprod: delivery timed out           -> spool
	// retriable     NOT_LEADER_FOR_PARTITION: This serv -> spool
	// closed        kprod: producer closed              -> spool
	// canceled      context canceled                    -> fail
}
