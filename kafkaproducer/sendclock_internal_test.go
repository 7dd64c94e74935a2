package kafkaproducer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSendClock: the derived wall time stays within a millisecond of
// time.Now, send times never go back, and an anchor older than
// reanchorEvery is replaced, so a stepped wall clock is taken in.
func TestSendClock(t *testing.T) {
	var c sendClock
	c.init(time.Now())
	var lastMono int64
	for range 1000 {
		before := time.Now()
		m, ts := c.now()
		after := time.Now()
		if m < lastMono {
			t.Fatalf("send time went back: %d after %d", m, lastMono)
		}
		lastMono = m
		if ts.Before(before.Add(-time.Millisecond)) || ts.After(after.Add(time.Millisecond)) {
			t.Fatalf("derived time %v is not within a millisecond of [%v, %v]", ts, before, after)
		}
		if ts != ts.Round(0) {
			t.Fatal("derived time carries a monotonic reading")
		}
	}

	// A wall clock stepped back an hour: the anchor says so.
	stepped := &clockAnchor{mono: lastMono, wall: time.Now().Add(-time.Hour).Round(0)}
	c.anchor.Store(stepped)
	if _, ts := c.now(); time.Since(ts) < 59*time.Minute {
		t.Fatalf("a fresh anchor was not used: %v", ts)
	}
	// Once the anchor is older than reanchorEvery, the real time is back.
	stepped.mono -= reanchorEvery
	if _, ts := c.now(); time.Since(ts).Abs() > time.Second {
		t.Fatalf("an old anchor was kept: %v, now %v", ts, time.Now())
	}
	if c.anchor.Load() == stepped {
		t.Fatal("the anchor was not replaced")
	}
}

// TestRecordTimestampFromSendClock: a record sent without a timestamp is
// written with the send time, to the millisecond.
func TestRecordTimestampFromSendClock(t *testing.T) {
	p := &Producer{}
	p.clock.init(time.Now())
	before := time.Now().Truncate(time.Millisecond)
	var pd pending
	p.fill(&pd, &Record{Topic: "t"})
	after := time.Now()
	if ts := pd.kr.Timestamp; ts.Before(before) || ts.After(after) {
		t.Fatalf("timestamp %v not within [%v, %v]", ts, before, after)
	}
	if pd.start <= 0 {
		t.Fatalf("start = %d", pd.start)
	}
}

// TestCoarseClock: below the start rate readings come from the clock
// and no ticker runs; at the start rate the ticker starts, and readings
// follow the clock without reading it, within a few ticks; when the rate
// falls the ticker stops and does not start again for coarseHold; stop
// ends it for good. The rate is driven through reads, the sampled count
// of readings.
func TestCoarseClock(t *testing.T) {
	var c sendClock
	c.init(time.Now())
	t.Cleanup(c.stop)
	// slack allows for the ticker waiting for a CPU under -race on a
	// loaded machine; a reading that stopped moving would be off by
	// the whole test's length.
	const slack = 150 * time.Millisecond
	// fast is a millisecond's worth of readings at 100 times the start
	// rate, in sampled counts.
	const fast = 100 * coarseStartRate / coarseSample
	var seq int64
	check := func(what string) {
		t.Helper()
		seq++
		before := time.Now()
		m, ts := c.coarse(seq)
		after := time.Now()
		if ts.Before(before.Add(-slack)) || ts.After(after) {
			t.Fatalf("%s: coarse time %v is not within %v before [%v, %v]", what, ts, slack, before, after)
		}
		if mono := c.epoch.Add(time.Duration(m)); ts.Sub(mono.Round(0)).Abs() > time.Millisecond {
			t.Fatalf("%s: send time %v and timestamp %v disagree", what, mono, ts)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// A reading a millisecond: no ticker.
	for range 150 {
		check("slow sends")
		if c.tick.Load() != nil {
			t.Fatal("the ticker started at a low rate")
		}
		time.Sleep(time.Millisecond)
	}

	// A hundred times the start rate: it starts once a rate can be
	// judged (coarseWindow after the anchor).
	waitFor("the ticker did not start at a high rate", func() bool {
		c.reads.Add(fast)
		check("fast sends")
		return c.tick.Load() != nil
	})
	first := c.tick.Load()
	ticking := 0
	for range 300 { // 300ms of readings: the ticker moves on
		c.reads.Add(fast)
		check("while ticking")
		if c.tick.Load() != nil {
			ticking++
		}
		time.Sleep(time.Millisecond)
	}
	if c.tick.Load() == first {
		t.Fatal("the ticker did not renew its reading")
	}
	if ticking < 60 { // a starved test goroutine can let it stop for coarseHold
		t.Fatalf("the ticker ran for %d of 300 readings at a high rate", ticking)
	}

	// The rate falls to a reading a millisecond: it stops, and stays
	// stopped for coarseHold even when the rate is back.
	waitFor("the ticker did not stop when the rate fell", func() bool {
		check("after the rate fell")
		return c.tick.Load() == nil
	})
	for time.Duration(c.holdUntil.Load())-time.Since(c.epoch) > 5*time.Millisecond {
		c.reads.Add(fast)
		check("during the hold")
		if c.tick.Load() != nil {
			t.Fatal("the ticker started again within coarseHold")
		}
		time.Sleep(time.Millisecond)
	}
	waitFor("the ticker did not start again after coarseHold", func() bool {
		c.reads.Add(fast)
		check("after the hold")
		return c.tick.Load() != nil
	})

	c.stop()
	if c.tick.Load() != nil {
		t.Fatal("stop left a reading behind")
	}
	c.tickMu.Lock()
	starts := c.starts
	c.tickMu.Unlock()
	for range 200 {
		c.reads.Add(fast)
		check("after stop")
		if c.tick.Load() != nil {
			t.Fatal("a reading after stop started the ticker")
		}
		time.Sleep(time.Millisecond)
	}
	c.tickMu.Lock()
	started := c.starts - starts
	c.tickMu.Unlock()
	if started != 0 {
		t.Fatalf("readings after stop started the ticker %d times", started)
	}
	c.stop() // a second stop is harmless
}

// TestCoarseSample: reads counts about one reading in coarseSample,
// whether the coarse records are every send, every other send, or every
// coarseSample-th send.
func TestCoarseSample(t *testing.T) {
	for _, step := range []int64{1, 2, 3, coarseSample} {
		var c sendClock
		c.init(time.Now())
		t.Cleanup(c.stop)
		c.startRate = 1 << 30 // no ticker
		const n = 64_000
		for i := range int64(n) {
			c.coarse(1 + i*step)
		}
		if got := c.reads.Load(); got < n/coarseSample/2 || got > 2*n/coarseSample {
			t.Errorf("every %d-th send: %d of %d readings counted, want about %d", step, got, n, n/coarseSample)
		}
	}
}

// TestCoarseTimestampsEndToEnd: what the broker stores for SendAsyncErr
// records stamped from the coarse clock is their send time, in a burst
// that starts the ticker and runs on it, and in a burst after it stopped
// when the sends did. The thresholds are lowered (start at any rate, stop
// below a reading a tick) so that a test's few records a millisecond run
// the ticker.
func TestCoarseTimestampsEndToEnd(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := New(Config{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	p.clock.startRate, p.clock.stopRate = 0, 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type window struct{ from, to time.Time }
	sent := map[string]window{}
	var failed atomic.Int64
	ticked := false
	burst := func(name string) {
		for i := range 50 {
			v := fmt.Sprintf("%s-%d", name, i)
			ticked = ticked || p.clock.tick.Load() != nil
			before := time.Now()
			if err := p.SendAsyncErr(ctx, Record{Topic: "orders", Value: []byte(v)}, func(err error) {
				if err != nil {
					failed.Add(1)
				}
			}); err != nil {
				t.Fatal(err)
			}
			sent[v] = window{before, time.Now()}
			time.Sleep(time.Millisecond)
		}
	}
	burst("first")
	time.Sleep(200 * time.Millisecond) // the ticker stops: no readings
	if p.clock.tick.Load() != nil {
		t.Error("the ticker ran on without readings")
	}
	burst("restarted")
	if !ticked {
		t.Fatal("no record was stamped from the ticker")
	}
	if err := p.Close(ctx); err != nil || failed.Load() != 0 {
		t.Fatalf("close: %v; %d failed", err, failed.Load())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The ticker may wait for a CPU under -race on a loaded machine; a
	// clock that stopped moving would be off by a burst or an idle spell.
	const slack = 150 * time.Millisecond
	for read := 0; read < len(sent); {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", read, len(sent), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			w, ok := sent[string(r.Value)]
			if !ok {
				t.Fatalf("unexpected record %q", r.Value)
			}
			if r.Timestamp.Before(w.from.Add(-slack)) || r.Timestamp.After(w.to) {
				t.Fatalf("record %s stamped %v, sent within [%v, %v]", r.Value, r.Timestamp, w.from, w.to)
			}
		})
	}
}
