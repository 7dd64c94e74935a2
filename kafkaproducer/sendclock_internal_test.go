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
