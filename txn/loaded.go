package txn

import (
	"context"
	"fmt"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kgo"
)

// awaitLoaded waits until cl's own partition list shows every topic
// written to in a transaction (written: topic to one partition written
// to), or ctx ends.
//
// franz-go commits a transaction only if that list shows a partition
// written to in it. Otherwise EndTransaction(TryCommit) ends the
// transaction as an abort (or, without KIP-890, leaves it open on the
// broker) and still returns nil. A client's first records to a topic wait
// for the topic's metadata, and franz-go stores the topic's partition list
// only after it has handed those records out to be sent: a transaction
// whose records were all acknowledged in between would be reported
// committed while the broker aborts it. The gap is usually microseconds
// (the metadata goroutine only has to be scheduled again); waiting for the
// list closes it.
//
// A topic still missing when ctx ends (say a partition left without a
// leader) fails with a retriable error naming it, and Run aborts and
// retries rather than commit blind.
func awaitLoaded(ctx context.Context, cl *kgo.Client, written map[string]int32) error {
	wait := 50 * time.Microsecond
	for topic, partition := range written {
		for {
			if leader, _, _ := cl.PartitionLeader(topic, partition); leader >= 0 {
				break
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return kafkaproducer.WithClass(kafkaproducer.ClassRetriable, fmt.Errorf(
					"kprod: the client does not show partition %d of topic %q loaded (%w): committing now would end the transaction as an abort",
					partition, topic, context.Cause(ctx)))
			}
			wait = min(2*wait, 10*time.Millisecond)
		}
	}
	return nil
}
