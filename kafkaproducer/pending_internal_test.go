package kafkaproducer

import (
	"context"
	"errors"
	"math"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPendingSize: a pending record stays in the 208-byte size class.
// Up to 100,000 are in flight, and franz-go's promise goroutine touches
// each one's cache lines once more when its response arrives.
func TestPendingSize(t *testing.T) {
	if n := reflect.TypeFor[pending]().Size(); n > 208 {
		t.Errorf("pending is %d bytes, more than 208: the promise goroutine touches every byte of it per record", n)
	}
}

// addHeader is a franz-go hook that adds a header to every record it
// buffers, as kotel does with trace context.
type addHeader struct{}

func (addHeader) OnProduceRecordBuffered(r *kgo.Record) {
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte("00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")})
}

// TestGateReleasesWhatItAdmitted: a hook that adds headers after a record
// was admitted does not unbalance the buffer's byte count; the gate
// releases the size it admitted, for single sends and for batches.
func TestGateReleasesWhatItAdmitted(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := New(Config{
		Brokers:          c.ListenAddrs(),
		MaxBufferedBytes: 1 << 20,
		Opts:             []kgo.Opt{kgo.WithHooks(addHeader{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		err := p.SendAsync(ctx, Record{Topic: "orders", Value: []byte("value"), Headers: []Header{{Key: "n", Value: []byte{byte(i)}}}}, func(res Result) {
			defer wg.Done()
			if res.Err != nil {
				t.Error(res.Err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	batch := make([]Record, 100)
	for i := range batch {
		batch[i] = Record{Topic: "orders", Key: []byte{byte(i)}, Value: []byte("value")}
	}
	if err := p.SendBatch(ctx, batch).FirstErr(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	in, out := p.gate.in.bytes.Load(), p.gate.out.bytes.Load()
	if in != out || in == 0 {
		t.Errorf("gate admitted %d bytes and released %d", in, out)
	}
}

// TestRecordBeyondInt32Refused: no Kafka record holds more than
// math.MaxInt32 bytes; such a record is refused before it is buffered.
func TestRecordBeyondInt32Refused(t *testing.T) {
	p := &Producer{gate: newGate(10, 0)}
	if err := p.checkSize(math.MaxInt32 + 1); !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("a record of 2 GiB: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := p.checkSize(math.MaxInt32); err != nil {
		t.Errorf("a record of math.MaxInt32 bytes with no byte limit: %v", err)
	}
}

// TestGateWaiterGetsIn: a waiter for one record, or for a SendBatch chunk
// of a quarter of the buffer, gets in as soon as that much room is
// released, with no further releases (the rest of the buffer may be stuck
// behind an unreachable leader).
func TestGateWaiterGetsIn(t *testing.T) {
	for _, n := range []int64{1, 40} {
		g := newGate(160, 0)
		if err := g.take(context.Background(), 160, 0, true); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- g.take(context.Background(), n, 0, true) }()
		for g.waiters.Load() == 0 {
			time.Sleep(time.Millisecond) // until the waiter waits
		}
		for range n {
			g.release(1, 0)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("waiter for %d: %v", n, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("waiter for %d records not admitted after %d of 160 were released", n, n)
		}
	}
}

// TestSendBatchChunksKeepPositions: a batch many times the buffer goes in
// chunks, and every Result lands at its record's position, with a ctx that
// can end (each chunk's results are its own until they are copied) and
// without.
func TestSendBatchChunksKeepPositions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := New(Config{Brokers: c.ListenAddrs(), MaxBufferedRecords: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	batch := make([]Record, 50)
	for i := range batch {
		batch[i] = Record{Topic: "orders", Key: []byte{byte(i % 7)}, Value: []byte{byte(i)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ctx := range []context.Context{ctx, context.Background()} {
		rs := p.SendBatch(ctx, batch)
		for i, r := range rs {
			if r.Err != nil || len(r.Record.Value) != 1 || r.Record.Value[0] != byte(i) || r.Offset < 0 {
				t.Fatalf("result %d: value %v, offset %d, err %v", i, r.Record.Value, r.Offset, r.Err)
			}
		}
	}
}

// TestGateNoLostWakeUp: eight callers wait on a full buffer while eight
// records are released from another goroutine, racing their attempts;
// each release must let one more in, whatever the interleaving, both on
// the record limit and on the byte limit.
func TestGateNoLostWakeUp(t *testing.T) {
	for i := range 200 {
		g := newGate(8, 800)
		size := int64(1)
		if i%2 == 1 {
			size = 100 // the byte limit binds
		}
		if err := g.take(context.Background(), 8, 8*size, true); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 8)
		for range 8 {
			go func() { done <- g.take(context.Background(), 1, size, true) }()
		}
		go func() {
			for range 8 {
				runtime.Gosched()
				g.release(1, size)
			}
		}()
		for range 8 {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("iteration %d: a waiter still waits after 8 releases for 8 waiters", i)
			}
		}
	}
}

type plainHook struct{}

func (plainHook) OnRecordDone(Result) {}

type ackOnlyHook struct{ plainHook }

func (ackOnlyHook) OnRecordAcked(AckedRecord) {}

// TestAllAck: the promise skips building a success's Result only when
// every hook is an AckHook, and the hooks it calls are the Producer's own
// copy, not the caller's Config.Hooks.
func TestAllAck(t *testing.T) {
	for _, tt := range []struct {
		name  string
		hooks []Hook
		want  bool
	}{
		{"none", nil, true},
		{"ack hooks", []Hook{ackOnlyHook{}, ackOnlyHook{}}, true},
		{"a plain hook among them", []Hook{ackOnlyHook{}, plainHook{}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Brokers: []string{"127.0.0.1:1"}, Hooks: tt.hooks}
			p, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			if p.allAck != tt.want || len(p.ackHooks) != len(tt.hooks) {
				t.Fatalf("allAck %v with %d ack hooks, want %v with %d", p.allAck, len(p.ackHooks), tt.want, len(tt.hooks))
			}
			if len(tt.hooks) > 0 {
				cfg.Hooks[0] = plainHook{}
				if _, ok := p.hooks[0].(AckHook); !ok {
					t.Fatal("the producer's hooks share the caller's slice")
				}
			}
		})
	}
}
