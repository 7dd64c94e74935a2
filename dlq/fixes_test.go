package dlq_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func quickConfig(c *kfake.Cluster) kafkaproducer.Config {
	cfg := presets.Reliable()
	cfg.Brokers = c.ListenAddrs()
	cfg.DeliveryTimeout = 2 * time.Second
	cfg.RequestTimeout = time.Second
	return cfg
}

// TestCallRefusalsNotRouted: a record the producer refuses for the call
// itself (no topic, bad partition) is returned to the caller with that
// error, by Send, SendBatch and SendAsync alike, including while records
// bypass Kafka (StrictOrder behind a non-empty spool); it is never
// dead-lettered (to a topic called ".DLT") or spooled.
func TestCallRefusalsNotRouted(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	tests := []struct {
		name   string
		rec    kafkaproducer.Record
		want   error
		bypass bool // StrictOrder with a non-empty spool
	}{
		{"no topic", kafkaproducer.Record{Value: []byte("v")}, kafkaproducer.ErrNoTopic, false},
		{"negative partition", rec("orders", 1).AtPartition(-2), kafkaproducer.ErrBadPartition, false},
		{"partition beyond the topic", rec("orders", 1).AtPartition(7), kafkaproducer.ErrBadPartition, false},
		{"no topic, queued behind the spool", kafkaproducer.Record{Value: []byte("v")}, kafkaproducer.ErrNoTopic, true},
		{"negative partition, queued behind the spool", rec("orders", 1).AtPartition(-1), kafkaproducer.ErrBadPartition, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir() + "/spool"
			held := int64(0)
			if tt.bypass {
				s, err := spool.Open(dir, spool.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Append(context.Background(), spool.Entry{Topic: "orders", OriginalTopic: "orders", Value: []byte("old")}); err != nil {
					t.Fatal(err)
				}
				_ = s.Close()
				held = 1
			}
			d := newDLQ(t, quickConfig(c), dlq.Config{SpoolDir: dir, StrictOrder: tt.bypass, Replay: dlq.ReplayConfig{Disable: true}})
			ctx := testkit.Ctx(t, 20*time.Second)
			check := func(how string, res dlq.Result) {
				t.Helper()
				if res.Disposition != dlq.Failed || !errors.Is(res.Err, tt.want) || res.Err != res.Attempt.Err || res.DeadLetter != nil {
					t.Fatalf("%s: disposition %v, err %v (attempt %v), want Failed with the producer's refusal %v", how, res.Disposition, res.Err, res.Attempt.Err, tt.want)
				}
			}
			res, err := d.Send(ctx, tt.rec)
			check("Send", res)
			if err != res.Err {
				t.Fatalf("Send returned %v, Result.Err %v", err, res.Err)
			}
			check("SendBatch", d.SendBatch(ctx, []kafkaproducer.Record{tt.rec})[0])
			got := make(chan dlq.Result, 1)
			if err := d.SendAsync(ctx, tt.rec, func(r dlq.Result) { got <- r }); err != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("SendAsync: %v, want %v", err, tt.want)
				}
			} else {
				check("SendAsync callback", <-got)
			}
			if st := d.Stats(); st.DeadLettered != 0 || st.Spooled != 0 || st.Failed != 3 || d.Spool().Len() != held {
				t.Fatalf("stats %+v, spool %d: a refused record was routed", st, d.Spool().Len())
			}
		})
	}
}

// TestDeadLetterWithoutTopicRefused: DeadLetter has no dead-letter topic
// for a record without a topic.
func TestDeadLetterWithoutTopicRefused(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	d := newDLQ(t, quickConfig(c), dlq.Config{Replay: dlq.ReplayConfig{Disable: true}})
	res, err := d.DeadLetter(testkit.Ctx(t, 10*time.Second), kafkaproducer.Record{Value: []byte("v")}, errors.New("bad"))
	if !errors.Is(err, kafkaproducer.ErrNoTopic) || res.Disposition != dlq.Failed || d.Stats().DeadLettered != 0 {
		t.Fatalf("DeadLetter without topic: %+v %v", res, err)
	}
}

// TestCloseRoutesInFlightFailures: records that fail while Close runs are
// still routed to their dead-letter topic through the wrapped producer
// (Close waits for routing before it closes it), and Replay after Close
// returns ErrClosed.
func TestCloseRoutesInFlightFailures(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	p, err := kafkaproducer.New(quickConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	d, err := dlq.New(p, dlq.Config{SpoolDir: t.TempDir() + "/spool", Replay: dlq.ReplayConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: -1})
	const n = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	disp := map[dlq.Disposition]int{}
	for i := range n {
		wg.Add(1)
		if err := d.SendAsync(context.Background(), rec("orders", i), func(r dlq.Result) {
			defer wg.Done()
			mu.Lock()
			disp[r.Disposition]++
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testkit.Ctx(t, 20*time.Second)
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if disp[dlq.DeadLettered] != n {
		t.Fatalf("dispositions %v, want all %d dead-lettered", disp, n)
	}
	if _, err := d.Replay(ctx); !errors.Is(err, kafkaproducer.ErrClosed) {
		t.Fatalf("Replay after Close: %v, want ErrClosed", err)
	}
	testkit.Consume(t, c.ListenAddrs(), "orders.DLT", n, false, 10*time.Second)
}

// TestNilContext: a nil ctx means context.Background(), as in the core:
// Send of a record that must be routed and SendAsync waiting for
// MaxPending do not panic.
func TestNilContext(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	var slept atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if slept.CompareAndSwap(false, true) {
			c.SleepControl(func() { time.Sleep(300 * time.Millisecond) })
		}
		return nil, nil, false
	})
	d := newDLQ(t, quickConfig(c), dlq.Config{MaxPending: 1, Replay: dlq.ReplayConfig{Disable: true}})
	done := make(chan dlq.Result, 2)
	//lint:ignore SA1012 a nil ctx is what is tested
	if err := d.SendAsync(nil, rec("orders", 0), func(r dlq.Result) { done <- r }); err != nil {
		t.Fatal(err)
	}
	// MaxPending is 1 and the first record is held: this one waits on ctx.
	//lint:ignore SA1012 a nil ctx is what is tested
	if err := d.SendAsync(nil, rec("orders", 1), func(r dlq.Result) { done <- r }); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := <-done; r.Disposition != dlq.Delivered {
			t.Fatalf("SendAsync(nil ctx): %+v", r)
		}
	}
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: 1})
	//lint:ignore SA1012 a nil ctx is what is tested
	if res, err := d.Send(nil, rec("orders", 2)); err != nil || res.Disposition != dlq.DeadLettered {
		t.Fatalf("Send(nil ctx) of a refused record: %v %v", res.Disposition, err)
	}
}

// TestRefusedAtCallNotAmbiguous: a record the wrapped producer refuses
// with ErrClosed at the call (as in the window where Close has closed it)
// never reached Kafka: it is spooled, not marked ambiguous.
func TestRefusedAtCallNotAmbiguous(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	d := newDLQ(t, quickConfig(c), dlq.Config{SpoolDir: t.TempDir() + "/spool", Replay: dlq.ReplayConfig{Disable: true}})
	ctx := testkit.Ctx(t, 10*time.Second)
	if err := d.Producer().Close(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := d.Send(ctx, rec("orders", 0))
	if err != nil || res.Disposition != dlq.Spooled || !errors.Is(res.Attempt.Err, kafkaproducer.ErrClosed) {
		t.Fatalf("Send to a closed producer: %v %v (%v)", res.Disposition, err, res.Attempt.Err)
	}
	if res.Ambiguous || d.Stats().Ambiguous != 0 {
		t.Fatalf("a record refused at the call is marked ambiguous: %+v", res)
	}
}
