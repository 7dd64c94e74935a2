package kafkaproducer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func rec(topic string, i int) kafkaproducer.Record {
	return kafkaproducer.Record{
		Topic:   topic,
		Key:     fmt.Appendf(nil, "key-%d", i%37),
		Value:   fmt.Appendf(nil, "value-%d", i),
		Headers: []kafkaproducer.Header{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}},
	}
}

// TestSendStyles sends through every style and reads everything back.
func TestSendStyles(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	p := testkit.Producer(t, c, presets.Reliable())
	ctx := testkit.Ctx(t, 30*time.Second)
	want := map[string]bool{}
	n := 0
	next := func() kafkaproducer.Record { r := rec("orders", n); want[string(r.Value)] = true; n++; return r }

	res, err := p.Send(ctx, next())
	if err != nil || res.Offset < 0 || res.Partition < 0 || res.Latency <= 0 || res.Timestamp.IsZero() {
		t.Fatalf("Send: %+v %v", res, err)
	}

	var wg sync.WaitGroup
	var asyncErrs atomic.Int32
	for range 100 {
		wg.Add(1)
		if err := p.SendAsync(ctx, next(), func(r kafkaproducer.Result) {
			defer wg.Done()
			if r.Err != nil || r.Offset < 0 {
				asyncErrs.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	batch := make([]kafkaproducer.Record, 50)
	for i := range batch {
		batch[i] = next()
	}
	results := p.SendBatch(ctx, batch)
	if err := results.FirstErr(); err != nil || len(results) != 50 {
		t.Fatalf("SendBatch: %v", err)
	}
	for i, r := range results {
		if !bytes.Equal(r.Record.Value, batch[i].Value) {
			t.Fatalf("result %d is for %q, want %q", i, r.Record.Value, batch[i].Value)
		}
	}
	for range 10 {
		wg.Add(1)
		if err := p.TrySend(ctx, next(), func(r kafkaproducer.Result) {
			defer wg.Done()
			if r.Err != nil {
				asyncErrs.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if asyncErrs.Load() != 0 {
		t.Fatalf("%d async sends failed", asyncErrs.Load())
	}

	got := testkit.Consume(t, c.ListenAddrs(), "orders", n, false, 20*time.Second)
	for _, r := range got {
		if !want[string(r.Value)] {
			t.Errorf("unexpected or duplicate record %q", r.Value)
		}
		delete(want, string(r.Value))
		if len(r.Headers) != 1 || r.Headers[0].Key != "seq" || !bytes.HasPrefix(r.Key, []byte("key-")) {
			t.Errorf("record %q lost its key or headers: %q %v", r.Value, r.Key, r.Headers)
		}
	}
}

// TestEveryPreset runs each preset end to end: every record exactly once.
func TestEveryPreset(t *testing.T) {
	for _, name := range presets.Names() {
		t.Run(name, func(t *testing.T) {
			c := testkit.Cluster(t, []string{"events"})
			cfg, _ := presets.ByName(name)
			p := testkit.Producer(t, c, cfg)
			const n = 2000
			recs := make([]kafkaproducer.Record, n)
			for i := range recs {
				recs[i] = rec("events", i)
			}
			if err := p.SendBatch(testkit.Ctx(t, 30*time.Second), recs).FirstErr(); err != nil {
				t.Fatal(err)
			}
			got := testkit.Consume(t, c.ListenAddrs(), "events", n, false, 20*time.Second)
			seen := map[string]bool{}
			for _, r := range got {
				if seen[string(r.Value)] {
					t.Fatalf("duplicate %q", r.Value)
				}
				seen[string(r.Value)] = true
			}
			// Nothing beyond n arrives either.
			if extra := testkit.ConsumeAll(t, c.ListenAddrs(), "events", 10*time.Second); len(extra) != n {
				t.Fatalf("topic holds %d records, want %d", len(extra), n)
			}
		})
	}
}

// TestPlacement checks on a real 17-partition topic that keyed records land
// where the Java client and librdkafka put them.
func TestPlacement(t *testing.T) {
	c := testkit.Cluster(t, nil, kfake.SeedTopics(17, "placed"))
	tests := []struct {
		name kafkaproducer.Partitioner
		want func(key []byte) int32
	}{
		{kafkaproducer.PartitionerJava, func(k []byte) int32 { return int32(kafkaproducer.Murmur2(k)&0x7fffffff) % 17 }},
		{kafkaproducer.PartitionerSarama, func(k []byte) int32 {
			p := int32(kafkaproducer.FNV1a(k)) % 17
			if p < 0 {
				p = -p
			}
			return p
		}},
	}
	for _, tt := range tests {
		cfg := presets.Reliable()
		cfg.Partitioner = tt.name
		p := testkit.Producer(t, c, cfg)
		for i := range 200 {
			k := fmt.Appendf(nil, "customer-%d", i)
			res, err := p.Send(testkit.Ctx(t, 10*time.Second), kafkaproducer.Record{Topic: "placed", Key: k})
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.want(k); res.Partition != want {
				t.Fatalf("%s: key %q went to %d, want %d", tt.name, k, res.Partition, want)
			}
		}
	}
}

func TestExplicitPartition(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.LowLatency()
	cfg.Partitioner = kafkaproducer.PartitionerManual
	p := testkit.Producer(t, c, cfg)
	ctx := testkit.Ctx(t, 10*time.Second)
	res, err := p.Send(ctx, kafkaproducer.Record{Topic: "orders", Key: []byte("k")}.AtPartition(2))
	if err != nil || res.Partition != 2 {
		t.Fatalf("explicit partition 2: %+v %v", res, err)
	}
	_, err = p.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("v")})
	if !errors.Is(err, kafkaproducer.ErrPartitionRequired) || kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput {
		t.Fatalf("manual without partition: %v", err)
	}
	_, err = p.Send(ctx, kafkaproducer.Record{Topic: "orders"}.AtPartition(9))
	if !errors.Is(err, kafkaproducer.ErrBadPartition) || kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput {
		t.Fatalf("partition 9 of 3: %v", err)
	}
	_, err = p.Send(ctx, kafkaproducer.Record{Topic: "orders"}.AtPartition(-2))
	if !errors.Is(err, kafkaproducer.ErrBadPartition) {
		t.Fatalf("partition -2: %v", err)
	}
	_, err = p.Send(ctx, kafkaproducer.Record{Value: []byte("x")})
	if !errors.Is(err, kafkaproducer.ErrNoTopic) {
		t.Fatalf("no topic: %v", err)
	}
	old := kafkaproducer.Record{Topic: "orders", Timestamp: time.Now().Add(-time.Hour)}.AtPartition(0)
	if _, err = p.Send(ctx, old); !errors.Is(err, kafkaproducer.ErrStaleTimestamp) || kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput {
		t.Fatalf("timestamp older than the delivery timeout: %v", err)
	}
	if err := p.SendAsync(ctx, kafkaproducer.Record{}, func(kafkaproducer.Result) { t.Error("callback for a refused record") }); !errors.Is(err, kafkaproducer.ErrNoTopic) {
		t.Fatalf("SendAsync no topic: %v", err)
	}
}

func TestTrySendBufferFull(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.LowLatency()
	cfg.MaxBufferedRecords = 10
	p := testkit.Producer(t, c, cfg)
	ctx := testkit.Ctx(t, 30*time.Second)
	if _, err := p.Send(ctx, rec("orders", 0)); err != nil { // warm metadata
		t.Fatal(err)
	}
	release := testkit.HangProduce(c)
	defer release()
	var accepted, full int
	var cbs sync.WaitGroup
	for i := range 50 {
		cbs.Add(1)
		err := p.TrySend(ctx, rec("orders", i), func(kafkaproducer.Result) { cbs.Done() })
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, kafkaproducer.ErrBufferFull) && kafkaproducer.Classify(err) == kafkaproducer.ClassRetriable:
			full++
			cbs.Done()
		default:
			t.Fatalf("TrySend: %v", err)
		}
	}
	if accepted > 10 || full == 0 {
		t.Fatalf("accepted %d, refused %d: the buffer of 10 did not bound TrySend", accepted, full)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := p.Close(closeCtx)
	var ce *kafkaproducer.CloseError
	if !errors.As(err, &ce) || len(ce.Undelivered) != accepted {
		t.Fatalf("Close: %v (accepted %d)", err, accepted)
	}
	cbs.Wait()
}

func TestCloseFlushes(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.Reliable()
	cfg.Linger = 30 * time.Second // only Close's flush can send these
	cfg.DeliveryTimeout = time.Minute
	p := testkit.Producer(t, c, cfg)
	var delivered atomic.Int32
	for i := range 100 {
		if err := p.SendAsync(context.Background(), rec("orders", i), func(r kafkaproducer.Result) {
			if r.Err == nil {
				delivered.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(testkit.Ctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if delivered.Load() != 100 {
		t.Fatalf("Close returned with %d of 100 delivered", delivered.Load())
	}
	if _, err := p.Send(context.Background(), rec("orders", 0)); !errors.Is(err, kafkaproducer.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	testkit.Consume(t, c.ListenAddrs(), "orders", 100, false, 10*time.Second)
}

// TestCloseHandsBackUndelivered: a broker that never answers; Close gives
// up at its deadline and returns every record, each also reported to its
// callback as closed.
func TestCloseHandsBackUndelivered(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.Reliable()
	p := testkit.Producer(t, c, cfg)
	if _, err := p.Send(testkit.Ctx(t, 10*time.Second), rec("orders", 0)); err != nil {
		t.Fatal(err)
	}
	release := testkit.HangProduce(c)
	defer release()
	var closedCbs atomic.Int32
	for i := range 20 {
		if err := p.SendAsync(context.Background(), rec("orders", i), func(r kafkaproducer.Result) {
			if errors.Is(r.Err, kafkaproducer.ErrClosed) && r.Class() == kafkaproducer.ClassClosed {
				closedCbs.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Close(ctx)
	var ce *kafkaproducer.CloseError
	if !errors.As(err, &ce) || len(ce.Undelivered) != 20 {
		t.Fatalf("Close: %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CloseError should wrap the deadline: %v", err)
	}
	for _, r := range ce.Undelivered {
		if !errors.Is(r.Err, kafkaproducer.ErrClosed) || r.Record.Topic != "orders" {
			t.Errorf("undelivered %q: %v", r.Record.Value, r.Err)
		}
	}
	if closedCbs.Load() != 20 {
		t.Errorf("%d of 20 callbacks saw ErrClosed", closedCbs.Load())
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Close took %v with a 300ms deadline", el)
	}
	if err2 := p.Close(context.Background()); err2 != err {
		t.Errorf("second Close returned %v, want the first result", err2)
	}
}

// TestRequestTimedOutDoesNotDuplicate: the broker writes the batch but
// answers REQUEST_TIMED_OUT, so the client retries. With idempotence the
// retry is deduplicated; without it, the same fault duplicates (which
// shows the fault really bites).
func TestRequestTimedOutDoesNotDuplicate(t *testing.T) {
	for _, idem := range []bool{true, false} {
		t.Run(fmt.Sprintf("idempotent=%v", idem), func(t *testing.T) {
			c := testkit.Cluster(t, nil, kfake.SeedTopics(1, "pay"))
			cfg := presets.Reliable()
			if !idem {
				cfg.DisableIdempotence, cfg.MaxInFlight = true, 1
			}
			p := testkit.Producer(t, c, cfg)
			ctx := testkit.Ctx(t, 30*time.Second)
			if _, err := p.Send(ctx, rec("pay", 0)); err != nil {
				t.Fatal(err)
			}
			h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "pay", Err: kerr.RequestTimedOut, Count: 1})
			if _, err := p.Send(ctx, rec("pay", 1)); err != nil {
				t.Fatal(err)
			}
			if h.Hits() != 1 {
				t.Fatalf("fault hit %d times", h.Hits())
			}
			got := testkit.ConsumeAll(t, c.ListenAddrs(), "pay", 10*time.Second)
			if idem && len(got) != 2 {
				t.Fatalf("idempotent: %d records on the topic, want 2", len(got))
			}
			if !idem && len(got) != 3 {
				t.Fatalf("non-idempotent: %d records on the topic, want the duplicate (3)", len(got))
			}
		})
	}
}

// TestTerminalErrorsReachCallerFast: non-retriable broker errors and an
// unknown topic fail the send quickly with the right class.
func TestTerminalErrorsReachCallerFast(t *testing.T) {
	tests := []struct {
		name  string
		fault *kerr.Error
		topic string
		big   bool
		want  kafkaproducer.Class
	}{
		{"message too large from broker", kerr.MessageTooLarge, "orders", false, kafkaproducer.ClassBadInput},
		{"record larger than a batch", nil, "orders", true, kafkaproducer.ClassBadInput},
		{"topic authorization failed", kerr.TopicAuthorizationFailed, "orders", false, kafkaproducer.ClassAuthorization},
		{"unknown topic", nil, "no-such-topic", false, kafkaproducer.ClassBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testkit.Cluster(t, []string{"orders"})
			p := testkit.Producer(t, c, presets.Reliable())
			if tt.fault != nil {
				c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: tt.topic, Err: tt.fault, Count: -1})
			}
			r := rec(tt.topic, 1)
			if tt.big {
				r.Value = make([]byte, 2_000_000)
			}
			start := time.Now()
			_, err := p.Send(testkit.Ctx(t, 30*time.Second), r)
			el := time.Since(start)
			if got := kafkaproducer.Classify(err); got != tt.want {
				t.Fatalf("class %v, want %v (err %v)", got, tt.want, err)
			}
			var se *kafkaproducer.SendError
			if !errors.As(err, &se) || se.Topic != tt.topic {
				t.Fatalf("error does not name the record: %v", err)
			}
			if tt.fault != nil && !errors.Is(err, tt.fault) {
				t.Errorf("error does not wrap %v: %v", tt.fault, err)
			}
			if el > 5*time.Second {
				t.Errorf("took %v to fail", el)
			}
			t.Logf("failed in %v: %v", el.Round(time.Millisecond), err)
		})
	}
}

// TestOutageEndsEveryRecord: with a delivery timeout, a cluster that goes
// away entirely still ends every record, in the timeout plus a margin.
func TestOutageEndsEveryRecord(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.Reliable()
	cfg.DeliveryTimeout = 3 * time.Second
	cfg.RequestTimeout = time.Second
	p := testkit.Producer(t, c, cfg)
	if _, err := p.Send(testkit.Ctx(t, 10*time.Second), rec("orders", 0)); err != nil {
		t.Fatal(err)
	}
	release := testkit.HangProduce(c) // the first requests go in flight and hang
	defer release()
	const n = 500
	var done sync.WaitGroup
	var timeouts atomic.Int32
	start := time.Now()
	var last atomic.Int64
	for i := range n {
		done.Add(1)
		if i == n/2 {
			c.Close() // then the broker disappears
		}
		if err := p.SendAsync(context.Background(), rec("orders", i), func(r kafkaproducer.Result) {
			defer done.Done()
			last.Store(int64(time.Since(start)))
			if errors.Is(r.Err, kafkaproducer.ErrDeliveryTimeout) && r.Class() == kafkaproducer.ClassTimeout {
				timeouts.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(cfg.DeliveryTimeout + 20*time.Second):
		t.Fatalf("records still pending %v after the outage began", cfg.DeliveryTimeout+20*time.Second)
	}
	t.Logf("all %d records ended %v after the outage began (%d as ErrDeliveryTimeout)", n, time.Duration(last.Load()).Round(time.Millisecond), timeouts.Load())
	if timeouts.Load() != n {
		t.Errorf("%d of %d records failed with ErrDeliveryTimeout", timeouts.Load(), n)
	}
}

// TestLatencyCoversTheAcknowledgement: a record's Latency runs from the
// send call to the broker's acknowledgement. With every produce answered
// 150ms late it is at least that for Send and SendAsync alike, and never
// more than the time the caller saw until the outcome.
func TestLatencyCoversTheAcknowledgement(t *testing.T) {
	const delay = 150 * time.Millisecond
	c := testkit.Cluster(t, []string{"slow"})
	p := testkit.Producer(t, c, presets.LowLatency())
	ctx := testkit.Ctx(t, 30*time.Second)
	if _, err := p.Send(ctx, kafkaproducer.Record{Topic: "slow", Value: []byte("warm-up")}); err != nil {
		t.Fatal(err)
	}
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { time.Sleep(delay) })
		return nil, nil, false
	})
	check := func(how string, res kafkaproducer.Result, seen time.Duration) {
		t.Helper()
		if res.Err != nil {
			t.Fatalf("%s: %v", how, res.Err)
		}
		if res.Latency < delay || res.Latency > seen {
			t.Errorf("%s: Latency %v, want between the broker's delay %v and the %v the caller waited", how, res.Latency, delay, seen)
		}
	}
	for i := range 3 {
		start := time.Now()
		res, _ := p.Send(ctx, kafkaproducer.Record{Topic: "slow", Value: fmt.Appendf(nil, "sync-%d", i)})
		check("Send", res, time.Since(start))

		done := make(chan time.Duration, 1)
		var got kafkaproducer.Result
		start = time.Now()
		if err := p.SendAsync(ctx, kafkaproducer.Record{Topic: "slow", Value: fmt.Appendf(nil, "async-%d", i)}, func(r kafkaproducer.Result) {
			got = r
			done <- time.Since(start)
		}); err != nil {
			t.Fatal(err)
		}
		seen := <-done
		check("SendAsync", got, seen)
	}
}

// TestNilContext: a nil ctx means context.Background() in every send
// style, for plain records and records with an explicit partition alike
// (franz-go reads the record's context on its own goroutines, where a nil
// one would take the process down).
func TestNilContext(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	p := testkit.Producer(t, c, presets.LowLatency())
	plain := kafkaproducer.Record{Topic: "orders", Value: []byte("plain")}
	pinned := kafkaproducer.Record{Topic: "orders", Value: []byte("pinned"), Partition: 1, PartitionSet: true}
	for _, rec := range []kafkaproducer.Record{plain, pinned} {
		//lint:ignore SA1012 a nil ctx is what is tested
		if _, err := p.Send(nil, rec); err != nil {
			t.Fatalf("Send %s: %v", rec.Value, err)
		}
		//lint:ignore SA1012 a nil ctx is what is tested
		if err := p.SendBatch(nil, []kafkaproducer.Record{rec, rec}).FirstErr(); err != nil {
			t.Fatalf("SendBatch %s: %v", rec.Value, err)
		}
		done := make(chan error, 2)
		//lint:ignore SA1012 a nil ctx is what is tested
		if err := p.SendAsync(nil, rec, func(r kafkaproducer.Result) { done <- r.Err }); err != nil {
			t.Fatal(err)
		}
		//lint:ignore SA1012 a nil ctx is what is tested
		if err := p.TrySend(nil, rec, func(r kafkaproducer.Result) { done <- r.Err }); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatalf("SendAsync/TrySend %s: %v", rec.Value, err)
			}
		}
	}
	typed, err := kafkaproducer.NewTyped(p, kafkaproducer.StringSerializer{}, kafkaproducer.StringSerializer{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	//lint:ignore SA1012 a nil ctx is what is tested
	if err := typed.SendAsync(nil, kafkaproducer.TypedRecord[string, string]{Topic: "orders", Value: "typed", Partition: 2, PartitionSet: true},
		func(r kafkaproducer.TypedResult[string, string]) { done <- r.Err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("typed SendAsync: %v", err)
	}
}

// countHook counts the Results a Producer's hooks see.
type countHook struct{ ok, failed atomic.Int64 }

func (h *countHook) OnRecordDone(r kafkaproducer.Result) {
	if r.Err != nil {
		h.failed.Add(1)
	} else {
		h.ok.Add(1)
	}
}

// TestSendAsyncErr: every record's callback gets nil once it is written,
// a failure gets the *SendError a Result would carry, refusals return at
// the call, hooks still see every Result, and Close waits for the
// callbacks.
func TestSendAsyncErr(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	hook := &countHook{}
	cfg := presets.HighThroughput()
	cfg.Hooks = []kafkaproducer.Hook{hook}
	cfg.Brokers = c.ListenAddrs()
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	const plain, pinned = 300, 30
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	cb := func(err error) {
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		ok.Add(1)
	}
	for i := range plain {
		if err := p.SendAsyncErr(ctx, rec("orders", i), cb); err != nil {
			t.Fatal(err)
		}
	}
	for i := range pinned {
		if err := p.SendAsyncErr(ctx, rec("orders", plain+i).AtPartition(1), cb); err != nil {
			t.Fatal(err)
		}
	}
	// A partition the topic does not have fails through the callback.
	if err := p.SendAsyncErr(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("x")}.AtPartition(9), cb); err != nil {
		t.Fatal(err)
	}
	// Refused outright: returned, the callback is not called.
	if err := p.SendAsyncErr(ctx, kafkaproducer.Record{Value: []byte("x")}, func(error) { t.Error("callback for a refused record") }); !errors.Is(err, kafkaproducer.ErrNoTopic) {
		t.Fatalf("no topic: %v", err)
	}
	if err := p.SendAsyncErr(ctx, rec("orders", -1), nil); err != nil { // a nil callback is allowed
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil { // the failure is not Close's to report
		t.Fatal(err)
	}
	const late = 50
	for i := range late {
		if err := p.SendAsyncErr(ctx, rec("orders", plain+pinned+i), cb); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Close waited for every callback.
	if ok.Load() != plain+pinned+late || failed.Load() != 1 {
		t.Fatalf("after Close: %d succeeded, %d failed; want %d and 1", ok.Load(), failed.Load(), plain+pinned+late)
	}
	var se *kafkaproducer.SendError
	if err := *firstErr.Load(); !errors.As(err, &se) || !errors.Is(err, kafkaproducer.ErrBadPartition) || se.Class != kafkaproducer.ClassBadInput || se.Partition != 9 {
		t.Fatalf("the failure: %v (%+v)", err, se)
	}
	if want := int64(plain + pinned + late + 1); hook.ok.Load() != want || hook.failed.Load() != 2 { // +1 nil callback; +1 refusal
		t.Fatalf("hooks saw %d successes and %d failures, want %d and 2", hook.ok.Load(), hook.failed.Load(), want)
	}
	if err := p.SendAsyncErr(ctx, rec("orders", 0), cb); !errors.Is(err, kafkaproducer.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}

	got := testkit.ConsumeAll(t, c.ListenAddrs(), "orders", 20*time.Second)
	if len(got) != plain+pinned+late+1 {
		t.Fatalf("read %d records, want %d", len(got), plain+pinned+late+1)
	}
	seen := map[string]int32{}
	for _, r := range got {
		seen[string(r.Value)] = r.Partition
	}
	for i := range pinned {
		v := fmt.Sprintf("value-%d", plain+i)
		if part, ok := seen[v]; !ok || part != 1 {
			t.Fatalf("pinned record %s: on partition %d (read %v)", v, part, ok)
		}
	}
}

// TestSendAsyncErrAllocatesNoMore: SendAsyncErr allocates no more per
// record than SendAsync.
func TestSendAsyncErrAllocatesNoMore(t *testing.T) {
	p := testkit.Producer(t, testkit.Cluster(t, []string{"allocs"}), presets.HighThroughput())
	ctx := testkit.Ctx(t, 60*time.Second)
	key, value := []byte("customer-42"), []byte("a value of some bytes")
	var wg sync.WaitGroup
	resultCB := func(kafkaproducer.Result) { wg.Done() }
	errCB := func(error) { wg.Done() }
	measure := func(send func() error) float64 { return allocsPerSend(t, &wg, send) }
	withResult := func() error {
		return p.SendAsync(ctx, kafkaproducer.Record{Topic: "allocs", Key: key, Value: value}, resultCB)
	}
	withErr := func() error {
		return p.SendAsyncErr(ctx, kafkaproducer.Record{Topic: "allocs", Key: key, Value: value}, errCB)
	}
	measure(withResult) // warm up
	r, e := measure(withResult), measure(withErr)
	t.Logf("allocations per record: SendAsync %.2f, SendAsyncErr %.2f", r, e)
	if e > r+0.25 {
		t.Errorf("SendAsyncErr allocates %.2f per record, SendAsync %.2f", e, r)
	}
}

// allocsPerSend is the allocations per call of send, over rounds of 2000
// calls each waited for through wg (send's callback calls wg.Done).
func allocsPerSend(t *testing.T, wg *sync.WaitGroup, send func() error) float64 {
	const n = 2000
	return testing.AllocsPerRun(5, func() {
		wg.Add(n)
		for range n {
			if err := send(); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
	}) / n
}

// ackHook keeps what an AckHook is told.
type ackHook struct {
	mu   sync.Mutex
	acks []kafkaproducer.AckedRecord
	done []kafkaproducer.Result
}

func (h *ackHook) OnRecordDone(r kafkaproducer.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = append(h.done, r)
}

func (h *ackHook) OnRecordAcked(a kafkaproducer.AckedRecord) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acks = append(h.acks, a)
}

// TestAckHook: an AckHook hears of every success through OnRecordAcked,
// with the values its Result carries and the position the record was
// written at, and of every failure and refusal through OnRecordDone,
// whichever way the record was sent, alone (a success without a Result
// callback then builds no Result) or beside a plain Hook (which still sees every
// Result).
func TestAckHook(t *testing.T) {
	for _, withPlain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain hook %v", withPlain), func(t *testing.T) {
			c := testkit.Cluster(t, []string{"orders"})
			ah, plain := &ackHook{}, &countHook{}
			cfg := presets.Reliable()
			cfg.Hooks = []kafkaproducer.Hook{ah}
			if withPlain {
				cfg.Hooks = append(cfg.Hooks, plain)
			}
			p := testkit.Producer(t, c, cfg)
			ctx := testkit.Ctx(t, 30*time.Second)

			var mu sync.Mutex
			var results []kafkaproducer.Result // of the sends that give one
			keep := func(r kafkaproducer.Result) {
				mu.Lock()
				defer mu.Unlock()
				results = append(results, r)
			}
			var errs atomic.Int64
			began := time.Now()
			n := 0
			next := func() kafkaproducer.Record { n++; return rec("orders", n) }
			for range 20 {
				if err := p.SendAsyncErr(ctx, next(), func(err error) {
					if err != nil {
						errs.Add(1)
					}
				}); err != nil {
					t.Fatal(err)
				}
				if err := p.SendAsync(ctx, next(), keep); err != nil {
					t.Fatal(err)
				}
				if err := p.TrySend(ctx, next(), keep); err != nil {
					t.Fatal(err)
				}
				if err := p.SendAsync(ctx, next(), nil); err != nil {
					t.Fatal(err)
				}
				if err := p.SendAsyncErr(ctx, next(), nil); err != nil {
					t.Fatal(err)
				}
			}
			res, err := p.Send(ctx, next())
			if err != nil {
				t.Fatal(err)
			}
			keep(res)
			batch := p.SendBatch(ctx, []kafkaproducer.Record{next(), next(), next()})
			if err := batch.FirstErr(); err != nil {
				t.Fatal(err)
			}
			for _, r := range batch {
				keep(r)
			}
			// A failure and a refusal.
			if err := p.SendAsyncErr(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("x")}.AtPartition(9), func(error) {}); err != nil {
				t.Fatal(err)
			}
			if err := p.SendAsyncErr(ctx, kafkaproducer.Record{Value: []byte("x")}, nil); !errors.Is(err, kafkaproducer.ErrNoTopic) {
				t.Fatalf("no topic: %v", err)
			}
			if err := p.Flush(ctx); err != nil { // the failure is not Close's to report
				t.Fatal(err)
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if errs.Load() != 0 {
				t.Fatalf("%d SendAsyncErr records failed", errs.Load())
			}
			took := time.Since(began)

			written := map[[2]int64]bool{}
			for _, r := range testkit.ConsumeAll(t, c.ListenAddrs(), "orders", 20*time.Second) {
				written[[2]int64{int64(r.Partition), r.Offset}] = true
			}
			if len(written) != n {
				t.Fatalf("read %d records, want %d", len(written), n)
			}
			acked := map[[2]int64]kafkaproducer.AckedRecord{}
			for _, a := range ah.acks {
				at := [2]int64{int64(a.Partition), a.Offset}
				if a.Topic != "orders" || a.Latency <= 0 || a.Latency > took || !written[at] || acked[at] != (kafkaproducer.AckedRecord{}) {
					t.Fatalf("ack %+v: not one of the records written, once each", a)
				}
				acked[at] = a
			}
			if len(acked) != n {
				t.Fatalf("%d acks for %d records written", len(acked), n)
			}
			for _, r := range results {
				a := acked[[2]int64{int64(r.Partition), r.Offset}]
				if a.Latency != r.Latency || a.Topic != r.Record.Topic {
					t.Fatalf("ack %+v for the record of Result %+v", a, r)
				}
			}
			if len(ah.done) != 2 || ah.done[0].Err == nil || ah.done[1].Err == nil {
				t.Fatalf("OnRecordDone saw %d Results (%+v), want the failure and the refusal", len(ah.done), ah.done)
			}
			if withPlain && (plain.ok.Load() != int64(n) || plain.failed.Load() != 2) {
				t.Fatalf("the plain hook saw %d successes and %d failures, want %d and 2", plain.ok.Load(), plain.failed.Load(), n)
			}
		})
	}
}
