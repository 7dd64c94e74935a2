package dlt_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/dlq/dlt"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The three causes dead letters are written with.
var causes = []error{
	&kafkaproducer.BadInputError{Topic: "orders", Side: kafkaproducer.SideValue, Err: errors.New("json: cannot unmarshal")},
	kafkaproducer.WithClass(kafkaproducer.ClassFatal, errors.New("schema registry: subject not found")),
	kafkaproducer.WithClass(kafkaproducer.ClassAuthorization, errors.New("payment gateway denied")),
}

var classes = []string{"bad_input", "fatal", "authorization"}

// fill writes n dead letters for "orders" through dlq.Producer.DeadLetter,
// cause i%3, and returns their record IDs by class.
func fill(t *testing.T, c *kfake.Cluster, n int) map[string][]string {
	t.Helper()
	p := testkit.Producer(t, c, presets.Reliable())
	d, err := dlq.New(p, dlq.Config{SpringHeaders: true, Replay: dlq.ReplayConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	ids := map[string][]string{}
	for i := range n {
		rec := kafkaproducer.Record{Topic: "orders", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: []kafkaproducer.Header{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}}}
		res, err := d.DeadLetter(ctx, rec, causes[i%3])
		if err != nil || res.Disposition != dlq.DeadLettered {
			t.Fatalf("dead letter %d: %v %v", i, res.Disposition, err)
		}
		id := dlq.RecordID(res.DeadLetter.Record, dlq.DefaultRecordIDHeader)
		ids[classes[i%3]] = append(ids[classes[i%3]], id)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

func cfgFor(c *kfake.Cluster) kafkaproducer.Config {
	cfg := presets.Reliable()
	cfg.Brokers = c.ListenAddrs()
	return cfg
}

// onTopic reads every record of topic and counts them by record ID.
func onTopic(t *testing.T, c *kfake.Cluster, topic string) (map[string]int, []*kgo.Record) {
	t.Helper()
	recs := testkit.ConsumeAll(t, c.ListenAddrs(), topic, 20*time.Second)
	ids := map[string]int{}
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == dlq.DefaultRecordIDHeader {
				ids[string(h.Value)]++
			}
		}
	}
	return ids, recs
}

// exactlyOnce fails unless got holds every ID of want once and nothing else.
func exactlyOnce(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d distinct record IDs on the topic, want %d", len(got), len(want))
	}
	for _, id := range want {
		if got[id] != 1 {
			t.Errorf("record %s on the topic %d times, want once", id, got[id])
		}
	}
}

func TestInspectAndReplayOneCause(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	ids := fill(t, c, 30)
	ctx := testkit.Ctx(t, 60*time.Second)

	sum, err := dlt.Inspect(ctx, cfgFor(c), "orders.DLT", dlt.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 30 || sum.Matched != 30 || len(sum.Groups) != 3 {
		t.Fatalf("summary: %+v", sum)
	}
	for _, g := range sum.Groups {
		if g.Count != 10 || g.OriginalTopic != "orders" || g.First.IsZero() {
			t.Errorf("group %+v", g)
		}
	}

	// Decoded headers, kprod's and Spring's.
	var one dlt.DeadLetter
	if err := dlt.Scan(ctx, cfgFor(c), "orders.DLT", dlt.Filter{Classes: []string{"fatal"}}, func(d dlt.DeadLetter) bool { one = d; return false }); err != nil {
		t.Fatal(err)
	}
	if one.Failure.Class != "fatal" || !strings.Contains(one.Failure.Error, "subject not found") || one.Spring == nil ||
		one.Spring.OriginalTopic != "orders" || one.Spring.OriginalOffset != -1 || one.RecordID == "" || one.Failure.FailedAt.IsZero() {
		t.Fatalf("decoded: %+v spring %+v", one, one.Spring)
	}

	p := testkit.Producer(t, c, presets.Reliable())
	obs := &countObserver{}
	f := dlt.Filter{Classes: []string{"bad_input"}}
	st, err := dlt.Replay(ctx, p, dlt.ReplayConfig{DLT: "orders.DLT", Filter: f, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	if st.Replayed != 10 || st.Selected != 10 || st.Scanned != 30 || st.FailedAgain != 0 || obs.replayed["orders"] != 10 {
		t.Fatalf("stats %+v, observer %+v", st, obs.replayed)
	}
	got, recs := onTopic(t, c, "orders")
	exactlyOnce(t, got, ids["bad_input"])
	for _, r := range recs {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["trace"] == "" || h[dlt.HeaderReplayCount] != "1" || !strings.HasPrefix(h[dlt.HeaderReplaySource], "orders.DLT/") ||
			h[dlq.HeaderError] != "" || h[dlq.SpringExceptionMessage] != "" || r.Key == nil {
			t.Fatalf("replayed headers %v", h)
		}
	}

	// The same selection again resumes: nothing is sent twice.
	st, err = dlt.Replay(ctx, p, dlt.ReplayConfig{DLT: "orders.DLT", Filter: f})
	if err != nil || st.Replayed != 0 || !st.Resumed {
		t.Fatalf("second run: %+v %v", st, err)
	}
	// Another selection starts from the beginning and finds what the
	// first one skipped.
	st, err = dlt.Replay(ctx, p, dlt.ReplayConfig{DLT: "orders.DLT", Filter: dlt.Filter{Classes: []string{"fatal"}}})
	if err != nil || st.Replayed != 10 {
		t.Fatalf("fatal run: %+v %v", st, err)
	}
	got, _ = onTopic(t, c, "orders")
	exactlyOnce(t, got, append(append([]string(nil), ids["bad_input"]...), ids["fatal"]...))
}

func TestDryRunSendsNothing(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	fill(t, c, 9)
	ctx := testkit.Ctx(t, 60*time.Second)
	p := testkit.Producer(t, c, presets.Reliable())
	rc := dlt.ReplayConfig{DLT: "orders.DLT", DryRun: true, Idle: 2 * time.Second}
	st, err := dlt.Replay(ctx, p, rc)
	if err != nil || st.ByTopic["orders"] != 9 || st.Replayed != 0 {
		t.Fatalf("dry run: %+v %v", st, err)
	}
	if got := testkit.ConsumeUpTo(t, c.ListenAddrs(), "orders", 1, false, 2*time.Second); len(got) != 0 {
		t.Fatalf("dry run wrote %d records", len(got))
	}
	// Nor did it commit: the real run replays everything.
	rc.DryRun = false
	if st, err = dlt.Replay(ctx, p, rc); err != nil || st.Replayed != 9 {
		t.Fatalf("real run: %+v %v", st, err)
	}
}

func TestFailedAgainGoesBackWithBothCauses(t *testing.T) {
	tests := []struct {
		name  string
		err   *kerr.Error
		class string
	}{
		{"too large", kerr.MessageTooLarge, "bad_input"},
		{"invalid record", kerr.InvalidRecord, "bad_input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
			ids := fill(t, c, 6)
			ctx := testkit.Ctx(t, 60*time.Second)
			p := testkit.Producer(t, c, presets.Reliable())
			h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: tt.err, Count: -1})
			obs := &countObserver{}
			f := dlt.Filter{Classes: []string{"fatal"}}
			st, err := dlt.Replay(ctx, p, dlt.ReplayConfig{DLT: "orders.DLT", Filter: f, Observer: obs})
			if !errors.Is(err, dlt.ErrFailedAgain) || st.FailedAgain != 2 || st.Replayed != 0 || obs.failed["orders"] != 2 {
				t.Fatalf("stats %+v err %v observer %v", st, err, obs.failed)
			}
			h.Remove()
			var back []dlt.DeadLetter
			if err := dlt.Scan(ctx, cfgFor(c), "orders.DLT", dlt.Filter{FromOffset: 0}, func(d dlt.DeadLetter) bool {
				if len(d.Previous) > 0 {
					back = append(back, d)
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if len(back) != 2 {
				t.Fatalf("%d dead letters with a previous cause, want 2", len(back))
			}
			for _, d := range back {
				if d.Failure.Class != tt.class || d.Failure.Topic != "orders" || d.Previous[0].Class != "fatal" ||
					!strings.Contains(d.Previous[0].Error, "subject not found") || d.ReplayCount != 1 ||
					d.Spring == nil || d.Spring.Message != d.Failure.Error || !contains(ids["fatal"], d.RecordID) {
					t.Errorf("failed again: %+v previous %+v spring %+v", d.Failure, d.Previous, d.Spring)
				}
			}
			// Once fixed, the same selection replays them (now with both
			// classes, "fatal" still selects them).
			st, err = dlt.Replay(ctx, p, dlt.ReplayConfig{DLT: "orders.DLT", Filter: f})
			if err != nil || st.Replayed != 2 {
				t.Fatalf("after the fix: %+v %v", st, err)
			}
			got, _ := onTopic(t, c, "orders")
			exactlyOnce(t, got, ids["fatal"])
		})
	}
}

// TestDeniedWriteStopsReplay: a destination denying the write (a missing
// WRITE ACL) is an operator's to fix, not the records': the replay stops
// with an error naming the cause and the fix, copies nothing back to the
// DLT and commits nothing past the denied records; once the ACL is
// granted the same selection replays each of them exactly once.
func TestDeniedWriteStopsReplay(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	ids := fill(t, c, 6)
	ctx := testkit.Ctx(t, 60*time.Second)
	p := testkit.Producer(t, c, presets.Reliable())
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.TopicAuthorizationFailed, Count: -1})
	obs := &countObserver{}
	f := dlt.Filter{Classes: []string{"fatal"}}
	st, err := dlt.Replay(ctx, p, dlt.ReplayConfig{DLT: "orders.DLT", Filter: f, Observer: obs})
	if err == nil || errors.Is(err, dlt.ErrFailedAgain) || !errors.Is(err, kerr.TopicAuthorizationFailed) ||
		!strings.Contains(err.Error(), "grant this client WRITE") || st.FailedAgain != 0 || st.Replayed != 0 || len(obs.failed) != 0 {
		t.Fatalf("stats %+v err %v observer %v", st, err, obs.failed)
	}
	t.Logf("denied: %v", err)
	if got := testkit.ConsumeAll(t, c.ListenAddrs(), "orders.DLT", 20*time.Second); len(got) != 6 {
		t.Fatalf("%d records on the DLT, want the 6 written (nothing copied back)", len(got))
	}
	// A rerun before the fix stops the same way and sends nothing.
	if st, err = dlt.Replay(ctx, p, dlt.ReplayConfig{DLT: "orders.DLT", Filter: f}); !errors.Is(err, kerr.TopicAuthorizationFailed) || st.Replayed != 0 {
		t.Fatalf("rerun before the fix: %+v %v", st, err)
	}
	h.Remove() // the ACL granted
	st, err = dlt.Replay(ctx, p, dlt.ReplayConfig{DLT: "orders.DLT", Filter: f})
	if err != nil || st.Replayed != 2 || st.FailedAgain != 0 || !st.Resumed {
		t.Fatalf("after the fix: %+v %v", st, err)
	}
	got, _ := onTopic(t, c, "orders")
	exactlyOnce(t, got, ids["fatal"])
	if back := testkit.ConsumeAll(t, c.ListenAddrs(), "orders.DLT", 20*time.Second); len(back) != 6 {
		t.Fatalf("%d records on the DLT after the fix, want 6", len(back))
	}
}

// TestInterruptedAgainstHungBroker: a replay whose records the broker
// never answers (and a producer without DeliveryTimeout, as
// KeepTimestamps requires, so that nothing else would end the wait)
// returns within ReplayConfig.Grace of its ctx being canceled, with
// ErrUnacknowledged; once the broker answers, a rerun sends none of them
// twice and every selected record is on its topic exactly once.
func TestInterruptedAgainstHungBroker(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	ids := fill(t, c, 12)
	cfg := presets.Reliable()
	cfg.DeliveryTimeout = 0
	cfg.RequestTimeout = time.Second
	p := testkit.Producer(t, c, cfg)
	release := testkit.HangProduce(c)
	defer release()
	const grace = time.Second
	rc := dlt.ReplayConfig{DLT: "orders.DLT", KeepTimestamps: true, Grace: grace}
	ctx, cancel := context.WithCancel(testkit.Ctx(t, 60*time.Second))
	defer cancel()
	type ret struct {
		st  dlt.ReplayStats
		err error
		at  time.Time
	}
	done := make(chan ret, 1)
	go func() {
		st, err := dlt.Replay(ctx, p, rc)
		done <- ret{st, err, time.Now()}
	}()
	// The reader may hand over the 12 in more than one poll: the first
	// chunk hangs, and the rest stay unsent.
	testkit.WaitFor(t, 30*time.Second, "records in flight", func() bool { n, _ := p.Buffered(); return n > 0 })
	canceled := time.Now()
	cancel()
	var r ret
	select {
	case r = <-done:
	case <-time.After(grace + 20*time.Second):
		release()
		<-done
		t.Fatalf("Replay still waiting %v after its ctx was canceled (grace %v)", grace+20*time.Second, grace)
	}
	took := r.at.Sub(canceled)
	if took < grace || took > grace+5*time.Second {
		t.Errorf("Replay returned %v after its ctx was canceled, want just over the grace period %v", took, grace)
	}
	if !errors.Is(r.err, dlt.ErrUnacknowledged) || !errors.Is(r.err, context.Canceled) || r.st.Replayed != 0 || r.st.FailedAgain != 0 {
		t.Fatalf("interrupted: %+v %v", r.st, r.err)
	}
	t.Logf("returned %v after cancel: %v", took.Round(time.Millisecond), r.err)

	release()
	testkit.WaitFor(t, 40*time.Second, "the hung records delivered", func() bool { n, _ := p.Buffered(); return n == 0 })
	st, err := dlt.Replay(testkit.Ctx(t, 60*time.Second), p, rc)
	if err != nil || !st.Resumed || st.Replayed+st.AlreadyThere != 12 {
		t.Fatalf("rerun: %+v %v", st, err)
	}
	t.Logf("rerun: %d already there, %d replayed", st.AlreadyThere, st.Replayed)
	got, _ := onTopic(t, c, "orders")
	var all []string
	for _, v := range ids {
		all = append(all, v...)
	}
	exactlyOnce(t, got, all)
}

// TestInterruptedReplayResumes cancels a rate-limited replay midway and
// runs it again: every selected record reaches its topic exactly once.
func TestInterruptedReplayResumes(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	ids := fill(t, c, 300)
	p := testkit.Producer(t, c, presets.Reliable())
	f := dlt.Filter{Classes: []string{"bad_input", "authorization"}}
	ctx, cancel := context.WithCancel(testkit.Ctx(t, 60*time.Second))
	rc := dlt.ReplayConfig{DLT: "orders.DLT", Filter: f, Rate: 400, Chunk: 25, Progress: func(s dlt.ReplayStats) {
		if s.Replayed >= 60 {
			cancel()
		}
	}}
	st1, err := dlt.Replay(ctx, p, rc)
	cancel()
	if !errors.Is(err, context.Canceled) || st1.Replayed == 0 || st1.Replayed >= 200 {
		t.Fatalf("first run: %+v %v", st1, err)
	}
	rc.Progress = nil
	st2, err := dlt.Replay(testkit.Ctx(t, 60*time.Second), p, rc)
	if err != nil || !st2.Resumed || st2.AlreadyThere != 0 {
		t.Fatalf("second run: %+v %v", st2, err)
	}
	if st1.Replayed+st2.Replayed != 200 {
		t.Fatalf("replayed %d + %d, want 200", st1.Replayed, st2.Replayed)
	}
	got, _ := onTopic(t, c, "orders")
	exactlyOnce(t, got, append(append([]string(nil), ids["bad_input"]...), ids["authorization"]...))
	t.Logf("interrupted after %d, resumed with %d (%.0f records/s at --rate 400)", st1.Replayed, st2.Replayed, float64(st2.Replayed)/st2.Elapsed.Seconds())
}

type countObserver struct {
	mu       sync.Mutex
	replayed map[string]int
	failed   map[string]int
}

func (o *countObserver) OnDLTReplayed(topic string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.replayed == nil {
		o.replayed = map[string]int{}
	}
	o.replayed[topic]++
}

func (o *countObserver) OnDLTFailedAgain(topic string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failed == nil {
		o.failed = map[string]int{}
	}
	o.failed[topic]++
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// *metrics.Metrics counts replays without importing dlt.
var _ dlt.Observer = (*metrics.Metrics)(nil)
