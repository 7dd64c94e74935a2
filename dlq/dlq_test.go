package dlq_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func rec(topic string, i int) kafkaproducer.Record {
	return kafkaproducer.Record{
		Topic:   topic,
		Key:     fmt.Appendf(nil, "key-%d", i%50),
		Value:   fmt.Appendf(nil, "value-%d", i),
		Headers: []kafkaproducer.Header{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}},
	}
}

// TestHealthySends: every send style delivers, with a record-ID header,
// and nothing reaches the spool.
func TestHealthySends(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.Reliable()
	cfg.Brokers = c.ListenAddrs()
	d := newDLQ(t, cfg, dlq.Config{SpoolDir: t.TempDir() + "/spool"})
	ctx := testkit.Ctx(t, 30*time.Second)

	res, err := d.Send(ctx, rec("orders", 0))
	if err != nil || res.Disposition != dlq.Delivered || len(res.RecordID) != 32 || res.Attempt.Offset < 0 {
		t.Fatalf("Send: %+v %v", res, err)
	}
	batch := make([]kafkaproducer.Record, 20)
	for i := range batch {
		batch[i] = rec("orders", i+1)
	}
	for i, r := range d.SendBatch(ctx, batch) {
		if r.Disposition != dlq.Delivered || r.Err != nil {
			t.Fatalf("batch %d: %+v", i, r)
		}
	}
	if len(batch[0].Headers) != 1 {
		t.Fatalf("SendBatch modified the caller's headers: %v", batch[0].Headers)
	}
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range 30 {
		wg.Add(1)
		if err := d.SendAsync(ctx, rec("orders", 100+i), func(r dlq.Result) {
			defer wg.Done()
			if r.Disposition != dlq.Delivered {
				bad.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d async sends not delivered", bad.Load())
	}
	got := testkit.Consume(t, c.ListenAddrs(), "orders", 51, false, 10*time.Second)
	ids := map[string]bool{}
	for _, r := range got {
		id := header(r, dlq.DefaultRecordIDHeader)
		if len(id) != 32 || ids[string(id)] {
			t.Fatalf("record %q has id %q (dup %v)", r.Value, id, ids[string(id)])
		}
		ids[string(id)] = true
	}
	st := d.Stats()
	if st.Delivered != 51 || st.Spooled != 0 || st.SpoolRecords != 0 || !d.Healthy() || d.BreakerState() != gobreaker.StateClosed {
		t.Fatalf("stats %+v healthy %v", st, d.Healthy())
	}
}

// TestNonRetriableToDeadLetter: MESSAGE_TOO_LARGE, INVALID_RECORD and a
// serialization failure reach orders.DLT with kprod's and Spring's
// headers; kcat reads them if installed.
func TestNonRetriableToDeadLetter(t *testing.T) {
	tests := []struct {
		name      string
		fault     *kerr.Error
		serialize bool
		class     string
		cause     string
	}{
		{"message too large", kerr.MessageTooLarge, false, "bad_input", "github.com/twmb/franz-go/pkg/kerr.Error"},
		{"invalid record", kerr.InvalidRecord, false, "bad_input", "github.com/twmb/franz-go/pkg/kerr.Error"},
		{"serialization error", nil, true, "bad_input", "errors.errorString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
			cfg := presets.Reliable()
			cfg.Brokers = c.ListenAddrs()
			cfg.ClientID = "svc-a"
			obs := newRecorder()
			var events []dlq.Event
			var mu sync.Mutex
			d := newDLQ(t, cfg, dlq.Config{
				SpoolDir:      t.TempDir() + "/spool",
				SpringHeaders: true,
				Observer:      obs,
				OnRecord:      func(e dlq.Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
			})
			ctx := testkit.Ctx(t, 30*time.Second)
			if _, err := d.Send(ctx, rec("orders", 0)); err != nil { // metadata warm
				t.Fatal(err)
			}
			r := rec("orders", 7)
			r.Timestamp = time.Now().Add(-time.Second).Truncate(time.Millisecond)
			var res dlq.Result
			var err error
			if tt.serialize {
				serr := &kafkaproducer.BadInputError{Topic: "orders", Side: "value", Err: errors.New("avro: missing field id")}
				res, err = d.DeadLetter(ctx, r, serr)
			} else {
				c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: tt.fault, Count: -1})
				res, err = d.Send(ctx, r)
			}
			if err != nil || res.Disposition != dlq.DeadLettered || res.DeadLetter == nil || res.DeadLetter.Record.Topic != "orders.DLT" {
				t.Fatalf("result %+v err %v", res, err)
			}
			got := testkit.Consume(t, c.ListenAddrs(), "orders.DLT", 1, false, 10*time.Second)[0]
			if string(got.Key) != "key-7" || string(got.Value) != "value-7" || string(header(got, "seq")) != "7" {
				t.Fatalf("dead letter lost key, value or headers: %q %q %v", got.Key, got.Value, got.Headers)
			}
			want := map[string]string{
				dlq.HeaderOriginalTopic:         "orders",
				dlq.HeaderErrorClass:            tt.class,
				dlq.HeaderClientID:              "svc-a",
				dlq.DefaultRecordIDHeader:       res.RecordID,
				dlq.SpringOriginalTopic:         "orders",
				dlq.SpringExceptionFQCN:         "github.com/kprod/kprod/kafkaproducer.SendError",
				dlq.SpringExceptionCauseFQCN:    tt.cause,
				dlq.SpringOriginalTimestampType: "CreateTime",
			}
			for k, v := range want {
				if got := string(header(got, k)); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if msg := string(header(got, dlq.HeaderError)); !strings.Contains(msg, "orders") || msg == "" {
				t.Errorf("error header %q", msg)
			}
			if string(header(got, dlq.HeaderOriginalTimestamp)) != fmt.Sprint(r.Timestamp.UnixMilli()) {
				t.Errorf("original timestamp header %q", header(got, dlq.HeaderOriginalTimestamp))
			}
			if _, err := time.Parse(time.RFC3339Nano, string(header(got, dlq.HeaderFailedAt))); err != nil {
				t.Errorf("failed-at header: %v", err)
			}
			if ts := header(got, dlq.SpringOriginalTimestamp); len(ts) != 8 || int64(binary.BigEndian.Uint64(ts)) != r.Timestamp.UnixMilli() {
				t.Errorf("spring timestamp %x", ts)
			}
			part := header(got, dlq.SpringOriginalPartition)
			if len(part) != 4 {
				t.Fatalf("spring partition %x", part)
			}
			if !tt.serialize {
				// The broker refused it on a real partition; it is named.
				p := int32(binary.BigEndian.Uint32(part))
				if p < 0 || p > 2 || string(header(got, dlq.HeaderOriginalPartition)) != fmt.Sprint(p) {
					t.Errorf("original partition %d / %q", p, header(got, dlq.HeaderOriginalPartition))
				}
				if string(header(got, dlq.HeaderAttempts)) != "1" {
					t.Errorf("attempts %q", header(got, dlq.HeaderAttempts))
				}
			} else if int32(binary.BigEndian.Uint32(part)) != -1 || header(got, dlq.HeaderOriginalPartition) != nil {
				t.Errorf("a record that never reached Kafka has partition %x", part)
			}
			if off := header(got, dlq.SpringOriginalOffset); len(off) != 8 || int64(binary.BigEndian.Uint64(off)) != -1 {
				t.Errorf("spring offset %x", off)
			}
			if obs.get("dead:orders") != 1 || len(events) != 1 || events[0].Disposition != dlq.DeadLettered || events[0].Destination != "orders.DLT" {
				t.Errorf("observer %v events %+v", obs.counts, events)
			}
			// Nothing went to the original topic after the warm-up.
			if n := len(testkit.ConsumeAll(t, c.ListenAddrs(), "orders", 10*time.Second)); n != 1 {
				t.Errorf("orders holds %d records, want 1", n)
			}
			kcatReads(t, c.ListenAddrs()[0], res.RecordID, tt.class)
		})
	}
}

// kcatReads checks that librdkafka's kcat sees our dead letter and its
// headers.
func kcatReads(t *testing.T, broker, id, class string) {
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Log("kcat not installed: skipping the kcat check (CI installs it)")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-C", "-b", broker, "-t", "orders.DLT", "-o", "beginning", "-e", "-q",
		"-f", "%k|%s|%h\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v: %s", err, out)
	}
	s := string(out)
	for _, want := range []string{"key-7|value-7|", "kprod-record-id=" + id, "kprod-dlt-error-class=" + class, "kprod-dlt-original-topic=orders", "kafka_dlt-original-topic=orders"} {
		if !strings.Contains(s, want) {
			t.Errorf("kcat output lacks %q:\n%s", want, s)
		}
	}
}

// TestCloseSpoolsUndelivered: a broker that never answers produce; Close
// with a short deadline spools every accepted record and reports each.
func TestCloseSpoolsUndelivered(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.Reliable()
	cfg.Brokers = c.ListenAddrs()
	dir := t.TempDir() + "/spool"
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dlq.New(p, dlq.Config{SpoolDir: dir, Replay: dlq.ReplayConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Send(testkit.Ctx(t, 10*time.Second), rec("orders", 0)); err != nil {
		t.Fatal(err)
	}
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, nil, true // swallow: never answer
	})
	const n = 200
	var spooled atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		if err := d.SendAsync(context.Background(), rec("orders", i), func(r dlq.Result) {
			defer wg.Done()
			if r.Disposition == dlq.Spooled && r.Ambiguous {
				spooled.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if spooled.Load() != n {
		t.Fatalf("%d of %d spooled", spooled.Load(), n)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Send(context.Background(), rec("orders", 0)); !errors.Is(err, kafkaproducer.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Stats(); st.Records != n || st.PerTopic["orders"] != n {
		t.Fatalf("spool after Close: %+v", st)
	}
}

// TestOpenPolicies: with the cluster gone the breaker opens from pings;
// OpenFailFast then refuses at once, OpenSpool spools at once; without a
// spool a record that must be spooled fails to the caller.
func TestOpenPolicies(t *testing.T) {
	tests := []struct {
		name    string
		policy  dlq.OpenPolicy
		spool   bool
		want    dlq.Disposition
		wantErr error
	}{
		{"fail fast", dlq.OpenFailFast, true, dlq.Failed, dlq.ErrCircuitOpen},
		{"spool", dlq.OpenSpool, true, dlq.Spooled, nil},
		{"no spool", dlq.OpenSpool, false, dlq.Failed, dlq.ErrCircuitOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, "orders")
			cfg := dlq.Config{WhenOpen: tt.policy, Breaker: fastBreaker(), Observer: newRecorder()}
			if tt.spool {
				cfg.SpoolDir = t.TempDir() + "/spool"
			}
			obs := cfg.Observer.(*recorder)
			d := newDLQ(t, outageConfig(b.addrs()), cfg)
			if _, err := d.Send(testkit.Ctx(t, 10*time.Second), rec("orders", 0)); err != nil {
				t.Fatal(err)
			}
			b.stop()
			testkit.WaitFor(t, 10*time.Second, "breaker to open", func() bool { return d.BreakerState() == gobreaker.StateOpen })
			if d.Healthy() {
				t.Fatal("Healthy with the breaker open")
			}
			start := time.Now()
			res, err := d.Send(testkit.Ctx(t, 10*time.Second), rec("orders", 1))
			if el := time.Since(start); el > time.Second {
				t.Errorf("send with open breaker took %v", el)
			}
			if res.Disposition != tt.want || (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("got %v / %v, want %v / %v", res.Disposition, err, tt.want, tt.wantErr)
			}
			if tt.wantErr != nil && kafkaproducer.Classify(err) != kafkaproducer.ClassRetriable {
				t.Errorf("class %v", kafkaproducer.Classify(err))
			}
			if states := obs.stateList(); len(states) == 0 || states[len(states)-1] != "open" {
				t.Errorf("observer saw states %v", states)
			}
		})
	}
}

// TestSpoolFull: the spool's size bound turns into an error returned to
// the caller, never a silent drop.
func TestSpoolFull(t *testing.T) {
	b := newBroker(t, "orders")
	d := newDLQ(t, outageConfig(b.addrs()), dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Spool:    spool.Options{MaxBytes: 4096},
		Breaker:  fastBreaker(),
	})
	b.stop()
	testkit.WaitFor(t, 10*time.Second, "breaker to open", func() bool { return d.BreakerState() == gobreaker.StateOpen })
	ctx := testkit.Ctx(t, 10*time.Second)
	var spooled, full int
	for i := range 100 {
		res, err := d.Send(ctx, rec("orders", i))
		switch {
		case err == nil && res.Disposition == dlq.Spooled:
			spooled++
		case errors.Is(err, spool.ErrFull) && errors.Is(err, dlq.ErrCircuitOpen) && res.Disposition == dlq.Failed:
			full++
		default:
			t.Fatalf("record %d: %v %v", i, res.Disposition, err)
		}
	}
	if spooled == 0 || full == 0 || d.Stats().Failed != int64(full) {
		t.Fatalf("spooled %d, full %d, stats %+v", spooled, full, d.Stats())
	}
}

// TestOutageAndReplay sends N records while the broker is down, restarts
// it on the same port with its data, and checks every record ID ends on
// its topic after replay: zero lost, duplicates only from ambiguous
// timeouts, which are counted.
func TestOutageAndReplay(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	b := newBroker(t, "orders")
	obs := newRecorder()
	d := newDLQ(t, outageConfig(b.addrs()), dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Breaker:  fastBreaker(),
		Observer: obs,
		Replay:   dlq.ReplayConfig{Interval: 100 * time.Millisecond, Chunk: 5000},
	})
	ctx := testkit.Ctx(t, 80*time.Second)
	const warm = 100
	for i := range warm {
		if _, err := d.Send(ctx, rec("orders", i)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	ids := make([]string, n)
	disp := make([]dlq.Disposition, n)
	classes := make([]kafkaproducer.Class, n)
	var firstErr atomic.Pointer[dlq.Result]
	var wg sync.WaitGroup
	for i := range n {
		if i == 2000 {
			b.stop() // records are in flight when the broker goes
		}
		wg.Add(1)
		if err := d.SendAsync(ctx, rec("orders", warm+i), func(r dlq.Result) {
			defer wg.Done()
			ids[i], disp[i], classes[i] = r.RecordID, r.Disposition, kafkaproducer.Classify(r.Attempt.Err)
			if r.Disposition == dlq.Spooled && i < 2000 {
				firstErr.CompareAndSwap(nil, &r)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	sent := time.Since(start)
	count := map[dlq.Disposition]int{}
	byClass := map[string]int{}
	for i, x := range disp {
		count[x]++
		if x == dlq.Spooled {
			byClass[classes[i].String()]++
		}
	}
	if r := firstErr.Load(); r != nil {
		t.Logf("an in-flight record: failed after %v, ambiguous %v: %v", r.Attempt.Latency.Round(time.Millisecond), r.Ambiguous, r.Attempt.Err)
	}
	t.Logf("spooled records by the class of their failure: %v (breaker-open refusals are retriable)", byClass)
	st := d.Stats()
	t.Logf("%d records during the outage ended in %v: %v; breaker %s; ambiguous %d; spool %d records, %d bytes",
		n, sent.Round(time.Millisecond), count, st.Breaker, st.Ambiguous, st.SpoolRecords, st.SpoolBytes)
	// Records acknowledged before the broker went are delivered; every
	// other one is in the spool.
	if count[dlq.Spooled]+count[dlq.Delivered] != n || st.SpoolRecords != int64(count[dlq.Spooled]) {
		t.Fatalf("records not delivered or spooled: %v, spool %d", count, st.SpoolRecords)
	}
	spooledN := count[dlq.Spooled]

	b.start()
	restarted := time.Now()
	testkit.WaitFor(t, 60*time.Second, "replay to drain the spool", func() bool { return d.Spool().Len() == 0 })
	t.Logf("spool drained %v after the restart; breaker states seen: %v", time.Since(restarted).Round(time.Millisecond), compact(obs.stateList()))
	consumeStart := time.Now()
	// The supervisor reports a state change to the observer after the
	// replay it is running returns, so "closed" can arrive just after the
	// spool is seen empty.
	deadline := time.Now().Add(5 * time.Second)
	for states := compact(obs.stateList()); len(states) < 3 || states[len(states)-1] != "closed"; states = compact(obs.stateList()) {
		if time.Now().After(deadline) {
			t.Errorf("breaker did not go open -> half-open -> closed: %v", states)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := consumeAll(t, b.addrs(), "orders", warm+n, 30*time.Second)
	seen := map[string]int{}
	for _, r := range got {
		seen[string(header(r, dlq.DefaultRecordIDHeader))]++
	}
	lost, dups := 0, 0
	for _, id := range ids {
		switch seen[id] {
		case 0:
			lost++
		case 1:
		default:
			dups += seen[id] - 1
		}
	}
	t.Logf("topic holds %d records (%d before the outage, read in %v); lost %d; duplicates %d; ambiguous %d",
		len(got), warm, time.Since(consumeStart).Round(time.Millisecond), lost, dups, d.Stats().Ambiguous)
	if lost != 0 {
		t.Fatalf("%d records lost", lost)
	}
	if int64(dups) > d.Stats().Ambiguous {
		t.Fatalf("%d duplicates but only %d ambiguous records", dups, d.Stats().Ambiguous)
	}
	if obs.get("replayed:orders") != spooledN || obs.get("spooled:orders") != spooledN {
		t.Fatalf("observer: %v", obs.counts)
	}
}

// compact drops repeats: [open open half-open] -> [open half-open].
func compact(s []string) []string {
	var out []string
	for _, x := range s {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}

// TestReplayKeepsOrderPerKey: spooled records replay in spool order, so
// each key's records arrive in send order.
func TestReplayKeepsOrderPerKey(t *testing.T) {
	b := newBroker(t, "orders")
	d := newDLQ(t, outageConfig(b.addrs()), dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Breaker:  fastBreaker(),
		Replay:   dlq.ReplayConfig{Interval: 50 * time.Millisecond, Chunk: 97},
	})
	b.stop()
	testkit.WaitFor(t, 10*time.Second, "breaker to open", func() bool { return d.BreakerState() == gobreaker.StateOpen })
	const n = 2000
	recs := make([]kafkaproducer.Record, n)
	for i := range recs {
		recs[i] = rec("orders", i)
	}
	for i, r := range d.SendBatch(testkit.Ctx(t, 20*time.Second), recs) {
		if r.Disposition != dlq.Spooled {
			t.Fatalf("record %d: %v %v", i, r.Disposition, r.Err)
		}
	}
	b.start()
	testkit.WaitFor(t, 30*time.Second, "replay", func() bool { return d.Spool().Len() == 0 })
	got := testkit.Consume(t, b.addrs(), "orders", n, false, 20*time.Second)
	last := map[string]int{}
	for _, r := range got {
		var seq int
		fmt.Sscan(string(header(r, "seq")), &seq)
		if prev, ok := last[string(r.Key)]; ok && seq < prev {
			t.Fatalf("key %s: seq %d after %d", r.Key, seq, prev)
		}
		last[string(r.Key)] = seq
	}
}

// TestAmbiguousTimeoutCounted: the broker writes the record but answers
// REQUEST_TIMED_OUT until the delivery timeout; the record is spooled as
// ambiguous, replayed, and the topic then holds it twice with one ID:
// the duplicate a consumer drops by record ID, and the count says so.
func TestAmbiguousTimeoutCounted(t *testing.T) {
	b := newBroker(t, "orders")
	d := newDLQ(t, outageConfig(b.addrs()), dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Replay:   dlq.ReplayConfig{Disable: true},
	})
	ctx := testkit.Ctx(t, 30*time.Second)
	if _, err := d.Send(ctx, rec("orders", 0)); err != nil {
		t.Fatal(err)
	}
	h := b.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.RequestTimedOut, Count: -1})
	res, err := d.Send(ctx, rec("orders", 1))
	if err != nil || res.Disposition != dlq.Spooled || !res.Ambiguous || kafkaproducer.Classify(res.Attempt.Err) != kafkaproducer.ClassTimeout {
		t.Fatalf("got %+v %v", res, err)
	}
	h.Remove()
	if st, err := d.Replay(ctx); err != nil || st.Sent != 1 {
		t.Fatalf("Replay: %+v %v", st, err)
	}
	got := consumeAll(t, b.addrs(), "orders", 3, 10*time.Second)
	copies := 0
	for _, r := range got {
		if string(header(r, dlq.DefaultRecordIDHeader)) == res.RecordID {
			copies++
		}
	}
	if copies != 2 || d.Stats().Ambiguous != 1 {
		t.Fatalf("%d copies of the ambiguous record (want 2: the write the timeout hid, and the replay); ambiguous count %d", copies, d.Stats().Ambiguous)
	}
}

var (
	_ = kgo.Record{}
	_ = bytes.Equal
)
