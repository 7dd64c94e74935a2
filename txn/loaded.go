package txn

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// awaitLoaded waits, up to timeout and whatever ctx does, until cl's own
// partition list shows every topic written to in a transaction (written:
// topic to one partition written to).
//
// franz-go's EndTransaction decides from that list whether anything was
// produced in the transaction. If it shows no partition written to,
// EndTransaction(TryCommit) ends the transaction as an abort (KIP-890) or
// sends nothing at all (the classic protocol, leaving the broker's
// transaction open), and returns nil either way; a partition missing from
// the list also keeps its "added to the transaction" flag into the next
// transaction. A client's first records to a topic wait for the topic's
// metadata, and franz-go stores the topic's partition list only after it
// has handed those records out to be sent: a transaction whose records
// were all acknowledged in between would be reported committed while the
// broker aborts it. The gap is microseconds (the metadata goroutine only
// has to be scheduled again); waiting for the list closes it.
//
// The wait ignores ctx's cancellation, so that a canceled caller's abort
// also sees the list. A list still missing after timeout means the
// client's transaction state cannot be trusted: the error wraps ErrBroken.
func awaitLoaded(ctx context.Context, cl *kgo.Client, written map[string]int32, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
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
				return fmt.Errorf("%w: after %v the client's partition list still does not show partition %d of topic %q, written to in this transaction: franz-go would end a commit as an abort and an abort might end nothing",
					ErrBroken, timeout, partition, topic)
			}
			wait = min(2*wait, 10*time.Millisecond)
		}
	}
	return nil
}
