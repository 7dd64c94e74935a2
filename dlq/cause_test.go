package dlq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createTopics creates topics on c, as an operator would.
func createTopics(t *testing.T, ctx context.Context, c *kfake.Cluster, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rs, err := kadm.NewClient(cl).CreateTopics(ctx, 3, 1, nil, topics...)
	if err == nil {
		err = rs.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestLateTopicWaitsForItself: records sent before their topic (and its
// dead-letter topic) exist are spooled for their own topic, not as dead
// letters, and not as ambiguous; once an operator creates the topics,
// automatic replay writes every one of them to its own topic and none to
// the dead-letter topic.
func TestLateTopicWaitsForItself(t *testing.T) {
	c := testkit.Cluster(t, nil)
	obs := newRecorder()
	d := newDLQ(t, quickConfig(c), dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Observer: obs,
		Replay:   dlq.ReplayConfig{Interval: 100 * time.Millisecond},
	})
	ctx := testkit.Ctx(t, 60*time.Second)
	const n = 20
	recs := make([]kafkaproducer.Record, n)
	for i := range recs {
		recs[i] = rec("orders", i)
	}
	start := time.Now()
	ids := map[string]bool{}
	for i, r := range d.SendBatch(ctx, recs) {
		if r.Disposition != dlq.Spooled || r.Ambiguous || !errors.Is(r.Attempt.Err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("record %d: %v ambiguous=%v (%v), want spooled for its topic, not ambiguous", i, r.Disposition, r.Ambiguous, r.Attempt.Err)
		}
		ids[r.RecordID] = true
	}
	t.Logf("records for a missing topic spooled after %v", time.Since(start).Round(time.Millisecond))
	if st := d.Spool().Stats(); st.PerTopic["orders"] != n || st.PerTopic["orders.DLT"] != 0 {
		t.Fatalf("spool %+v, want %d records for orders", st.PerTopic, n)
	}
	createTopics(t, ctx, c, "orders", "orders.DLT")
	created := time.Now()
	testkit.WaitFor(t, 30*time.Second, "replay to the created topic", func() bool { return d.Spool().Len() == 0 })
	t.Logf("spool drained %v after the topics were created", time.Since(created).Round(time.Millisecond))
	got := consumeAll(t, c.ListenAddrs(), "orders", n, 10*time.Second)
	for _, r := range got {
		delete(ids, string(header(r, dlq.DefaultRecordIDHeader)))
	}
	if len(got) != n || len(ids) != 0 {
		t.Fatalf("orders holds %d records, %d of the sent IDs missing", len(got), len(ids))
	}
	if dead := testkit.ConsumeUpTo(t, c.ListenAddrs(), "orders.DLT", 1, false, time.Second); len(dead) != 0 {
		t.Fatalf("%d records on orders.DLT (class %s), want none", len(dead), header(dead[0], dlq.HeaderErrorClass))
	}
	st := d.Stats()
	if st.Spooled != n || st.Replayed != n || st.DeadLettered != 0 || st.Ambiguous != 0 || obs.get("replayed:orders") != n {
		t.Fatalf("stats %+v, observer replayed %d", st, obs.get("replayed:orders"))
	}
}

// TestTooLargeWithMissingDeadLetterTopic: a record its topic refuses for
// good, whose dead-letter topic does not exist, is returned to the caller
// at the call (Send and SendAsync alike) with both causes, and never
// reaches the spool, where replay could only set it aside.
func TestTooLargeWithMissingDeadLetterTopic(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: -1})
	obs := newRecorder()
	d := newDLQ(t, quickConfig(c), dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Observer: obs,
		Replay:   dlq.ReplayConfig{Disable: true},
	})
	ctx := testkit.Ctx(t, 30*time.Second)
	check := func(how string, res dlq.Result, err error) {
		t.Helper()
		if res.Disposition != dlq.Failed || !errors.Is(err, kerr.MessageTooLarge) || !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("%s: %v %v, want Failed with both causes", how, res.Disposition, err)
		}
	}
	res, err := d.Send(ctx, rec("orders", 1))
	check("Send", res, err)
	done := make(chan dlq.Result, 1)
	if err := d.SendAsync(ctx, rec("orders", 2), func(r dlq.Result) { done <- r }); err != nil {
		t.Fatal(err)
	}
	r := <-done
	check("SendAsync", r, r.Err)
	if st := d.Stats(); d.Spool().Len() != 0 || st.Failed != 2 || st.Spooled != 0 || st.DeadLettered != 0 {
		t.Fatalf("spool %d, stats %+v: want both failed, nothing kept", d.Spool().Len(), st)
	}
}

// TestReplaySetAsideCounted: a record spooled while its topic was
// missing turns out, once the topic exists, too large for it and for its
// dead-letter topic. Replay sets it aside, delivers the record behind it,
// and says so everywhere an operator looks: Stats.Rejected,
// Observer.OnSetAside and the error Replay returns (ErrSetAside).
func TestReplaySetAsideCounted(t *testing.T) {
	c := testkit.Cluster(t, nil)
	obs := newRecorder()
	d := newDLQ(t, quickConfig(c), dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Observer: obs,
		// One record per produce request: the faults below hit one.
		Replay: dlq.ReplayConfig{Disable: true, Chunk: 1},
	})
	ctx := testkit.Ctx(t, 60*time.Second)
	for i, r := range d.SendBatch(ctx, []kafkaproducer.Record{rec("orders", 0), rec("orders", 1)}) {
		if r.Disposition != dlq.Spooled {
			t.Fatalf("record %d: %v %v", i, r.Disposition, r.Err)
		}
	}
	createTopics(t, ctx, c, "orders", "orders.DLT")
	// Too large for both, this once: the next record is fine.
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: 1})
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders.DLT", Err: kerr.MessageTooLarge, Count: 1})
	st, err := d.Replay(ctx)
	if !errors.Is(err, dlq.ErrSetAside) || st.Rejected != 1 || st.Sent != 1 || d.Spool().Len() != 0 {
		t.Fatalf("Replay: %+v %v, want one set aside and one sent", st, err)
	}
	if s := d.Stats(); s.Rejected != 1 || s.Replayed != 1 || obs.get("rejected:orders") != 1 {
		t.Fatalf("stats %+v, observer rejected %d", s, obs.get("rejected:orders"))
	}
	testkit.Consume(t, c.ListenAddrs(), "orders", 1, false, 10*time.Second)
}

// TestCloseNeverSentNotAmbiguous: records still waiting for their topic's
// metadata when Close cuts them off were never sent: they are spooled
// and not counted as ambiguous.
func TestCloseNeverSentNotAmbiguous(t *testing.T) {
	c := testkit.Cluster(t, nil)
	cfg := quickConfig(c)
	cfg.DeliveryTimeout = time.Minute
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	obs := newRecorder()
	d, err := dlq.New(p, dlq.Config{SpoolDir: t.TempDir() + "/spool", Observer: obs, Replay: dlq.ReplayConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	results := make(chan dlq.Result, n)
	for i := range n {
		if err := d.SendAsync(context.Background(), rec("orders", i), func(r dlq.Result) { results <- r }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range n {
		if r := <-results; r.Disposition != dlq.Spooled || r.Ambiguous {
			t.Fatalf("%v ambiguous=%v (%v), want spooled, not ambiguous", r.Disposition, r.Ambiguous, r.Attempt.Err)
		}
	}
	if st := d.Stats(); st.Spooled != n || st.Ambiguous != 0 || obs.get("ambiguous:orders") != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDeniedTopicWaitsForACL: a record its topic denies
// (TOPIC_AUTHORIZATION_FAILED) is an operator's to fix for that topic: it
// is spooled for its own topic, not dead-lettered, and replays there once
// the ACL is granted.
func TestDeniedTopicWaitsForACL(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	d := newDLQ(t, quickConfig(c), dlq.Config{SpoolDir: t.TempDir() + "/spool", Replay: dlq.ReplayConfig{Disable: true}})
	ctx := testkit.Ctx(t, 30*time.Second)
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.TopicAuthorizationFailed, Count: -1})
	res, err := d.Send(ctx, rec("orders", 1))
	if err != nil || res.Disposition != dlq.Spooled || res.Ambiguous || d.Spool().Stats().PerTopic["orders"] != 1 {
		t.Fatalf("Send to a denied topic: %v ambiguous=%v %v, want spooled for orders", res.Disposition, res.Ambiguous, err)
	}
	if st, err := d.Replay(ctx); err == nil || st.Sent != 0 || d.Spool().Len() != 1 {
		t.Fatalf("Replay while still denied: %+v %v, want the record kept", st, err)
	}
	h.Remove() // the ACL is granted
	if st, err := d.Replay(ctx); err != nil || st.Sent != 1 {
		t.Fatalf("Replay: %+v %v", st, err)
	}
	got := testkit.Consume(t, c.ListenAddrs(), "orders", 1, false, 10*time.Second)[0]
	if string(header(got, dlq.DefaultRecordIDHeader)) != res.RecordID {
		t.Fatalf("replayed record %v", got.Headers)
	}
	if dead := testkit.ConsumeUpTo(t, c.ListenAddrs(), "orders.DLT", 1, false, time.Second); len(dead) != 0 {
		t.Fatal("a record its topic denied was dead-lettered")
	}
}
