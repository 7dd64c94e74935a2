package kafkaproducer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// recordHook is a franz-go record hook: a producer with one cannot
// count successes in pend, as Close's topic-less record would reach it.
type recordHook struct{ buffered, unbuffered atomic.Int64 }

func (h *recordHook) OnProduceRecordBuffered(*kgo.Record)          { h.buffered.Add(1) }
func (h *recordHook) OnProduceRecordUnbuffered(*kgo.Record, error) { h.unbuffered.Add(1) }

// TestTallyAddsUpAtClose: successes counted in pend while the producer
// was idle reach finished when Close runs, so Close returns; a producer
// with a default topic or a franz-go record hook counts every record
// straight away, and its hooks see only the records sent.
func TestTallyAddsUpAtClose(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hook := &recordHook{}
	for _, tc := range []struct {
		name  string
		opts  []kgo.Opt
		tally bool
	}{
		{"plain", nil, true},
		{"default topic", []kgo.Opt{kgo.DefaultProduceTopic("orders")}, false},
		{"record hook", []kgo.Opt{kgo.WithHooks(hook)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Config{Brokers: c.ListenAddrs(), Opts: tc.opts})
			if err != nil {
				t.Fatal(err)
			}
			if p.tally != tc.tally {
				t.Fatalf("tally = %v, want %v", p.tally, tc.tally)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const n = 300
			var ok, failed atomic.Int64
			for i := range n {
				r := Record{Topic: "orders", Value: []byte("v")}
				var err error
				if i%2 == 0 {
					err = p.SendAsync(ctx, r, func(res Result) {
						if res.Err != nil {
							failed.Add(1)
						}
						ok.Add(1)
					})
				} else {
					err = p.SendAsyncErr(ctx, r, func(err error) {
						if err != nil {
							failed.Add(1)
						}
						ok.Add(1)
					})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			// Every callback has run: nothing completes after this
			// until Close.
			for ok.Load() < n {
				if ctx.Err() != nil {
					t.Fatalf("%d of %d callbacks ran", ok.Load(), n)
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // the last promise returns
			closed := make(chan error, 1)
			go func() { closed <- p.Close(ctx) }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Close did not return: successes counted in pend never reached finished")
			}
			if failed.Load() != 0 || p.finished.Load() != n || p.sent.Load() != n || p.pend != 0 {
				t.Fatalf("failed %d, finished %d, sent %d, pend %d; want 0, %d, %d, 0",
					failed.Load(), p.finished.Load(), p.sent.Load(), p.pend, n, n)
			}
		})
	}
	if hook.buffered.Load() != 300 || hook.unbuffered.Load() != 300 {
		t.Fatalf("the record hook saw %d buffered and %d unbuffered, want the 300 sent", hook.buffered.Load(), hook.unbuffered.Load())
	}
}

// TestTallyWithSendsInFlightAtClose: Close while eight goroutines send in
// every style, into a small buffer. Close returns (the tally adds up with
// promises still running when it starts), every record whose send had
// returned before Close began has had its callback by the time Close
// returns, and every accepted record gets exactly one callback.
func TestTallyWithSendsInFlightAtClose(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for round := range 8 {
		p, err := New(Config{Brokers: c.ListenAddrs(), MaxBufferedRecords: 64})
		if err != nil {
			t.Fatal(err)
		}
		if !p.tally {
			t.Fatal("tally is off for a plain config")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var (
			nextID   atomic.Int64
			mu       sync.Mutex
			accepted = map[int64]bool{}
			called   = map[int64]int{}
		)
		accept := func(id int64) { mu.Lock(); accepted[id] = true; mu.Unlock() }
		call := func(id int64) { mu.Lock(); called[id]++; mu.Unlock() }
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := nextID.Add(1)
					r := Record{Topic: "orders", Value: []byte("v")}
					var err error
					switch (g + i) % 4 {
					case 0:
						err = p.SendAsyncErr(ctx, r, func(error) { call(id) })
					case 1:
						err = p.SendAsync(ctx, r, func(Result) { call(id) })
					case 2:
						err = p.TrySend(ctx, r, func(Result) { call(id) })
					case 3:
						if _, err := p.Send(ctx, r); !errors.Is(err, ErrClosed) {
							call(id) // its outcome is its callback
							accept(id)
						}
						continue
					}
					if err == nil {
						accept(id)
					}
				}
			}()
		}
		time.Sleep(time.Duration(20+round*10) * time.Millisecond)
		mu.Lock()
		before := make([]int64, 0, len(accepted))
		for id := range accepted {
			before = append(before, id)
		}
		mu.Unlock()
		closed := make(chan error, 1)
		go func() { closed <- p.Close(ctx) }()
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Close did not return: sent %d, finished %d", round, p.sent.Load(), p.finished.Load())
		}
		mu.Lock()
		for _, id := range before {
			if called[id] != 1 {
				t.Fatalf("round %d: record %d, sent before Close began, had %d callbacks when Close returned", round, id, called[id])
			}
		}
		mu.Unlock()
		close(stop)
		wg.Wait()
		cancel()
		mu.Lock()
		for id := range accepted {
			if called[id] != 1 {
				t.Fatalf("round %d: accepted record %d had %d callbacks", round, id, called[id])
			}
		}
		for id, n := range called {
			if !accepted[id] || n != 1 {
				t.Fatalf("round %d: record %d: accepted %v, %d callbacks", round, id, accepted[id], n)
			}
		}
		mu.Unlock()
		if p.sent.Load() != p.finished.Load() {
			t.Fatalf("round %d: sent %d, finished %d", round, p.sent.Load(), p.finished.Load())
		}
	}
}
