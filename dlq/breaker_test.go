package dlq_test

import (
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sendAll sends failing records to partition 0, refused ones (too large)
// to partition 2 and healthy ones to partition 1, taking turns while
// there are several kinds left, and waits for every outcome.
func sendAll(t *testing.T, d *dlq.Producer, failing, refused, healthy int) {
	t.Helper()
	ctx := testkit.Ctx(t, 30*time.Second)
	var wg sync.WaitGroup
	left := []int{failing, healthy, refused} // by partition
	for i, k := 0, 0; left[0]+left[1]+left[2] > 0; k++ {
		part := k % 3
		if left[part] == 0 {
			continue
		}
		left[part]--
		wg.Add(1)
		if err := d.SendAsync(ctx, rec("orders", i).AtPartition(int32(part)), func(dlq.Result) { wg.Done() }); err != nil {
			t.Fatal(err)
		}
		i++
	}
	wg.Wait()
}

// faults makes partition 0's produce requests time out and partition 2's
// records too large, for good.
func faults(b *broker) {
	b.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Partitions: []int32{0}, Err: kerr.RequestTimedOut, Count: -1})
	b.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Partitions: []int32{2}, Err: kerr.MessageTooLarge, Count: -1})
}

// TestBreakerFailureRatio: with the consecutive-failures rule out of
// reach, the breaker opens when at least FailureRatio of the sends in
// Interval failed (the successes counted too), and not below it. The
// failures are delivery timeouts from a partition whose produce requests
// time out.
func TestBreakerFailureRatio(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		failing, refused, healthy int
		want                      gobreaker.State
	}{
		{"half the sends fail", 10, 0, 10, gobreaker.StateOpen},
		{"a quarter fail", 5, 0, 15, gobreaker.StateClosed},
		// Refused records count as sends, not as failures, as
		// gobreaker's exclusions do: 10 of 40.
		{"a quarter fail, half the rest are refused", 10, 20, 10, gobreaker.StateClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t, "orders")
			faults(b)
			d := newDLQ(t, outageConfig(b.addrs()), dlq.Config{
				SpoolDir: t.TempDir() + "/spool",
				Replay:   dlq.ReplayConfig{Disable: true},
				Breaker: dlq.BreakerConfig{
					ConsecutiveFailures: 1000, FailureRatio: 0.5, MinRequests: 20,
					Interval: time.Minute, OpenTimeout: time.Minute, PingInterval: -1,
				},
			})
			sendAll(t, d, tc.failing, tc.refused, tc.healthy)
			if got := d.BreakerState(); got != tc.want {
				t.Fatalf("breaker %s after %d failed, %d refused and %d delivered sends, want %s", got, tc.failing, tc.refused, tc.healthy, tc.want)
			}
			st := d.Stats()
			if st.Delivered != int64(tc.healthy) || st.Spooled+st.DeadLettered+st.Failed != int64(tc.failing+tc.refused) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestBreakerSuccessResetsConsecutive: failures separated by successes
// never make ConsecutiveFailures in a row; the same number in a row does.
func TestBreakerSuccessResetsConsecutive(t *testing.T) {
	b := newBroker(t, "orders")
	faults(b)
	pcfg := outageConfig(b.addrs())
	pcfg.RequestTimeout, pcfg.DeliveryTimeout = 500*time.Millisecond, time.Second
	d := newDLQ(t, pcfg, dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Replay:   dlq.ReplayConfig{Disable: true},
		Breaker:  dlq.BreakerConfig{ConsecutiveFailures: 3, FailureRatio: 2, OpenTimeout: time.Minute, PingInterval: -1},
	})
	ctx := testkit.Ctx(t, 30*time.Second)
	for i := range 3 { // failure, success, failure, success, failure, success
		if _, err := d.Send(ctx, rec("orders", 2*i).AtPartition(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Send(ctx, rec("orders", 2*i+1).AtPartition(1)); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.BreakerState(); got != gobreaker.StateClosed {
		t.Fatalf("breaker %s after failures each followed by a success", got)
	}
	sendAll(t, d, 3, 0, 0)
	if got := d.BreakerState(); got != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 3 failures in a row", got)
	}
}

// TestBreakerIgnoresBadInput: records the broker refuses as too large are
// the record's fault, not the cluster's: any number of them leaves the
// breaker closed.
func TestBreakerIgnoresBadInput(t *testing.T) {
	b := newBroker(t, "orders")
	faults(b)
	d := newDLQ(t, outageConfig(b.addrs()), dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Replay:   dlq.ReplayConfig{Disable: true},
		Breaker:  dlq.BreakerConfig{ConsecutiveFailures: 3, FailureRatio: 0.5, MinRequests: 5, OpenTimeout: time.Minute, PingInterval: -1},
	})
	sendAll(t, d, 0, 10, 0)
	if got := d.BreakerState(); got != gobreaker.StateClosed {
		t.Fatalf("breaker %s after 10 records refused as too large", got)
	}
	if st := d.Stats(); st.DeadLettered+st.Spooled+st.Failed != 10 {
		t.Fatalf("stats %+v", st)
	}
}
