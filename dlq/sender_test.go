package dlq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTypedOverSender: kafkaproducer.NewTyped over d.Sender() sends end to
// end. A delivered record reports its offset; one its topic refuses is
// dead-lettered and reported with Err nil (kept) and offset -1; a record
// kept nowhere reports its error; SendAsync and SendBatch alike.
func TestTypedOverSender(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	d := newDLQ(t, quickConfig(c), dlq.Config{SpoolDir: t.TempDir() + "/spool", Replay: dlq.ReplayConfig{Disable: true}})
	tp, err := kafkaproducer.NewTyped(d.Sender(), kafkaproducer.StringSerializer{}, kafkaproducer.StringSerializer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	typed := func(v string) kafkaproducer.TypedRecord[string, string] {
		return kafkaproducer.TypedRecord[string, string]{Topic: "orders", Key: "k", Value: v}
	}
	res, err := tp.Send(ctx, typed("delivered"))
	if err != nil || res.Offset < 0 {
		t.Fatalf("delivered: %+v %v", res, err)
	}
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: -1})
	res, err = tp.Send(ctx, typed("dead"))
	if err != nil || res.Offset != -1 || res.Partition != -1 {
		t.Fatalf("dead-lettered: %+v %v, want Err nil and offset -1", res, err)
	}
	done := make(chan kafkaproducer.TypedResult[string, string], 1)
	if err := tp.SendAsync(ctx, typed("dead-async"), func(r kafkaproducer.TypedResult[string, string]) { done <- r }); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil || r.Offset != -1 || r.Typed.Value != "dead-async" {
		t.Fatalf("dead-lettered async: %+v", r)
	}
	h.Remove()
	rs := tp.SendBatch(ctx, []kafkaproducer.TypedRecord[string, string]{typed("b1"), typed("b2")})
	if err := rs.FirstErr(); err != nil || rs[0].Offset < 0 || rs[1].Offset < 0 {
		t.Fatalf("batch: %+v", rs)
	}
	if _, err := tp.Send(ctx, kafkaproducer.TypedRecord[string, string]{Key: "k", Value: "no topic"}); !errors.Is(err, kafkaproducer.ErrNoTopic) {
		t.Fatalf("no topic: %v", err)
	}
	if dead := testkit.Consume(t, c.ListenAddrs(), "orders.DLT", 2, false, 10*time.Second); string(dead[0].Value)+string(dead[1].Value) != "deaddead-async" {
		t.Fatalf("dead letters %q %q", dead[0].Value, dead[1].Value)
	}
	if got := testkit.Consume(t, c.ListenAddrs(), "orders", 3, false, 10*time.Second); string(got[0].Value) != "delivered" {
		t.Fatalf("orders %q", got[0].Value)
	}
}

// TestSendStopsWaiting: a Send whose ctx ends while its record is in
// flight returns Pending with ErrOutcomeUnknown, does not spool or
// dead-letter it, and its real outcome is still routed (here: delivered
// once the broker answers); Close waits for it.
func TestSendStopsWaiting(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	obs := newRecorder()
	cfg := quickConfig(c)
	cfg.DeliveryTimeout = 20 * time.Second // franz-go resends the unanswered request after RequestTimeout
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var events []dlq.Event
	d, err := dlq.New(p, dlq.Config{SpoolDir: t.TempDir() + "/spool", Observer: obs, Replay: dlq.ReplayConfig{Disable: true},
		OnRecord: func(e dlq.Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	if _, err := d.Send(ctx, rec("orders", 0)); err != nil { // metadata warm
		t.Fatal(err)
	}
	release := testkit.HangProduce(c)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	res, err := d.Send(short, rec("orders", 1))
	if res.Disposition != dlq.Pending || !errors.Is(err, kafkaproducer.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send past its ctx: %v %v, want Pending with ErrOutcomeUnknown", res.Disposition, err)
	}
	if st := d.Stats(); st.Pending != 1 || st.Spooled != 0 || st.Failed != 0 {
		t.Fatalf("stats while in flight %+v", st)
	}
	release()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Delivered != 2 || st.Pending != 0 || st.Spooled != 0 || st.DeadLettered != 0 || st.Failed != 0 || len(events) != 0 {
		t.Fatalf("after Close: %+v, events %+v; want the record delivered", st, events)
	}
	found := false
	for _, r := range testkit.Consume(t, c.ListenAddrs(), "orders", 2, false, 10*time.Second) {
		found = found || string(header(r, dlq.DefaultRecordIDHeader)) == res.RecordID
	}
	if !found {
		t.Fatal("the record Send stopped waiting for is not on orders")
	}
}
