package topics

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Ready reports whether a service can produce to the named topics now,
// for its start-up and its health endpoint. It sends one metadata request
// (uncached; it never auto-creates a topic) and returns nil when:
//
//   - the cluster answers and lists its brokers;
//   - each named topic exists and has a leader for every partition;
//   - the principal may WRITE each topic, where the broker reports the
//     topic's authorized operations (Kafka 2.3+, KIP-430; brokers that
//     do not are trusted, and a missing WRITE ACL then shows on the
//     first send).
//
// Otherwise it returns an error that says which: the cluster's error
// wrapped as is (ClassRetriable or ClassTimeout), or, per topic, an
// *Error naming the topic and the operation: DESCRIBE with
// UNKNOWN_TOPIC_OR_PARTITION for a missing topic (ClassBadInput),
// DESCRIBE with LEADER_NOT_AVAILABLE for a partition without a leader
// (ClassRetriable), DESCRIBE or WRITE with TOPIC_AUTHORIZATION_FAILED for
// a missing ACL (ClassAuthorization). The errors of several topics are
// joined. With no names it checks only that the cluster answers.
//
// On loopback it takes about a millisecond once the client is connected.
// ctx bounds it: give it the health check's timeout, since an unreachable
// cluster is retried until ctx ends.
func Ready(ctx context.Context, cl *kgo.Client, names ...string) error {
	meta, err := metadata(ctx, cl, names, true)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		mt := meta[name]
		if err := leaders(name, mt); err != nil {
			errs = append(errs, err)
			continue
		}
		if !mayWrite(mt.AuthorizedOperations) {
			errs = append(errs, &Error{Topic: name, Op: kmsg.ACLOperationWrite,
				Err: fmt.Errorf("the authorized operations metadata lists for the topic lack WRITE: %w", kerr.TopicAuthorizationFailed)})
		}
	}
	return errors.Join(errs...)
}

// mayWrite reads a metadata topic's authorized operations bit field
// (bit n is kmsg.ACLOperation n). math.MinInt32 means the broker did not
// report them.
func mayWrite(ops int32) bool {
	if ops == math.MinInt32 {
		return true
	}
	for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationAll} {
		if ops&(1<<uint(op)) != 0 {
			return true
		}
	}
	return false
}
