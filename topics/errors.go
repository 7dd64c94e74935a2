package topics

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Error is the failure of one operation on one topic. Err is the broker's
// answer (a kerr error, with the broker's message when it sent one) or a
// transport error, so kafkaproducer.Classify sorts an *Error as it sorts
// its cause: a missing ACL is ClassAuthorization, a missing topic
// ClassBadInput, a partition without a leader ClassRetriable.
type Error struct {
	// Topic is the topic the operation was on.
	Topic string
	// Op is the operation that failed, named as Kafka's ACLs name it:
	// DESCRIBE (metadata), CREATE, ALTER (adding partitions),
	// DESCRIBE_CONFIGS, ALTER_CONFIGS, or WRITE (Ready's check of the
	// topic's authorized operations).
	Op kmsg.ACLOperation
	// Err is the cause.
	Err error
}

func (e *Error) Error() string {
	switch {
	case isAuth(e.Err):
		hint := fmt.Sprintf("grant the principal %s on topic %q", e.Op, e.Topic)
		if e.Op == kmsg.ACLOperationCreate {
			hint += " or on the cluster"
		}
		return fmt.Sprintf("kprod: topic %q: not authorized to %s: %v (%s)", e.Topic, e.Op, e.Err, hint)
	case errors.Is(e.Err, kerr.UnknownTopicOrPartition):
		return fmt.Sprintf("kprod: topic %q does not exist: %v", e.Topic, e.Err)
	}
	return fmt.Sprintf("kprod: topic %q: %s: %v", e.Topic, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func isAuth(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
}

// brokerErr is err with the broker's message, when it sent one.
func brokerErr(err error, msg string) error {
	if err == nil || msg == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, msg)
}
