package dlq_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeadLetterTopicFailures: a dead letter its topic refuses for now is
// spooled for the dead-letter topic and replayed there; one it refuses
// for any other reason (too large for it too, denied) fails to the caller
// with both errors: the spool holds no record every destination may
// refuse.
func TestDeadLetterTopicFailures(t *testing.T) {
	tests := []struct {
		name     string
		dltFault *kerr.Error
		want     dlq.Disposition
	}{
		{"dead-letter topic down for now", kerr.NotLeaderForPartition, dlq.Spooled},
		// Nothing says the dead-letter topic will take it once the
		// ACL is granted: the caller gets it back now.
		{"dead-letter topic denied", kerr.TopicAuthorizationFailed, dlq.Failed},
		{"dead-letter topic refuses for good", kerr.MessageTooLarge, dlq.Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
			cfg := presets.Reliable()
			cfg.Brokers = c.ListenAddrs()
			cfg.DeliveryTimeout = 1500 * time.Millisecond
			cfg.RequestTimeout = time.Second
			d := newDLQ(t, cfg, dlq.Config{
				SpoolDir:          t.TempDir() + "/spool",
				DeadLetterTimeout: 2 * time.Second,
				Replay:            dlq.ReplayConfig{Disable: true},
			})
			ctx := testkit.Ctx(t, 30*time.Second)
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: -1})
			h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders.DLT", Err: tt.dltFault, Count: -1})
			res, err := d.Send(ctx, rec("orders", 1))
			if res.Disposition != tt.want {
				t.Fatalf("disposition %v, want %v (err %v)", res.Disposition, tt.want, err)
			}
			if tt.want == dlq.Failed {
				if !errors.Is(err, tt.dltFault) || !strings.Contains(err.Error(), `topic "orders" `) || !strings.Contains(err.Error(), `topic "orders.DLT"`) {
					t.Fatalf("error should carry both causes: %v", err)
				}
				if d.Spool().Len() != 0 {
					t.Fatal("a record no topic can take was spooled")
				}
				return
			}
			if st := d.Spool().Stats(); st.PerTopic["orders.DLT"] != 1 {
				t.Fatalf("spool %+v", st)
			}
			h.Remove()
			// The first replay can still meet the leader franz-go is
			// refreshing after NOT_LEADER; the record is kept until one
			// succeeds.
			testkit.WaitFor(t, 20*time.Second, "replay to the dead-letter topic", func() bool {
				st, err := d.Replay(ctx)
				return err == nil && st.Sent == 1
			})
			got := testkit.Consume(t, c.ListenAddrs(), "orders.DLT", 1, false, 10*time.Second)[0]
			if string(header(got, dlq.HeaderErrorClass)) != "bad_input" || string(header(got, dlq.DefaultRecordIDHeader)) != res.RecordID {
				t.Fatalf("replayed dead letter headers %v", got.Headers)
			}
		})
	}
}

// TestReplayDoesNotBlockOnPoison: a spooled record its topic now refuses
// for good is dead-lettered during replay, and the records behind it are
// delivered.
//
// The dead letter replay writes carries the same headers as one written
// by the send path (client ID, original timestamp, Spring's), with the
// failure time from Config.Now.
func TestReplayDoesNotBlockOnPoison(t *testing.T) {
	b := newBroker(t, "orders", "orders.DLT")
	clock := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	d := newDLQ(t, outageConfig(b.addrs()), dlq.Config{
		SpoolDir:      t.TempDir() + "/spool",
		Breaker:       fastBreaker(),
		Replay:        dlq.ReplayConfig{Disable: true},
		SpringHeaders: true,
		Now:           func() time.Time { return clock },
	})
	b.stop()
	testkit.WaitFor(t, 10*time.Second, "breaker to open", func() bool { return d.BreakerState() == gobreaker.StateOpen })
	ctx := testkit.Ctx(t, 30*time.Second)
	// The poison record goes first, to partition 0, which will refuse it.
	recs := []kafkaproducer.Record{rec("orders", 0).AtPartition(0), rec("orders", 1).AtPartition(1), rec("orders", 2).AtPartition(2)}
	for _, r := range d.SendBatch(ctx, recs) {
		if r.Disposition != dlq.Spooled {
			t.Fatalf("%+v", r)
		}
	}
	b.start()
	b.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Partitions: []int32{0}, Err: kerr.MessageTooLarge, Count: -1})
	var err error
	for i := 0; i < 50; i++ {
		if _, err = d.Replay(ctx); err == nil && d.Spool().Len() == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d.Spool().Len() != 0 {
		t.Fatalf("spool still holds %d: %v", d.Spool().Len(), err)
	}
	dead := testkit.Consume(t, b.addrs(), "orders.DLT", 1, false, 10*time.Second)
	onTopic := consumeAll(t, b.addrs(), "orders", 2, 10*time.Second)
	if len(onTopic) != 2 || string(dead[0].Value) != "value-0" || string(header(dead[0], dlq.HeaderErrorClass)) != "bad_input" {
		t.Fatalf("topic %d, dead letters %d %v", len(onTopic), len(dead), dead[0].Headers)
	}
	wantHeaders := map[string]string{
		dlq.HeaderOriginalTopic:     "orders",
		dlq.HeaderClientID:          "dlq-test",
		dlq.HeaderFailedAt:          clock.Format(time.RFC3339Nano),
		dlq.HeaderOriginalTimestamp: strconv.FormatInt(clock.UnixMilli(), 10), // spooled at clock, no own timestamp
		dlq.SpringOriginalTopic:     "orders",
		dlq.HeaderAttempts:          "1",
	}
	for k, v := range wantHeaders {
		if got := string(header(dead[0], k)); got != v {
			t.Errorf("replayed dead letter header %s = %q, want %q", k, got, v)
		}
	}
	n := 0
	for _, h := range dead[0].Headers {
		if h.Key == dlq.HeaderOriginalTimestamp {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d %s headers, want 1", n, dlq.HeaderOriginalTimestamp)
	}
}

// TestStrictOrder: while the spool holds records, new sends queue behind
// them, so a key's records reach the topic in send order.
func TestStrictOrder(t *testing.T) {
	b := newBroker(t, "orders")
	d := newDLQ(t, outageConfig(b.addrs()), dlq.Config{
		SpoolDir:    t.TempDir() + "/spool",
		Breaker:     fastBreaker(),
		StrictOrder: true,
		Replay:      dlq.ReplayConfig{Disable: true},
	})
	b.stop()
	testkit.WaitFor(t, 10*time.Second, "breaker to open", func() bool { return d.BreakerState() == gobreaker.StateOpen })
	ctx := testkit.Ctx(t, 30*time.Second)
	if r, _ := d.Send(ctx, rec("orders", 0)); r.Disposition != dlq.Spooled {
		t.Fatalf("%+v", r)
	}
	b.start()
	testkit.WaitFor(t, 10*time.Second, "breaker to close", func() bool { return d.BreakerState() == gobreaker.StateClosed })
	// The breaker is closed but the spool is not empty: this one queues.
	if r, _ := d.Send(ctx, rec("orders", 50)); r.Disposition != dlq.Spooled {
		t.Fatalf("record after recovery: %v, want spooled behind the first", r.Disposition)
	}
	if _, err := d.Replay(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.Send(ctx, rec("orders", 100)); r.Disposition != dlq.Delivered {
		t.Fatalf("record after drain: %v", r.Disposition)
	}
	got := testkit.Consume(t, b.addrs(), "orders", 3, false, 10*time.Second)
	for i, want := range []string{"value-0", "value-50", "value-100"} {
		if string(got[i].Value) != want { // one key, one partition
			t.Fatalf("record %d is %q, want %q", i, got[i].Value, want)
		}
	}
}
