package kafkaproducer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kfake"
)

type typedOrder struct {
	ID     string   `json:"id"`
	Amount int64    `json:"amount"`
	Items  []string `json:"items,omitempty"`
}

// typedHookCount counts every record outcome the producer reports, so a
// test can prove a refused typed record never reached the producer.
type typedHookCount struct{ n, failed atomic.Int64 }

func (h *typedHookCount) OnRecordDone(r kafkaproducer.Result) {
	h.n.Add(1)
	if r.Err != nil && r.Offset == -1 {
		h.failed.Add(1)
	}
}

func typedProducer(t *testing.T, c *kfake.Cluster, hooks ...kafkaproducer.Hook) *kafkaproducer.Producer {
	t.Helper()
	cfg := presets.Reliable()
	cfg.Hooks = hooks
	return testkit.Producer(t, c, cfg)
}

func mustTyped[K, V any](t *testing.T, s kafkaproducer.RecordSender, ks kafkaproducer.Serializer[K], vs kafkaproducer.Serializer[V]) *kafkaproducer.Typed[K, V] {
	t.Helper()
	tp, err := kafkaproducer.NewTyped(s, ks, vs)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func orderRec(i int) kafkaproducer.TypedRecord[string, typedOrder] {
	return kafkaproducer.TypedRecord[string, typedOrder]{
		Topic:   "orders",
		Key:     fmt.Sprintf("customer-%d", i%7),
		Value:   typedOrder{ID: fmt.Sprintf("o-%d", i), Amount: int64(i) * 100, Items: []string{"a", "b"}},
		Headers: []kafkaproducer.Header{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}},
	}
}

// TestTypedSendStyles sends typed records through every style, with two
// typed producers (JSON orders, string events) sharing one Producer, and
// reads everything back as bytes.
func TestTypedSendStyles(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "events"})
	p := typedProducer(t, c)
	orders := mustTyped(t, p, kafkaproducer.StringSerializer{}, kafkaproducer.Serializer[typedOrder](kafkaproducer.JSON[typedOrder]()))
	events := mustTyped(t, p, kafkaproducer.BytesSerializer{}, kafkaproducer.Serializer[string](kafkaproducer.StringSerializer{}))
	ctx := testkit.Ctx(t, 30*time.Second)
	n := 0
	next := func() kafkaproducer.TypedRecord[string, typedOrder] { r := orderRec(n); n++; return r }

	res, err := orders.Send(ctx, next())
	if err != nil || res.Offset < 0 || string(res.Record.Key) != "customer-0" {
		t.Fatalf("Send: %+v %v", res, err)
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		cbErrs   []error
		cbTyped  = map[string]bool{}
		sendAsyn = func(rec kafkaproducer.TypedRecord[string, typedOrder], try bool) {
			wg.Add(1)
			cb := func(r kafkaproducer.TypedResult[string, typedOrder]) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if r.Err != nil {
					cbErrs = append(cbErrs, r.Err)
				}
				// The callback carries the typed record it came from.
				var back typedOrder
				if err := json.Unmarshal(r.Record.Value, &back); err != nil || back.ID != r.Typed.Value.ID {
					cbErrs = append(cbErrs, fmt.Errorf("callback typed %q vs bytes %q (%v)", r.Typed.Value.ID, r.Record.Value, err))
				}
				cbTyped[r.Typed.Value.ID] = true
			}
			var err error
			if try {
				err = orders.TrySend(ctx, rec, cb)
			} else {
				err = orders.SendAsync(ctx, rec, cb)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	)
	for range 50 {
		sendAsyn(next(), false)
	}
	for range 10 {
		sendAsyn(next(), true)
	}
	batch := make([]kafkaproducer.TypedRecord[string, typedOrder], 40)
	for i := range batch {
		batch[i] = next()
	}
	results := orders.SendBatch(ctx, batch)
	if err := results.FirstErr(); err != nil || len(results) != len(batch) {
		t.Fatalf("SendBatch: %d results, %v", len(results), err)
	}
	for i, r := range results {
		if !bytes.Contains(r.Record.Value, []byte(`"`+batch[i].Value.ID+`"`)) {
			t.Fatalf("batch result %d is %q, want order %s", i, r.Record.Value, batch[i].Value.ID)
		}
	}
	wg.Wait()
	if len(cbErrs) > 0 || len(cbTyped) != 60 {
		t.Fatalf("callbacks: %d typed records seen, errors %v", len(cbTyped), cbErrs)
	}
	if _, err := events.Send(ctx, kafkaproducer.TypedRecord[[]byte, string]{Topic: "events", Key: []byte("k"), Value: "hello"}); err != nil {
		t.Fatal(err)
	}

	got := testkit.Consume(t, c.ListenAddrs(), "orders", n, false, 20*time.Second)
	seen := map[string]bool{}
	for _, r := range got {
		var o typedOrder
		if err := json.Unmarshal(r.Value, &o); err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		var i int
		if _, err := fmt.Sscanf(o.ID, "o-%d", &i); err != nil || seen[o.ID] {
			t.Fatalf("bad or duplicate order %q", o.ID)
		}
		seen[o.ID] = true
		want := orderRec(i)
		if o.Amount != want.Value.Amount || string(r.Key) != want.Key ||
			len(r.Headers) != 1 || r.Headers[0].Key != "seq" || string(r.Headers[0].Value) != fmt.Sprint(i) {
			t.Fatalf("record %d read back as key %q value %+v headers %v", i, r.Key, o, r.Headers)
		}
	}
	ev := testkit.Consume(t, c.ListenAddrs(), "events", 1, false, 10*time.Second)
	if string(ev[0].Key) != "k" || string(ev[0].Value) != "hello" {
		t.Fatalf("event read back as %q=%q", ev[0].Key, ev[0].Value)
	}
}

// failing is a serializer that always fails with err.
func failing[T any](err error) kafkaproducer.Serializer[T] {
	return kafkaproducer.SerializerFunc[T](func(string, T, []byte) ([]byte, error) { return nil, err })
}

// TestTypedSerializationFailure proves a record that fails to serialize
// never reaches Kafka (the producer's hooks see it as a failure, so
// metrics count it; nothing is written), in every send style, and that
// the error names topic, side and cause.
func TestTypedSerializationFailure(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	hook := new(typedHookCount)
	p := typedProducer(t, c, hook)
	ctx := testkit.Ctx(t, 30*time.Second)
	cause := errors.New("boom")
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

	tests := []struct {
		name      string
		keys      kafkaproducer.Serializer[string]
		values    kafkaproducer.Serializer[any]
		value     any
		side      string
		wantClass kafkaproducer.Class
		wantCause error
	}{
		{"key", failing[string](cause), kafkaproducer.JSON[any](), 1, kafkaproducer.SideKey, kafkaproducer.ClassBadInput, cause},
		{"value json unsupported", kafkaproducer.StringSerializer{}, kafkaproducer.JSON[any](), make(chan int), kafkaproducer.SideValue, kafkaproducer.ClassBadInput, nil},
		{"value custom", kafkaproducer.StringSerializer{}, failing[any](cause), 1, kafkaproducer.SideValue, kafkaproducer.ClassBadInput, cause},
		// A registry that cannot be reached is not the record's fault:
		// the error still names the side, but keeps its retriable class.
		{"value unreachable registry", kafkaproducer.StringSerializer{}, failing[any](refused), 1, kafkaproducer.SideValue, kafkaproducer.ClassRetriable, syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := mustTyped(t, p, tt.keys, tt.values)
			rec := kafkaproducer.TypedRecord[string, any]{Topic: "orders", Key: "k", Value: tt.value}
			check := func(style string, err error) {
				t.Helper()
				bad, ok := errors.AsType[*kafkaproducer.BadInputError](err)
				if !ok || bad.Topic != "orders" || bad.Side != tt.side {
					t.Fatalf("%s: want BadInputError on %s side, got %#v", style, tt.side, err)
				}
				if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
					t.Fatalf("%s: %v does not wrap %v", style, err, tt.wantCause)
				}
				if got := kafkaproducer.Classify(err); got != tt.wantClass {
					t.Fatalf("%s: class %s, want %s", style, got, tt.wantClass)
				}
				if !strings.Contains(err.Error(), `"orders"`) || !strings.Contains(err.Error(), tt.side) {
					t.Fatalf("%s: message %q does not name topic and side", style, err)
				}
			}
			res, err := tp.Send(ctx, rec)
			check("Send", err)
			if res.Err != err || res.Offset != -1 || res.Partition != -1 {
				t.Fatalf("Send result %+v", res)
			}
			cb := func(kafkaproducer.TypedResult[string, any]) { t.Error("callback called for a refused record") }
			check("SendAsync", tp.SendAsync(ctx, rec, cb))
			check("TrySend", tp.TrySend(ctx, rec, cb))
			_, err = tp.Encode(rec)
			check("Encode", err)
			rs := tp.SendBatch(ctx, []kafkaproducer.TypedRecord[string, any]{rec, rec})
			check("SendBatch[0]", rs[0].Err)
			check("SendBatch[1]", rs[1].Err)
		})
	}
	// Send, SendAsync, TrySend and two SendBatch records per case.
	if n, f := hook.n.Load(), hook.failed.Load(); n != int64(5*len(tests)) || f != n {
		t.Fatalf("hooks saw %d records (%d failed), want %d refusals", n, f, 5*len(tests))
	}
	if got := testkit.ConsumeUpTo(t, c.ListenAddrs(), "orders", 1, false, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("%d records reached Kafka", len(got))
	}
}

// TestTypedBatchMixed checks that a batch with some unserializable records
// sends the rest and keeps results in order.
func TestTypedBatchMixed(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	p := typedProducer(t, c)
	tp := mustTyped(t, p, kafkaproducer.StringSerializer{}, kafkaproducer.Serializer[any](kafkaproducer.JSON[any]()))
	recs := make([]kafkaproducer.TypedRecord[string, any], 10)
	for i := range recs {
		var v any = map[string]int{"i": i}
		if i%3 == 0 {
			v = func() {} // encoding/json cannot encode a func
		}
		recs[i] = kafkaproducer.TypedRecord[string, any]{Topic: "orders", Key: fmt.Sprint(i), Value: v}
	}
	rs := tp.SendBatch(testkit.Ctx(t, 30*time.Second), recs)
	sent := 0
	for i, r := range rs {
		switch {
		case i%3 == 0 && kafkaproducer.Classify(r.Err) != kafkaproducer.ClassBadInput:
			t.Fatalf("record %d: want bad input, got %v", i, r.Err)
		case i%3 != 0 && (r.Err != nil || string(r.Record.Key) != fmt.Sprint(i)):
			t.Fatalf("record %d: %q %v", i, r.Record.Key, r.Err)
		case i%3 != 0:
			sent++
		}
	}
	got := testkit.Consume(t, c.ListenAddrs(), "orders", sent, false, 10*time.Second)
	keys := make([]string, 0, len(got))
	for _, r := range got {
		keys = append(keys, string(r.Key))
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "1,2,4,5,7,8" {
		t.Fatalf("read back keys %v", keys)
	}
}

// TestTypedTombstones checks that nil values are sent as null on purpose
// (Tombstone, a nil pointer V) and read back as nil, and that nil keys and
// NoKey send no key, while an empty string stays an empty key.
func TestTypedTombstones(t *testing.T) {
	c := testkit.Cluster(t, []string{"compacted"})
	p := typedProducer(t, c)
	byPtr := mustTyped(t, p, kafkaproducer.StringSerializer{}, kafkaproducer.Serializer[*typedOrder](kafkaproducer.JSON[*typedOrder]()))
	byVal := mustTyped(t, p, kafkaproducer.Serializer[*string](kafkaproducer.JSON[*string]()), kafkaproducer.Serializer[typedOrder](kafkaproducer.JSON[typedOrder]()))
	ctx := testkit.Ctx(t, 30*time.Second)
	hdr := []kafkaproducer.Header{{Key: "reason", Value: []byte("deleted")}}
	s := "x"

	tests := []struct {
		name             string
		send             func() (kafkaproducer.Result, error)
		wantKey, wantVal []byte
		nilKey, nilValue bool
	}{
		{"nil pointer value", func() (kafkaproducer.Result, error) {
			return byPtr.Send(ctx, kafkaproducer.TypedRecord[string, *typedOrder]{Topic: "compacted", Key: "a", Value: nil, Headers: hdr})
		}, []byte("a"), nil, false, true},
		{"tombstone flag", func() (kafkaproducer.Result, error) {
			return byVal.Send(ctx, kafkaproducer.TypedRecord[*string, typedOrder]{Topic: "compacted", Key: &s, Value: typedOrder{ID: "ignored"}, Tombstone: true, Headers: hdr})
		}, []byte(`"x"`), nil, false, true},
		{"nil pointer key", func() (kafkaproducer.Result, error) {
			return byVal.Send(ctx, kafkaproducer.TypedRecord[*string, typedOrder]{Topic: "compacted", Value: typedOrder{ID: "k0"}, Headers: hdr})
		}, nil, []byte(`{"id":"k0","amount":0}`), true, false},
		{"NoKey flag", func() (kafkaproducer.Result, error) {
			return byPtr.Send(ctx, kafkaproducer.TypedRecord[string, *typedOrder]{Topic: "compacted", Key: "ignored", NoKey: true, Value: &typedOrder{ID: "k1"}, Headers: hdr})
		}, nil, []byte(`{"id":"k1","amount":0}`), true, false},
		{"empty string key", func() (kafkaproducer.Result, error) {
			return byPtr.Send(ctx, kafkaproducer.TypedRecord[string, *typedOrder]{Topic: "compacted", Key: "", Value: &typedOrder{ID: "k2"}, Headers: hdr})
		}, []byte{}, []byte(`{"id":"k2","amount":0}`), false, false},
	}
	offsets := map[int64]int{}
	for i, tt := range tests {
		res, err := tt.send()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (res.Record.Value == nil) != tt.nilValue || (res.Record.Key == nil) != tt.nilKey {
			t.Fatalf("%s: sent key %q (nil %v) value %q (nil %v)", tt.name, res.Record.Key, res.Record.Key == nil, res.Record.Value, res.Record.Value == nil)
		}
		offsets[int64(res.Partition)<<32|res.Offset] = i
	}
	got := testkit.Consume(t, c.ListenAddrs(), "compacted", len(tests), false, 10*time.Second)
	for _, r := range got {
		tt := tests[offsets[int64(r.Partition)<<32|r.Offset]]
		if (r.Value == nil) != tt.nilValue || (r.Key == nil) != tt.nilKey ||
			!bytes.Equal(r.Key, tt.wantKey) || !bytes.Equal(r.Value, tt.wantVal) {
			t.Errorf("%s: read back key %q (nil %v) value %q (nil %v)", tt.name, r.Key, r.Key == nil, r.Value, r.Value == nil)
		}
		if len(r.Headers) != 1 || string(r.Headers[0].Value) != "deleted" {
			t.Errorf("%s: headers %v", tt.name, r.Headers)
		}
	}
}

// sendOnly exposes only RecordSender's two methods of a real Producer, as
// a transaction does: Typed must batch through SendAsync and refuse
// TrySend.
type sendOnly struct{ p *kafkaproducer.Producer }

func (s sendOnly) Send(ctx context.Context, r kafkaproducer.Record) (kafkaproducer.Result, error) {
	return s.p.Send(ctx, r)
}

func (s sendOnly) SendAsync(ctx context.Context, r kafkaproducer.Record, cb func(kafkaproducer.Result)) error {
	return s.p.SendAsync(ctx, r, cb)
}

func TestTypedOverRecordSender(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	p := typedProducer(t, c)
	tp := mustTyped(t, kafkaproducer.RecordSender(sendOnly{p}), kafkaproducer.StringSerializer{}, kafkaproducer.Serializer[typedOrder](kafkaproducer.JSON[typedOrder]()))
	ctx := testkit.Ctx(t, 30*time.Second)
	recs := make([]kafkaproducer.TypedRecord[string, typedOrder], 20)
	for i := range recs {
		recs[i] = orderRec(i)
	}
	recs[5].Topic = "" // refused by the producer's SendAsync: must come back in place
	rs := tp.SendBatch(ctx, recs)
	for i, r := range rs {
		if i == 5 {
			if !errors.Is(r.Err, kafkaproducer.ErrNoTopic) {
				t.Fatalf("record 5: want ErrNoTopic, got %v", r.Err)
			}
			continue
		}
		if r.Err != nil || r.Offset < 0 || !bytes.Contains(r.Record.Value, []byte(recs[i].Value.ID+`"`)) {
			t.Fatalf("record %d: %q %v", i, r.Record.Value, r.Err)
		}
	}
	if err := tp.TrySend(ctx, recs[0], nil); err == nil || !strings.Contains(err.Error(), "no TrySend") {
		t.Fatalf("TrySend over a sender without it: %v", err)
	}
	testkit.Consume(t, c.ListenAddrs(), "orders", 19, false, 10*time.Second)
}

func TestNewTypedValidates(t *testing.T) {
	c := testkit.Cluster(t, nil)
	p := typedProducer(t, c)
	var nilProducer *kafkaproducer.Producer
	tests := []struct {
		name  string
		build func() error
		field string
	}{
		{"nil sender", func() error {
			_, err := kafkaproducer.NewTyped[string, string](nil, kafkaproducer.StringSerializer{}, kafkaproducer.StringSerializer{})
			return err
		}, "sender"},
		{"typed nil producer", func() error {
			_, err := kafkaproducer.NewTyped[string, string](nilProducer, kafkaproducer.StringSerializer{}, kafkaproducer.StringSerializer{})
			return err
		}, "sender"},
		{"nil key serializer", func() error {
			_, err := kafkaproducer.NewTyped[string, string](p, nil, kafkaproducer.StringSerializer{})
			return err
		}, "key serializer"},
		{"nil value serializer", func() error {
			var s kafkaproducer.SerializerFunc[string]
			_, err := kafkaproducer.NewTyped[string, string](p, kafkaproducer.StringSerializer{}, s)
			return err
		}, "value serializer"},
	}
	for _, tt := range tests {
		ce, ok := errors.AsType[*kafkaproducer.ConfigError](tt.build())
		if !ok || !strings.Contains(ce.Field, tt.field) {
			t.Errorf("%s: want ConfigError on %q, got %v", tt.name, tt.field, ce)
		}
	}
}

// kcatRecord is one record of kcat's -J output.
type kcatRecord struct {
	Key     *string  `json:"key"`
	Payload *string  `json:"payload"`
	Headers []string `json:"headers"`
}

// TestTypedKcatInterop has librdkafka's kcat, an independent reader, read
// back what the JSON and string serializers wrote, headers included.
func TestTypedKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (apt-get install kcat); CI installs it")
	}
	c := testkit.Cluster(t, []string{"orders"})
	p := typedProducer(t, c)
	orders := mustTyped(t, p, kafkaproducer.StringSerializer{}, kafkaproducer.Serializer[*typedOrder](kafkaproducer.JSON[*typedOrder]()))
	ctx := testkit.Ctx(t, 30*time.Second)
	want := map[string]typedOrder{}
	for i := range 5 {
		r := orderRec(i)
		r.Key = fmt.Sprintf("key-%d", i)
		v := r.Value
		if _, err := orders.Send(ctx, kafkaproducer.TypedRecord[string, *typedOrder]{Topic: r.Topic, Key: r.Key, Value: &v, Headers: r.Headers}); err != nil {
			t.Fatal(err)
		}
		want[r.Key] = v
	}
	if _, err := orders.Send(ctx, kafkaproducer.TypedRecord[string, *typedOrder]{Topic: "orders", Key: "gone", Headers: []kafkaproducer.Header{{Key: "seq", Value: []byte("t")}}}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, kcat, "-C", "-b", strings.Join(c.ListenAddrs(), ","), "-t", "orders",
		"-o", "beginning", "-e", "-J", "-q").Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 6 {
		t.Fatalf("kcat read %d records, want 6:\n%s", len(lines), out)
	}
	sawTombstone := false
	for _, line := range lines {
		var kr kcatRecord
		if err := json.Unmarshal([]byte(line), &kr); err != nil || kr.Key == nil {
			t.Fatalf("kcat line %q: %v", line, err)
		}
		if *kr.Key == "gone" {
			sawTombstone = kr.Payload == nil
			continue
		}
		var o typedOrder
		if kr.Payload == nil || json.Unmarshal([]byte(*kr.Payload), &o) != nil {
			t.Fatalf("kcat payload %v", kr.Payload)
		}
		w := want[*kr.Key]
		if o.ID != w.ID || o.Amount != w.Amount || len(kr.Headers) != 2 || kr.Headers[0] != "seq" {
			t.Fatalf("kcat read %q=%+v headers %v, want %+v", *kr.Key, o, kr.Headers, w)
		}
	}
	if !sawTombstone {
		t.Fatalf("kcat did not read the tombstone as a null payload:\n%s", out)
	}
}

func ExampleJSONSerializer() {
	type order struct {
		ID     string `json:"id"`
		Amount int    `json:"amount"`
	}
	b, err := kafkaproducer.JSON[order]().Serialize("orders", order{ID: "o-1", Amount: 250}, nil)
	fmt.Println(string(b), err)
	// Output: {"id":"o-1","amount":250} <nil>
}

func ExampleTyped_Encode() {
	type order struct {
		ID string `json:"id"`
	}
	// New does not contact the cluster, and Encode sends nothing: it
	// shows what Send would hand the producer.
	cfg := presets.Reliable()
	cfg.Brokers = []string{"127.0.0.1:9092"}
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		panic(err)
	}
	defer p.Close(context.Background())
	orders, err := kafkaproducer.NewTyped[string, *order](p, kafkaproducer.StringSerializer{}, kafkaproducer.JSON[*order]())
	if err != nil {
		panic(err)
	}
	rec, _ := orders.Encode(kafkaproducer.TypedRecord[string, *order]{Topic: "orders", Key: "c-1", Value: &order{ID: "o-1"}})
	fmt.Printf("%s=%s\n", rec.Key, rec.Value)
	del, _ := orders.Encode(kafkaproducer.TypedRecord[string, *order]{Topic: "orders", Key: "c-1"}) // nil *order
	fmt.Printf("nil *order is a tombstone: %v\n", del.Value == nil)
	// Output:
	// c-1={"id":"o-1"}
	// nil *order is a tombstone: true
}

// TestTypedSendAddsNoAllocations: a typed SendAsync allocates what its
// serializers do and nothing more than a bytes SendAsync of the encoded
// record (the typed record and callback share the pending record's
// allocation). Both are measured the same way against the same broker,
// so franz-go's and the broker's own allocations cancel out.
func TestTypedSendAddsNoAllocations(t *testing.T) {
	p := testkit.Producer(t, testkit.Cluster(t, []string{"allocs"}), presets.HighThroughput())
	ctx := testkit.Ctx(t, 60*time.Second)
	typed, err := kafkaproducer.NewTyped(p, kafkaproducer.BytesSerializer{}, kafkaproducer.BytesSerializer{})
	if err != nil {
		t.Fatal(err)
	}
	key, value := []byte("customer-42"), []byte("a value of some bytes")
	var wg sync.WaitGroup
	bytesCB := func(kafkaproducer.Result) { wg.Done() }
	typedCB := func(kafkaproducer.TypedResult[[]byte, []byte]) { wg.Done() }
	measure := func(send func() error) float64 { return allocsPerSend(t, &wg, send) }
	sendBytes := func() error {
		return p.SendAsync(ctx, kafkaproducer.Record{Topic: "allocs", Key: key, Value: value}, bytesCB)
	}
	sendTyped := func() error {
		return typed.SendAsync(ctx, kafkaproducer.TypedRecord[[]byte, []byte]{Topic: "allocs", Key: key, Value: value}, typedCB)
	}
	measure(sendBytes) // warm up: connection, producer ID, batch buffers
	b, ty := measure(sendBytes), measure(sendTyped)
	t.Logf("allocations per record: bytes %.2f, typed %.2f", b, ty)
	if ty > b+0.25 {
		t.Errorf("a typed SendAsync allocates %.2f per record, a bytes SendAsync %.2f: typing should add none", ty, b)
	}
}
