package kafkaproducer

import (
	"testing"
	"time"
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

// TestCoarseClock: the first reading starts the ticker; later readings
// follow the clock without reading it, within a few ticks; a ticker with
// no reader stops, the next reading starts it again, and stop ends it for
// good.
func TestCoarseClock(t *testing.T) {
	var c sendClock
	c.init(time.Now())
	c.idleTicks = 20
	t.Cleanup(c.stop)
	// slack allows for the ticker waiting for a CPU under -race on a
	// loaded machine; a reading that stopped moving would be off by
	// the whole test's length.
	const slack = 150 * time.Millisecond
	check := func(what string) {
		t.Helper()
		before := time.Now()
		m, ts := c.coarse()
		after := time.Now()
		if ts.Before(before.Add(-slack)) || ts.After(after) {
			t.Fatalf("%s: coarse time %v is not within %v before [%v, %v]", what, ts, slack, before, after)
		}
		if mono := c.epoch.Add(time.Duration(m)); ts.Sub(mono.Round(0)).Abs() > time.Millisecond {
			t.Fatalf("%s: send time %v and timestamp %v disagree", what, mono, ts)
		}
	}
	check("first reading")
	if c.tick.Load() == nil {
		t.Fatal("the first reading did not start the ticker")
	}
	first := c.tick.Load()
	for range 30 { // 300ms of readings: the ticker moves on
		time.Sleep(10 * time.Millisecond)
		check("while sending")
	}
	if c.tick.Load() == first {
		t.Fatal("the ticker did not renew its reading")
	}

	// No reader for idleTicks ticks: the ticker stops.
	deadline := time.Now().Add(10 * time.Second)
	for c.tick.Load() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the idle ticker did not stop")
		}
		time.Sleep(5 * time.Millisecond)
	}
	check("after the ticker stopped")
	if c.tick.Load() == nil {
		t.Fatal("a reading did not restart the ticker")
	}

	c.stop()
	if c.tick.Load() != nil {
		t.Fatal("stop left a reading behind")
	}
	check("after stop")
	if c.tick.Load() != nil {
		t.Fatal("a reading after stop started the ticker")
	}
	c.stop() // a second stop is harmless
}
