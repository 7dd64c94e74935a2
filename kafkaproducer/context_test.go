package kafkaproducer_test

import (
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
)

// TestCanceledContextsFailOnlyTheirOwn: a service passes each request's
// context to SendAsync, and half its clients hang up ~100µs after the
// call. franz-go fails a whole batch when its first record's context
// ends; kprod must not: no record with a live context fails, on a fresh
// producer (metadata still loading) or a warm one, with every preset. A
// canceled record is either refused at the call (not sent) or delivered,
// never failed by its context once buffered, and every record sent is on
// the topic.
func TestCanceledContextsFailOnlyTheirOwn(t *testing.T) {
	presetsByName := map[string]func() kafkaproducer.Config{
		"reliable":        presets.Reliable,
		"high-throughput": presets.HighThroughput,
		"low-latency":     presets.LowLatency,
	}
	for name, preset := range presetsByName {
		for _, warm := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/warm=%v", name, warm), func(t *testing.T) {
				c := testkit.Cluster(t, []string{"orders"})
				p := testkit.Producer(t, c, preset())
				if warm {
					if _, err := p.Send(testkit.Ctx(t, 10*time.Second), kafkaproducer.Record{Topic: "orders", Value: []byte("warm-up")}); err != nil {
						t.Fatal(err)
					}
				}
				const n = 2000
				var (
					wg                             sync.WaitGroup
					liveFailed, canceledFailed, ok atomic.Int64
					refusedLive, refusedCanceled   atomic.Int64
					firstLiveErr                   atomic.Value
				)
				wg.Add(n)
				for i := range n {
					go func() {
						ctx, cancel := context.WithCancel(context.Background())
						defer cancel()
						live := i%2 == 0
						if !live {
							stop := time.AfterFunc(100*time.Microsecond, cancel)
							defer stop.Stop()
						}
						err := p.SendAsync(ctx, kafkaproducer.Record{Topic: "orders", Key: fmt.Appendf(nil, "k%d", i%50), Value: fmt.Appendf(nil, "%d", i)}, func(r kafkaproducer.Result) {
							defer wg.Done()
							switch {
							case r.Err == nil:
								ok.Add(1)
							case live:
								liveFailed.Add(1)
								firstLiveErr.CompareAndSwap(nil, r.Err)
							default:
								canceledFailed.Add(1)
							}
						})
						if err != nil {
							defer wg.Done()
							if live {
								refusedLive.Add(1)
								firstLiveErr.CompareAndSwap(nil, err)
							} else if kafkaproducer.Classify(err) == kafkaproducer.ClassCanceled {
								refusedCanceled.Add(1)
							} else {
								canceledFailed.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				t.Logf("delivered %d; canceled contexts: %d refused at the call; failures: %d live, %d canceled",
					ok.Load(), refusedCanceled.Load(), liveFailed.Load()+refusedLive.Load(), canceledFailed.Load())
				if liveFailed.Load()+refusedLive.Load() != 0 {
					t.Errorf("%d records with live contexts failed, first: %v", liveFailed.Load()+refusedLive.Load(), firstLiveErr.Load())
				}
				if canceledFailed.Load() != 0 {
					t.Errorf("%d records with canceled contexts failed after they were buffered", canceledFailed.Load())
				}
				if ok.Load()+refusedCanceled.Load() != n {
					t.Errorf("%d delivered + %d refused, want %d outcomes", ok.Load(), refusedCanceled.Load(), n)
				}
				want := int(ok.Load())
				if warm {
					want++
				}
				if got := testkit.ConsumeAll(t, c.ListenAddrs(), "orders", 10*time.Second); len(got) != want {
					t.Errorf("read back %d records, want %d", len(got), want)
				}
			})
		}
	}
}

// TestSendStopsWaitingWhenTheCallerDoes: a Send whose context ends while
// its record is in flight returns at once with ErrOutcomeUnknown; the
// record goes on, and its real outcome reaches the hooks and Close's
// accounting. SendBatch does the same for each record.
func TestSendStopsWaitingWhenTheCallerDoes(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	hook := &countHook{}
	cfg := presets.Reliable()
	cfg.Hooks = []kafkaproducer.Hook{hook}
	// The hung requests are given up 1s + 10s after they were sent, and
	// retried well within the delivery timeout.
	cfg.RequestTimeout, cfg.DeliveryTimeout = time.Second, 40*time.Second
	p := testkit.Producer(t, c, cfg)
	if _, err := p.Send(testkit.Ctx(t, 10*time.Second), kafkaproducer.Record{Topic: "orders", Value: []byte("warm-up")}); err != nil {
		t.Fatal(err)
	}
	release := testkit.HangProduce(c)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := p.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("one")})
	waited := time.Since(start)
	if !errors.Is(err, kafkaproducer.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send into a hung broker: %v, want ErrOutcomeUnknown and DeadlineExceeded", err)
	}
	if kafkaproducer.Classify(err) != kafkaproducer.ClassTimeout || res.Partition != -1 || res.Offset != -1 {
		t.Errorf("class %v, partition %d, offset %d; want timeout, -1, -1", kafkaproducer.Classify(err), res.Partition, res.Offset)
	}
	if waited > 2*time.Second {
		t.Errorf("Send returned %v after its context ended at 200ms", waited)
	}

	bctx, bcancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, bcancel)
	batch := p.SendBatch(bctx, []kafkaproducer.Record{{Topic: "orders", Value: []byte("two")}, {Topic: "orders", Value: []byte("three")}})
	for i, r := range batch {
		if !errors.Is(r.Err, kafkaproducer.ErrOutcomeUnknown) || r.Class() != kafkaproducer.ClassCanceled {
			t.Errorf("batch record %d: %v (%v), want ErrOutcomeUnknown, canceled", i, r.Err, r.Class())
		}
	}
	if n := hook.ok.Load() + hook.failed.Load(); n != 1 {
		t.Errorf("hooks saw %d outcomes while the records hang, want only the warm-up", n)
	}

	release()
	testkit.WaitFor(t, 30*time.Second, "the three records' real outcomes", func() bool { return hook.ok.Load() == 4 })
	if hook.failed.Load() != 0 {
		t.Errorf("%d records failed", hook.failed.Load())
	}
	if got := testkit.ConsumeAll(t, c.ListenAddrs(), "orders", 10*time.Second); len(got) != 4 {
		t.Errorf("read back %d records, want 4", len(got))
	}
}

// TestBufferWaitEndsWithTheContext: a SendAsync blocked for buffer space
// gives up when its context ends, and the record is not sent; the
// records already buffered are untouched.
func TestBufferWaitEndsWithTheContext(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.LowLatency()
	cfg.MaxBufferedRecords = 10
	p := testkit.Producer(t, c, cfg)
	if _, err := p.Send(testkit.Ctx(t, 10*time.Second), kafkaproducer.Record{Topic: "orders", Value: []byte("warm-up")}); err != nil {
		t.Fatal(err)
	}
	release := testkit.HangProduce(c)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 10 {
		wg.Add(1)
		if err := p.SendAsync(context.Background(), kafkaproducer.Record{Topic: "orders", Value: fmt.Appendf(nil, "%d", i)}, func(r kafkaproducer.Result) {
			defer wg.Done()
			if r.Err != nil {
				failed.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.SendAsync(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("eleventh")}, func(kafkaproducer.Result) { t.Error("callback of a refused record") })
	if !errors.Is(err, context.DeadlineExceeded) || kafkaproducer.Classify(err) != kafkaproducer.ClassTimeout {
		t.Fatalf("SendAsync into a full buffer: %v, want the context's deadline", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %v for room, want about the context's 150ms", waited)
	}
	if err := p.TrySend(context.Background(), kafkaproducer.Record{Topic: "orders"}, nil); !errors.Is(err, kafkaproducer.ErrBufferFull) {
		t.Errorf("TrySend into a full buffer: %v, want ErrBufferFull", err)
	}
	release()
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d buffered records failed", failed.Load())
	}
	if got := testkit.ConsumeAll(t, c.ListenAddrs(), "orders", 10*time.Second); len(got) != 11 {
		t.Errorf("read back %d records, want 11", len(got))
	}
}

// TestHungBrokerEndsWithinDeliveryTimeout: a broker that stops answering
// without closing the connection must not stretch DeliveryTimeout by
// franz-go's 10s request overhead. With RequestTimeout 1s and
// DeliveryTimeout 3s, a Send with no deadline of its own used to return
// after 11s.
func TestHungBrokerEndsWithinDeliveryTimeout(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.Reliable()
	cfg.RequestTimeout = time.Second
	cfg.DeliveryTimeout = 3 * time.Second
	p := testkit.Producer(t, c, cfg)
	if _, err := p.Send(testkit.Ctx(t, 10*time.Second), kafkaproducer.Record{Topic: "orders", Value: []byte("warm-up")}); err != nil {
		t.Fatal(err)
	}
	release := testkit.HangProduce(c)
	defer release()
	start := time.Now()
	_, err := p.Send(context.Background(), kafkaproducer.Record{Topic: "orders", Value: []byte("hung")})
	took := time.Since(start)
	t.Logf("Send into a hung broker ended after %v: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, kafkaproducer.ErrDeliveryTimeout) {
		t.Errorf("error %v, want ErrDeliveryTimeout", err)
	}
	if took > cfg.DeliveryTimeout+time.Second {
		t.Errorf("Send took %v, want about DeliveryTimeout (%v)", took, cfg.DeliveryTimeout)
	}
}

// TestBatchLargerThanTheBuffer: a SendBatch of more records than the
// buffer holds gets in a quarter of the buffer at a time while other
// senders keep the buffer busy, and every record of both is delivered.
func TestBatchLargerThanTheBuffer(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.LowLatency()
	cfg.MaxBufferedRecords = 16
	p := testkit.Producer(t, c, cfg)
	ctx := testkit.Ctx(t, 60*time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			wg.Add(1)
			if err := p.SendAsync(ctx, kafkaproducer.Record{Topic: "orders", Value: fmt.Appendf(nil, "async-%d", i)}, func(r kafkaproducer.Result) {
				defer wg.Done()
				if r.Err != nil {
					failed.Add(1)
				}
			}); err != nil {
				wg.Done()
				failed.Add(1)
			}
		}
	}()
	recs := make([]kafkaproducer.Record, 100)
	for i := range recs {
		recs[i] = kafkaproducer.Record{Topic: "orders", Value: fmt.Appendf(nil, "batch-%d", i)}
	}
	if err := p.SendBatch(ctx, recs).FirstErr(); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d async records failed", failed.Load())
	}
	if got := testkit.ConsumeAll(t, c.ListenAddrs(), "orders", 10*time.Second); len(got) != 2100 {
		t.Errorf("read back %d records, want 2100", len(got))
	}
}
