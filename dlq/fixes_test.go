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

// TestReplayDeadLetterProducer: with Config.DeadLetterProducer on another
// cluster (the dead-letter topic exists only there), replay sends dead
// letters through it: a spooled dead letter at the head of the spool and
// the dead letter replay makes of a record its topic refuses for good
// reach the second cluster, records for their own topic the first, and
// the spool drains past the dead letter instead of stopping at it. By
// Producer.Replay and the package-level Replay alike.
func TestReplayDeadLetterProducer(t *testing.T) {
	tests := []struct {
		name        string
		viaProducer bool
	}{
		{"Producer.Replay", true},
		{"package Replay", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mainC := testkit.Cluster(t, []string{"orders"})
			dltC := testkit.Cluster(t, []string{"orders.DLT"})
			// Partition 1 of orders refuses every record for good.
			mainC.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Partitions: []int32{1}, Err: kerr.MessageTooLarge, Count: -1})
			dir := t.TempDir() + "/spool"
			s, err := spool.Open(dir, spool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Append(context.Background(),
				spool.Entry{Topic: "orders.DLT", OriginalTopic: "orders", Key: []byte("k"), Value: []byte("spooled dead letter")},
				spool.Entry{Topic: "orders", OriginalTopic: "orders", Partition: 0, PartitionSet: true, Value: []byte("ok")},
				spool.Entry{Topic: "orders", OriginalTopic: "orders", Partition: 1, PartitionSet: true, Value: []byte("refused")},
			); err != nil {
				t.Fatal(err)
			}
			obs := newRecorder()
			ctx := testkit.Ctx(t, 20*time.Second)
			var st spool.DrainStats
			if tt.viaProducer {
				_ = s.Close()
				p, err := kafkaproducer.New(quickConfig(mainC))
				if err != nil {
					t.Fatal(err)
				}
				dp, err := kafkaproducer.New(quickConfig(dltC))
				if err != nil {
					t.Fatal(err)
				}
				d, err := dlq.New(p, dlq.Config{SpoolDir: dir, DeadLetterProducer: dp, Observer: obs, Replay: dlq.ReplayConfig{Disable: true}})
				if err != nil {
					t.Fatal(err)
				}
				testkit.CloseAtEnd(t, d.Close)
				st, err = d.Replay(ctx)
				if err != nil {
					t.Fatalf("Replay: %v (%+v)", err, st)
				}
			} else {
				t.Cleanup(func() { _ = s.Close() })
				p := testkit.Producer(t, mainC, quickConfig(mainC))
				dp := testkit.Producer(t, dltC, quickConfig(dltC))
				st, err = dlq.Replay(ctx, s, p, dlq.Config{DeadLetterProducer: dp, Observer: obs})
				if err != nil {
					t.Fatalf("Replay: %v (%+v)", err, st)
				}
			}
			if st.Sent != 3 || st.Kept != 0 {
				t.Fatalf("replay stats %+v, want 3 sent, none kept", st)
			}
			dead := map[string]bool{}
			for _, r := range testkit.Consume(t, dltC.ListenAddrs(), "orders.DLT", 2, false, 10*time.Second) {
				dead[string(r.Value)] = true
			}
			if !dead["spooled dead letter"] || !dead["refused"] {
				t.Fatalf("dead letters on the dead-letter cluster: %v", dead)
			}
			if got := testkit.Consume(t, mainC.ListenAddrs(), "orders", 1, false, 10*time.Second); string(got[0].Value) != "ok" {
				t.Fatalf("orders holds %q, want ok", got[0].Value)
			}
			if obs.get("replayed:orders.DLT") != 1 || obs.get("replayed:orders") != 1 || obs.get("dead:orders") != 1 {
				t.Fatalf("observer counts %v", obs.counts)
			}
		})
	}
}

// TestStrictOrderWaitsForRouting: under StrictOrder a record sent while an
// earlier record that failed is still on its way to the spool (routed,
// before its Append) follows it into the spool instead of overtaking it
// to Kafka; replay then writes the two in send order. Config.Route runs
// on the router before the spool Append, so blocking in it holds the
// first record in that window.
func TestStrictOrderWaitsForRouting(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	route := func(error) dlq.Route {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return dlq.RouteSpool
	}
	d := newDLQ(t, quickConfig(c), dlq.Config{
		SpoolDir:    t.TempDir() + "/spool",
		StrictOrder: true,
		Route:       route,
		Breaker:     dlq.BreakerConfig{Disable: true},
		Replay:      dlq.ReplayConfig{Disable: true},
	})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before Close, which waits for the router
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: 1})
	ctx := testkit.Ctx(t, 20*time.Second)
	one := func(v string) kafkaproducer.Record {
		return kafkaproducer.Record{Topic: "orders", Key: []byte("k"), Value: []byte(v)}
	}
	firstDone, secondDone := make(chan dlq.Result, 1), make(chan dlq.Result, 1)
	if err := d.SendAsync(ctx, one("first"), func(r dlq.Result) { firstDone <- r }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first record never reached the router")
	}
	if err := d.SendAsync(ctx, one("second"), func(r dlq.Result) { secondDone <- r }); err != nil {
		t.Fatal(err)
	}
	unblock()
	if r := <-firstDone; r.Disposition != dlq.Spooled {
		t.Fatalf("first record: %v %v, want spooled", r.Disposition, r.Err)
	}
	if r := <-secondDone; r.Disposition != dlq.Spooled {
		t.Fatalf("second record: %v %v, want spooled behind the first (it overtook it)", r.Disposition, r.Err)
	}
	if st, err := d.Replay(ctx); err != nil || st.Sent != 2 {
		t.Fatalf("Replay: %+v %v", st, err)
	}
	got := testkit.Consume(t, c.ListenAddrs(), "orders", 2, false, 10*time.Second)
	if string(got[0].Value) != "first" || string(got[1].Value) != "second" {
		t.Fatalf("orders holds %q then %q, want first then second", got[0].Value, got[1].Value)
	}
}
